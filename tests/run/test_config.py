"""Configuration: TOML + flags resolve into one validated config; bad input is one line, exit 2."""

import tomllib

import pytest

from soak.config.declarations import parse_size
from soak.config.resolve import resolve
from soak.core.errors import UsageError


def test_defaults_are_the_embedded_run():
    config = resolve({}, {})
    assert [v.allocator for v in config.variants] == ["glibc", "jemalloc"]
    assert config.backend == "process" and config.model is None
    assert (config.swaps, config.max_swaps) == ("auto", 30)


def test_flags_override_the_file_and_variants_come_from_tables(tmp_path):
    file_values = {
        "swaps": 4,
        "rps": 5,
        "variants": [
            {"name": "serial", "allocator": "glibc", "server_args": ["--num_load_threads=0"]},
            {"name": "pool", "allocator": "jemalloc", "env": {"MALLOC_CONF": "narenas:2"}},
        ],
    }
    config = resolve(file_values, {"swaps": 6, "out": str(tmp_path / "r")})
    assert config.swaps == 6 and config.rps == 5
    assert [(v.name, v.allocator) for v in config.variants] == [
        ("serial", "glibc"),
        ("pool", "jemalloc"),
    ]
    assert config.variants[0].server_args == ("--num_load_threads=0",)
    # --allocators replaces the file's variants
    config = resolve(file_values, {"allocators": "tcmalloc,mimalloc"})
    assert [v.name for v in config.variants] == ["tcmalloc", "mimalloc"]


def test_resolved_config_round_trips_through_run_toml():
    config = resolve({"memory_limit": "1.5g", "swaps_per_day": 24}, {})
    data = tomllib.loads(config.to_toml())
    assert data["memory_limit_bytes"] == int(1.5 * 2**30)
    assert [v["name"] for v in data["variants"]] == ["glibc", "jemalloc"]
    assert "threshold_mb" not in data  # unset optional settings are left out


def test_every_problem_is_listed_at_once(tmp_path):
    with pytest.raises(UsageError) as err:
        resolve(
            {"swaps": 0, "rps": -1, "allocators": ["glibc", "hoard"], "colour": "red"},
            {"model": str(tmp_path / "missing")},
        )
    message = str(err.value)
    for fragment in ("swaps", "rps", "hoard", "colour", "model path does not exist"):
        assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "text, size", [("512m", 512 << 20), ("2g", 2 << 30), ("1.5GiB", 3 << 29), (4096, 4096)]
)
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_bad_flag_exits_2_with_one_line(soak_cli):
    result = soak_cli("run", "--swaps", "many")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "swaps" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_file_exits_2_with_one_line(tmp_path, soak_cli):
    bad = tmp_path / "bad.toml"
    bad.write_text("swaps = [\n")
    result = soak_cli("run", "--config", str(bad))
    assert result.returncode == 2 and "not valid TOML" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    result = soak_cli("run", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "config file not found" in result.stderr


@pytest.mark.parametrize("make", ["missing", "empty_dir", "not_saved_model"])
def test_bad_model_path_exits_2_with_one_line(tmp_path, make, soak_cli):
    model = tmp_path / "model"
    if make != "missing":
        model.mkdir()
    if make == "not_saved_model":
        (model / "1").mkdir()
        (model / "1" / "weights.bin").write_bytes(b"x")
    result = soak_cli("run", "--model", str(model), "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and str(model) in result.stderr
    assert not (tmp_path / "run" / "summary.json").exists()


def test_existing_run_dir_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    with pytest.raises(UsageError, match="not empty"):
        resolve({}, {"out": str(out)})
