"""tune.json (`soak.tune/1`, docs/tune.md): a `TuneResult` laid out for scripts.

Per recipe: its run dir, reference, advice, and per variant and figure
`{"shift", "low", "high", "label"}` (label: helps | no effect | hurts, null
with too few values), plus the settings to take.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from soak.analysis.tune import RecipeResult, TunedVariant, TuneResult
from soak.store.atomic import write_atomically

TUNE_JSON = "tune.json"


def write(out_dir: Path, result: TuneResult) -> Path:
    """Write OUT_DIR/tune.json (atomically)."""
    return write_atomically(Path(out_dir) / TUNE_JSON, json.dumps(to_dict(result), indent=2) + "\n")


def to_dict(result: TuneResult) -> dict[str, Any]:
    return {
        "schema": result.schema,
        "model": {"name": result.model_name, "path": result.model_path},
        "cores": result.cores,
        "soak_version": result.soak_version,
        "recipes": [recipe_dict(r) for r in result.recipes],
        "settings": result.settings.to_dict(),
    }


def recipe_dict(r: RecipeResult) -> dict[str, Any]:
    return {
        "name": r.name,
        "question": r.question,
        "run_dir": r.run_dir,
        "status": r.status,
        "reason": r.reason,
        "reference": r.reference,
        "recommended": r.recommended,
        "advice": r.advice,
        "variants": [_variant(v) for v in r.variants],
    }


def _variant(v: TunedVariant) -> dict[str, Any]:
    return {
        "name": v.name,
        "allocator": v.allocator,
        "status": v.status,
        "server_args": list(v.server_args),
        "env": dict(v.env),
        "split": v.split,
        "production_change": v.production_change,
        "effects": {
            e.figure: {
                "shift": e.shift.shift,
                "low": e.shift.low,
                "high": e.shift.high,
                "label": e.label,
                "unit": e.unit,
                "margin": e.shift.margin,
                "reference_median": e.shift.reference_median,
            }
            for e in v.effects
        },
    }
