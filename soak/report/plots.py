"""The report's figures, as SVG data URIs (no remote assets, no pyplot state).

Each figure is drawn on its own matplotlib `Figure` (no global pyplot state, so
this is safe in any thread) and embedded as an <img> data URI, which keeps the
SVG ids of one figure from clashing with another's.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from soak.analysis.plot_data import MAX_BARS, reduce_points
from soak.analysis.result import Series, VariantResult, VariantTimeline

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
STAGED_COLOR, SETTLED_COLOR, SWAP_SHADE = "#999999", "#2ca02c", "#fdebd0"
CONTEXT_COLOR = "#bbbbbb"  # memory lines besides the verdict metric
RELEASE_COLOR = "#8e44ad"  # the trim experiment
# the breakdown's parts, in stacking order (the names of VariantTimeline.breakdown's series)
BREAKDOWN_COLORS = {
    "live heap": "#c0392b",
    "held by the allocator": "#f5b041",
    "non-heap": "#85929e",
}
WIDTH_IN = 11.0
MAX_MARKED_SWAPS = 40  # beyond this, per-swap lines and markers would hide the data
MAX_TICKS = 1000  # staging ticks of a long run: more than a plot's width in pixels shows


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def memory_timeline(timeline: VariantTimeline, baseline_mb: float | None, i: int) -> str:
    """One variant's memory over time, with staged and settled markers."""
    fig = Figure(figsize=(WIDTH_IN, 3.2))
    ax = fig.add_subplot()
    for n, line in enumerate(timeline.memory):
        line_color, width = (color(i), 1.4) if n == 0 else (CONTEXT_COLOR, 0.9)
        ax.plot(_array(line.x), _array(line.y), color=line_color, lw=width, label=line.name)
    if len(timeline.staged_s) <= MAX_MARKED_SWAPS:
        for staged, settled in zip(timeline.staged_s, timeline.settled_s, strict=True):
            ax.axvline(staged, color=STAGED_COLOR, lw=0.8, ls="--")
            if settled is not None:
                ax.axvline(settled, color=SETTLED_COLOR, lw=0.8, ls=":")
    else:  # lines would hide the data: ticks along the top instead (at most MAX_TICKS)
        ticks = timeline.staged_s[:: -(-len(timeline.staged_s) // MAX_TICKS)]
        ax.plot(
            ticks,
            [0.97] * len(ticks),
            "|",
            color=STAGED_COLOR,
            ms=6,
            transform=ax.get_xaxis_transform(),
        )
    if timeline.baseline_s is not None:
        ax.axvline(timeline.baseline_s, color=SETTLED_COLOR, lw=0.8, ls=":")
    if baseline_mb is not None:
        ax.axhline(baseline_mb, color=color(i), lw=0.6, alpha=0.5)
    ax.plot([], [], color=STAGED_COLOR, ls="--", lw=0.8, label="staged")
    ax.plot([], [], color=SETTLED_COLOR, ls=":", lw=0.8, label="settled")
    if timeline.release_s is not None:
        ax.axvline(timeline.release_s, color=RELEASE_COLOR, lw=1.0, ls="-.", label="release")
    ax.set_xlabel("seconds since the variant started")
    ax.set_ylabel("MiB")
    ax.legend(loc="upper left", fontsize=8, ncols=5, frameon=False)
    ax.grid(alpha=0.3)
    return _data_uri(fig)


def settled_per_swap(
    variants: Sequence[VariantResult], warmup_swaps: int, threshold_mb: float
) -> str:
    """Retained memory after each swap for every variant, with the verdict's slope."""
    fig = Figure(figsize=(WIDTH_IN, 3.8))
    ax = fig.add_subplot()
    last = 1
    for i, v in enumerate(variants):
        points = [
            (s.index, s.retained_mb) for s in v.swaps if s.completed and s.retained_mb is not None
        ]
        if not points:
            continue
        x, y = np.array(points, dtype=float).T
        last = max(last, int(x.max()))
        style = "o-" if len(x) <= MAX_MARKED_SWAPS else "-"
        label = f"{v.name} ({v.memory.verdict.verdict})"
        ax.plot(*reduce_points(x, y), style, color=color(i), lw=0.8, ms=4, label=label)
        verdict = v.memory.verdict
        slope = v.memory.retained_mb_per_swap
        judged = np.isin(x, verdict.swaps_judged)
        if verdict.level_mb is not None and judged.sum() >= 2:  # where it settles: the level
            ax.hlines(
                verdict.level_mb,
                x[judged].min(),
                x[judged].max(),
                colors=color(i),
                linestyles="dotted",
                lw=1.5,
                label=f"{v.name} level: {verdict.level_mb:+.1f} MiB",
            )
        # The slope is drawn only when growth is a finding: a line through noise reads as one.
        if slope is not None and verdict.growth == "above" and judged.sum() >= 2:
            # the verdict's slope, through the judged swaps (the Theil–Sen intercept)
            intercept = float(np.median(y[judged] - slope * x[judged]))
            xs = np.array([x[judged].min(), x[judged].max()])
            ax.plot(
                xs,
                intercept + slope * xs,
                color=color(i),
                lw=2,
                alpha=0.5,
                label=f"{v.name} fit: {slope:.2f} MiB/swap",
            )
    bounds = {b for v in variants if (b := v.memory.verdict.kept_bound_mb) is not None}
    for bound in bounds:
        ax.axhline(
            bound, color="#7f7f7f", lw=1, ls="--", label=f"kept-memory bound ({bound:.0f} MiB)"
        )
    if warmup_swaps:
        ax.axvspan(0.5, warmup_swaps + 0.5, color="#eeeeee", label="warmup swaps")
    _threshold_band(ax, threshold_mb)
    ax.set_xlim(0.5, last + 0.5)
    ax.set_xlabel("swap")
    ax.set_ylabel("retained MiB (settled - baseline)")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _data_uri(fig)


def attribution(timeline: VariantTimeline, i: int, release_call: str | None) -> str | None:
    """Why memory is kept: per swap, the settled memory over the baseline stacked as live
    heap, held by the allocator and non-heap; beside it the trim experiment (anonymous
    memory at the baseline, before the release and after it). None: nothing to draw."""
    parts, bar = timeline.breakdown, timeline.release_mb
    if not parts and bar is None:
        return None
    fig = Figure(figsize=(WIDTH_IN, 3.4))
    if parts and bar is not None:
        stacked, trim = fig.subplots(1, 2, gridspec_kw={"width_ratios": (4, 1)})
    elif parts:
        stacked, trim = fig.add_subplot(), None
    else:
        stacked, trim = None, fig.add_subplot()
    if stacked is not None:
        _stacked_bars(stacked, parts)
    if trim is not None and bar is not None:
        base, before, after = bar
        labels = ("baseline", "before release", "after release")
        colors = (CONTEXT_COLOR, color(i), RELEASE_COLOR)
        trim.bar(labels, (base, before, after), color=colors, width=0.6)
        for n, value in enumerate((base, before, after)):
            trim.annotate(f"{value:.0f}", (n, value), ha="center", va="bottom", fontsize=8)
        trim.set_ylabel("anonymous MiB")
        trim.set_title(f"released on {release_call or 'the release'}", fontsize=9)
        trim.tick_params(axis="x", labelsize=8, labelrotation=20)
        trim.grid(alpha=0.3, axis="y")
    return _data_uri(fig)


def _stacked_bars(ax: Axes, parts: Sequence[Series]) -> None:
    """Bars per swap, positive parts stacked up from zero and negative ones down.

    A long run's bars are runs of swaps (plot_data.MAX_BARS of them), side by side: they
    are drawn as one stepped area per part, not hundreds of patches, which look the same.
    """
    x = _array(parts[0].x)
    up, down = np.zeros(len(x)), np.zeros(len(x))
    binned = len(x) > MAX_BARS
    width = 0.7 if len(x) <= MAX_MARKED_SWAPS else max(1.0, float(np.median(np.diff(x[1:]))))
    for part in parts:
        y = _array(part.y)
        bottom = np.where(y >= 0, up, down)
        part_color = BREAKDOWN_COLORS.get(part.name, CONTEXT_COLOR)
        if binned:
            ax.fill_between(
                x, bottom, bottom + y, step="mid", color=part_color, label=part.name, lw=0
            )
        else:
            ax.bar(x, y, width, bottom=bottom, color=part_color, label=part.name, linewidth=0)
        up, down = up + np.clip(y, 0, None), down + np.clip(y, None, 0)
    total = sum((_array(p.y) for p in parts), np.zeros(len(x)))
    ax.plot(x, total, "k.", ms=4, label="total (RSS)")
    low, high = min(0.0, float(down.min())), max(float(up.max()), float(total.max()), 1.0)
    ax.set_ylim(low * 1.1, high * 1.3)  # room for the legend above the tallest bar
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("swap (0: the baseline)")
    ax.set_ylabel("MiB over the baseline")
    ax.legend(loc="upper left", fontsize=8, ncols=4, frameon=False)
    ax.grid(alpha=0.3, axis="y")


def latency_timeline(timeline: VariantTimeline, i: int) -> str:
    """One variant's request latencies over time; swap windows shaded, errors marked."""
    fig = Figure(figsize=(WIDTH_IN, 3.0))
    ax = fig.add_subplot()
    if timeline.swap_windows:  # one artist for all windows: a long run has thousands
        spans = [[(s, 0), (e, 0), (e, 1), (s, 1)] for s, e in _merged(timeline.swap_windows)]
        shade = PolyCollection(
            spans, facecolors=SWAP_SHADE, linewidths=0, transform=ax.get_xaxis_transform()
        )
        ax.add_collection(shade, autolim=False)
    ok, errors = timeline.latency_ok, timeline.latency_errors
    ax.scatter(_array(ok.x), _array(ok.y), s=3, color=color(i), rasterized=True, label="200")
    if errors.x:
        ax.scatter(
            _array(errors.x),
            _array(errors.y),
            s=14,
            marker="x",
            color="#d62728",
            zorder=3,
            label="error",
        )
    firsts = timeline.first_after_swap
    if firsts is not None and firsts.x:
        ax.scatter(
            _array(firsts.x),
            _array(firsts.y),
            s=40,
            marker="v",
            facecolors="none",
            edgecolors="black",
            zorder=4,
            label="first request after a new version",
        )
    ax.fill_between([], [], color=SWAP_SHADE, label="swap window")
    if ok.x:
        ax.set_yscale("log")
    ax.set_xlabel("seconds since the variant started")
    ax.set_ylabel("latency ms")
    ax.legend(loc="upper left", fontsize=8, ncols=3, frameon=False)
    ax.grid(alpha=0.3, which="both")
    return _data_uri(fig)


def _merged(windows: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The windows, those closer than a 1/MAX_TICKS of the run's span joined: no more
    shapes than the plot has pixels across."""
    gap = (windows[-1][1] - windows[0][0]) / MAX_TICKS
    merged = [windows[0]]
    for start, end in windows[1:]:
        if start - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def latency_windows(variants: Sequence[VariantResult]) -> str:
    """p50 and p99 per window (steady, swap) for every variant, side by side."""
    fig = Figure(figsize=(WIDTH_IN, 2.8))
    ax = fig.add_subplot()
    names = ("steady p50", "steady p99", "swap p50", "swap p99")
    width = 0.8 / max(1, len(variants))
    for i, v in enumerate(variants):
        lat = v.latency
        values = [
            f or 0.0
            for f in (lat.steady_p50_ms, lat.steady_p99_ms, lat.swap_p50_ms, lat.swap_p99_ms)
        ]
        ax.bar(np.arange(len(names)) + i * width, values, width, color=color(i), label=v.name)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    ax.set_ylabel("ms")
    if variants:
        ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3, axis="y")
    return _data_uri(fig)


def per_swap_latency(variants: Sequence[VariantResult]) -> str | None:
    """A tune recipe's variants swap by swap: the first request each new version served
    (log scale: a cold path is tens to hundreds of times a warm one) and each swap
    window's p99. None: no swap measured."""
    if not any(v.swaps for v in variants):
        return None
    fig = Figure(figsize=(WIDTH_IN, 2.8))
    first, p99 = fig.subplots(1, 2)
    for i, v in enumerate(variants):
        index = [s.index for s in v.swaps]
        style = {"color": color(i), "marker": "o", "ms": 3, "lw": 1, "label": v.name}
        first.plot(index, _array_or_nan([s.first_after_ms for s in v.swaps]), **style)
        p99.plot(index, _array_or_nan([s.p99_ms for s in v.swaps]), **style)
    first.set_yscale("log")
    for ax, title in ((first, "first request after the swap"), (p99, "swap window p99")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("swap")
        ax.set_ylabel("ms")
        ax.grid(alpha=0.3)
    first.legend(fontsize=8, frameon=False)
    return _data_uri(fig)


def fixes(variants: Sequence[VariantResult]) -> str | None:
    """What each variant keeps against what it costs: kept MiB (the median over the judged
    swaps, bars their interquartile range) against the server's CPU-ms per request (the
    median over the steady windows, bars their interquartile range). None: no variant
    has both figures (a single variant, or memory.csv without cpu_s)."""
    points = []
    for i, v in enumerate(variants):
        judged = set(v.memory.verdict.swaps_judged)
        retained = [
            s.retained_mb for s in v.swaps if s.index in judged and s.retained_mb is not None
        ]
        cpu = v.cpu
        if retained and cpu.steady_ms_per_request is not None:
            points.append((i, v, np.asarray(retained, dtype=float), cpu))
    if len(variants) < 2 or not points:
        return None
    fig = Figure(figsize=(WIDTH_IN * 0.6, 3.6))
    ax = fig.add_subplot()
    for i, v, kept, cpu in points:
        assert cpu.steady_ms_per_request is not None
        x = cpu.steady_ms_per_request
        low_x, high_x = cpu.steady_ms_per_request_spread or (x, x)
        y = float(np.median(kept))
        low_y, high_y = np.percentile(kept, [25, 75])
        ax.errorbar(
            [x],
            [y],
            xerr=[[max(0.0, x - low_x)], [max(0.0, high_x - x)]],
            yerr=[[max(0.0, y - low_y)], [max(0.0, high_y - y)]],
            fmt="o",
            color=color(i),
            capsize=3,
            label=f"{v.name} ({v.memory.verdict.verdict})",
        )
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("server CPU-ms per request (steady windows)")
    ax.set_ylabel("kept MiB (settled - baseline)")
    ax.legend(loc="best", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _data_uri(fig)


HISTORY_COLORS = ("#1f77b4", "#9467bd", "#ff7f0e", "#8c564b")  # not the verdicts' colors
VERDICT_COLORS = {
    "leak": "#b03a2e",
    "plateau": "#b9770e",
    "released": "#1e8449",
    "inconclusive": "#7f7f7f",
}


def history_memory(
    t: Sequence[float],
    verdicts: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    threshold_mb: float | None,
) -> str:
    """Memory figures of one variant over its recorded runs; markers colored by verdict.

    `t` are the runs' start times (epoch s), `series` (label, MiB per run) lines;
    the first series gets the verdict markers.
    """
    fig = Figure(figsize=(WIDTH_IN, 3.2))
    ax = fig.add_subplot()
    x = _dates(t)
    for n, (label, values) in enumerate(series):
        line_color = HISTORY_COLORS[n % len(HISTORY_COLORS)]
        ax.plot(x, _array_or_nan(values), "-", color=line_color, lw=1.2, label=label)
    if series:
        first = _array_or_nan(series[0][1])
        for verdict, c in VERDICT_COLORS.items():
            chosen = np.array([v == verdict for v in verdicts])
            if chosen.any():
                ax.scatter(x[chosen], first[chosen], s=30, color=c, zorder=3, label=verdict)
    if threshold_mb:
        _threshold_band(ax, threshold_mb)
    else:
        ax.axhline(0, color="black", lw=0.6)
    _date_axis(fig, ax)
    ax.set_ylabel("MiB")
    ax.legend(loc="upper left", fontsize=8, ncols=4, frameon=False)
    ax.grid(alpha=0.3)
    return _data_uri(fig)


def history_latency(
    t: Sequence[float], series: Sequence[tuple[str, Sequence[float | None]]]
) -> str:
    """Latency figures (ms) of one variant over its recorded runs."""
    fig = Figure(figsize=(WIDTH_IN, 2.8))
    ax = fig.add_subplot()
    x = _dates(t)
    for n, (label, values) in enumerate(series):
        line_color = HISTORY_COLORS[n % len(HISTORY_COLORS)]
        ax.plot(x, _array_or_nan(values), "o-", color=line_color, lw=1.0, ms=4, label=label)
    known = [v for _, values in series for v in values if v is not None and v > 0]
    if known and max(known) > 20 * min(known):  # steady p99 next to swap p99: a log scale
        ax.set_yscale("log")
    _date_axis(fig, ax)
    ax.set_ylabel("ms")
    ax.legend(loc="upper left", fontsize=8, ncols=4, frameon=False)
    ax.grid(alpha=0.3)
    return _data_uri(fig)


def _dates(t: Sequence[float]) -> np.ndarray:
    """Epoch seconds as matplotlib dates (days), UTC."""
    return np.asarray(t, dtype=float) / 86400.0


def _date_axis(fig: Figure, ax: Any) -> None:
    from matplotlib import dates

    locator = dates.AutoDateLocator(tz=dt.UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator, tz=dt.UTC))
    ax.set_xlabel("run started (UTC)")


def _array_or_nan(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _array(values: tuple[float, ...]) -> np.ndarray:
    """Plot data as an array (matplotlib converts a tuple point by point)."""
    return np.asarray(values, dtype=float)


def _data_uri(fig: Figure) -> str:
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "soak"}):
        buffer = io.StringIO()
        fig.tight_layout()
        fig.savefig(buffer, format="svg", dpi=150, metadata={"Date": None})
    encoded = base64.b64encode(buffer.getvalue().encode("utf-8")).decode("ascii")
    return f"data:image/svg+xml;base64,{encoded}"


def _threshold_band(ax: Axes, threshold_mb: float) -> None:
    """The band of ± the threshold around zero (no growth), and the zero line."""
    ax.axhspan(
        -threshold_mb,
        threshold_mb,
        color="#d5f5e3",
        alpha=0.6,
        label=f"within threshold ({threshold_mb:.1f} MiB)",
    )
    ax.axhline(0, color="black", lw=0.6)
