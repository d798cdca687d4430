"""`soak tune` on the default demo model, repeated: how long it takes, and whether its labels
repeat (issue 20).

Runs `soak tune --out DIR/tune-N [ARGS]` `--repeats` times, one after the other, then
prints per recipe, variant and figure the shift [interval] label of every repeat, whether
the labels agree where an interval excludes zero, each recipe's advice, and the wall time
of each tune. `--from DIR` prints the tunes a former call kept there, without new runs;
with `--relabel`, as today's analysis labels their recipes' run dirs (the runs are kept
whole: per-swap figures in each summary.json).

    .venv/bin/python benchmarks/tune.py [--repeats 2] [--out DIR] [-- soak tune options]
    .venv/bin/python benchmarks/tune.py --from DIR [--relabel]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIGURES = ("first_after_swap_ms", "swap_p99_ms", "steady_p99_ms", "cpu_ms_per_request", "kept_mb")
SHORT = {"helps": "helps", "no effect": "none", "hurts": "HURTS", None: "n/a"}


def run_tunes(out: Path, repeats: int, extra: list[str]) -> None:
    for n in range(repeats):
        target = out / f"tune-{n}"
        started = time.monotonic()
        command = [sys.executable, "-m", "soak", "tune", "--out", str(target), "--quiet", *extra]
        result = subprocess.run(command, capture_output=True, text=True)
        minutes = (time.monotonic() - started) / 60
        (out / f"tune-{n}.minutes").write_text(f"{minutes:.1f}\n")
        print(f"tune {n}: exit {result.returncode}, {minutes:.1f} min", flush=True)
        if result.returncode not in (0, 3):
            print(result.stderr[-2000:], file=sys.stderr)


def effect_text(effect: dict | None) -> str:
    if not effect or effect.get("shift") is None:
        return "-"
    interval = ""
    if effect.get("low") is not None:
        interval = f" [{effect['low']:+.1f}, {effect['high']:+.1f}]"
    return f"{effect['shift']:+.1f}{interval} {SHORT[effect.get('label')]}"


def relabelled(tune: dict) -> dict:
    """`tune` with each recipe's effects and advice from today's analysis of its run dir."""
    from soak.analysis.load import load_result
    from soak.analysis.tune import RecipeResult, advise, tuned_variants
    from soak.analysis.tune_json import recipe_dict

    recipes = []
    for recipe in tune["recipes"]:
        if recipe["status"] == "skipped":
            recipes.append(recipe)
            continue
        variants = tuned_variants(load_result(Path(recipe["run_dir"])))
        chosen, advice = advise(variants)
        fields = {k: recipe[k] for k in ("name", "question", "run_dir", "status", "reason")}
        recipes.append(
            recipe_dict(
                RecipeResult(**fields, variants=variants, recommended=chosen, advice=advice)
            )
        )
    return {**tune, "recipes": recipes}


def report(out: Path, relabel: bool = False) -> None:
    tunes = sorted(out.glob("tune-*/tune.json"))
    loaded = [json.loads(p.read_text()) for p in tunes]
    if relabel:
        loaded = [relabelled(t) for t in loaded]
    for path in tunes:
        minutes = path.parent.with_suffix(".minutes")
        text = minutes.read_text().strip() if minutes.exists() else "?"
        print(f"{path.parent.name}: {text} min")
    if not loaded:
        print(f"no tune.json under {out}")
        return
    disagree = 0
    for r, recipe in enumerate(loaded[0]["recipes"]):
        print(f"\n## {recipe['name']} (reference {recipe['reference']})")
        for tune in loaded:
            print(f"  advice: {tune['recipes'][r]['advice']}")
        for v, variant in enumerate(recipe["variants"][1:], 1):
            for figure in FIGURES:
                effects = [t["recipes"][r]["variants"][v]["effects"].get(figure) for t in loaded]
                decided = {e["label"] for e in effects if e and _excludes_zero(e)}
                agree = "agree" if len(decided) <= 1 else "DISAGREE"
                disagree += agree == "DISAGREE"
                cells = " | ".join(effect_text(e) for e in effects)
                print(f"  {variant['name']:16} {figure:20} {cells}  ({agree})")
    print(f"\nlabels that disagree where an interval excludes 0: {disagree}")


def _excludes_zero(effect: dict) -> bool:
    low, high = effect.get("low"), effect.get("high")
    return low is not None and high is not None and (low > 0 or high < 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--from", dest="source", type=Path, default=None)
    parser.add_argument("--relabel", action="store_true", help="with --from: label anew")
    parser.add_argument("extra", nargs="*", help="soak tune options (after --)")
    args = parser.parse_args()
    if args.source is not None:
        report(args.source, args.relabel)
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-tune-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"tunes in {out}", flush=True)
    run_tunes(out, args.repeats, args.extra)
    report(out)


if __name__ == "__main__":
    main()
