"""Optional parts of soak and the extra that installs them.

`pip install soak` is the monitor without TensorFlow (enough to soak a real
TF Serving image with `--backend docker`, and to report and gate runs). The
stand-in server and the demo model need TensorFlow: `pip install 'soak[standin]'`.
"""

from __future__ import annotations

import importlib.util

from soak.core.errors import UsageError

STANDIN = "standin"  # the extra's name in pyproject.toml
STANDIN_EXTRA = f"soak[{STANDIN}]"
POSTGRES = "postgres"  # psycopg, for a history in PostgreSQL (the Job image has it)


def tensorflow_installed() -> bool:
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # hidden, or half-imported
        return False


def standin_hint() -> str:
    return f"pip install '{STANDIN_EXTRA}'"


def require_tensorflow(what: str) -> None:
    """A one-line UsageError (exit 2) naming the extra, when TensorFlow is not installed."""
    if not tensorflow_installed():
        raise UsageError(f"{what} needs TensorFlow: {standin_hint()}")
