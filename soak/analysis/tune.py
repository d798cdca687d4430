"""What each recipe of `soak tune` did (docs/tune.md): its variants against its reference,
figure by figure, labelled helps / no effect / hurts, and which variant to take.

Each figure is measured as `soak run` compares variants (soak/analysis/comparison.py):
the Hodges–Lehmann shift of the variant's per-swap (or per-window) values against
the reference's, its 95 % interval, and the figure's practical margin; lower is
better for all five. The label is the recipe's own (`recipe_label`: the interval
past 0 and reaching past the margin), so that it repeats from tune to tune:

- `first_after_swap_ms`: the first request each new version served (a cold path:
  lazy initialisation without warmup), per swap;
- `swap_p99_ms`, `steady_p99_ms`: each swap's windows;
- `cpu_ms_per_request`: the server's CPU-ms per request, per steady window;
- `kept_mb`: the settled memory over the baseline, per judged swap.

A recipe's advice: the variant with the most figures it clearly helps (`Effect.clear`: the
shift itself past the margin) and none it clearly hurts (the first such on a ladder); else
the reference stays, and the trade-offs are named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from soak.analysis.comparison import margin, samples
from soak.analysis.result import RunResult, Shift, VariantIdentity, VariantResult
from soak.analysis.shift import BETTER, WORSE, compare_samples
from soak.analysis.verdict import RELEASED
from soak.store.records import MIB, Status

TUNE_SCHEMA = "soak.tune/1"
HELPS, NO_EFFECT, HURTS = "helps", "no effect", "hurts"
# The figures of a recipe, in the order the report lists them.
TUNE_FIGURES = (
    "first_after_swap_ms",
    "swap_p99_ms",
    "steady_p99_ms",
    "cpu_ms_per_request",
    "kept_mb",
)
FIGURE_TITLES = {
    "first_after_swap_ms": "first request after a swap",
    "swap_p99_ms": "swap p99",
    "steady_p99_ms": "steady p99",
    "cpu_ms_per_request": "CPU per request",
    "kept_mb": "kept memory",
}
UNITS = {"kept_mb": "MiB"}


@dataclass(frozen=True)
class Effect:
    """One figure of a variant against the recipe's reference."""

    figure: str
    shift: Shift

    @property
    def label(self) -> str | None:
        """helps / no effect / hurts (`recipe_label`); None: too few values to tell."""
        return recipe_label(self.shift)

    @property
    def clear(self) -> bool:
        """Its shift itself is past the margin (`soak run`'s rule, the shift's own label:
        then the recipe's label helps or hurts too): the advice acts on these, so that it
        repeats when an effect's interval only grazes the margin."""
        return self.shift.label in (BETTER, WORSE)

    @property
    def unit(self) -> str:
        return UNITS.get(self.figure, "ms")


def recipe_label(s: Shift) -> str | None:
    """`helps` / `hurts` when the interval excludes 0 and reaches past the margin: the
    effect is real and may be as large as matters; `no effect` otherwise (none shown, or
    shown smaller than the margin); None without an interval.

    Not `soak run`'s rule (the shift itself past the margin): an effect close to its
    margin read `hurts` in one tune and `no effect` in the next (split-4's CPU per
    request: +1.8 [+1.5, +2.1] and +0.5 [+0.2, +1.9] ms against 0.85), where the
    interval's far end clears the margin in both.
    """
    if s.shift is None or s.low is None or s.high is None:
        return None
    margin = s.margin or 0.0
    if s.low > 0 and s.high > margin:
        return HURTS
    if s.high < 0 and s.low < -margin:
        return HELPS
    return NO_EFFECT


@dataclass(frozen=True)
class TunedVariant:
    """A variant of a recipe: what it changes, and its effects against the reference."""

    name: str
    allocator: str
    server_args: tuple[str, ...]  # the variant's own server flags
    env: tuple[tuple[str, str], ...]
    split: int
    status: str
    production_change: str | None
    effects: tuple[Effect, ...]  # empty for the reference and for a variant that failed

    def effect(self, figure: str) -> Effect | None:
        return next((e for e in self.effects if e.figure == figure), None)

    @property
    def helps(self) -> list[str]:
        """The figures it clearly helps (Effect.clear)."""
        return [e.figure for e in self.effects if e.label == HELPS and e.clear]

    @property
    def hurts(self) -> list[str]:
        """The figures it clearly hurts (Effect.clear)."""
        return [e.figure for e in self.effects if e.label == HURTS and e.clear]

    @property
    def may_hurt(self) -> list[str]:
        """The figures it hurts, by less than the margin as far as measured."""
        return [e.figure for e in self.effects if e.label == HURTS and not e.clear]


@dataclass(frozen=True)
class RecipeResult:
    """One recipe's experiment: its run dir, its variants (the reference first), the advice."""

    name: str
    question: str
    run_dir: str
    status: str  # the run's: completed | interrupted | failed; "skipped" when not run
    reason: str | None  # why it was skipped or failed
    variants: tuple[TunedVariant, ...]
    recommended: str | None  # the variant to take (None: keep the reference)
    advice: str
    run: RunResult | None = None  # the recipe's run (None: skipped); tune.json names its dir

    @property
    def reference(self) -> str | None:
        return self.variants[0].name if self.variants else None


@dataclass(frozen=True)
class Settings:
    """The recommended variants of a tune together: what to change, ready to paste."""

    allocator: str
    server_args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    split: int
    changes: tuple[str, ...]  # per recipe with a recommendation: "recipe: what it changes"

    @property
    def toml(self) -> str:
        """A [[variants]] table for soak.toml: soak run measures the tuned setup."""
        lines = ["[[variants]]", 'name = "tuned"', f'allocator = "{self.allocator}"']
        if self.server_args:
            lines.append("server_args = [" + ", ".join(f'"{a}"' for a in self.server_args) + "]")
        if self.env:
            lines.append("env = {" + ", ".join(f'{k} = "{v}"' for k, v in self.env) + "}")
        if self.split > 1:
            lines.append(f"split = {self.split}")
        return "\n".join(lines) + "\n"

    @property
    def flags(self) -> str:
        """TF Serving's command line with the recommended flags (after your own)."""
        return " ".join(["tensorflow_model_server", "...", *self.server_args])

    def to_dict(self) -> dict[str, Any]:
        return {
            "allocator": self.allocator,
            "server_args": list(self.server_args),
            "env": dict(self.env),
            "split": self.split,
            "changes": list(self.changes),
            "toml": self.toml,
            "flags": self.flags,
        }


@dataclass(frozen=True)
class TuneResult:
    """A whole tune: what tune.json holds."""

    model_name: str
    model_path: str
    cores: int
    recipes: tuple[RecipeResult, ...]
    settings: Settings  # the recommended variants together
    soak_version: str
    schema: str = TUNE_SCHEMA

    def recipe(self, name: str) -> RecipeResult:
        return next(r for r in self.recipes if r.name == name)


def recommended(recipes: Sequence[RecipeResult]) -> list[tuple[RecipeResult, TunedVariant]]:
    """The variants to take, one per recipe that has one, in recipe order."""
    out = []
    for recipe in recipes:
        chosen = next((v for v in recipe.variants if v.name == recipe.recommended), None)
        if chosen is not None:
            out.append((recipe, chosen))
    return out


def effects(
    v: VariantResult, reference: VariantResult, threshold_mb: float, model_size_bytes: int | None
) -> tuple[Effect, ...]:
    """`v` against the reference on the five figures (the module docstring)."""
    model_mb = (model_size_bytes or 0) / MIB
    differ = (v.memory.verdict.verdict == RELEASED) != (
        reference.memory.verdict.verdict == RELEASED
    )
    out = []
    for figure in TUNE_FIGURES:
        ref = samples(reference, figure)
        limit = margin(figure, ref, threshold_mb, model_mb, differ)
        if figure == "first_after_swap_ms":
            limit = max(limit, _single_request_spread(reference))
        out.append(Effect(figure, compare_samples(samples(v, figure), ref, limit)))
    return tuple(out)


def _single_request_spread(reference: VariantResult) -> float:
    """How slow one request can be with no cold path: the reference's steady p99 (median
    over its swaps). The first request after a swap is one request per swap, so a
    difference within that spread is not a cold path; 50 % of a first request's few
    milliseconds is not a margin (split-4 read +2.9 [+2.0, +5.2] ms against 2.1 and +1.6
    [+0.0, +2.9] against 3.1 in two tunes, with steady p99s of 9 to 14 ms)."""
    steady = samples(reference, "steady_p99_ms")
    return float(np.median(steady)) if steady else 0.0


def tuned_variants(result: RunResult) -> tuple[TunedVariant, ...]:
    """Each variant of a recipe's run with its effects against the first."""
    if not result.variants:
        return ()
    reference = result.variants[0]
    out = []
    for v in result.variants:
        usable = v is not reference and _usable(v) and _usable(reference)
        identity = v.identity or VariantIdentity("unknown")
        out.append(
            TunedVariant(
                name=v.name,
                allocator=v.allocator,
                server_args=identity.server_args,
                env=identity.env,
                split=v.latency.split,
                status=v.status,
                production_change=v.production_change,
                effects=(
                    effects(v, reference, result.threshold_mb, result.model.size_bytes)
                    if usable
                    else ()
                ),
            )
        )
    return tuple(out)


def advise(variants: tuple[TunedVariant, ...]) -> tuple[str | None, str]:
    """(the variant to take or None, one line of advice)."""
    if not variants:
        return None, "not run"
    reference, others = variants[0], variants[1:]
    if reference.status != Status.COMPLETED:
        return None, f"no advice: the reference {reference.name} did not complete"
    measured = [v for v in others if v.effects]
    clean = [v for v in measured if v.helps and not v.hurts]
    if clean:
        best = max(clean, key=lambda v: len(v.helps))  # the first of equals: max is stable
        rest = (
            f"; it may hurt {_figures(best.may_hurt)}, by less than the margin as measured"
            if best.may_hurt
            else " and hurts nothing measured"
        )
        return best.name, f"take {best.name}: it helps {_figures(best.helps)}{rest}"
    if not measured:
        return None, f"no advice: no variant besides {reference.name} completed"
    trade_offs = [
        f"{v.name} helps {_figures(v.helps)} but hurts {_figures(v.hurts)}"
        for v in measured
        if v.helps and v.hurts
    ]
    if trade_offs:
        return None, f"keep {reference.name}, or weigh: " + "; ".join(trade_offs)
    if any(v.hurts for v in measured):
        hurt = "; ".join(f"{v.name} hurts {_figures(v.hurts)}" for v in measured if v.hurts)
        return None, f"keep {reference.name}: {hurt}"
    return None, f"keep {reference.name}: no effect beyond the noise on this model and machine"


def recommended_settings(recipes: Sequence[RecipeResult], base_allocator: str) -> Settings:
    """The recommended variants of every recipe, merged (a later recipe's flag of the same
    name replaces an earlier one's)."""
    allocator, split = base_allocator, 1
    args: dict[str, str] = {}
    env: dict[str, str] = {}
    changes = []
    for recipe, v in recommended(recipes):
        if recipe.name == "allocator":
            allocator = v.allocator
        for arg in v.server_args:
            args[arg.split("=", 1)[0]] = arg
        env.update(dict(v.env))
        split = max(split, v.split)
        what = " ".join(v.server_args) or v.production_change or v.name
        if v.split > 1:
            what = f"split each request in {v.split} parallel parts"
        changes.append(f"{recipe.name}: {what}")
    return Settings(
        allocator, tuple(args.values()), tuple(sorted(env.items())), split, tuple(changes)
    )


def _figures(names: list[str]) -> str:
    return ", ".join(FIGURE_TITLES[n] for n in names)


def _usable(v: VariantResult) -> bool:
    return v.status == Status.COMPLETED and v.allocator_verified
