"""report.html, the terminal table and `soak report` on simulated runs."""

import base64
import re

from markupsafe import escape

from soak.analysis import summary_json
from soak.analysis.analyse import analyse_run
from soak.report import html
from soak.report.html import write_report
from soak.report.outputs import write_outputs
from soak.report.terminal import summary_table


def leaking(k):
    return 8.0 * k


def releasing(k):
    return 0.2 if k else 0.0


def images(page: str) -> list[str]:
    return re.findall(r'<img alt="" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)">', page)


def test_report_is_one_self_contained_page(make_run, sim_variant):
    run = make_run(
        [sim_variant("glibc", "glibc", leaking), sim_variant("jemalloc", "jemalloc", releasing)],
        memory_limit_bytes=2 << 30,
        swaps_per_day=24,
    )
    result = write_outputs(run)
    path = run / "report.html"
    page = path.read_text(encoding="utf-8")

    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    assert "<script" not in page
    # settled per swap, memory x2, latency windows, latency x2
    svgs = images(page)
    assert len(svgs) == 6
    assert all(base64.b64decode(s).decode().lstrip().startswith("<?xml") for s in svgs)
    for line in result.comparison.recommendation.splitlines():  # the headline, then the fixes
        assert str(escape(line)) in page
    for v in result.variants:
        assert f"<span class=v-{v.memory.verdict.verdict}>" in page
    assert "Memory limit: 2048 MiB" in page
    assert "reaches 2048 MiB after about" in page


def test_report_of_a_killed_run(make_run, sim_variant):
    run = make_run(
        [
            sim_variant("glibc", "glibc", leaking, kill_at_s=60.0),
            sim_variant("jemalloc", "jemalloc", releasing, kill_at_s=3.0),
        ]
    )
    write_outputs(run)
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "not settled" in page  # the swap that was going when the run was killed
    assert "no baseline" in page
    assert "run <span class=s-interrupted>interrupted</span>" in page


def test_terminal_table(make_run, sim_variant):
    run = make_run(
        [sim_variant("glibc", "glibc", leaking), sim_variant("jemalloc", "jemalloc", releasing)]
    )
    table = summary_table(analyse_run(run))
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["variant", "allocator", "status"]
    glibc = next(line for line in lines if line.startswith("glibc "))
    assert glibc.split()[:4] == ["glibc", "glibc", "completed", "8"]
    assert "leak" in glibc and "8.00" in glibc
    assert "-0.00" not in table
    assert any(line.startswith("recommendation: use jemalloc") for line in lines)
    assert lines[-1].startswith(f"run completed: {run}")


def test_report_rewritten_from_raw_data(make_run, sim_variant):
    # What `soak report` does on a run killed before it wrote anything.
    run = make_run([sim_variant("glibc", "glibc", leaking, kill_at_s=70.0)])
    assert not (run / "summary.json").exists()
    result = write_outputs(run)
    first = (run / "report.html").read_text(encoding="utf-8")
    again = analyse_run(run)
    assert again == result
    assert write_report(run, again).read_text(encoding="utf-8") == first  # reproducible
    assert summary_json.read(run) == result.without_plot_data()
    assert result.variants[0].swaps_completed == 4


def test_a_long_runs_swap_table_shows_its_first_and_last_swaps(make_run, sim_variant, monkeypatch):
    run = make_run([sim_variant("glibc", "glibc", leaking)])  # 8 swaps
    monkeypatch.setattr(html, "MAX_SWAP_TABLE_ROWS", 5)
    monkeypatch.setattr(html, "EDGE_ROWS", 2)
    result = write_outputs(run)
    page = (run / "report.html").read_text(encoding="utf-8")
    rows = re.findall(r"<tr><td>(\d+)</td>", page)
    assert rows == ["1", "2", "7", "8"]
    assert "4 more swaps, after swap 2 and before swap 7, are left out here" in page
    assert "summary.json has every swap" in page
    assert len(result.variants[0].swaps) == len(summary_json.read(run).variants[0].swaps) == 8
