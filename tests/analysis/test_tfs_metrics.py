"""TF Serving's own load and warmup times per swap (metrics.csv), and split variants, in
the result, summary.json, the report and the terminal table."""

from __future__ import annotations

import json

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.report.html import render
from soak.report.terminal import summary_table
from soak.store.csv_log import CsvLog
from soak.store.records import MetricSample
from soak.store.run_dir import RunDir

T0 = 1_700_000_000.0
LOAD = ":tensorflow:cc:saved_model:load_latency"
WARMUP_SUM = ":tensorflow:serving:model_warmup_latency_sum"


def releasing(k: int) -> float:
    return 2.0


def write_metrics(vdir, loads_us: dict[int, float], scrapes_per_swap: int = 3) -> None:
    """metrics.csv as the scraper writes it: each version's load a series of its own, a
    row only when a value changed, plus traffic counters changing every scrape."""
    log = CsvLog(vdir.metrics_csv, MetricSample)
    warmup = 0.0
    for swap, load_us in sorted(loads_us.items()):
        version = swap + 1
        warmup += load_us / 2
        t = T0 + 12 * swap
        log.append(MetricSample(t, swap, LOAD, f'model_path="/m/{version}"', load_us))
        log.append(MetricSample(t, swap, WARMUP_SUM, 'model_path="/m/x",status="OK"', warmup))
        for i in range(scrapes_per_swap):
            count = 10 * swap + i
            log.append(MetricSample(t + i, swap, ":tensorflow:core:graph_runs", "", count))
    log.close()


def test_tf_servings_load_ms_per_swap(make_run, sim_variant):
    run = make_run([sim_variant("glibc", "glibc", releasing, swaps=4)])
    vdir = RunDir(run).variant("glibc")
    # swap 3: no scrape saw its load (the figure is missing, not 0); swap 4 saw it
    write_metrics(vdir, {0: 90_000.0, 1: 120_500.0, 2: 80_000.0, 4: 100_000.0})
    result = analyse_run(run)
    swaps = result.variant("glibc").swaps
    assert [s.tfs_load_ms for s in swaps] == [120.5, 80.0, None, 100.0]
    assert [s.tfs_warmup_ms for s in swaps] == [60.25, 40.0, None, 50.0]
    summary_json.write(run, result)
    written = json.loads(RunDir(run).summary_json.read_text())
    assert written["variants"][0]["swaps"][0]["tfs_load_ms"] == 120.5
    assert summary_json.read(run) == result.without_plot_data()
    page = render(result)
    assert "TFS load ms" in page and "<td>120.5</td>" in page and "metrics.csv" in page


def test_without_metrics_csv_the_figures_are_missing_and_the_report_as_before(
    make_run, sim_variant
):
    run = make_run([sim_variant("glibc", "glibc", releasing, swaps=3)])
    result = analyse_run(run)
    assert all(
        s.tfs_load_ms is None and s.tfs_warmup_ms is None for s in result.variant("glibc").swaps
    )
    assert result.variant("glibc").latency.split == 1
    page = render(result)
    assert "TFS load ms" not in page and "Split vs unsplit" not in page


def test_split_and_unsplit_variants_are_compared(make_run, sim_variant):
    run = make_run(
        [sim_variant("unsplit", "glibc", releasing), sim_variant("split", "glibc", releasing)]
    )
    variant_json = RunDir(run).variant("split").variant_json
    meta = json.loads(variant_json.read_text())
    variant_json.write_text(json.dumps(meta | {"split": 4}))
    result = analyse_run(run)
    assert [v.latency.split for v in result.variants] == [1, 4]
    table = summary_table(result)
    assert "variant  split  steady p50  steady p99  swap p99" in table
    split_row = next(line for line in table.splitlines() if line.startswith("split    4"))
    assert "ms" in split_row
    assert "Split vs unsplit" in render(result)
    summary_json.write(run, result)
    assert summary_json.read(run).variant("split").latency.split == 4
