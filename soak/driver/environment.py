"""environment.json: what a result depends on, so two runs can be compared honestly."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib import metadata

import psutil

from soak.config.allocators import ALLOCATORS
from soak.driver.plan import RunPlan
from soak.store.facts import Environment
from soak.targets.allocators import locate_library, package_version


def collect(plan: RunPlan) -> Environment:
    config = plan.config
    uname = platform.uname()
    return Environment(
        host=socket.gethostname(),
        os=platform.platform(),
        kernel=uname.release,
        machine=uname.machine,
        cores=os.cpu_count(),
        usable_cores=len(os.sched_getaffinity(0)),
        memory_total_bytes=psutil.virtual_memory().total,
        glibc_version=os.confstr("CS_GNU_LIBC_VERSION"),
        python=sys.version.split()[0],
        tensorflow=_dist_version("tensorflow-cpu") or _dist_version("tensorflow"),
        soak=_dist_version("soak"),
        allocators=_allocator_facts(),
        tf_enable_onednn_opts=os.environ.get("TF_ENABLE_ONEDNN_OPTS", "0 (stand-in default)"),
        backend=config.backend,
        server_args=tuple(config.server_args),
        removed_leftovers=tuple(plan.removed_leftovers),
        **plan.backend.facts(),
    )


def _allocator_facts() -> dict:
    facts = {}
    for name, spec in ALLOCATORS.items():
        if spec.soname is None:
            continue
        path = locate_library(name)
        facts[name] = {
            "library": str(path) if path else None,
            "package": spec.debian_package,
            "version": package_version(spec.debian_package) if path else None,
        }
    return facts


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
