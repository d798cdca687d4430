"""TF Serving's Prometheus metrics (--metrics), scraped once a second into metrics.csv.

The page is TF Serving's exporter output (util/prometheus_exporter.cc), text format 0.0.4:
`name{labels} value` lines and `#` comments. soak keeps the label text as written (no need
to take label values apart to store or sum them), so a small parser does, and the core
install needs no Prometheus client. A series gets a row at the first scrape and then only
when its value changed, so a series' value at any time is its latest row. Histograms are
kept as their `_sum` and `_count` (their mean over any interval); their `_bucket` series are
left out: a request changes every cumulative bucket above its own, about 30 rows per
histogram per second, 8 times the rest together (soak measures each request's latency
itself). So a second of traffic adds about a dozen rows, as memory.csv does. One GET per
second over a kept-alive connection; parsing a 400-line page with its buckets skipped
before their labels are looked at takes about 0.6 ms (~0.1 % of a core at 1 Hz).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

from soak.samplers import http1
from soak.samplers.background import BackgroundLoop
from soak.samplers.clock import SwapClock
from soak.samplers.schedule import Ticker
from soak.store.csv_log import CsvLog
from soak.store.records import MetricSample

SCRAPE_INTERVAL_S = 1.0
TIMEOUT_S = 2.0


def parse_prometheus_text(
    text: str, skip_suffixes: tuple[str, ...] = ()
) -> Iterator[tuple[str, str, float]]:
    """(sample name, label text, value) of each sample line; unparsable lines are skipped,
    and so are samples whose name ends with one of `skip_suffixes` (before any parsing)."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        if brace < 0:
            name, _, rest = line.partition(" ")
            labels = ""
        else:
            # Only the value and a timestamp follow the label set: its `}` is the last one.
            end = line.rfind("}")
            if end < brace:
                continue
            name, labels, rest = line[:brace], line[brace + 1 : end], line[end + 1 :]
        name = name.strip()
        if not name or name.endswith(skip_suffixes):
            continue
        fields = rest.split()
        if not fields:
            continue
        try:
            value = float(fields[0])  # "+Inf", "NaN" too; a timestamp may follow
        except ValueError:
            continue
        yield name, labels, value


class MetricsScraper(BackgroundLoop):
    """GET http://127.0.0.1:PORT{path} every second; changed series -> metrics.csv rows."""

    thread_name = "soak-metrics"

    def __init__(
        self,
        port: int,
        path: str,
        log: CsvLog,
        clock: SwapClock,
        interval_s: float = SCRAPE_INTERVAL_S,
        host: str = "127.0.0.1",
    ):
        super().__init__()
        self.host, self.port, self.path = host, port, path
        self.url = f"http://{host}:{port}{path}"
        self.log = log
        self.clock = clock
        self.interval_s = interval_s
        self.scrapes = 0  # pages read
        self.failures = 0
        self.last_error: str | None = None
        self._values: dict[tuple[str, str], float] = {}

    def facts(self) -> dict[str, object]:
        """For variant.json: where it scraped, how often it worked, the last failure."""
        return {
            "url": self.url,
            "scrapes": self.scrapes,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    def _run(self) -> None:
        ticker = Ticker(self.interval_s, self._stop)
        address, request = http1.request("GET", self.url)
        connection = http1.Connection(*address, timeout_s=TIMEOUT_S)
        try:
            while True:
                self._scrape(connection, request)
                if not ticker.wait():
                    return
        finally:
            connection.close()

    def _scrape(self, connection: http1.Connection, request: bytes) -> None:
        try:
            status, body = connection.exchange(request)
        except (OSError, http1.HttpError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}")  # reconnects at the next scrape
            return
        if status != 200:
            self._failed(f"HTTP {status} from {self.url}")
            return
        t, swap = time.time(), self.clock.swap
        page = body.decode("utf-8", "replace")
        for name, labels, value in parse_prometheus_text(page, skip_suffixes=("_bucket",)):
            key = (name, labels)
            old = self._values.get(key)
            if old is not None and (old == value or (math.isnan(old) and math.isnan(value))):
                continue
            self._values[key] = value
            self.log.append(MetricSample(t, swap, name, labels, value))
        self.scrapes += 1

    def _failed(self, why: str) -> None:
        self.failures += 1
        self.last_error = why
