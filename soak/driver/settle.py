"""When has memory settled? When it has stopped falling (SPEC §1, Settling).

No fixed sleep: glibc keeps freed memory at once, jemalloc returns pages over
about 10 s, tcmalloc slowly. We compare the level now with the level a window
ago; while it still drops by more than the tolerance, we wait.
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

    def has_settled(self, samples: list[tuple[float, int]], since: float, now: float) -> bool:
        """Samples (t, bytes) from `since` on: has the level stopped falling?"""
        if now - since < self.window_s + self.level_s:
            return False
        current = _level(samples, now - self.level_s, now)
        earlier = _level(samples, now - self.window_s - self.level_s, now - self.window_s)
        if current is None or earlier is None:
            return False
        tolerance = max(self.min_tolerance_bytes, self.relative_tolerance * earlier)
        return earlier - current <= tolerance


def _level(samples: list[tuple[float, int]], start: float, end: float) -> float | None:
    values = [v for t, v in samples if start <= t <= end]
    return statistics.median(values) if values else None
