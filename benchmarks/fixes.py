"""What fixes the kept memory, and what each fix costs (issue 18).

Cases, each run `--repeats` times on the default demo model (128 MiB, `--swaps auto`):
- `preset`: `soak run --allocators fixes` (glibc, the reference, then the fixes);
- `mmap_ladder`: glibc with its mmap threshold fixed at 128 KiB, 1, 4 and 16 MiB, to
  find where the threshold stops helping (the demo model's tables are 2.6 to 41 MiB);
- `identical`: two variants with the same settings (glibc), which must compare `same`.

Prints per variant: verdict, kept MiB, released on trim, CPU-ms per request [spread],
steady and swap p99, pod memory, and the comparison labels against the reference;
then per case and variant the median and range over the repeats.
`--from DIR` re-analyses the run dirs a former call kept there (`soak report`) and
prints them again, without new runs.

    .venv/bin/python benchmarks/fixes.py [--repeats 3] [--cases preset] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MMAP_LADDER = {"glibc": None, "mmap-128k": 131072, "mmap-1m": 1 << 20, "mmap-4m": 4 << 20}
MMAP_LADDER["mmap-16m"] = 16 << 20


def _variants_toml(variants: dict[str, dict[str, str]]) -> str:
    tables = []
    for name, env in variants.items():
        table = f'[[variants]]\nname = "{name}"\nallocator = "glibc"\n'
        if env:
            table += "env = { " + ", ".join(f'{k} = "{v}"' for k, v in env.items()) + " }\n"
        tables.append(table)
    return "\n".join(tables)


CONFIGS = {
    "mmap_ladder": _variants_toml(
        {
            name: ({"MALLOC_MMAP_THRESHOLD_": str(value)} if value else {})
            for name, value in MMAP_LADDER.items()
        }
    ),
    "identical": _variants_toml({"glibc-a": {}, "glibc-b": {}}),
}
CASES = {"preset": ["--allocators", "fixes"], "mmap_ladder": [], "identical": []}
FIGURES = ("kept", "released", "cpu_ms", "steady_p99", "swap_p99", "pod_mb")
COMPARED = ("kept_mb", "cpu_ms_per_request", "steady_p99_ms", "swap_p99_ms")


def figures(variant: dict) -> dict[str, float | None]:
    memory, latency = variant["memory"], variant["latency"]
    cpu = variant.get("cpu") or {}
    return {
        "kept": memory.get("level_mb"),
        "released": (variant.get("attribution") or {}).get("released_mb"),
        "cpu_ms": cpu.get("steady_ms_per_request"),
        "steady_p99": latency.get("steady_p99_ms"),
        "swap_p99": latency.get("swap_p99_ms"),
        "pod_mb": variant.get("pod_memory_mb"),
    }


def labels(variant: dict) -> str:
    comparison = variant.get("comparison") or {}
    cells = []
    for key in COMPARED:
        c = comparison.get(key)
        if c:
            interval = f"[{_num(c['low'])}, {_num(c['high'])}]"
            cells.append(f"{key} {c['label']} {_num(c['shift'])} {interval}")
    return "; ".join(cells) or "(reference)"


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:+.1f}"


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def run_case(case: str, run_dir: Path) -> None:
    args = list(CASES[case])
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    if case in CONFIGS:
        config = run_dir.with_suffix(".toml")
        config.write_text(CONFIGS[case])
        args += ["--config", str(config)]
    subprocess.run(
        [sys.executable, "-m", "soak", "run", "--quiet", "--out", str(run_dir), *args],
        check=False,
        stdout=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="preset", help="of: " + ", ".join(CASES))
    parser.add_argument("--out", type=Path, help="keep the run dirs here")
    parser.add_argument("--from", dest="source", type=Path, help="re-analyse these run dirs")
    args = parser.parse_args()
    out = args.source or args.out or Path(tempfile.mkdtemp(prefix="soak-fixes-"))
    chosen = [c for c in CASES if c in args.cases.split(",")]
    seen: dict[tuple[str, str], list[dict]] = {}
    header = f"{'case':12s} {'variant':14s} {'verdict':13s}"
    print(header + "".join(f"{f:>11s}" for f in FIGURES))
    for repeat in range(args.repeats):
        for case in chosen:
            run_dir = out / f"{case}-{repeat}"
            started = time.monotonic()
            if args.source:
                subprocess.run(
                    [sys.executable, "-m", "soak", "report", str(run_dir)],
                    check=False,
                    capture_output=True,
                )
            else:
                run_case(case, run_dir)
            elapsed = time.monotonic() - started
            try:
                summary = json.loads((run_dir / "summary.json").read_text())
            except (OSError, ValueError):
                print(f"{case:12s} no summary.json ({run_dir})")
                continue
            for variant in summary["variants"]:
                values = figures(variant)
                seen.setdefault((case, variant["name"]), []).append(values)
                print(
                    f"{case:12s} {variant['name']:14s} {variant['memory']['verdict']:13s}"
                    + "".join(f"{_cell(values[f]):>11s}" for f in FIGURES)
                    + f"   {labels(variant)}",
                    flush=True,
                )
            print(f"{'':12s} ({elapsed / 60:.1f} min) {run_dir}", flush=True)
    print(f"\nmedian [min, max] over the repeats ({args.repeats} runs)")
    for (case, variant), rows in seen.items():
        cells = []
        for f in FIGURES:
            values = [r[f] for r in rows if r[f] is not None]
            cells.append(
                f"{f} {statistics.median(values):.1f} [{min(values):.1f}, {max(values):.1f}]"
                if values
                else f"{f} -"
            )
        print(f"{case:12s} {variant:14s} " + "; ".join(cells))
    print(f"\nrun dirs: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
