"""SIGINT and SIGTERM during a run: stop within seconds, keep the data, remove what was started.

While `handling()` is active (a `soak run`, or a `soak_run` in a test) the first
SIGINT or SIGTERM raises `Interrupted` (a KeyboardInterrupt) in the main thread,
but only inside an `interruptible()` region: preparing and measuring. Anywhere
else (starting or stopping a server, writing variant.json) it is held, and
raised when the code returns to an interruptible region or calls `check()`, so
cleanup is never cut in half. A second signal forces the stop: `forced()` turns
true, so cleanup stops waiting (servers are killed, containers removed at once),
and it raises in `forcible()` regions too (the analysis after the run). Only a
signal that comes `REPEAT_AFTER_S` or more after the first counts as the second:
`timeout(1)` signals the command and then its process group, so one stop
arrives twice within a millisecond, and forcing it would lose the analysis.

Both are handled even when they were ignored at start (a job started with `&`
from a script or by a scheduler has SIGINT ignored, and Python then raises no
KeyboardInterrupt): a scheduler that cancels with SIGINT (as CI runners do)
must stop the run cleanly, not leave it running. Off the main thread (soak
used as a library from a thread) nothing is installed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress

SIGNALS = (signal.SIGINT, signal.SIGTERM)
REPEAT_AFTER_S = 0.5  # a signal sooner than this after the first is that one delivered twice

_INTERRUPTIBLE = "interruptible"
_FORCIBLE = "forcible"
_HELD = "held"


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; `exit_code` is 128 + the signal number."""

    def __init__(self, signum: int, forced: bool = False):
        super().__init__(signal_name(signum))
        self.signum = signum
        self.forced = forced

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def reason(self) -> str:
        return f"interrupted by {signal_name(self.signum)}"


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.active = False
        self.signum: int | None = None
        self.first_at = 0.0  # time.monotonic() of the first signal
        self.forced = False
        self.raised = False  # the first signal has been raised as Interrupted
        self.force_raised = False
        self.modes: list[str] = []


_state = _State()


def _say(text: str) -> None:
    """Write from a signal handler: os.write, never the buffered sys.stderr (reentrancy)."""
    with suppress(OSError):
        os.write(2, f"\nsoak: {text}\n".encode())


def _mode() -> str:
    return _state.modes[-1] if _state.modes else _HELD


def _handle(signum: int, frame: object) -> None:
    s = _state
    if s.signum is None:
        s.signum, s.first_at = signum, time.monotonic()
        _say(f"{signal_name(signum)} received: stopping (send it again to force)")
    elif not s.forced and time.monotonic() - s.first_at >= REPEAT_AFTER_S:
        s.forced = True
        _say(f"{signal_name(signum)} again: forcing the stop (servers are killed now)")
    _raise_if_due()


def _raise_if_due() -> None:
    s = _state
    if s.signum is None:
        return
    mode = _mode()
    if s.forced and not s.force_raised and mode in (_INTERRUPTIBLE, _FORCIBLE):
        s.raised = s.force_raised = True
        raise Interrupted(s.signum, forced=True)
    if not s.raised and mode == _INTERRUPTIBLE:
        s.raised = True
        raise Interrupted(s.signum)


@contextmanager
def handling() -> Iterator[None]:
    """Install the handlers for the duration of a run (main thread only); restore after."""
    if _state.active or threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.reset()
    _state.active = True
    previous = {}
    for signum in SIGNALS:
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, _handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _state.reset()


@contextmanager
def _region(mode: str) -> Iterator[None]:
    _state.modes.append(mode)
    try:
        _raise_if_due()
        yield
    finally:
        _state.modes.pop()
    _raise_if_due()  # only on a normal exit: a held signal is raised by the outer region


def interruptible() -> AbstractContextManager[None]:
    """A region the first signal may interrupt (preparing, measuring)."""
    return _region(_INTERRUPTIBLE)


def forcible() -> AbstractContextManager[None]:
    """A region only the second (forcing) signal interrupts (the analysis).

    It never starts after a forced stop, wherever that signal was raised before
    (cleanup of an interrupted region may have caught it as the first one): what the
    last line says, "forced: no analysis", then holds whenever the user forced.
    """
    s = _state
    if s.forced:
        s.raised = s.force_raised = True
        raise Interrupted(s.signum or signal.SIGINT, forced=True)
    return _region(_FORCIBLE)


def shielded() -> AbstractContextManager[None]:
    """A region no signal interrupts: it completes, then the signal is raised after it."""
    return _region(_HELD)


def pending() -> int | None:
    """The signal received so far (held or raised), None if none."""
    return _state.signum


def forced() -> bool:
    """A second signal came: stop waiting for anything, kill and remove now."""
    return _state.forced


def check() -> None:
    """Raise a held signal now (at a point where the caller can stop cleanly)."""
    s = _state
    if s.signum is not None and not s.raised:
        s.raised = True
        raise Interrupted(s.signum, forced=s.forced)


def wait_until(done: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> bool:
    """Poll `done()` until it holds (True), `timeout_s` passes or the stop is forced (False)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        remaining = deadline - time.monotonic()
        if forced() or remaining <= 0:
            return False
        time.sleep(min(poll_s, remaining))
    return True
