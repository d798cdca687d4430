"""report.html: one self-contained page (inline CSS, figures as data URIs).

The summary gives the figures; the raw CSVs are read again for the time
series plots, so the report of an interrupted run shows what did happen.
"""

from __future__ import annotations

import datetime as dt
import os
from html import escape
from pathlib import Path

from soak.analysis.inputs import read_run
from soak.analysis.timeline import build_timeline
from soak.report import plots
from soak.store.run_dir import RunDir

OPEN_SWAP_TABLE_ROWS = 20  # longer per-swap tables start folded
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1180px;
       color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; }
h3 { font-size: 15px; margin-bottom: 4px; }
.meta { color: #666; }
.box { background: #f4f8fb; border-left: 4px solid #1f77b4; padding: 10px 14px; margin: 16px 0; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #fafafa; } td.l, th.l { text-align: left; }
.v-leak { color: #b03a2e; font-weight: 600; } .v-plateau { color: #b9770e; font-weight: 600; }
.v-released { color: #1e8449; font-weight: 600; } .v-inconclusive { color: #666; font-weight: 600; }
.s-failed, .s-interrupted { color: #b03a2e; }
img { max-width: 100%; display: block; margin: 4px 0 12px; }
details { margin: 6px 0; } summary { cursor: pointer; }
"""


def write_report(run_dir: Path, summary: dict) -> Path:
    """Write RUN_DIR/report.html (atomically) and return its path."""
    run = RunDir(Path(run_dir))
    page = render(run.path, summary)
    tmp = run.report_html.with_name(run.report_html.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, run.report_html)
    return run.report_html


def render(run_dir: Path, summary: dict) -> str:
    inputs = {v.name: v for v in read_run(run_dir).variants}
    variants = summary["variants"]
    metric = summary.get("metric", "anon_bytes")
    started = min((v.events[0].t for v in inputs.values() if v.events), default=None)
    model = summary["model"]
    size = f", {model['size_bytes'] / (1 << 20):.1f} MiB" if model.get("size_bytes") else ""
    parts = [
        f"<h1>soak report: {escape(model['name'])}</h1>",
        f"<p class=meta>{escape(str(run_dir))} &middot; run {_status(summary['status'])}"
        f" &middot; backend {escape(summary['backend'])}{escape(size)}"
        f"{' &middot; started ' + _when(started) if started else ''}"
        f" &middot; metric {escape(metric)}, threshold {summary['threshold_mb']:.2f} MiB per swap,"
        f" {summary.get('warmup_swaps', 2)} warmup swaps</p>",
        f"<div class=box><b>Recommendation.</b> "
        f"{escape(summary['comparison']['recommendation'])}</div>",
        "<h2>Verdicts</h2>",
        _verdict_table(variants),
        _projections(variants),
        "<h2>Settled memory per swap</h2>",
        "<p>Memory left after each swap once it settled, above the baseline; the thick line is "
        "the robust (Theil&ndash;Sen) fit over the swaps after the warmup.</p>",
        _img(
            plots.settled_per_swap(
                variants, summary.get("warmup_swaps", 2), summary["threshold_mb"]
            )
        ),
        "<h2>Memory over time</h2>",
        "<p>Dashed: a version staged. Dotted: memory settled. Thin line: the baseline.</p>",
    ]
    for i, v in enumerate(variants):
        data = inputs.get(v["name"])
        if data is None or data.memory.empty:
            parts.append(f"<h3>{escape(v['name'])}</h3><p>No memory samples.</p>")
            continue
        timeline = build_timeline(data.events)
        parts += [
            f"<h3>{escape(v['name'])}</h3>",
            _img(
                plots.memory_timeline(data.memory, timeline, metric, v["memory"]["baseline_mb"], i)
            ),
        ]
    parts += [
        "<h2>Latency</h2>",
        "<p>Swap window: from staging a version until the old version reached END, plus 1 s; "
        "steady: the rest, after the baseline settled (the wait for memory to settle is steady "
        "serving on the new version). Percentiles over successful requests; errors are any "
        "status but 200; first after swap: the median latency of the first request sent once "
        "the new version was AVAILABLE.</p>",
        _latency_table(variants),
        _img(plots.latency_windows(variants)),
    ]
    for i, v in enumerate(variants):
        data = inputs.get(v["name"])
        if data is None or data.latency.empty:
            continue
        parts += [
            f"<h3>{escape(v['name'])}</h3>",
            _img(plots.latency_timeline(data.latency, build_timeline(data.events), i)),
        ]
    parts.append("<h2>Swaps</h2>")
    parts += [_swap_table(v) for v in variants]
    parts.append(
        f"<p class=meta>soak {escape(str(summary.get('soak_version', '')))} &middot; "
        f"{escape(summary['schema'])} &middot; raw data: VARIANT/memory.csv, latency.csv, "
        "events.csv</p>"
    )
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>soak report: {escape(model['name'])}</title><style>{CSS}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def _verdict_table(variants: list[dict]) -> str:
    head = _row(
        [
            "variant",
            "allocator",
            "status",
            "swaps",
            "baseline MiB",
            "peak MiB",
            "final MiB",
            "retained MiB",
            "MiB / swap",
            "verdict",
            "why",
        ],
        "th",
        left={0, 1, 2, 10},
    )
    rows = []
    for v in variants:
        m = v["memory"]
        allocator = v["allocator"] + ("" if v["allocator_verified"] else " (not verified)")
        rows.append(
            _row(
                [
                    escape(v["name"]),
                    escape(allocator),
                    _status(v["status"]),
                    v["swaps_completed"],
                    _n(m["baseline_mb"]),
                    _n(m["peak_mb"]),
                    _n(m["final_mb"]),
                    _n(m["retained_mb"], "+.1f"),
                    _n(m["retained_mb_per_swap"], ".2f"),
                    f"<span class=v-{escape(m['verdict'])}>{escape(m['verdict'])}</span>",
                    escape(m.get("verdict_reason") or "")
                    + (f"<br><i>{escape(v['reason'])}</i>" if v.get("reason") else ""),
                ],
                "td",
                left={0, 1, 2, 10},
            )
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _projections(variants: list[dict]) -> str:
    lines = [
        f"<li><b>{escape(v['name'])}</b>: {escape(v['projection']['note'])} "
        f"(from {_n(v['projection']['current_mb'])} MiB {escape(v['projection']['basis'])})</li>"
        for v in variants
        if v.get("projection") and v["projection"].get("note")
    ]
    if not lines:
        return ""
    limit = next(v["projection"]["limit_mb"] for v in variants if v.get("projection"))
    return f"<h3>Memory limit: {limit:.0f} MiB</h3><ul>{''.join(lines)}</ul>"


def _latency_table(variants: list[dict]) -> str:
    keys = [
        "steady_p50_ms",
        "steady_p99_ms",
        "swap_p50_ms",
        "swap_p99_ms",
        "max_ms",
        "first_after_swap_ms",
        "errors",
        "requests",
        "late_sends",
    ]
    head = _row(["variant"] + [_header(k) for k in keys], "th", left={0})
    rows = [
        _row([escape(v["name"])] + [_n(v["latency"].get(k)) for k in keys], "td", left={0})
        for v in variants
    ]
    return f"<table>{head}{''.join(rows)}</table>"


def _swap_table(v: dict) -> str:
    keys = [
        "index",
        "version",
        "load_s",
        "settle_s",
        "settled_mb",
        "peak_mb",
        "retained_mb",
        "increment_mb",
        "rss_settled_mb",
        "p99_ms",
        "errors",
    ]
    has_cgroup = any(s.get("cgroup_working_set_settled_mb") is not None for s in v["swaps"])
    if has_cgroup:
        keys[9:9] = ["cgroup_anon_settled_mb", "cgroup_working_set_settled_mb"]
    head = _row([_header(k) for k in keys] + ["note"], "th", left={len(keys)})
    rows = []
    for s in v["swaps"]:
        note = [
            w
            for w, on in (
                ("not settled", not s["completed"]),
                ("settle timeout", s["settle_timed_out"]),
                ("load failed", s["load_failed"]),
            )
            if on
        ]
        rows.append(_row([_n(s.get(k)) for k in keys] + [", ".join(note)], "td", left={len(keys)}))
    opened = " open" if len(v["swaps"]) <= OPEN_SWAP_TABLE_ROWS else ""
    return (
        f"<details{opened}><summary><b>{escape(v['name'])}</b>: {len(v['swaps'])} swaps, "
        f"{v['swaps_completed']} completed</summary><table>{head}{''.join(rows)}</table></details>"
    )


def _header(key: str) -> str:
    return key.removesuffix("_mb").removesuffix("_ms").removesuffix("_s").replace("_", " ") + (
        " MiB"
        if key.endswith("_mb")
        else " ms"
        if key.endswith("_ms")
        else " s"
        if key.endswith("_s")
        else ""
    )


def _row(cells: list, tag: str, left: set[int]) -> str:
    return (
        "<tr>"
        + "".join(
            f"<{tag}{' class=l' if i in left else ''}>{c}</{tag}>" for i, c in enumerate(cells)
        )
        + "</tr>"
    )


def _n(value, fmt: str = ".1f") -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, int):
        return str(value)
    text = format(value, fmt)
    return format(0.0, fmt) if text == format(-0.0, fmt) else text  # no "-0.0"


def _status(status: str) -> str:
    return f"<span class=s-{escape(status)}>{escape(status)}</span>"


def _img(uri: str) -> str:
    return f'<img alt="" src="{uri}">'


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
