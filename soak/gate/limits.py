"""The absolute limits of `soak check`, declared once.

`soak check`'s options, their validation, the plugin's `assert_released` and
`assert_latency` keywords and the line of a crossed limit all come from LIMITS:
a new limit is one entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from soak.analysis.regression import ERRORS, RETAINED_MB, RETAINED_MB_PER_SWAP, SWAP_P99_MS, Figure
from soak.core.errors import UsageError


@dataclass(frozen=True)
class Limit:
    """A maximum on one figure of each variant; `name` is its keyword, `option` its flag."""

    name: str
    figure: Figure
    kind: type[float] | type[int]
    metavar: str
    help: str

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


LIMITS = (
    Limit(
        "max_retained_mb_per_swap",
        RETAINED_MB_PER_SWAP,
        float,
        "MIB",
        "fail if a variant keeps more than this per swap (the fitted slope)",
    ),
    Limit(
        "max_retained_mb",
        RETAINED_MB,
        float,
        "MIB",
        "fail if a variant ends more than this above its baseline",
    ),
    Limit(
        "max_swap_p99_ms",
        SWAP_P99_MS,
        float,
        "MS",
        "fail if the p99 latency during swaps is above this",
    ),
    Limit("max_errors", ERRORS, int, "N", "fail if more than N requests got no 200"),
)
MEMORY_LIMITS = tuple(limit for limit in LIMITS if limit.figure.memory)
LATENCY_LIMITS = tuple(limit for limit in LIMITS if not limit.figure.memory)


def maxima(
    values: Mapping[str, float | None], allowed: tuple[Limit, ...] = LIMITS
) -> dict[str, float]:
    """The limits given (None: not given), by name; UsageError on an unknown name or a
    negative value, naming it as its option."""
    known = {limit.name: limit for limit in allowed}
    chosen: dict[str, float] = {}
    for name, value in values.items():
        if name not in known:
            raise UsageError(f"no limit {name!r} (limits: {', '.join(known)})")
        if value is None:
            continue
        if value < 0:
            raise UsageError(f"{known[name].option} must be >= 0, not {value:g}")
        chosen[name] = known[name].kind(value)
    return chosen
