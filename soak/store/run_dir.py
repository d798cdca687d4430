"""Paths of the run directory (docs/contract.md#run-directory), in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VariantDir:
    """RUN_DIR/VARIANT/: one variant's raw data."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def memory_csv(self) -> Path:
        return self.path / "memory.csv"

    @property
    def latency_csv(self) -> Path:
        return self.path / "latency.csv"

    @property
    def events_csv(self) -> Path:
        return self.path / "events.csv"

    @property
    def metrics_csv(self) -> Path:
        """TF Serving's Prometheus metrics (--metrics)."""
        return self.path / "metrics.csv"

    @property
    def breakdown_csv(self) -> Path:
        """Per settled point: the process's memory and the allocator's own figures."""
        return self.path / "breakdown.csv"

    @property
    def server_log(self) -> Path:
        return self.path / "server.log"

    def last_server_log_line(self, limit: int = 300) -> str:
        """The server's last words, for a one-line failure message."""
        try:
            text = self.server_log.read_text(errors="replace")
        except OSError:
            return ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return lines[-1][:limit] if lines else ""

    @property
    def models(self) -> Path:
        """The private copy of the model base path that the server watches."""
        return self.path / "models"

    @property
    def monitoring_config(self) -> Path:
        """soak's --monitoring_config_file for the server (--metrics)."""
        return self.path / "monitoring_config.txt"

    @property
    def variant_json(self) -> Path:
        """What the run knew of the variant (allocator, verification, status)."""
        return self.path / "variant.json"


@dataclass(frozen=True)
class RunDir:
    """RUN_DIR/: one soak run."""

    path: Path

    @property
    def summary_json(self) -> Path:
        return self.path / "summary.json"

    @property
    def report_html(self) -> Path:
        return self.path / "report.html"

    @property
    def run_toml(self) -> Path:
        return self.path / "run.toml"

    @property
    def environment_json(self) -> Path:
        return self.path / "environment.json"

    def variant(self, name: str) -> VariantDir:
        return VariantDir(self.path / name)

    def variants(self) -> list[VariantDir]:
        """Variant dirs in run order (as listed in run.toml), else by name."""
        return sorted(
            (VariantDir(p) for p in self.path.iterdir() if (p / "events.csv").exists()),
            key=lambda v: v.name,
        )
