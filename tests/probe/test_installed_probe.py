"""SOAK_PROBE_LIBRARY: a probe built beforehand is used as it is (soak's Job image names
the one its allocator layer compiled: the image has no compiler)."""

from __future__ import annotations

import pytest

from soak.targets import probe_library
from soak.targets.probe_library import INSTALLED_ENV, ProbeUnavailable


def test_the_named_probe_is_used_and_none_is_built(tmp_path, monkeypatch):
    installed = tmp_path / "usr-lib-soak" / probe_library.LIBRARY_NAME
    probe_library.build(installed)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(INSTALLED_ENV, str(installed))
    assert probe_library.host_library() == installed
    assert not (tmp_path / "cache").exists()
    monkeypatch.setenv(INSTALLED_ENV, "")  # empty: as if unset, built into the cache
    assert probe_library.host_library().is_relative_to(tmp_path / "cache")


def test_a_named_probe_that_is_not_there_is_said_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(INSTALLED_ENV, str(tmp_path / "libsoakprobe.so"))
    with pytest.raises(ProbeUnavailable) as unavailable:
        probe_library.host_library()
    assert str(unavailable.value) == (
        f"SOAK_PROBE_LIBRARY names {tmp_path}/libsoakprobe.so, which is not a file"
    )
