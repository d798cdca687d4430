"""The pytest gate (SPEC §6): a `soak_run` fixture that runs soak and asserts on it.

    def test_hot_reload_releases_memory(soak_run):
        result = soak_run(model="models/ranker", allocators=["jemalloc"], swaps=8)
        result.assert_released(max_retained_mb_per_swap=2)
        result.assert_latency(max_swap_p99_ms=80)

The limits are the ones of `soak check`, so a CI gate and a test agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from soak.config import from_keywords
from soak.progress import Progress


@dataclass
class SoakResult:
    """An analysed run: the summary of SPEC §3 plus assertions that name the run dir."""

    run_dir: Path
    summary: dict

    def variant(self, name: str) -> dict:
        for v in self.summary["variants"]:
            if v["name"] == name:
                return v
        raise KeyError(f"no variant {name!r} in {self.run_dir}")

    def assert_released(
        self,
        max_retained_mb_per_swap: float | None = None,
        max_retained_mb: float | None = None,
        variant: str | None = None,
    ):
        """Every (or the named) variant completed, verified, and kept memory within limits."""
        failures = []
        for v in self._variants(variant):
            where = f"variant {v['name']} ({self.run_dir})"
            if v["status"] != "completed" or not v["allocator_verified"]:
                failures.append(
                    f"{where}: status {v['status']}, allocator_verified {v['allocator_verified']}"
                )
            elif v["memory"]["verdict"] == "leak":
                failures.append(f"{where}: verdict leak: {v['memory'].get('verdict_reason', '')}")
        failures += self._gate(
            max_retained_mb_per_swap=max_retained_mb_per_swap,
            max_retained_mb=max_retained_mb,
            variant=variant,
        )
        _fail_if(failures)

    def assert_latency(
        self,
        max_swap_p99_ms: float | None = None,
        max_errors: int | None = None,
        variant: str | None = None,
    ):
        _fail_if(
            self._gate(max_swap_p99_ms=max_swap_p99_ms, max_errors=max_errors, variant=variant)
        )

    def _variants(self, name: str | None) -> list[dict]:
        return [self.variant(name)] if name else self.summary["variants"]

    def _gate(self, **limits) -> list[str]:
        from soak.gate import Limits, check

        return check(self.summary, Limits(**limits), run_dir=self.run_dir)


def _fail_if(failures: list[str]) -> None:
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


@pytest.fixture
def soak_run(tmp_path_factory):
    """Run soak with `soak run`'s settings as keyword arguments; returns a SoakResult.

    The keywords are the settings' names (`soak run --help`, `soak.settings`):
    model, allocators, swaps, backend, image, server_args, rps, ...
    """
    from soak.runner import run_soak

    def run(**settings) -> SoakResult:
        settings.setdefault("out", str(tmp_path_factory.mktemp("soak") / "run"))
        settings.setdefault("quiet", True)
        outcome = run_soak(from_keywords(**settings), Progress(quiet=True))
        return SoakResult(outcome.run_dir, outcome.summary)

    return run
