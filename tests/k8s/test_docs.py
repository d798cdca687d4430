"""The docs show what `soak k8s` prints: the examples of docs/scheduling.md and the README,
run as written on a real run dir, print what the docs show, and the schemas accept it."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEDULING = (ROOT / "docs" / "scheduling.md").read_text()
README = (ROOT / "README.md").read_text()
VERSION_LABEL = re.compile(r"app\.kubernetes\.io/version: \S+")


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def _block_starting(text: str, language: str, start: str) -> str:
    [block] = [b for b in _blocks(text, language) if b.startswith(start)]
    return block


@pytest.fixture
def docs_dir(tmp_path: Path, analysed_run: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working dir with the docs' soak.toml and a default run's dir as runs/first and
    runs/ranker, as the examples name them."""
    (tmp_path / "soak.toml").write_text(
        _block_starting(SCHEDULING, "toml", "# soak.toml\n").removeprefix("# soak.toml\n")
    )
    for name in ("first", "ranker"):
        shutil.copytree(analysed_run, tmp_path / "runs" / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(capsys: pytest.CaptureFixture[str], command: str) -> str:
    from soak.cli.main import main

    args = shlex.split(command.split("|")[0])
    assert args[:2] == ["soak", "k8s"], command
    assert main(args[1:]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_the_cronjob_example_prints_what_the_docs_show(docs_dir, capsys, assert_valid):
    [command] = [b.strip() for b in _blocks(SCHEDULING, "sh") if b.startswith("soak k8s cronjob")]
    out = _run(capsys, command)
    shown = _block_starting(SCHEDULING, "yaml", "---\n# the soak.toml")
    assert VERSION_LABEL.sub("VERSION", out) == VERSION_LABEL.sub("VERSION", shown)
    for document in yaml.safe_load_all(out):
        assert_valid(document)

    # the README runs the same command and shows a cut of the same output, in order
    [readme_command] = [b for b in _blocks(README, "sh") if "soak k8s cronjob" in b]
    assert readme_command.strip() == command + " | kubectl apply -f -"
    [cut] = [b for b in _blocks(README, "yaml") if "kind: CronJob" in b]
    at = 0
    for line in cut.splitlines():
        if line.strip() != "...":
            at = out.index(line + "\n", at)


def test_the_fleet_example_gives_a_configmap_and_cronjob_per_model(docs_dir, capsys, assert_valid):
    (docs_dir / "fleet.toml").write_text(_block_starting(SCHEDULING, "toml", "# fleet.toml\n"))
    out = _run(capsys, "soak k8s cronjob --fleet fleet.toml")
    docs = list(yaml.safe_load_all(out))
    for document in docs:
        assert_valid(document)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ConfigMap", "soak-ranker-config"),
        ("CronJob", "soak-ranker"),
        ("ConfigMap", "soak-tagger-config"),
        ("CronJob", "soak-tagger"),
    ]
    assert [d["spec"]["schedule"] for d in docs[1::2]] == ["0 2 * * *", "30 2 * * *"]
