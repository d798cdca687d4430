"""Fixtures shared by every test folder."""

import os
import uuid

import pytest

from soak.core.owner import SESSION_ENV

# Everything this test session starts (in-process or through `soak run` children) is
# tagged with it, so the session's checks and cleanup touch only what is its own.
TEST_SESSION = f"pytest-{uuid.uuid4().hex[:12]}"
os.environ[SESSION_ENV] = TEST_SESSION


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order for scripts/test's workers (`--dist loadgroup`, which hands out one unit
    at a time, in this order): the real soak runs (`slow`) first, one unit each unless
    they share a run (`xdist_group`), so the longest start early; then every other test
    with its module, whose servers and models then start once per worker, not per test."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    for item in items:
        if not item.get_closest_marker("slow") and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(scope="session")
def test_session() -> str:
    """The SOAK_SESSION of this test session (label soak.session, SOAK_OWNER marker)."""
    return TEST_SESSION


# summary.json keys that docs/contract.md#summaryjson lists: users and scripts read these.
CONTRACT_SUMMARY_KEYS = {
    "": {"schema", "status", "backend", "model", "variants"},
    "variant": {
        "name",
        "allocator",
        "allocator_verified",
        "status",
        "swaps_completed",
        "memory",
        "latency",
        "swaps",
    },
    "memory": {
        "metric",
        "baseline_mb",
        "peak_mb",
        "final_mb",
        "retained_mb",
        "retained_mb_per_swap",
        "verdict",
    },
    "latency": {
        "steady_p50_ms",
        "steady_p99_ms",
        "swap_p99_ms",
        "max_ms",
        "errors",
        "first_after_swap_ms",
    },
    "swap": {"index", "version", "load_s", "settle_s", "settled_mb", "peak_mb", "retained_mb"},
}


def _assert_contract_summary(summary: dict) -> None:
    keys = CONTRACT_SUMMARY_KEYS
    assert set(summary) >= keys[""] and summary["schema"] == "soak.summary/1"
    for variant in summary["variants"]:
        assert set(variant) >= keys["variant"], variant["name"]
        assert set(variant["memory"]) >= keys["memory"], variant["name"]
        assert set(variant["latency"]) >= keys["latency"], variant["name"]
        assert all(set(swap) >= keys["swap"] for swap in variant["swaps"]), variant["name"]


@pytest.fixture
def assert_contract_summary():
    """Check that a summary dict has every key docs/contract.md#summaryjson lists."""
    return _assert_contract_summary
