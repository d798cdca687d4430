"""Log lines shaped like TF Serving's, so tools that read its logs read ours.

TF Serving (glog via TensorFlow) writes
`2024-05-16 20:18:07.668928: I tensorflow_serving/core/loader_harness.cc:74] Loading ...`
to stderr. We write the same shape, with the thread name after the level letter so a
reader can tell which thread (manager loop or a load/unload pool) did the work.
"""

from __future__ import annotations

import logging
import sys
import time

_LEVEL_LETTERS = {"DEBUG": "D", "INFO": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "F"}


class _TfServingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        micros = int((record.created % 1) * 1_000_000)
        letter = _LEVEL_LETTERS.get(record.levelname, "I")
        module = record.name.replace(".", "/") + ".py"
        line = (
            f"{stamp}.{micros:06d}: {letter} {record.threadName} {module}:{record.lineno}] "
            f"{record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging() -> None:
    """Send the server's log records to stderr, one flushed line each."""
    handler = logging.StreamHandler(sys.stderr)  # flushes after every record
    handler.setFormatter(_TfServingFormatter())
    root = logging.getLogger("soak_model_server")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def servable_id(name: str, version: int) -> str:
    """A servable id as TF Serving prints it: `{name: m version: 2}`."""
    return f"{{name: {name} version: {version}}}"
