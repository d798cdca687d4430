"""The verdict table printed at the end of `soak run` and by `soak report`."""

from __future__ import annotations

COLUMNS = (
    "variant", "allocator", "status", "swaps", "baseline MiB", "retained MiB", "MiB/swap",
    "verdict", "steady p99", "swap p99", "errors",
)  # fmt: skip


def summary_table(summary: dict) -> str:
    """A plain-text table (one row per variant), the reasons, and the recommendation."""
    rows = [COLUMNS] + [_row(v) for v in summary["variants"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    for v in summary["variants"]:
        lines.append(f"{v['name']}: {v['memory']['verdict']}: {v['memory']['verdict_reason']}")
        if (v.get("projection") or {}).get("swaps_to_limit") is not None:
            lines.append(f"{v['name']}: memory limit: {v['projection']['note']}")
        if v["status"] == "failed" and v.get("reason"):
            lines.append(f"{v['name']}: failed: {v['reason']}")
    comparison = summary.get("comparison") or {}
    if comparison.get("recommendation"):
        lines.append(f"recommendation: {comparison['recommendation']}")
    lines.append(
        f"run {summary['status']}: {summary.get('run_dir', '')} "
        f"(metric {summary.get('metric', 'anon_bytes')}, "
        f"threshold {summary.get('threshold_mb', 0):.1f} MiB per swap)"
    )
    return "\n".join(lines)


def _row(v: dict) -> tuple[str, ...]:
    memory, latency = v["memory"], v["latency"]
    allocator = v["allocator"] + ("" if v["allocator_verified"] else " (unverified)")
    return (
        v["name"],
        allocator,
        v["status"],
        str(v["swaps_completed"]),
        _num(memory["baseline_mb"], "{:.1f}"),
        _num(memory["retained_mb"], "{:+.1f}"),
        _num(memory["retained_mb_per_swap"], "{:.2f}"),
        memory["verdict"],
        _num(latency["steady_p99_ms"], "{:.1f} ms"),
        _num(latency["swap_p99_ms"], "{:.1f} ms"),
        str(latency["errors"]),
    )


def _num(value: float | None, fmt: str) -> str:
    if value is None:
        return "-"
    text = fmt.format(value)
    return fmt.format(0.0) if text == fmt.format(-0.0) else text  # no "-0.00"
