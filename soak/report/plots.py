"""The report's figures, as SVG data URIs (no remote assets, no pyplot state).

Each figure is drawn on its own matplotlib `Figure` (no global pyplot state, so
this is safe in any thread) and embedded as an <img> data URI, which keeps the
SVG ids of one figure from clashing with another's.
"""

from __future__ import annotations

import base64
import io

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from soak.analysis.latency import STEADY, SWAP, swap_window, window_labels
from soak.analysis.timeline import Timeline
from soak.analysis.verdict import theil_sen
from soak.store.records import MIB

MAX_POINTS = 2000  # per line; longer series are reduced to min/max per time bin
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
STAGED_COLOR, SETTLED_COLOR, SWAP_SHADE = "#999999", "#2ca02c", "#fdebd0"
WIDTH_IN = 11.0
MAX_MARKED_SWAPS = 40  # beyond this, per-swap lines and markers would hide the data


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def memory_timeline(
    memory: pd.DataFrame, timeline: Timeline, metric: str, baseline_mb: float | None, i: int
) -> str:
    """One variant's memory over time, with staged and settled markers."""
    fig = Figure(figsize=(WIDTH_IN, 3.2))
    ax = fig.add_subplot()
    t0 = _t0(memory["t"], timeline)
    shown = [(metric, color(i), 1.4)]
    shown += [(c, "#bbbbbb", 0.9) for c in ("rss_bytes", "cgroup_working_set_bytes") if c != metric]
    for column, line_color, width in shown:
        if column in memory and memory[column].notna().any():
            x, y = _reduce(memory["t"].to_numpy() - t0, memory[column].to_numpy() / MIB)
            ax.plot(x, y, color=line_color, lw=width, label=column.removesuffix("_bytes"))
    if len(timeline.swaps) <= MAX_MARKED_SWAPS:
        for swap in timeline.swaps:
            ax.axvline(swap.staged_t - t0, color=STAGED_COLOR, lw=0.8, ls="--")
            if swap.settled_t is not None:
                ax.axvline(swap.settled_t - t0, color=SETTLED_COLOR, lw=0.8, ls=":")
    else:  # lines would hide the data: ticks along the top instead
        staged = [s.staged_t - t0 for s in timeline.swaps]
        ax.plot(
            staged,
            [0.97] * len(staged),
            "|",
            color=STAGED_COLOR,
            ms=6,
            transform=ax.get_xaxis_transform(),
        )
    if timeline.baseline_t is not None:
        ax.axvline(timeline.baseline_t - t0, color=SETTLED_COLOR, lw=0.8, ls=":")
    if baseline_mb is not None:
        ax.axhline(baseline_mb, color=color(i), lw=0.6, alpha=0.5)
    ax.plot([], [], color=STAGED_COLOR, ls="--", lw=0.8, label="staged")
    ax.plot([], [], color=SETTLED_COLOR, ls=":", lw=0.8, label="settled")
    ax.set_xlabel("seconds since the variant started")
    ax.set_ylabel("MiB")
    ax.legend(loc="upper left", fontsize=8, ncols=5, frameon=False)
    ax.grid(alpha=0.3)
    return _data_uri(fig)


def settled_per_swap(variants: list[dict], warmup_swaps: int, threshold_mb: float) -> str:
    """Retained memory after each swap for every variant, with its fitted slope."""
    fig = Figure(figsize=(WIDTH_IN, 3.8))
    ax = fig.add_subplot()
    last = 1
    for i, v in enumerate(variants):
        points = [
            (s["index"], s["retained_mb"])
            for s in v["swaps"]
            if s["completed"] and s["retained_mb"] is not None
        ]
        if not points:
            continue
        x, y = np.array(points, dtype=float).T
        last = max(last, int(x.max()))
        style = "o-" if len(x) <= MAX_MARKED_SWAPS else "-"
        label = f"{v['name']} ({v['memory']['verdict']})"
        ax.plot(x, y, style, color=color(i), lw=0.8, ms=4, label=label)
        judged = x > warmup_swaps
        if judged.sum() >= 2:
            slope, intercept = theil_sen(x[judged], y[judged])
            xs = np.array([x[judged].min(), x[judged].max()])
            ax.plot(
                xs,
                intercept + slope * xs,
                color=color(i),
                lw=2,
                alpha=0.5,
                label=f"{v['name']} fit: {slope:.2f} MiB/swap",
            )
    if warmup_swaps:
        ax.axvspan(0.5, warmup_swaps + 0.5, color="#eeeeee", label="warmup swaps")
    ax.axhspan(
        -threshold_mb,
        threshold_mb,
        color="#d5f5e3",
        alpha=0.6,
        label=f"within threshold ({threshold_mb:.1f} MiB)",
    )
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlim(0.5, last + 0.5)
    ax.set_xlabel("swap")
    ax.set_ylabel("retained MiB (settled - baseline)")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _data_uri(fig)


def latency_timeline(latency: pd.DataFrame, timeline: Timeline, i: int) -> str:
    """One variant's request latencies over time; swap windows shaded, errors marked."""
    fig = Figure(figsize=(WIDTH_IN, 3.0))
    ax = fig.add_subplot()
    t0 = _t0(latency["t_intended"], timeline)
    t = latency["t_intended"].to_numpy(dtype=float)
    labels = window_labels(t, timeline)
    ok = latency["status"].to_numpy() == 200
    shown = (labels == STEADY) | (labels == SWAP)
    for swap in timeline.swaps:
        start, end = swap_window(swap)
        end = min(end, np.nanmax(t, initial=start))
        ax.axvspan(start - t0, end - t0, color=SWAP_SHADE, lw=0)
    ms = latency["latency_ms"].to_numpy(dtype=float)
    ax.scatter(
        t[shown & ok] - t0, ms[shown & ok], s=3, color=color(i), rasterized=True, label="200"
    )
    if (shown & ~ok).any():
        ax.scatter(
            t[shown & ~ok] - t0,
            ms[shown & ~ok],
            s=14,
            marker="x",
            color="#d62728",
            zorder=3,
            label="error",
        )
    ax.fill_between([], [], color=SWAP_SHADE, label="swap window")
    if (shown & ok).any():
        ax.set_yscale("log")
    ax.set_xlabel("seconds since the variant started")
    ax.set_ylabel("latency ms")
    ax.legend(loc="upper left", fontsize=8, ncols=3, frameon=False)
    ax.grid(alpha=0.3, which="both")
    return _data_uri(fig)


def latency_windows(variants: list[dict]) -> str:
    """p50 and p99 per window (steady, swap) for every variant, side by side."""
    fig = Figure(figsize=(WIDTH_IN, 2.8))
    ax = fig.add_subplot()
    bars = ("steady_p50_ms", "steady_p99_ms", "swap_p50_ms", "swap_p99_ms")
    width = 0.8 / max(1, len(variants))
    for i, v in enumerate(variants):
        values = [v["latency"][b] or 0.0 for b in bars]
        ax.bar(np.arange(len(bars)) + i * width, values, width, color=color(i), label=v["name"])
    ax.set_xticks(
        np.arange(len(bars)) + 0.4 - width / 2,
        [b.removesuffix("_ms").replace("_", " ") for b in bars],
    )
    ax.set_ylabel("ms")
    if variants:
        ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3, axis="y")
    return _data_uri(fig)


def _t0(times: pd.Series, timeline: Timeline) -> float:
    """Time zero of a variant's plots: its first event, else its first sample."""
    if timeline.started_t is not None:
        return timeline.started_t
    return float(times.min()) if len(times) else 0.0


def _reduce(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most about MAX_POINTS points: the min and max of each time bin, in order."""
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) <= MAX_POINTS:
        return x, y
    bins = np.array_split(np.arange(len(x)), MAX_POINTS // 2)
    picks = []
    for b in bins:
        lo, hi = b[np.argmin(y[b])], b[np.argmax(y[b])]
        picks += sorted((lo, hi))
    picks = np.array(picks)
    return x[picks], y[picks]


def _data_uri(fig: Figure) -> str:
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "soak"}):
        buffer = io.StringIO()
        fig.tight_layout()
        fig.savefig(buffer, format="svg", dpi=150, metadata={"Date": None})
    encoded = base64.b64encode(buffer.getvalue().encode("utf-8")).decode("ascii")
    return f"data:image/svg+xml;base64,{encoded}"
