"""TF Serving's monitoring config (`--monitoring_config_file`) for `--metrics`.

soak writes a text MonitoringConfig that enables the Prometheus exporter at TF Serving's
standard path, and passes it to the server (as a host path to a process, bind-mounted
read-only into a container). A user who gives their own `--monitoring_config_file` as a
server flag keeps it: soak then scrapes the path that file names, when soak can read it
(a process server's file), else the standard path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

FLAG = "--monitoring_config_file"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # PrometheusExporter::kPrometheusPath
CONFIG_TEXT = f'prometheus_config {{\n  enable: true\n  path: "{PROMETHEUS_PATH}"\n}}\n'
_PATH_RE = re.compile(r'prometheus_config\s*\{[^}]*?\bpath\s*:\s*"([^"]+)"', re.DOTALL)


def given_config(server_args: Sequence[str]) -> str | None:
    """The `--monitoring_config_file` among the server flags (the last wins), if any."""
    found = None
    args = list(server_args)
    for i, arg in enumerate(args):
        if arg.startswith(FLAG + "="):
            found = arg.split("=", 1)[1]
        elif arg == FLAG and i + 1 < len(args):
            found = args[i + 1]
    return found


def prometheus_path(config_file: str | None) -> str:
    """The path a monitoring config serves Prometheus on (standard when unreadable here)."""
    if config_file is None:
        return PROMETHEUS_PATH
    try:
        text = Path(config_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return PROMETHEUS_PATH
    match = _PATH_RE.search(text)
    return match.group(1) if match else PROMETHEUS_PATH


def write_config(path: Path) -> Path:
    """Write soak's monitoring config to `path`; returns it."""
    path.write_text(CONFIG_TEXT, encoding="utf-8")
    return path
