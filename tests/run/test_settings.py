"""The settings of `soak run`, declared once: --help, flags, TOML, keywords and run.toml agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from soak.analysis.inputs import read_run_toml_file
from soak.cli.main import build_parser
from soak.config.resolve import from_keywords, resolve
from soak.config.settings import (
    Option,
    RunConfig,
    VariantSpec,
    config_from_run_toml,
    options,
    options_of,
    read_run_toml,
)
from soak.core.errors import UsageError

# A run.toml as soak 0.1 wrote it (before the settings were declared once).
OLD_RUN_TOML = """\
model_name = "ranker"
backend = "docker"
swaps = 8
rps = 5
batch = 1
server_binary = "soak-model-server"
server_args = [
    "--num_load_threads=2",
]
image = "tensorflow/serving"
memory_limit_bytes = 1610612736
cpus = "0"
settle_timeout = 30.0
load_timeout = 300.0
steady_s = 3.0
out = "/tmp/nonexistent-run"
keep_models = false
warmup_swaps = 3
threshold_mb = 2.5
metric = "cgroup_anon_bytes"
swaps_per_day = 24
demo_size_mb = 128.0
quiet = false

[[variants]]
name = "glibc-serial"
allocator = "glibc"
server_args = [
    "--num_load_threads=0",
]

[variants.env]

[[variants]]
name = "je"
allocator = "jemalloc"
server_args = []
library = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

[variants.env]
MALLOC_CONF = "narenas:2"
"""


def examples(tmp_path: Path) -> dict[str, tuple[list[str], object]]:
    """For every flag of `soak run`: (the words after the flag, the value they mean).

    A repeatable flag's words are whole `--flag=value` arguments.
    """
    model = tmp_path / "model"
    model.mkdir()
    request = tmp_path / "request.json"
    request.write_text('{"instances": [1]}')
    by_name: dict[str, tuple[list[str], object]] = {
        "model": ([str(model)], str(model)),
        "model_name": (["ranker"], "ranker"),
        "allocators": (["tcmalloc,mimalloc"], ("tcmalloc", "mimalloc")),
        "request_file": ([str(request)], str(request)),
        "server_binary": (["/usr/bin/tensorflow_model_server"], "/usr/bin/tensorflow_model_server"),
        "server_args": (["--server-arg=--a=1", "--server-arg=--b=2"], ("--a=1", "--b=2")),
        "image": (["tensorflow/serving:2.16"], "tensorflow/serving:2.16"),
        "memory_limit_bytes": (["1.5g"], 3 << 29),
        "cpus": (["0"], "0"),
        "neighbour_cpus": (["1"], "1"),
        "swaps": (["auto"], "auto"),
        "out": ([str(tmp_path / "run")], str(tmp_path / "run")),
        "history": ([str(tmp_path / "h.sqlite")], str(tmp_path / "h.sqlite")),
    }
    for o in options():
        if o.name in by_name or not o.setting.cli:
            continue
        if o.base_type is bool:
            by_name[o.name] = ([], True)
        elif o.setting.choices is not None:
            by_name[o.name] = ([o.setting.choices[1]], o.setting.choices[1])
        elif o.base_type is int:
            value = (o.default or 0) + 3
            by_name[o.name] = ([str(value)], value)
        elif o.base_type is float:
            value = (o.default or 1.0) * 0.5
            by_name[o.name] = ([str(value)], value)
    return by_name


def cli_flags(args: list[str]) -> dict:
    namespace = build_parser().parse_args(["run", *args])
    return {k: v for k, v in vars(namespace).items() if k not in ("command", "func", "config")}


def test_flags_toml_keys_and_keywords_mean_the_same(tmp_path):
    table = examples(tmp_path)
    missing = [o.name for o in options() if o.setting.cli and o.name not in table]
    assert not missing, f"add an example for the new settings {missing}"
    for o in options():
        if not o.setting.cli:
            continue
        words, value = table[o.name]
        docker = {"backend": "docker"} if o.name == "metric" else {}  # cgroup metrics need it
        argv = words if o.setting.repeat else [o.flag, *words]
        from_flag = resolve(docker, cli_flags(argv))
        toml = tomllib.loads(tomli_w.dumps({o.toml_key: _toml_value(value)}))
        from_file = resolve({**docker, **toml}, {})
        from_keyword = from_keywords(**docker, **{o.name: value})
        for config in (from_flag, from_file, from_keyword):
            assert getattr(config, o.name) == value, (o.name, config)
        if o.setting.stored:  # and run.toml keeps it
            assert read_run_toml(tomllib.loads(from_flag.to_toml()))[o.name] == value, o.name


def _toml_value(value):
    return list(value) if isinstance(value, tuple) else value


def test_help_shows_every_setting_with_its_help_and_default():
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    text = "".join(run.format_help().split())  # argparse wraps lines, at hyphens too
    for o in options():
        if o.setting.cli:
            assert o.flag in text
            assert "".join(o.help_text().split()) in text, o.name
            assert f"(default:{''.join(o.default_text().split())})" in text, o.name


def test_per_variant_settings_are_variant_fields_of_the_same_type():
    variant_options = {o.name: o for o in options_of(VariantSpec)}
    for o in options():
        if o.setting.per_variant:  # the same type, or optional (None: the run's value)
            assert variant_options[o.name].type in (o.type, o.type | None), o.name


OLD_RUN_TOML_SETTINGS = {
    "model_name": "ranker",
    "backend": "docker",
    "swaps": 8,
    "warmup_swaps": 3,
    "threshold_mb": 2.5,
    "metric": "cgroup_anon_bytes",
    "memory_limit_bytes": 1610612736,
    "swaps_per_day": 24.0,
}


def test_an_old_run_toml_reads_back(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(OLD_RUN_TOML)
    settings, specs = read_run_toml_file(path)
    read = {k: getattr(settings, k) for k in OLD_RUN_TOML_SETTINGS}
    assert read == OLD_RUN_TOML_SETTINGS
    assert [(v.name, v.allocator) for v in specs] == [("glibc-serial", "glibc"), ("je", "jemalloc")]
    # what it does not say reads as the default
    assert settings.settle_timeout == RunConfig().settle_timeout
    # ... and serves as a --config file of a new run.
    config = resolve(tomllib.loads(OLD_RUN_TOML), {"out": str(tmp_path / "again")})
    assert config.rps == 5.0 and config.variants[1].env == {"MALLOC_CONF": "narenas:2"}
    assert config.server_args == ("--num_load_threads=2",)


def test_a_run_toml_of_a_newer_soak_still_reads_back(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('swaps = 4\nfuture_setting = "x"\n[[variants]]\nname = "a"\nnew_key = 1\n')
    settings, specs = read_run_toml_file(path)
    assert settings.swaps == 4 and [(v.name, v.allocator) for v in specs] == [("a", "glibc")]


def test_a_run_toml_with_a_bad_value_is_a_usage_error(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('swaps = "many"\n')
    with pytest.raises(UsageError, match="swaps"):
        read_run_toml_file(path)


def test_keywords_take_the_config_file_spellings_and_reject_others(tmp_path):
    config = from_keywords(memory_limit="2g", allocators=["jemalloc"], out=str(tmp_path / "r"))
    assert config.memory_limit_bytes == 2 << 30
    assert [v.name for v in config.variants] == ["jemalloc"]
    with pytest.raises(UsageError, match="unknown setting 'swapz'"):
        from_keywords(swapz=3)


@pytest.mark.parametrize(
    "given, fragment",
    [
        ({"swaps": 0}, "swaps must be a whole number >= 1 or 'auto', not 0"),
        ({"swaps": True}, "swaps must be a whole number"),
        ({"rps": "fast"}, "rps must be a number > 0 and <= 1000, not 'fast'"),
        ({"backend": "k8s"}, "backend must be one of process, docker"),
        ({"allocators": "glibc,hoard"}, "not 'hoard'"),
        ({"model_name": "a b"}, "model_name must be a name"),
        ({"memory_limit": "lots"}, "memory_limit: not a size"),
        ({"cpus": "1-"}, "cpus: not a CPU list"),
        ({"quiet": "yes"}, "quiet must be true or false"),
        ({"variants": [{"name": "x", "allocator": "hoard"}]}, "variants: #1: allocator"),
        ({"variants": [{"allocator": "glibc"}]}, "#1 is not a table with a name"),
    ],
)
def test_bad_values_name_the_setting(given, fragment):
    with pytest.raises(UsageError) as err:
        resolve(given, {})
    assert fragment in str(err.value)


def test_every_setting_is_declared_with_help():
    for o in options():
        assert isinstance(o, Option) and o.setting.help, o.name
        assert o.flag.startswith("--") and o.flag == o.flag.lower()


def test_swaps_is_a_count_or_auto():
    assert resolve({"swaps": "7"}, {}).swaps == 7
    assert resolve({}, {"swaps": "auto"}).swaps == "auto"
    for bad in ("0", "many", -1, True):
        with pytest.raises(UsageError, match="swaps must be a whole number >= 1 or 'auto'"):
            resolve({"swaps": bad}, {})


def test_the_config_hash_is_what_shapes_the_figures(tmp_path):
    base = from_keywords(allocators=["glibc", "jemalloc"], swaps=6)
    same = from_keywords(
        allocators=["glibc", "jemalloc"],
        swaps=6,
        out=str(tmp_path / "elsewhere"),
        quiet=True,
        history=str(tmp_path / "h.sqlite"),
        swaps_per_day=24,
    )
    assert base.config_hash() == same.config_hash()  # where output goes is no difference
    assert from_keywords(swaps=8).config_hash() != from_keywords(swaps=6).config_hash()
    je = base.variants[1]
    assert base.variant_config_hash(je) == base.variant_config_hash(je)
    # a variant is the same setup whether or not others ran beside it
    alone = from_keywords(allocators=["jemalloc"], swaps=6)
    assert alone.variant_config_hash(alone.variants[0]) == base.variant_config_hash(je)
    assert base.variant_config_hash(base.variants[0]) != base.variant_config_hash(je)
    # what is under test (model, image, server flags) is compared, not a different setup
    subject = from_keywords(
        allocators=["jemalloc"], swaps=6, server_args=["--x=1"], image="mine:2", model_name="m"
    )
    assert subject.variant_config_hash(subject.variants[0]) == base.variant_config_hash(je)
    plain = from_keywords(variants=[{"name": "jemalloc", "allocator": "jemalloc"}])
    tuned = from_keywords(
        variants=[{"name": "jemalloc", "allocator": "jemalloc", "env": {"MALLOC_CONF": "x"}}]
    )
    assert tuned.variant_config_hash(tuned.variants[0]) != plain.variant_config_hash(
        plain.variants[0]
    )


def test_the_config_hash_reads_back_from_run_toml(tmp_path):
    config = from_keywords(
        allocators=["jemalloc"], swaps=6, rps=10, demo_size_mb=16, out=str(tmp_path / "r")
    )
    again = config_from_run_toml(tomllib.loads(config.to_toml()))
    assert again.config_hash() == config.config_hash()
    assert again.variant_config_hash(again.variants[0]) == config.variant_config_hash(
        config.variants[0]
    )
    old = config_from_run_toml(tomllib.loads(OLD_RUN_TOML))  # written before the hash existed
    assert len(old.variant_config_hash(old.variants[0])) == 12


def test_the_history_file_is_beside_the_run_dir_unless_given(tmp_path):
    assert from_keywords(out=str(tmp_path / "runs" / "a")).history_location == str(
        tmp_path / "runs" / "history.sqlite"
    )
    given = from_keywords(history=str(tmp_path / "h.sqlite"))
    assert given.history_location == str(tmp_path / "h.sqlite")
