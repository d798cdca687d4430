"""A node of N cores on a smaller machine: the thread and arena counts sized for N cores.

TF Serving and the allocators size themselves by the cores they see: TensorFlow's intra-
and inter-op pools one thread per core each, TF Serving's REST and gRPC threads four per
core (`4.0 * port::NumSchedulableCPUs()` in its main.cc), glibc up to 8 arenas per core
and jemalloc 4. How much memory glibc keeps after unloads grows with the threads and the
arenas they spread over (docs/verdicts.md), so a soak on a 2-core CI machine says little
about a 16-core node unless these counts are set explicitly: `--node-cores 16` does.
"""

from __future__ import annotations

from collections.abc import Mapping

from soak.config.settings import RunConfig, VariantSpec

REQUEST_THREADS_PER_CORE = 4  # TF Serving's rest_api_num_threads and grpc_max_threads
GLIBC_ARENAS_PER_CORE = 8  # glibc's arena_max on 64-bit: 8 * cores
JEMALLOC_ARENAS_PER_CORE = 4  # jemalloc's narenas: 4 * cores


def server_args(cores: int) -> tuple[str, ...]:
    """The server flags TF Serving's defaults come to on a node of `cores` cores."""
    return (
        f"--tensorflow_intra_op_parallelism={cores}",
        f"--tensorflow_inter_op_parallelism={cores}",
        f"--rest_api_num_threads={REQUEST_THREADS_PER_CORE * cores}",
        f"--grpc_max_threads={REQUEST_THREADS_PER_CORE * cores}",
    )


def allocator_env(allocator: str, env: Mapping[str, str], cores: int) -> dict[str, str]:
    """The variant's environment with its allocator's arena count for `cores`, unless the
    variant sets one itself (e.g. the glibc-arenas2 fix)."""
    if allocator == "glibc" and "MALLOC_ARENA_MAX" not in env:
        return {**env, "MALLOC_ARENA_MAX": str(GLIBC_ARENAS_PER_CORE * cores)}
    conf = env.get("MALLOC_CONF", "")
    if allocator == "jemalloc" and "narenas" not in conf:
        narenas = f"narenas:{JEMALLOC_ARENAS_PER_CORE * cores}"
        return {**env, "MALLOC_CONF": f"{conf},{narenas}" if conf else narenas}
    return dict(env)


def run_server_args(config: RunConfig) -> tuple[str, ...]:
    """The run's server flags: `--node-cores`' first, then the run's own (the last one wins)."""
    node = server_args(config.node_cores) if config.node_cores else ()
    return (*node, *config.server_args)


def variant_env(config: RunConfig, variant: VariantSpec) -> dict[str, str]:
    """The variant's environment, with `--node-cores`' arena count for its allocator."""
    if not config.node_cores:
        return dict(variant.env)
    return allocator_env(variant.allocator, variant.env, config.node_cores)
