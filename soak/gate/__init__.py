"""The gate: `soak check` limits and regressions, for CI and schedulers."""
