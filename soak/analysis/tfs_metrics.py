"""TF Serving's own figures per swap, from its Prometheus metrics (VARIANT/metrics.csv).

The counters are cumulative, and metrics.csv holds a row whenever a series changed (each
row stamped with the swap it was scraped in), so a series' value at the end of swap k is
its last row with swap <= k. A per-swap figure is the change across the swap of the sum of
the series of one name (over its labels: each version's model_path is its own series).
A swap whose sum did not grow has no figure (None): its load was not seen, e.g. no scrape
came between the load and the end of the swap.

- `tfs_load_ms`: `/tensorflow/cc/saved_model/load_latency` (microseconds, counter): the
  SavedModel load as TF Serving times it (restore and init, without warmup).
- `tfs_warmup_ms`: `/tensorflow/serving/model_warmup_latency` (histogram, its `_sum`).
"""

from __future__ import annotations

import pandas as pd

# The page writes names with ':' for '/', counters without `_total` (TF Serving's
# exporter); an exporter that adds `_total` is read the same.
LOAD_LATENCY = ":tensorflow:cc:saved_model:load_latency"
WARMUP_LATENCY_SUM = ":tensorflow:serving:model_warmup_latency_sum"
NAMES = {
    "tfs_load_ms": (LOAD_LATENCY, LOAD_LATENCY + "_total"),
    "tfs_warmup_ms": (WARMUP_LATENCY_SUM,),
}
USED_NAMES = frozenset(name for names in NAMES.values() for name in names)
_US_PER_MS = 1000.0


def per_swap_ms(metrics: pd.DataFrame, figure: str) -> dict[int, float]:
    """{swap index >= 1: the figure's growth across that swap, ms}; {} without its series."""
    rows = metrics[metrics["name"].isin(NAMES[figure])]
    if rows.empty:
        return {}
    ends = rows.groupby(["swap", "name", "labels"], sort=True)["value"].last()
    by_swap = ends.unstack(["name", "labels"])  # one column per series
    swaps = range(int(by_swap.index.min()), int(by_swap.index.max()) + 1)
    totals = by_swap.reindex(swaps).ffill().fillna(0.0).sum(axis=1)
    growth = totals.diff()
    return {int(k): float(v) / _US_PER_MS for k, v in growth.items() if k >= 1 and v > 0}
