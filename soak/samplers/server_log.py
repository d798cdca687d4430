"""What the server's log says about loads: a failed load is known at once, not at a timeout.

TF Serving logs a failed load as
`E tensorflow_serving/util/retrier.cc:40] Loading servable: {name: m version: 1} failed: ...`
and then retries it (`--max_num_load_retries`, a minute apart by default), with
no REST port open yet for the first version. The status API only says so when
the retries are spent, minutes later. The log line says it at once.
"""

from __future__ import annotations

import re
from pathlib import Path

# TF Serving's retrier (and the stand-in's manager): a load attempt failed.
_LOAD_FAILED = re.compile(r"Loading servable: \{name: (\S+) version: (\d+)\} failed: (.*)")
# The server gave up starting (TF Serving's main and the stand-in).
_START_FAILED = re.compile(r"Failed to start server\. Error: (.*)")
MAX_LINE = 400


class ServerLogWatcher:
    """Reads the lines the server appended to its log since the last call, on demand."""

    def __init__(self, path: Path, model_name: str):
        self.path = path
        self.model_name = model_name
        self._offset = 0
        self._partial = b""
        self.load_failures: dict[int, str] = {}  # version -> the first failure line's message
        self.start_failure: str | None = None

    def poll(self) -> None:
        """Read what was appended; remember failed loads and a failed start."""
        try:
            with open(self.path, "rb") as log:
                log.seek(self._offset)
                data = log.read()
        except OSError:
            return
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for its end
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            match = _LOAD_FAILED.search(line)
            if match and match.group(1) == self.model_name:
                self.load_failures.setdefault(int(match.group(2)), match.group(3)[:MAX_LINE])
                continue
            match = _START_FAILED.search(line)
            if match and self.start_failure is None:
                self.start_failure = match.group(1)[:MAX_LINE]

    def load_failure(self, version: int) -> str | None:
        """The error of the first failed load of `version` logged so far, if any."""
        self.poll()
        return self.load_failures.get(version)
