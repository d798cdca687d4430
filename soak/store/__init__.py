"""The run store: the run directory (docs/contract.md#run-directory), written while the run goes."""
