"""Analysis: turn the raw CSVs of a run into per-swap figures, verdicts and a summary."""
