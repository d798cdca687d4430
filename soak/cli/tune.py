"""`soak tune`: the seed's hot-reload recipes on the user's model, each an ordinary soak run,
and which of them help (docs/tune.md)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from soak.cli.run import NOT_SETTINGS, add_run_arguments
from soak.core import interrupts
from soak.core.errors import EXIT_CODES, EXIT_ENVIRONMENT, EXIT_OK, UsageError

if TYPE_CHECKING:
    from soak.analysis.tune import RecipeResult, TuneResult
    from soak.config.settings import RunConfig
    from soak.driver.progress import Progress

DEFAULT_TUNE_DIR = Path("soak-tune")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from soak.config.recipes import DEFAULT_RECIPES, RECIPES, TUNE_SWAPS

    tune = sub.add_parser(
        "tune",
        help="measure which hot-reload recipes help a model",
        description="Try the hot-reload recipes on a model, each as one soak run whose "
        "variants differ in that recipe alone (the first is the reference): "
        + "; ".join(f"{r.name}: {r.question}" for r in RECIPES.values())
        + ". Per recipe and figure: helps, no effect or hurts, with its interval. The tune "
        "dir (default soak-tune/TIME, --out) gets tune.json, tune.html and one run dir per "
        f"recipe. Takes soak run's options; --swaps defaults to {TUNE_SWAPS} here (auto for "
        "the allocator recipe).",
        epilog=EXIT_CODES,
    )
    tune.add_argument(
        "--recipes",
        metavar="LIST",
        default=",".join(DEFAULT_RECIPES),
        help=f"comma-separated (default: {','.join(DEFAULT_RECIPES)})",
    )
    add_run_arguments(tune)
    tune.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    from soak.analysis.tune_json import write as write_tune_json
    from soak.config.recipes import parse_recipes
    from soak.config.resolve import load_toml, resolve
    from soak.driver.progress import Progress
    from soak.report.terminal import tune_table
    from soak.report.tune_html import write_tune_report

    try:
        names = parse_recipes(args.recipes)
    except ValueError as exc:
        raise UsageError(f"--recipes: {exc}") from None
    file_values = load_toml(args.config) if args.config else {}
    flags = {k: v for k, v in vars(args).items() if k not in NOT_SETTINGS | {"recipes"}}
    swaps_given = flags.get("swaps") is not None or "swaps" in file_values
    if flags.get("out") is None and "out" not in file_values:
        flags["out"] = str(DEFAULT_TUNE_DIR / time.strftime("%Y%m%d-%H%M%S"))
    config = resolve(file_values, flags, os.environ)
    out = Path(config.out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out} is not empty: a tune needs a dir of its own")
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(quiet=config.quiet)
    recipes: list[RecipeResult] = []
    signum = None
    try:
        for n, name in enumerate(names, 1):
            progress.message(f"tune: recipe {name} ({n}/{len(names)})")
            try:
                recipe, signum = run_recipe(name, config, out, progress, swaps_given)
            except interrupts.Interrupted as exc:  # forced: that recipe was not analysed
                signum = exc.signum
                break
            recipes.append(recipe)
            if signum is not None:
                break
    finally:
        progress.close()
    result = tune_result(config, recipes)
    write_tune_json(out, result)
    page = write_tune_report(out, result)
    print(tune_table(result))
    print(f"tune {'interrupted' if signum else 'done'}: {page}")
    if signum is not None:
        print(f"soak: interrupted by {interrupts.signal_name(signum)}; partial tune in {out}")
        return 128 + signum
    failed = any(r.status == "failed" for r in recipes)
    return EXIT_ENVIRONMENT if failed else EXIT_OK


def run_recipe(
    name: str, config: RunConfig, out: Path, progress: Progress, swaps_given: bool = False
) -> tuple[RecipeResult, int | None]:
    """One recipe as an ordinary soak run in OUT/RECIPE (or why it was skipped), and the
    signal that stopped it (None: it ran to its end). The recipe's own swap count unless
    the user gave --swaps."""
    from soak.analysis.tune import RecipeResult, advise, tuned_variants
    from soak.cli.runner import run_soak
    from soak.config.recipes import RECIPES

    recipe = RECIPES[name]
    cpus = _cpus(config)
    if name == "pinning" and len(cpus) < 2:
        skipped = "it needs 2 CPUs at least: one kept busy, one for the pinned server"
        progress.message(f"tune: {name} skipped: {skipped}")
        return RecipeResult(name, recipe.question, "", "skipped", skipped, (), None, skipped), None
    run_config = dataclasses.replace(recipe.config(config, cpus), out=str(out / name))
    if not swaps_given:
        run_config = dataclasses.replace(run_config, swaps=recipe.swaps)
    notes = []
    if name == "warmup":
        run_config, note = _with_warmup_records(run_config, out)
        notes += [note] if note else []
    outcome = run_soak(run_config, progress)
    variants = tuned_variants(outcome.result)
    recommended, advice = advise(variants)
    notes += [f"{v.name}: {v.reason}" for v in outcome.result.variants if v.status == "failed"]
    reason = "; ".join(notes) or None
    result = RecipeResult(
        name=name,
        question=recipe.question,
        run_dir=str(outcome.run_dir),
        status=outcome.result.status,
        reason=reason,
        variants=variants,
        recommended=recommended,
        advice=advice,
        run=outcome.result,
    )
    return result, outcome.signal


def tune_result(config: RunConfig, recipes: list[RecipeResult]) -> TuneResult:
    from soak import __version__
    from soak.analysis.tune import TuneResult, recommended_settings
    from soak.config.recipes import base_variant

    return TuneResult(
        model_name=config.model_name,
        model_path=config.model_identity,
        cores=len(_cpus(config)),
        recipes=tuple(recipes),
        settings=recommended_settings(recipes, base_variant(config).allocator),
        soak_version=__version__,
    )


def _with_warmup_records(config: RunConfig, out: Path) -> tuple[RunConfig, str | None]:
    """The warmup recipe needs the model's warmup records (TF Serving replays them): for a
    model without, a copy that has them (and a note that says so)."""
    from soak.driver.model_versions import WARMUP_FILE, resolve_model
    from soak.driver.warmup_records import with_warmup_records

    versions = resolve_model(config.model, config.demo_size_mb).versions
    if all((v / WARMUP_FILE).is_file() for v in versions):
        return config, None
    source = f"--request-file {config.request_file}" if config.request_file else "its signature"
    model = with_warmup_records(
        versions, out / "warmup-model", config.model_name, config.request_file, config.batch
    )
    note = (
        f"the model has no {WARMUP_FILE}: soak wrote one (the request it sends, from {source}) "
        f"into a copy of its versions, {model}"
    )
    return dataclasses.replace(config, model=str(model)), note


def _cpus(config: RunConfig) -> tuple[int, ...]:
    """The CPUs the server may use: --cpus when pinned, else soak's own."""
    from soak.core.procfs import parse_cpu_list

    return tuple(sorted(parse_cpu_list(config.cpus) if config.cpus else os.sched_getaffinity(0)))
