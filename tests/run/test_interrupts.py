"""soak.core.interrupts on its own: where a signal raises, where it is held, what forcing does."""

from __future__ import annotations

import os
import signal
import time

import pytest

from soak.core import interrupts
from soak.core.interrupts import Interrupted


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)  # handled before the next bytecode of the main thread


def test_outside_a_run_nothing_is_installed():
    before = signal.getsignal(signal.SIGTERM)
    with interrupts.handling():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    assert interrupts.pending() is None


def test_the_first_signal_raises_inside_an_interruptible_region():
    with interrupts.handling():
        with pytest.raises(Interrupted) as caught, interrupts.interruptible():
            send(signal.SIGTERM)
        assert caught.value.signum == signal.SIGTERM and caught.value.exit_code == 143
        assert not caught.value.forced


def test_a_signal_is_held_in_cleanup_and_raised_where_it_can_be():
    with interrupts.handling():
        cleaned = []
        with pytest.raises(Interrupted), interrupts.interruptible():
            with interrupts.shielded():
                send(signal.SIGINT)
                cleaned.append("server handle stored")  # not cut in half
            cleaned.append("never: raised on leaving the shield")
        assert cleaned == ["server handle stored"]
        # held outside any region, raised by check()
    with interrupts.handling():
        send(signal.SIGINT)
        assert interrupts.pending() == signal.SIGINT
        with pytest.raises(Interrupted):
            interrupts.check()


def test_a_second_signal_forces_and_interrupts_the_analysis():
    with interrupts.handling():
        with pytest.raises(Interrupted), interrupts.interruptible():
            send(signal.SIGINT)
        with interrupts.forcible():
            pass  # the first signal alone does not stop the analysis
        time.sleep(interrupts.REPEAT_AFTER_S)
        send(signal.SIGINT)  # during cleanup: held, but cleanup stops waiting
        assert interrupts.forced()
        assert not interrupts.wait_until(lambda: False, timeout_s=60)  # returns at once
        with pytest.raises(Interrupted) as caught, interrupts.forcible():
            pass
        assert caught.value.forced and caught.value.exit_code == 130


def test_a_forced_stop_skips_the_analysis_even_if_cleanup_caught_it():
    # The second signal lands while the first one's cleanup is still in an interruptible
    # region: it raises there and is caught as an interruption; the analysis still skips.
    with interrupts.handling():
        with pytest.raises(Interrupted), interrupts.interruptible():
            send(signal.SIGINT)
        time.sleep(interrupts.REPEAT_AFTER_S)
        with pytest.raises(Interrupted) as caught, interrupts.interruptible():
            send(signal.SIGINT)
        assert caught.value.forced
        with pytest.raises(Interrupted) as caught, interrupts.forcible():
            pass
        assert caught.value.forced


def test_one_stop_delivered_twice_at_once_does_not_force():
    # timeout(1) sends its signal to the command, then to its process group
    with interrupts.handling():
        # shielded: both arrive before either is raised
        with (
            pytest.raises(Interrupted) as caught,
            interrupts.interruptible(),
            interrupts.shielded(),
        ):
            send(signal.SIGTERM)
            send(signal.SIGTERM)
        assert not caught.value.forced and not interrupts.forced()
        with interrupts.forcible():
            pass  # the analysis still runs


def test_sigint_ignored_at_start_is_handled_during_a_run():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.handling(), pytest.raises(Interrupted), interrupts.interruptible():
            send(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # restored
    finally:
        signal.signal(signal.SIGINT, previous)
