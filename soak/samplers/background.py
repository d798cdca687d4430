"""A sampler's thread: started with the variant, stopped (and joined) at its end."""

from __future__ import annotations

import threading


class BackgroundLoop:
    """Runs `_run()` on a daemon thread until `stop()`; subclasses watch `self._stop`."""

    thread_name = "soak-sampler"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """Started and not finished (a loop may end on its own, e.g. a sampler giving up)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        raise NotImplementedError
