"""The timeline of one variant, rebuilt from events.csv.

The driver writes `staged` (swap k, new version) and `settled` (swap k; swap 0
is the baseline); the status poller writes the server's transitions. From those
we get, per swap, when the new version was staged, became AVAILABLE, when the
old one reached END, and when memory settled. A killed run simply has fewer of
these; nothing here assumes the last swap finished.

At the end of a variant with the allocator probe, the trim experiment writes
`release` and `released` (and `settle_timeout` if memory did not settle after
it): those belong to no swap, so the swaps are read from the events before it.
A variant that releases after each unload (`release_after_unload`, e.g. glibc-trim)
writes a `trimmed` event inside each swap: it is neither of those, and changes no step.
"""

from __future__ import annotations

from dataclasses import dataclass

from soak.store.records import Event, EventKind


@dataclass(frozen=True)
class SwapTimes:
    """When the steps of swap `index` happened (epoch seconds; None = never seen)."""

    index: int
    version: int | None  # the version staged by this swap
    old_version: int | None  # the version it replaces
    staged_t: float
    available_t: float | None  # the new version AVAILABLE
    old_end_t: float | None  # the old version END
    settled_t: float | None  # memory settled (or the settle bound was reached)
    settle_timed_out: bool
    load_failed: bool
    next_staged_t: float | None  # the next swap's staging, if any

    @property
    def completed(self) -> bool:
        return self.settled_t is not None

    @property
    def end_t(self) -> float | None:
        """The swap is over: memory settled, else the next swap was staged (None: going on)."""
        return self.settled_t if self.settled_t is not None else self.next_staged_t

    @property
    def transition_end_t(self) -> float | None:
        """The version change is over: the old version END, else the new one AVAILABLE."""
        return self.old_end_t if self.old_end_t is not None else self.available_t


@dataclass(frozen=True)
class Timeline:
    started_t: float | None  # the first event of the variant: time zero of its plots
    baseline_version: int | None
    baseline_t: float | None  # the swap-0 settled event: the baseline
    swaps: list[SwapTimes]
    server_exit: Event | None  # the server died (before the run stopped it)
    stopped_t: float | None  # the run stopped the server (end of meaningful traffic)
    swaps_done: str | None = None  # why the variant had no more swaps (planned, decided, bound)
    release: Event | None = None  # the trim experiment asked the allocator to release
    released: Event | None = None  # memory settled after it
    swaps_done_t: float | None = None  # when the variant had no more swaps


def build_timeline(events: list[Event]) -> Timeline:
    first, per_swap = _scan(events)
    release, released = first.get(EventKind.RELEASE), first.get(EventKind.RELEASED)
    staged_at = per_swap[EventKind.STAGED]
    staged = {index: events[at] for index, at in staged_at.items()}
    settled = {index: events[at] for index, at in per_swap[EventKind.SETTLED].items()}
    timed_out = {index: events[at] for index, at in per_swap[EventKind.SETTLE_TIMEOUT].items()}
    stopped, swaps_done = first.get(EventKind.STOPPED), first.get(EventKind.SWAPS_DONE)
    exited = first.get(EventKind.SERVER_EXITED)
    if exited is not None and stopped is not None and stopped.t <= exited.t:
        exited = None  # it exited because we stopped it

    first_staged_t = min((e.t for i, e in staged.items() if i >= 1), default=None)
    baseline_version = _baseline_version(events, first_staged_t)
    baseline = settled.get(0)

    swaps: list[SwapTimes] = []
    old_version = baseline_version
    indices = sorted(i for i in staged if i >= 1)
    for n, index in enumerate(indices):
        stage = staged[index]
        # What the server did for this swap happened before the next one was staged.
        end = staged_at[indices[n + 1]] if n + 1 < len(indices) else len(events)
        later = events[staged_at[index] : end]
        version = stage.version
        settle = settled.get(index) or timed_out.get(index)
        load_failed = _find(later, EventKind.LOAD_FAILED, version) is not None
        available = _find(later, EventKind.AVAILABLE, version)
        swaps.append(
            SwapTimes(
                index=index,
                version=version,
                old_version=old_version,
                staged_t=stage.t,
                available_t=available.t if available else None,
                old_end_t=_t(_find(later, EventKind.END, old_version)),
                settled_t=settle.t if settle else None,
                settle_timed_out=index in timed_out,
                load_failed=load_failed or (available is None and settle is not None),
                next_staged_t=staged[indices[n + 1]].t if n + 1 < len(indices) else None,
            )
        )
        if available is not None:
            old_version = version  # a failed load leaves the old version serving
    return Timeline(
        started_t=events[0].t if events else None,
        baseline_version=baseline_version,
        baseline_t=baseline.t if baseline else None,
        swaps=swaps,
        server_exit=exited,
        stopped_t=stopped.t if stopped else None,
        swaps_done=swaps_done.detail if swaps_done is not None else None,
        swaps_done_t=swaps_done.t if swaps_done is not None else None,
        release=release,
        released=released,
    )


_FIRST = (
    EventKind.RELEASE,
    EventKind.RELEASED,
    EventKind.STOPPED,
    EventKind.SWAPS_DONE,
    EventKind.SERVER_EXITED,
)
_PER_SWAP = (EventKind.STAGED, EventKind.SETTLED, EventKind.SETTLE_TIMEOUT)


def _scan(events: list[Event]) -> tuple[dict[str, Event], dict[str, dict[int, int]]]:
    """In one pass (a day is 40 000 events): the first event of each kind in _FIRST, and
    of each kind in _PER_SWAP, per swap, the position of its first before the release."""
    first: dict[str, Event] = {}
    per_swap: dict[str, dict[int, int]] = {kind: {} for kind in _PER_SWAP}
    for at, e in enumerate(events):
        if e.event in per_swap and EventKind.RELEASE not in first:
            per_swap[e.event].setdefault(e.swap, at)
        elif e.event in _FIRST and e.event not in first:
            first[e.event] = e
    return first, per_swap


def _baseline_version(events: list[Event], first_staged_t: float | None) -> int | None:
    """The version serving before the first swap: the last one seen AVAILABLE then."""
    version = None
    for e in events:
        if first_staged_t is not None and e.t >= first_staged_t:
            break
        if e.event == EventKind.AVAILABLE and e.version is not None:
            version = e.version
    return version


def _find(events: list[Event], kind: str, version: int | None) -> Event | None:
    if version is None:
        return None
    return next((e for e in events if e.event == kind and e.version == version), None)


def _t(event: Event | None) -> float | None:
    return event.t if event else None
