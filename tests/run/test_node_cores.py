"""--node-cores on a real run: the server's allocator really spreads over a big node's arenas.

glibc caps its arenas at 8 per core: 16 on this 2-core machine, which the default run
already reaches (its baseline counts 16). With `--node-cores 16` the server's threads and
glibc's cap are a 16-core node's, and the probe counts more arenas than this machine's
cap allows: proof that the setting reaches the allocator, not only the flags.
"""

from __future__ import annotations

import csv
import json
import os

import pytest

from soak.config.node_size import GLIBC_ARENAS_PER_CORE


@pytest.mark.slow
def test_a_16_core_node_spreads_glibc_over_more_arenas_than_this_machine_allows(
    small_model, tmp_path, soak_cli
):
    cap_here = GLIBC_ARENAS_PER_CORE * os.cpu_count()
    out = tmp_path / "run"
    result = soak_cli(
        "run", "--model", str(small_model), "--allocators", "glibc", "--swaps", "2",
        "--node-cores", "16", "--rps", "20", "--steady", "1", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with open(out / "glibc" / "breakdown.csv") as f:
        arenas = [int(row["arenas"]) for row in csv.DictReader(f)]
    assert max(arenas) > cap_here, arenas
    summary = json.loads((out / "summary.json").read_text())
    # recorded as the server ran (history, comparisons): the node's flags and arenas
    assert "--tensorflow_intra_op_parallelism=16" in summary["identity"]["server_args"]
    assert summary["variants"][0]["identity"]["env"]["MALLOC_ARENA_MAX"] == "128"
    assert "node_cores = 16" in (out / "run.toml").read_text()
