"""Time per swap against its floor, from finished run dirs (issue 9).

A swap cannot be shorter than: the server noticing the new version (TF
Serving polls every --file_system_poll_wait_seconds, 1 s) plus loading it
(both in `load_s`, staged -> AVAILABLE), plus the allocator's purge delay
(jemalloc's decay, `allocator_specs.purge_delay_s`), plus the steady window
between swaps (`--steady`, 3 s). This prints, per variant over the given
runs, the medians of load, settle (old version END -> settled) and the whole
swap (staged -> next staged), and that floor.

    .venv/bin/python benchmarks/swap_time.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import statistics
import sys
import tomllib
from pathlib import Path

from soak.analysis import summary_json
from soak.config.allocators import purge_delay_s
from soak.config.settings import read_run_toml


def swap_figures(run_dirs: list[Path]) -> dict[str, dict[str, list[float]]]:
    """Per variant: load, settle, swap and floor seconds of every completed swap."""
    per_variant: dict[str, dict[str, list[float]]] = {}
    for run_dir in run_dirs:
        result = summary_json.read(run_dir)
        config = read_run_toml(_toml(run_dir / "run.toml"))
        steady = float(config.get("steady_s", 3.0))
        envs = {v.name: (v.allocator, dict(v.env)) for v in config.get("variants", ())}
        for v in result.variants:
            allocator, env = envs.get(v.name, (v.allocator, {}))
            figures = per_variant.setdefault(
                v.name, {"load": [], "settle": [], "swap": [], "floor": []}
            )
            swaps = [s for s in v.swaps if s.completed and s.load_s is not None]
            for s in swaps:
                figures["load"].append(s.load_s or 0.0)
                figures["settle"].append(s.settle_s or 0.0)
                figures["swap"].append((s.load_s or 0.0) + (s.settle_s or 0.0) + steady)
                figures["floor"].append((s.load_s or 0.0) + purge_delay_s(allocator, env) + steady)
    return per_variant


def main(run_dirs: list[Path]) -> int:
    header = ("swaps", "load s", "settle s", "swap s", "floor s")
    print(f"{'variant':10s} " + " ".join(f"{h:>8s}" for h in header))
    for name, f in swap_figures(run_dirs).items():
        if not f["swap"]:
            continue
        med = {k: statistics.median(v) for k, v in f.items()}
        figures = (med["load"], med["settle"], med["swap"], med["floor"])
        print(f"{name:10s} {len(f['swap']):8d} " + " ".join(f"{x:8.1f}" for x in figures))
    return 0


def _toml(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


if __name__ == "__main__":
    raise SystemExit(main([Path(p) for p in sys.argv[1:]]))
