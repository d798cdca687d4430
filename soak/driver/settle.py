"""When has memory settled? When it is flat, or has stopped falling (docs/contract.md#settling).

No fixed sleep: glibc keeps freed memory at once, jemalloc returns pages over
its decay time (10 s by default), tcmalloc slowly. Memory has settled as soon as
it is shown to be flat: over the last level window (1 s) it moved by less than a
fall the slow rule would let pass over as long. Where it is not flat (noise, a
slow rise), the slow rule decides: the level now against the level a window (5 s)
ago; while it still drops by more than the tolerance, we wait. Neither before the
allocator's own purge delay has passed (`allocators.purge_delay_s`): jemalloc's
memory stands still for seconds, then falls, so "flat" alone would settle too early
and call its decaying pages kept.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from soak.store.records import LEVEL_WINDOW_S, MIB

MIN_FLAT_SAMPLES = 3  # "flat" needs a few samples in the level window, not one or two


@dataclass(frozen=True)
class SettleRule:
    window_s: float = 5.0  # not flat: compare the level now with this long ago
    level_s: float = LEVEL_WINDOW_S  # a level is the median over this long (noise)
    min_tolerance_bytes: int = MIB  # a fall over window_s that still counts as settled
    relative_tolerance: float = 0.003

    def has_settled(
        self, samples: list[tuple[float, int]], since: float, now: float, purge_delay_s: float = 0.0
    ) -> bool:
        """Samples (t, bytes) from `since` on: is memory flat, or has it stopped falling?

        `purge_delay_s`: the allocator may still be returning pages this long
        after `since`; the level must have stood still after that.
        """
        if now - since < purge_delay_s + self.level_s:
            return False
        recent = [v for t, v in samples if now - self.level_s <= t <= now]
        if len(recent) >= MIN_FLAT_SAMPLES:
            flat_bytes = self.tolerance(statistics.median(recent)) * self.level_s / self.window_s
            if max(recent) - min(recent) <= flat_bytes:
                return True
        if now - since < max(self.window_s, purge_delay_s) + self.level_s:
            return False
        current = level(samples, now - self.level_s, now)
        earlier = level(samples, now - self.window_s - self.level_s, now - self.window_s)
        if current is None or earlier is None:
            return False
        return earlier - current <= self.tolerance(earlier)

    def tolerance(self, level_bytes: float) -> float:
        """How far memory at this level may fall over `window_s` and count as settled."""
        return max(self.min_tolerance_bytes, self.relative_tolerance * level_bytes)

    def current_level(self, samples: list[tuple[float, int]], now: float) -> float | None:
        """The level now: the median over the last `level_s`, else the latest sample."""
        recent = level(samples, now - self.level_s, now)
        return recent if recent is not None or not samples else float(samples[-1][1])


def level(samples: list[tuple[float, int]], start: float, end: float) -> float | None:
    """The median of the samples (t, bytes) in [start, end], as the analysis takes it."""
    values = [v for t, v in samples if start <= t <= end]
    return statistics.median(values) if values else None
