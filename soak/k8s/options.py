"""The options of a soak's Job, declared once: the flags of `soak k8s job|cronjob` and the
keys of a fleet file's `[defaults]` and `[[models]]` tables (the names, with _ for -)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from soak.config.declarations import Option, options_of, parse_size, setting
from soak.k8s.schedule import check_schedule
from soak.store.records import MIB

# The tag `soak image job --base IMAGE` gives the Job image it builds (soak beside the
# server, the nightly sequence as its entrypoint: CONFIG N as arguments).
DEFAULT_IMAGE = "soak-job:latest"

_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")
_CPU = re.compile(r"^(?:\d+(?:\.\d+)?|\d+m)$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def dns_label(text: Any, longest: int = 63) -> str:
    """A Kubernetes name that is a DNS label (a Job's, a namespace's)."""
    if not isinstance(text, str) or len(text) > longest or not re.fullmatch(_DNS_LABEL, text):
        raise ValueError(
            f"{text!r} is not a Kubernetes name: lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit, at most {longest} characters"
        )
    return text


def dns_subdomain(text: Any) -> str:
    """A Kubernetes object name (a PVC's, a Secret's): DNS labels joined by dots."""
    if (
        not isinstance(text, str)
        or len(text) > 253
        or not all(re.fullmatch(_DNS_LABEL, part) for part in text.split("."))
    ):
        raise ValueError(
            f"{text!r} is not a Kubernetes object name: lower-case letters, digits, '-' "
            "and '.', starting and ending with a letter or digit"
        )
    return text


def absolute_path(text: Any) -> str:
    if not isinstance(text, str) or not text.startswith("/") or ":" in text:
        raise ValueError(f"{text!r} is not an absolute path (without ':')")
    return text.rstrip("/") or "/"


def parse_duration(raw: Any) -> int:
    """Seconds from 5400, '90m', '1h30m' or '45s'."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        seconds = raw
    else:
        match = _DURATION.match(str(raw).strip()) if isinstance(raw, str) else None
        if not match or not any(match.groups()):
            raise ValueError(f"{raw!r} is not a duration like 5400, 90m or 1h30m")
        hours, minutes, secs = (int(g or 0) for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds < 1:
        raise ValueError(f"{raw!r} is not a duration of at least a second")
    return seconds


def parse_cpu(raw: Any) -> str:
    """A CPU quantity as Kubernetes writes it: 2, 1.5 or 500m (more than 0)."""
    text = str(raw).strip() if isinstance(raw, int | float | str) else ""
    if isinstance(raw, bool) or not _CPU.match(text) or float(text.rstrip("m")) <= 0:
        raise ValueError(f"{raw!r} is not a CPU count like 2, 1.5 or 500m")
    return text


def parse_memory(raw: Any) -> int:
    size = parse_size(raw)
    if size < MIB:
        raise ValueError(f"{raw!r} is less than 1 MiB")
    return size


def history_secret(raw: Any) -> str:
    """A Secret's name, or '' for none (the history stays in the runs volume)."""
    return "" if raw == "" else dns_subdomain(raw)


def secret_key(raw: Any) -> str:
    if not isinstance(raw, str) or not _SECRET_KEY.match(raw) or len(raw) > 253:
        raise ValueError(f"{raw!r} is not a Secret key (letters, digits, '-', '_', '.')")
    return raw


@dataclass(frozen=True)
class JobOptions:
    """How one soak runs on Kubernetes: image, resources, deadline, volumes, history."""

    schedule: str | None = setting(
        None,
        "the CronJob's cron schedule: 5 fields (minute hour day-of-month month "
        "day-of-week) or @daily, @hourly, ...",
        parse=check_schedule,
        metavar="CRON",
        default_text="none: required",
    )
    image: str = setting(
        DEFAULT_IMAGE,
        "the Job image: soak beside the server, the nightly sequence as its entrypoint "
        "(`soak image job --base IMAGE` tags it; push it to your registry and name that)",
        metavar="IMAGE",
    )
    memory: int | None = setting(
        None,
        "the container's memory, its request and its limit, e.g. 4g",
        parse=parse_memory,
        metavar="SIZE",
        default_text="from --from-run",
    )
    from_run: str | None = setting(
        None,
        "a run dir of this model: the memory is its largest pod_memory_mb (what the server "
        "needs, soak run's pod MiB) plus --soak-memory",
        metavar="RUN_DIR",
        default_text="none: give --memory",
    )
    soak_memory: int = setting(
        512 * MIB,
        "soak's own memory beside the server's, added to --from-run's figure",
        parse=parse_memory,
        metavar="SIZE",
        default_text="512m",
    )
    cpu: str = setting(
        "2",
        "CPUs requested for soak and the server (no CPU limit: throttling would show as latency)",
        parse=parse_cpu,
        metavar="CPUS",
    )
    deadline: int | None = setting(
        None,
        "activeDeadlineSeconds: the Job is stopped (SIGTERM: soak keeps and records its "
        "partial results) after this long, e.g. 90m",
        parse=parse_duration,
        metavar="DURATION",
        default_text="the longest the config's timeouts allow, plus 15 min",
    )
    against: int = setting(
        5, "soak check --against-history N: the last N comparable runs", minimum=1, metavar="N"
    )
    model_pvc: str | None = setting(
        None,
        "the PersistentVolumeClaim that holds the model, mounted read-only at --model-mount",
        parse=dns_subdomain,
        metavar="CLAIM",
        default_text="none",
    )
    model_host_path: str | None = setting(
        None,
        "or the node's directory that holds the model, mounted read-only at --model-mount",
        parse=absolute_path,
        metavar="DIR",
        default_text="none",
    )
    model_mount: str = setting(
        "/models",
        "where the model volume is mounted: the config's model path is under it",
        parse=absolute_path,
        metavar="PATH",
    )
    runs_pvc: str | None = setting(
        None,
        "the PersistentVolumeClaim for soak-runs/ (run dirs, and the history when there is "
        "no history Secret)",
        parse=dns_subdomain,
        metavar="CLAIM",
        default_text="an emptyDir: the run dirs go with the pod",
    )
    history_secret: str = setting(
        "soak-history",
        "the Secret whose --history-key holds the history URL (postgresql://...), given to "
        "soak as SOAK_HISTORY; '' for none",
        parse=history_secret,
        metavar="SECRET",
    )
    history_key: str = setting(
        "url", "the key of --history-secret", parse=secret_key, metavar="KEY"
    )
    run_as_user: int = setting(
        1000, "the non-root user (and group) the container runs as", minimum=1, metavar="UID"
    )
    namespace: str | None = setting(
        None,
        "the namespace of every object",
        parse=dns_label,
        metavar="NAMESPACE",
        default_text="kubectl's",
    )


# Options of which one is given: a layer of settings that gives one replaces the others.
EITHER = (("memory", "from_run"), ("model_pvc", "model_host_path"))


def job_options() -> tuple[Option, ...]:
    return options_of(JobOptions)
