"""What the server's memory is made of, once per settled point (breakdown.csv,
docs/contract.md#allocator-probe).

The process's side from /proc/PID/smaps_rollup (anonymous, lazily freed,
file-backed), the allocator's side from the probe inside the server (in use,
free but held, mapped, arenas). Not at the memory sampler's 10 Hz: the kernel
walks every mapping for smaps_rollup, and the allocator takes its locks for
its statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from soak.core import interrupts
from soak.samplers.probe import Called, ProbeClient, ProbeError, ProbeStats
from soak.store.csv_log import CsvLog
from soak.store.records import BreakdownRow
from soak.targets.base import Target
from soak.targets.probe_library import LIBRARY_NAME, ProbeUnavailable

T = TypeVar("T")
ANSWER_WAIT_S = 10.0  # the probe's thread starts with the server: it answers long before


@dataclass(frozen=True)
class ProbeState:
    """The probe of one variant: a client when it answers, else why it is off."""

    client: ProbeClient | None
    off_reason: str | None = None
    stats: ProbeStats | None = None  # its first answer

    @property
    def summary(self) -> str:
        """variant.json's `probe`: "on" or "off: REASON" (docs/contract.md#run-directory)."""
        return "on" if self.client else f"off: {self.off_reason}"


def connect_probe(target: Target, allocator: str, plan_off: str | None) -> ProbeState:
    """The server's probe, checked: loaded (maps), answering, and from the server itself.

    Never raises: the run goes on without attribution, and the reason says why.
    """
    if plan_off is not None:
        return ProbeState(None, plan_off)
    try:
        mapped = target.mapped_paths()
    except OSError as exc:
        return ProbeState(None, f"cannot read the server's maps: {exc}")
    if not any(path.endswith("/" + LIBRARY_NAME) for path in mapped):
        return ProbeState(
            None,
            f"{LIBRARY_NAME} did not load into the server (a static binary, or a wrapper "
            "that clears LD_PRELOAD?)",
        )
    try:
        client = ProbeClient(target.probe_socket())
    except ProbeUnavailable as exc:
        return ProbeState(None, str(exc))
    answers: list[ProbeStats] = []
    errors: list[str] = []

    def answered() -> bool:
        try:
            answers.append(client.stats())
        except ProbeError as exc:
            errors.append(str(exc))
        return bool(answers)

    if not interrupts.wait_until(answered, ANSWER_WAIT_S, poll_s=0.2):
        return ProbeState(None, errors[-1] if errors else "the probe did not answer")
    stats = answers[0]
    if allocator != "glibc" and stats.allocator != allocator:
        return ProbeState(None, f"the probe sees {stats.allocator}, not {allocator}")
    return ProbeState(client, None, stats)


class BreakdownSampler:
    """Writes one breakdown.csv row per point; the probe's columns empty when it is off."""

    def __init__(self, target: Target, log: CsvLog, probe: ProbeState):
        self.target = target
        self.log = log
        self.probe = probe

    def take(self, swap: int, point: str) -> BreakdownRow:
        """Read the breakdown now and write it as a row."""
        row = self.read(swap, point)
        self.log.append(row)
        return row

    def read(self, swap: int, point: str) -> BreakdownRow:
        t = time.time()
        try:
            process: dict[str, int | None] = dict(self.target.read_breakdown())
        except (OSError, ProbeUnavailable):
            process = {}
        stats = self._stats()
        return BreakdownRow(
            t=t,
            swap=swap,
            point=point,
            anon_bytes=process.get("anon_bytes"),
            rss_bytes=process.get("rss_bytes"),
            lazyfree_bytes=process.get("lazyfree_bytes"),
            file_rss_bytes=process.get("file_rss_bytes"),
            in_use_bytes=stats.in_use_bytes if stats else None,
            free_held_bytes=stats.free_held_bytes if stats else None,
            mapped_bytes=stats.mapped_bytes if stats else None,
            arenas=stats.arenas if stats else None,
        )

    def release(self) -> Called | None:
        """Ask the allocator to give its free memory back (None: no probe, or no answer)."""
        return self._ask(ProbeClient.release)

    def release_call(self) -> str | None:
        """`release`, answering only what the probe called (e.g. "malloc_trim(0)")."""
        answer = self.release()
        return answer.called if answer else None

    def decay_call(self) -> str | None:
        """Run the allocator's time-based purging now; what the probe called (None: no probe,
        or no answer)."""
        answer = self._ask(ProbeClient.decay)
        return answer.called if answer else None

    def _stats(self) -> ProbeStats | None:
        return self._ask(ProbeClient.stats)

    def _ask(self, command: Callable[[ProbeClient], T]) -> T | None:
        """The probe's answer; None without a probe or an answer (the server is going
        away: the driver says so)."""
        if self.probe.client is None:
            return None
        try:
            return command(self.probe.client)
        except ProbeError:
            return None
