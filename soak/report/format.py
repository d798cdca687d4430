"""Numbers as the report and the terminal table show them."""

from __future__ import annotations

MISSING = "–"


def number(
    value: float | int | None, spec: str = ".1f", *, suffix: str = "", missing: str = MISSING
) -> str:
    """`value` formatted with `spec` (an int as it is), never "-0.0"; `missing` for None."""
    if value is None:
        return missing
    if isinstance(value, int):
        return f"{value}{suffix}"
    text = format(value, spec)
    if text == format(-0.0, spec):
        text = format(0.0, spec)
    return text + suffix
