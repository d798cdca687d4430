"""The hot-reload recipes `soak tune` tries (docs/tune.md): what each one changes.

A recipe is a small experiment: variants of one run that differ in that recipe
alone, the first being the reference (TF Serving as it is, or the run's own
setting), with the same traffic and swap schedule. Each variant is an ordinary
`[[variants]]` table, so a recipe's run dir is an ordinary run dir.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from soak.config.settings import RunConfig, VariantSpec

# The parts a request is split into, and the batch it splits, when the run names none:
# the seed's 700 items as 4 requests of about 200.
DEFAULT_SPLIT = 4
DEFAULT_SPLIT_BATCH = 64
LOAD_THREADS = 2  # --num_load_threads / --num_unload_threads against TF Serving's 0
# Swaps per variant unless the user sets --swaps: enough for latency and CPU per swap (4
# values against 4 give an interval); the memory question takes the verdict's own count,
# as soak run does (glibc's kept memory scatters by half the model from swap to swap, so
# 6 swaps cannot tell jemalloc from it: measured, docs/tune.md).
TUNE_SWAPS = 6


@dataclass(frozen=True)
class Recipe:
    """One recipe: its name (`--recipes`), what it asks, and how to build its run."""

    name: str
    question: str
    build: Callable[[RunConfig, tuple[int, ...]], RunConfig]  # (config, usable CPUs) -> its run
    swaps: int | str = TUNE_SWAPS  # per variant, unless the user set --swaps

    def config(self, base: RunConfig, cpus: tuple[int, ...]) -> RunConfig:
        return self.build(base, cpus)


def base_variant(config: RunConfig) -> VariantSpec:
    """The variant the recipes change: the run's first (glibc by default), as it is."""
    return config.variants[0] if config.variants else VariantSpec.named(config.allocators[0])


def _with(config: RunConfig, *variants: VariantSpec) -> RunConfig:
    return dataclasses.replace(
        config, variants=variants, allocators=tuple(v.allocator for v in variants)
    )


def _variant(
    base: VariantSpec, name: str, *server_args: str, split: int | None = None
) -> VariantSpec:
    return dataclasses.replace(
        base,
        name=name,
        server_args=(*base.server_args, *server_args),
        split=split if split is not None else base.split,
    )


def _warmup(config: RunConfig, cpus: tuple[int, ...]) -> RunConfig:
    base = base_variant(config)
    return _with(
        config,
        _variant(base, "no-warmup", "--enable_model_warmup=false"),
        _variant(base, "warmup", "--enable_model_warmup=true"),
    )


def _load_threads(config: RunConfig, cpus: tuple[int, ...]) -> RunConfig:
    base = base_variant(config)
    n = LOAD_THREADS
    return _with(
        config,
        _variant(base, "load-threads-0", "--num_load_threads=0", "--num_unload_threads=0"),
        _variant(base, f"load-threads-{n}", f"--num_load_threads={n}", f"--num_unload_threads={n}"),
    )


def op_thread_ladder(cores: int) -> list[tuple[int, int]]:
    """(intra, inter) rungs: half the cores each (their sum the cores, the seed's
    finding), the cores each, twice the cores each."""
    half = max(1, cores // 2)
    rungs = [(half, half), (cores, cores), (2 * cores, 2 * cores)]
    return list(dict.fromkeys(rungs))  # 1 core: half == cores


def _op_threads(config: RunConfig, cpus: tuple[int, ...]) -> RunConfig:
    base = base_variant(config)
    rungs = [
        _variant(
            base,
            f"ops-{intra}-{inter}",
            f"--tensorflow_intra_op_parallelism={intra}",
            f"--tensorflow_inter_op_parallelism={inter}",
        )
        for intra, inter in op_thread_ladder(len(cpus))
    ]
    return _with(config, _variant(base, "ops-default"), *rungs)


def _split(config: RunConfig, cpus: tuple[int, ...]) -> RunConfig:
    base = base_variant(config)
    parts = config.split if config.split > 1 else DEFAULT_SPLIT
    batch = config.batch if config.batch > 1 else DEFAULT_SPLIT_BATCH
    run = dataclasses.replace(config, batch=max(batch, parts), split=1)
    return _with(
        run, _variant(base, "split-1", split=1), _variant(base, f"split-{parts}", split=parts)
    )


def pinning_cpus(cpus: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(the neighbour's CPUs, the pinned server's): the first half busy, the rest the
    server's own (2 CPUs: one each)."""
    half = len(cpus) // 2
    return cpus[:half], cpus[half:]


def _pinning(config: RunConfig, cpus: tuple[int, ...]) -> RunConfig:
    base = base_variant(config)
    busy, own = pinning_cpus(cpus)
    run = dataclasses.replace(config, neighbour_cpus=_cpu_text(busy), cpus=None)
    return _with(
        run,
        dataclasses.replace(base, name="unpinned", cpus=_cpu_text(cpus)),
        dataclasses.replace(base, name="pinned", cpus=_cpu_text(own)),
    )


def _cpu_text(cpus: tuple[int, ...]) -> str:
    return ",".join(str(c) for c in cpus)


def _allocator(config: RunConfig, cpus: tuple[int, ...]) -> RunConfig:
    base = base_variant(config)
    other = "jemalloc" if base.allocator != "jemalloc" else "glibc"
    return _with(
        config,
        dataclasses.replace(base, name=base.allocator),
        dataclasses.replace(VariantSpec.named(other), server_args=base.server_args),
    )


RECIPES = {
    r.name: r
    for r in (
        Recipe(
            "warmup",
            "does replaying the model's warmup records at load speed up the first requests "
            "after a swap?",
            _warmup,
        ),
        Recipe(
            "load_threads",
            f"do loads and unloads on {LOAD_THREADS} threads of their own (instead of the "
            "manager's loop) help the swaps?",
            _load_threads,
        ),
        Recipe(
            "op_threads",
            "which TensorFlow intra/inter-op thread counts serve best?",
            _op_threads,
        ),
        Recipe(
            "pinning",
            "with a neighbour busy on half the CPUs, does pinning the server to the other "
            "half help its latency?",
            _pinning,
        ),
        Recipe("split", "does sending each request in parallel parts help latency?", _split),
        Recipe(
            "allocator",
            "does jemalloc give the memory of old versions back?",
            _allocator,
            swaps="auto",
        ),
    )
}
DEFAULT_RECIPES = tuple(RECIPES)


def parse_recipes(text: str) -> tuple[str, ...]:
    """`--recipes a,b`: known names, in the order given, each once."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in RECIPES]
    if unknown or not names:
        raise ValueError(
            f"unknown recipe {', '.join(unknown) or '(none given)'}: choose from "
            f"{', '.join(RECIPES)}"
        )
    return names
