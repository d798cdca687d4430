"""Targets: a TF Serving server soak starts, observes and stops (process or container)."""
