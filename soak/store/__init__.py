"""The run store: the run directory of SPEC §3, written while the run goes."""
