"""Where a history is: an SQLite file (the default) or a PostgreSQL database (shared).

`--history`, `soak history DB`, `SOAK_HISTORY` and the plugin's `--soak-history` all
take either: a path, or a `postgresql://` URL (libpq's form; `postgres://` and
`postgresql+psycopg://` too). The URL's password is never shown: `str()` of a
location masks it, and so does every message about it (`mask`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from soak.config.settings import URL_SCHEME, history_from_environment, history_text
from soak.core.errors import UsageError

DRIVER = "postgresql+psycopg"  # psycopg 3, the maintained driver
_PASSWORD_IN_QUERY = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


@dataclass(frozen=True)
class HistoryLocation:
    """An SQLite file (`path`) or a PostgreSQL URL (`url`, as the user wrote it)."""

    path: Path | None = None
    url: URL | None = None

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    def engine_url(self) -> URL:
        """The SQLAlchemy URL to connect with (the password in it): psycopg 3's driver."""
        if self.url is not None:
            return self.url.set(drivername=DRIVER)
        return URL.create("sqlite", database=str(self.path))

    def __str__(self) -> str:
        """The path as given, or the URL with its password masked."""
        if self.url is None:
            return str(self.path)
        return _PASSWORD_IN_QUERY.sub(r"\1***", self.url.render_as_string(hide_password=True))

    def mask(self, text: str) -> str:
        """`text` with this location's password masked, wherever it appears."""
        password = self.url.password if self.url is not None else None
        if password:
            text = text.replace(str(password), "***")
        return _PASSWORD_IN_QUERY.sub(r"\1***", text)


def parse(where: str | Path | HistoryLocation) -> HistoryLocation:
    """A history's location from what the user gave; UsageError for a URL soak cannot use."""
    if isinstance(where, HistoryLocation):
        return where
    try:
        text = history_text(where)
    except ValueError as exc:
        raise UsageError(f"history {_masked_netloc(os.fspath(where))}: {exc}") from None
    if URL_SCHEME.match(text) is None:
        return HistoryLocation(path=Path(text))
    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise UsageError(f"history {_masked_netloc(text)}: not a valid URL ({exc})") from None
    return HistoryLocation(url=url)


def resolve(
    given: str | Path | HistoryLocation | None,
    environ: Mapping[str, str],
    default: Path,
) -> HistoryLocation:
    """Where a command's history is: as given, else SOAK_HISTORY, else the SQLite file
    `default` (history.sqlite beside the run dirs)."""
    if given is None or given == "":
        given = history_from_environment(environ)
    return parse(given if given else default)


def _masked_netloc(text: str) -> str:
    """A URL as given (it may not parse), its password masked."""
    text = re.sub(r"^([^:/]+://[^:@/]*):[^@/]*@", r"\1:***@", text)
    return _PASSWORD_IN_QUERY.sub(r"\1***", text)
