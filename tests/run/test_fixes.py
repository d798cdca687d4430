"""The fix variants (SPEC §8): named variants a team can take to production.

Their settings are checked as configuration; glibc-trim, the one that needs soak's
probe inside the server, is proven on a real run of the demo model against glibc.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from soak.allocator_specs import FIXES, FIXES_PRESET_NAMES
from soak.config import resolve
from soak.errors import UsageError


def test_the_fixes_preset_runs_glibc_first_then_the_fixes():
    config = resolve({}, {"allocators": "fixes"})
    names = [v.name for v in config.variants]
    assert names == list(FIXES_PRESET_NAMES) and names[0] == "glibc"
    trim = next(v for v in config.variants if v.name == "glibc-trim")
    assert (trim.allocator, trim.release_after_unload, dict(trim.env)) == ("glibc", True, {})
    mmap = next(v for v in config.variants if v.name == "glibc-mmap")
    assert mmap.allocator == "glibc" and mmap.env == FIXES["glibc-mmap"].env


def test_a_preset_and_names_mix_without_repeats():
    config = resolve({}, {"allocators": "jemalloc,fixes,tcmalloc"})
    names = [v.name for v in config.variants]
    assert names[0] == "jemalloc" and names[-1] == "tcmalloc"
    assert len(names) == len(set(names)) == len(FIXES_PRESET_NAMES) + 1


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("glibc", "nothing"),
        ("jemalloc", "preload libjemalloc.so.2"),
        ("glibc-trim", "malloc_trim(0) after each model unload"),
        ("glibc-mmap", "ENV MALLOC_MMAP_THRESHOLD_=131072"),
        ("glibc-arenas2", "ENV MALLOC_ARENA_MAX=2"),
        ("jemalloc-bg", "ENV MALLOC_CONF=background_thread:true"),
    ],
)
def test_every_variant_says_what_to_change_in_production(name, says):
    (variant,) = resolve({}, {"allocators": name}).variants
    assert says in variant.production_change()


def test_a_fix_is_also_a_variant_table_key(tmp_path):
    config = resolve(
        {"variants": [{"name": "trim", "allocator": "glibc", "release_after_unload": True}]}, {}
    )
    assert config.variants[0].release_after_unload
    assert "release_after_unload = true" in config.to_toml()


def test_glibc_trim_without_the_probe_is_a_usage_error(soak_cli):
    with pytest.raises(UsageError, match="variant glibc-trim releases through soak's probe"):
        resolve({}, {"allocators": "glibc,glibc-trim", "probe": False})
    result = soak_cli("run", "--allocators", "glibc-trim", "--no-probe")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "drop --no-probe" in result.stderr


def _events(run: Path, variant: str) -> list[dict]:
    with open(run / variant / "events.csv") as f:
        return list(csv.DictReader(f))


def test_glibc_trim_releases_after_each_unload_and_keeps_less_than_glibc(tmp_path, soak_cli):
    """The demo model, where glibc keeps the freed model's memory (SPEC §7): a trim
    right after each unload gives it back before memory settles."""
    out = tmp_path / "run"
    result = soak_cli(
        "run", "--allocators", "glibc,glibc-trim", "--swaps", "4", "--rps", "10",
        "--steady", "1", "--quiet", "--out", str(out), timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = _events(out, "glibc-trim")
    ends = [e for e in events if e["event"] == "end"]
    trims = [e for e in events if e["event"] == "trimmed"]
    assert len(trims) == len(ends) == 4
    for end, trim in zip(ends, trims, strict=True):  # each right after its version ended
        assert trim["version"] == end["version"] and float(trim["t"]) >= float(end["t"])
        assert trim["detail"] == "malloc_trim(0)"
    assert not [e for e in _events(out, "glibc") if e["event"] == "trimmed"]
    summary = json.loads((out / "summary.json").read_text())
    kept = {v["name"]: v["memory"]["retained_mb"] for v in summary["variants"]}
    assert kept["glibc"] > 40 and kept["glibc-trim"] < 0.5 * kept["glibc"], kept
