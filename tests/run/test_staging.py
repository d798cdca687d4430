"""Atomic staging: a watcher of the base path never sees a half-written version."""

import tempfile
import threading
import time
from pathlib import Path

import pytest

from soak.driver.staging import STAGING_PREFIX, VersionStager


def make_version(path: Path, files: int, size: int) -> Path:
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"p" * 1000)
    for i in range(files):
        (path / "variables" / f"part-{i}").write_bytes(bytes([i % 256]) * size)
    return path


def test_watcher_only_ever_sees_complete_versions(tmp_path):
    source = make_version(tmp_path / "src" / "1", files=200, size=64 * 1024)
    expected = sorted(p.relative_to(source) for p in source.rglob("*"))
    base = tmp_path / "base"
    stager = VersionStager([source], base)
    seen_incomplete, seen_versions = [], set()
    passes = [0]  # the watcher's full looks at the base path
    done = threading.Event()

    def watch():  # what a polling file-system source does, as fast as it can
        while not done.is_set():
            for entry in base.iterdir():
                if entry.name.isdigit():
                    listing = sorted(p.relative_to(entry) for p in entry.rglob("*"))
                    seen_versions.add(entry.name)
                    if listing != expected:
                        seen_incomplete.append((entry.name, len(listing)))
            passes[0] += 1

    def looked_again(after: int) -> None:  # on a busy machine the thread can start late
        while passes[0] <= after and watcher.is_alive():
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    looked_again(0)
    for version in range(1, 6):
        stager.stage(version)
    looked_again(passes[0] + 1)  # a whole pass begun after the last version was staged
    done.set()
    watcher.join()
    assert seen_versions, "the watcher never looked"
    assert seen_incomplete == []
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "3", "4", "5"]
    assert not any(p.name.startswith(STAGING_PREFIX) for p in base.iterdir())


def test_versions_cycle_through_sources_with_growing_numbers(tmp_path):
    sources = [make_version(tmp_path / "src" / str(i), files=1, size=10 + i) for i in (1, 2)]
    stager = VersionStager(sources, tmp_path / "base")
    for version in (1, 2, 3):
        stager.stage(version)
    sizes = [
        (tmp_path / "base" / str(v) / "variables" / "part-0").stat().st_size for v in (1, 2, 3)
    ]
    assert sizes == [11, 12, 11]
    stager.remove(1)
    assert not (tmp_path / "base" / "1").exists()


def test_staged_files_are_links_to_the_source_and_removing_them_keeps_it(tmp_path):
    source = make_version(tmp_path / "src" / "1", files=2, size=1000)
    stager = VersionStager([source], tmp_path / "base")
    staged = stager.stage(1) / "variables" / "part-1"
    assert staged.stat().st_ino == (source / "variables" / "part-1").stat().st_ino
    stager.remove(1)
    assert (source / "variables" / "part-1").read_bytes() == bytes([1]) * 1000


def test_across_file_systems_the_files_are_copied(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system to stage across")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        source = make_version(Path(other) / "1", files=2, size=1000)
        staged = VersionStager([source], tmp_path / "base").stage(1) / "variables" / "part-1"
        assert staged.read_bytes() == bytes([1]) * 1000
        assert staged.stat().st_dev != (source / "variables" / "part-1").stat().st_dev
