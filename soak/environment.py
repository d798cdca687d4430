"""environment.json: what a result depends on, so two runs can be compared honestly."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib import metadata

import psutil

from soak.config import RunConfig
from soak.targets.allocators import ALLOCATORS, LIBRARY_DIRS, package_version


def collect(config: RunConfig, docker_facts: dict | None = None) -> dict:
    uname = platform.uname()
    facts = {
        "host": socket.gethostname(),
        "os": platform.platform(),
        "kernel": uname.release,
        "machine": uname.machine,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_total_bytes": psutil.virtual_memory().total,
        "glibc_version": os.confstr("CS_GNU_LIBC_VERSION"),
        "python": sys.version.split()[0],
        "tensorflow": _dist_version("tensorflow-cpu") or _dist_version("tensorflow"),
        "soak": _dist_version("soak"),
        "allocators": _allocator_facts(),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "0 (stand-in default)"),
        "backend": config.backend,
        "server_binary": config.server_binary if config.backend == "process" else None,
        "server_args": config.server_args,
        "image": config.image if config.backend == "docker" else None,
    }
    if docker_facts:
        facts["docker"] = docker_facts
    return facts


def _allocator_facts() -> dict:
    facts = {}
    for name, spec in ALLOCATORS.items():
        if spec.soname is None:
            continue
        path = next(
            (f"{d}/{spec.soname}" for d in LIBRARY_DIRS if os.path.exists(f"{d}/{spec.soname}")),
            None,
        )
        facts[name] = {
            "library": path,
            "package": spec.debian_package,
            "version": package_version(spec.debian_package) if path else None,
        }
    return facts


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
