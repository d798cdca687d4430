"""Real memory behaviour (the planted leak is ground truth) and the load/unload thread flags."""

from __future__ import annotations

import re

import pytest

MIB = 2**20
SWAPS = 3
ROW = {"instances": [{"ids": 1, "feats": [1.0, 2.0, 3.0, 4.0]}]}


def _swap_and_measure_growth(base_path, stage, server) -> float:
    """RssAnon growth in MiB over SWAPS swaps, measured after each swap completed."""
    for _ in range(5):
        assert server.predict(ROW).status_code == 200
    baseline = server.rss_anon_bytes()
    for version in range(2, 2 + SWAPS):
        stage(base_path, version, scale=float(version))
        server.wait_states({str(version): "AVAILABLE", str(version - 1): "END"})
        assert server.predict(ROW).json() == {"predictions": [10.0 * version]}
    return (server.rss_anon_bytes() - baseline) / MIB


@pytest.mark.parametrize("retain_mb", [0, 32])
def test_planted_leak_grows_rss_anon_by_its_size_per_load(
    tmp_path, stage, server_factory, retain_mb
):
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1)
    server = server_factory(base_path, f"--debug_retain_mb_per_load={retain_mb}")
    growth = _swap_and_measure_growth(base_path, stage, server)
    planted = SWAPS * retain_mb
    print(f"retain {retain_mb} MiB/load: RssAnon grew {growth:.1f} MiB over {SWAPS} swaps")
    # The tiny model itself leaves a few MiB at most; the planted blocks are all resident.
    assert planted - 8 <= growth <= planted + 24


def test_load_and_unload_thread_pools_are_used(tmp_path, stage, server_factory):
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1)
    server = server_factory(base_path, "--num_load_threads=2", "--num_unload_threads=2")
    stage(base_path, 2, scale=2.0)
    server.wait_states({"2": "AVAILABLE", "1": "END"})
    log = server.log()
    for kind, pool in (("loads", "Load"), ("unloads", "Unload")):
        assert (
            f"Servable {kind} run in thread pool BasicManager_{pool}_ThreadPool with 2 threads"
            in log
        )

    def thread_of(message: str) -> str:
        match = re.search(r": I (\S+) \S+\] " + re.escape(message), log)
        assert match, message
        return match.group(1)

    for version in (1, 2):
        loader = thread_of(f"Loading servable version {{name: m version: {version}}}")
        assert loader.startswith("BasicManager_Load_ThreadPool")
    unloader = thread_of("Unloading servable version {name: m version: 1}")
    assert unloader.startswith("BasicManager_Unload_ThreadPool")


def test_by_default_loads_and_unloads_run_in_the_manager_thread(tmp_path, stage, server_factory):
    base_path = tmp_path / "base"
    base_path.mkdir()
    stage(base_path, 1)
    server = server_factory(base_path)
    stage(base_path, 2, scale=2.0)
    server.wait_states({"2": "AVAILABLE", "1": "END"})
    log = server.log()
    assert "Servable loads run serially in the manager thread (--num_load_threads=0)" in log
    for message in (
        "Loading servable version {name: m version: 2}",
        "Unloading servable version {name: m version: 1}",
    ):
        assert re.search(r": I AspiredVersionsManager \S+\] " + re.escape(message), log)
