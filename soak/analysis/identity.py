"""What a run and each variant are, for comparisons across runs: config hashes, the model
as the user named it, the server (from run.toml and environment.json)."""

from __future__ import annotations

from soak.analysis.result import RunIdentity, VariantIdentity
from soak.config import node_size
from soak.config.settings import RunConfig, VariantSpec
from soak.store.facts import Environment


def run_identity(config: RunConfig, environment: Environment | None) -> RunIdentity:
    env = environment or Environment()
    return RunIdentity(
        config_hash=config.config_hash(),
        model_path=config.model_identity,
        swaps=str(config.swaps),
        server_args=node_size.run_server_args(config),
        image=env.image or (config.image if config.backend == "docker" else None),
        server_binary=env.server_binary,
    )


def variant_identity(
    config: RunConfig, name: str, allocator: str, spec: VariantSpec | None
) -> VariantIdentity:
    """`spec`: the variant's table in run.toml (None: it has none, so just its allocator).
    Its environment as the server had it: with `--node-cores`' arena count."""
    spec = spec or VariantSpec(name, allocator)
    return VariantIdentity(
        config_hash=config.variant_config_hash(spec),
        server_args=tuple(spec.server_args),
        env=tuple(sorted(node_size.variant_env(config, spec).items())),
    )


def production_change(spec: VariantSpec | None) -> str | None:
    """What a team changes in production to run as the variant (None: not recorded)."""
    if spec is None:
        return None
    try:
        return spec.production_change()
    except (KeyError, ValueError):  # an allocator this soak does not know
        return None
