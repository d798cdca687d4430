"""The verdict table printed at the end of `soak run` and by `soak report`."""

from __future__ import annotations

from soak.analysis.result import RunResult, VariantResult
from soak.report.format import number

COLUMNS = (
    "variant", "allocator", "status", "swaps", "baseline MiB", "retained MiB", "level MiB",
    "MiB/swap", "verdict", "steady p99", "swap p99", "errors",
)  # fmt: skip


def summary_table(result: RunResult) -> str:
    """A plain-text table (one row per variant), the reasons, and the recommendation."""
    rows = [COLUMNS] + [_row(v) for v in result.variants]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    for v in result.variants:
        lines.append(f"{v.name}: {v.memory.verdict.verdict}: {v.memory.verdict.reason}")
        if v.swaps_done:
            lines.append(f"{v.name}: {v.swaps_done}")
        if v.projection is not None and v.projection.swaps_to_limit is not None:
            lines.append(f"{v.name}: memory limit: {v.projection.note}")
        if v.status == "failed" and v.reason:
            lines.append(f"{v.name}: failed: {v.reason}")
    control = result.comparison.control
    if control is not None:
        others = ", ".join(
            f"{name} {number(mb, '+.1f', missing='?')} MiB"
            for name, mb in result.comparison.retained_vs_control_mb
            if name != control
        )
        lines.append(f"retained vs the control ({control}): {others}")
    if result.comparison.recommendation:
        lines.append(f"recommendation: {result.comparison.recommendation}")
    lines.append(
        f"run {result.status}: {result.run_dir} "
        f"(metric {result.metric}, threshold {result.threshold_mb:.1f} MiB per swap)"
    )
    return "\n".join(lines)


def _row(v: VariantResult) -> tuple[str, ...]:
    memory, latency = v.memory, v.latency
    allocator = v.allocator + ("" if v.allocator_verified else " (unverified)")
    return (
        v.name,
        allocator,
        v.status,
        str(v.swaps_completed),
        number(memory.baseline_mb, ".1f", missing="-"),
        number(memory.retained_mb, "+.1f", missing="-"),
        number(memory.verdict.level_mb, "+.1f", missing="-"),
        number(memory.retained_mb_per_swap, ".2f", missing="-"),
        memory.verdict.verdict,
        number(latency.steady_p99_ms, ".1f", suffix=" ms", missing="-"),
        number(latency.swap_p99_ms, ".1f", suffix=" ms", missing="-"),
        str(latency.errors),
    )
