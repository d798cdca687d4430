"""Live progress on the terminal while a run goes (silent with --quiet).

On a terminal one status line is redrawn every second; in a log (not a tty)
one line per swap is printed, so a scheduler's log stays readable.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from soak.store.records import MIB

REFRESH_S = 1.0


class Progress:
    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.live = not quiet and self.stream.isatty()
        self._state: dict = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def message(self, text: str) -> None:
        if not self.quiet:
            self._clear()
            print(text, file=self.stream, flush=True)

    def notice(self, text: str) -> None:
        """What soak did to things outside its run dir (removed leftovers): said even if quiet."""
        self._clear()
        print(f"soak: {text}", file=self.stream, flush=True)

    def variant_started(self, name: str, swaps: str, memory: Any, prober: Any) -> None:
        self._state = {"name": name, "swaps": swaps, "swap": 0, "memory": memory, "prober": prober}
        if self.live and self._thread is None:
            self._thread = threading.Thread(target=self._refresh, daemon=True)
            self._thread.start()

    def swap_done(self, index: int, outcome: Any = None) -> None:
        self._state["swap"] = index
        if self.quiet:
            return
        if outcome is not None and not outcome.loaded:
            self.message(
                f"[{self._state['name']}] swap {index}: version {outcome.version} "
                f"failed to load: {outcome.detail}"
            )
        elif not self.live:
            self.message(self._line("baseline settled" if index == 0 else "settled"))

    def variant_done(self, name: str, status: str, reason: str | None) -> None:
        self._state = {}
        self.message(f"[{name}] {status}" + (f": {reason}" if reason else ""))

    def close(self) -> None:
        self._stop.set()
        self._clear()

    def _line(self, suffix: str = "") -> str:
        s = self._state
        latest = s["memory"].latest() if s.get("memory") else None
        p99 = s["prober"].recent_p99_ms() if s.get("prober") else None
        parts = [f"[{s['name']}] swap {s['swap']}/{s['swaps']}"]
        if latest is not None:
            parts.append(
                f"anon {latest.anon_bytes / MIB:.1f} MiB, rss {latest.rss_bytes / MIB:.1f} MiB"
            )
        if p99 is not None:
            parts.append(f"p99 {p99:.0f} ms")
        prober = s.get("prober")
        if prober is not None and prober.errors:
            parts.append(f"errors {prober.errors} (last: {prober.last_error})")
        return "  ".join(parts) + (f"  {suffix}" if suffix else "")

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_S):
            if self._state.get("name"):
                print("\r\033[K" + self._line(), end="", file=self.stream, flush=True)

    def _clear(self) -> None:
        if self.live:
            print("\r\033[K", end="", file=self.stream, flush=True)
