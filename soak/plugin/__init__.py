"""The pytest gate: a `soak_run` fixture that runs soak, and assertions on its result.

    def test_hot_reload_releases_memory(soak_run):
        result = soak_run(model="models/ranker", allocators=["jemalloc"], swaps=8)
        result.assert_released(max_retained_mb_per_swap=2)
        result.assert_latency(max_swap_p99_ms=80)
        result.assert_no_regression(against_history=5)

A soak run takes minutes, so a test that uses `soak_run` (or is marked
`@pytest.mark.soak`) is skipped unless soak tests are asked for: `pytest
--soak`, `pytest -m soak`, or `soak = true` in the project's pytest ini.
Options: `--soak-backend`, `--soak-image` (defaults for the tests' runs),
`--soak-out DIR` (where run dirs go; default pytest's temp dir),
`--soak-keep` (keep the run dirs of passed tests too; a failed test's are
always kept and named in its failure), `--soak-history FILE|URL` (where runs are
recorded: an SQLite file or a postgresql:// URL; default $SOAK_HISTORY, else
history.sqlite beside the run dirs). A section at the end of
the session lists every run.

The limits are the ones of `soak check`, so a CI gate and a test agree. Modules:
`hooks` (what pytest loads), `fixture` (soak_run), `result` (SoakResult), `session`.
"""
