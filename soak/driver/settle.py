"""When has memory settled? When it has stopped falling (docs/contract.md#settling).

No fixed sleep: glibc keeps freed memory at once, jemalloc returns pages over
its decay time (10 s by default), tcmalloc slowly. We compare the level now with
the level a window ago; while it still drops by more than the tolerance, we
wait. And never before the allocator's own purge delay has passed
(`allocators.purge_delay_s`): jemalloc's memory stands still for seconds, then
falls, so "not falling" alone would settle too early and call its decaying
pages kept.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from soak.store.records import MIB


@dataclass(frozen=True)
class SettleRule:
    window_s: float = 5.0  # compare now with this long ago
    level_s: float = 1.0  # a level is the median over this long (noise)
    min_tolerance_bytes: int = MIB
    relative_tolerance: float = 0.003

    def has_settled(
        self, samples: list[tuple[float, int]], since: float, now: float, purge_delay_s: float = 0.0
    ) -> bool:
        """Samples (t, bytes) from `since` on: has the level stopped falling?

        `purge_delay_s`: the allocator may still be returning pages this long
        after `since`; the level must have stood still after that.
        """
        if now - since < max(self.window_s, purge_delay_s) + self.level_s:
            return False
        current = level(samples, now - self.level_s, now)
        earlier = level(samples, now - self.window_s - self.level_s, now - self.window_s)
        if current is None or earlier is None:
            return False
        tolerance = max(self.min_tolerance_bytes, self.relative_tolerance * earlier)
        return earlier - current <= tolerance

    def current_level(self, samples: list[tuple[float, int]], now: float) -> float | None:
        """The level now: the median over the last `level_s`, else the latest sample."""
        recent = level(samples, now - self.level_s, now)
        return recent if recent is not None or not samples else float(samples[-1][1])


def level(samples: list[tuple[float, int]], start: float, end: float) -> float | None:
    """The median of the samples (t, bytes) in [start, end], as the analysis takes it."""
    values = [v for t, v in samples if start <= t <= end]
    return statistics.median(values) if values else None
