"""soak tune: each recipe an ordinary run whose variants differ in that recipe alone, and
a planted effect found where it was planted."""

from __future__ import annotations

import json

import pytest

from soak.config.recipes import RECIPES, op_thread_ladder, parse_recipes
from soak.config.resolve import from_keywords

PLANTED_COLD_MS = 300.0


def test_each_recipe_varies_one_thing_from_the_runs_first_variant():
    config = from_keywords(server_args=["--rest_api_num_threads=8"], allocators="glibc")
    built = {name: recipe.config(config, (0, 1)) for name, recipe in RECIPES.items()}
    names = {name: [v.name for v in c.variants] for name, c in built.items()}
    assert names == {
        "warmup": ["no-warmup", "warmup"],
        "load_threads": ["load-threads-0", "load-threads-2"],
        "op_threads": ["ops-default", "ops-1-1", "ops-2-2", "ops-4-4"],
        "pinning": ["unpinned", "pinned"],
        "split": ["split-1", "split-4"],
        "allocator": ["glibc", "jemalloc"],
    }
    warmup = built["warmup"].variants
    assert warmup[0].server_args == ("--enable_model_warmup=false",)
    assert built["op_threads"].variants[1].server_args == (
        "--tensorflow_intra_op_parallelism=1",
        "--tensorflow_inter_op_parallelism=1",
    )
    pinning = built["pinning"]
    assert pinning.neighbour_cpus == "0" and [v.cpus for v in pinning.variants] == ["0,1", "1"]
    split = built["split"]
    assert split.batch == 64 and [v.split for v in split.variants] == [1, 4]
    # the run's own flags stay the run's, for every variant
    assert all(c.server_args == ("--rest_api_num_threads=8",) for c in built.values())
    assert op_thread_ladder(1) == [(1, 1), (2, 2)] and op_thread_ladder(16)[0] == (8, 8)
    # the memory question takes the verdict's swaps; the others a fixed, short count
    assert {name: r.swaps for name, r in RECIPES.items()} == {
        **{name: 6 for name in RECIPES},
        "allocator": "auto",
    }


def test_recipes_are_named_once_and_known():
    assert parse_recipes("warmup, split,warmup") == ("warmup", "split")
    with pytest.raises(ValueError, match="unknown recipe pining: choose from warmup"):
        parse_recipes("warmup,pining")


def test_bad_input_is_one_line_and_exit_2(tmp_path, soak_cli):
    result = soak_cli("tune", "--recipes", "nope", "--out", str(tmp_path / "t"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "soak: --recipes: unknown recipe nope: choose from warmup, load_threads, op_threads, "
        "pinning, split, allocator"
    ]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    result = soak_cli("tune", "--out", str(tmp_path / "full"))
    assert result.returncode == 2 and "is not empty" in result.stderr


def test_warmup_records_for_a_model_without_them_come_from_the_request_soak_sends(tmp_path):
    """TF Serving's own warmup reader (the stand-in's port of it) replays what soak wrote."""
    from soak.driver.demo_model import write_demo_model
    from soak.driver.model_versions import WARMUP_FILE, resolve_model
    from soak.driver.warmup_records import with_warmup_records
    from soak_model_server.warmup import read_warmup_requests

    model = write_demo_model(tmp_path / "model", versions=2, size_mb=1, warmup=False)
    versions = resolve_model(str(model), 1).versions
    out = with_warmup_records(versions, tmp_path / "warm", "model", None, batch=3)
    assert sorted(p.name for p in out.iterdir()) == ["1", "2"]
    assert not any((v / WARMUP_FILE).exists() for v in versions)  # the model is not written
    (request,) = read_warmup_requests(out / "2")
    assert request.signature_name == "serving_default"
    assert {name: a.shape[0] for name, a in request.inputs.items()} == {
        "dense_features": 3,
        "item_ids": 3,
        "user_id": 3,
    }
    # hard links: the variables are not copied
    data = next((out / "1" / "variables").glob("variables.data-*"))
    assert data.stat().st_nlink == 2


@pytest.mark.slow
def test_warmup_helps_the_first_request_by_the_planted_cold_start(tmp_path, soak_cli):
    """The stand-in's --debug_cold_start_ms makes every new version's first request wait
    300 ms unless warmup paid it during the load: the tune finds it, and nothing else (on a
    demo model without its own first-run cost, which would add to the planted one)."""
    from soak.driver.demo_model import write_demo_model

    small_model = write_demo_model(tmp_path / "demo", versions=2, size_mb=8, cold_path=False)
    out = tmp_path / "tune"
    result = soak_cli(
        "tune",
        "--model",
        str(small_model),
        "--recipes",
        "warmup",
        "--swaps",
        "4",
        "--warmup-swaps",
        "0",  # all 4 swaps judged: 4 kept-memory values against 4, enough for an interval
        "--settle-window",
        "2",
        "--status-interval",
        "0.02",  # AVAILABLE seen sooner: the first request's wait is counted from it
        f"--server-arg=--debug_cold_start_ms={PLANTED_COLD_MS:g}",
        "--out",
        str(out),
        "--quiet",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    tune = json.loads((out / "tune.json").read_text())
    (recipe,) = tune["recipes"]
    assert recipe["status"] == "completed" and recipe["reference"] == "no-warmup"
    reference, warmup = recipe["variants"]
    assert reference["effects"] == {}
    first = warmup["effects"]["first_after_swap_ms"]
    assert first["label"] == "helps", first
    # The planted delay inside the interval, give or take one status poll (AVAILABLE seen up
    # to 0.02 s late shortens the figure) and TensorFlow's own first session run, which
    # warmup pays too (~4 ms here): measured -300.2 [-302.6, -299.4] ms
    tolerance = 25
    assert first["low"] - tolerance <= -PLANTED_COLD_MS <= first["high"] + tolerance, first
    assert first["shift"] == pytest.approx(-PLANTED_COLD_MS, abs=tolerance), first
    # memory is not what warmup changes: a few MiB against a 25 MiB margin
    assert warmup["effects"]["kept_mb"]["label"] == "no effect"
    assert "helps first request after a swap" in recipe["advice"]  # taken, or weighed
    # the recipe's run dir is an ordinary run dir: report, check and history work on it
    run_dir = out / "warmup"
    assert (run_dir / "report.html").exists() and (run_dir / "summary.json").exists()
    check = soak_cli("check", str(run_dir), "--max-errors", "0")
    assert check.returncode == 0, check.stdout + check.stderr
    page = (out / "tune.html").read_text()
    assert "first request after a swap" in page and "data:image/svg+xml;base64," in page
