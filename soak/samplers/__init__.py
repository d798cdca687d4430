"""Samplers: threads that record memory, model status and latency while the run goes."""
