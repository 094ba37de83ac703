"""Numeric outliers across the fleet: figures read from benchmark results, median and MAD per node
type, outliers in JSON, table and HTML; fleets generated with known outliers."""

from __future__ import annotations

import copy
import json
import statistics
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from preflight import result_figures
from preflight.checks.bench import judge_allreduce
from preflight.cluster import aggregate, figures, genbaseline, html, sources
from preflight.cluster import compare as comparison
from preflight.model import CheckResult
from preflight.registry import discover
from tests.chromium import Browser, artifacts, binary
from tests.cluster_reports import _cached, with_results
from tests.harness import cli
from tests.test_bench_check import GIB, measured

METRIC = "bench.allreduce all_reduce 1 GiB (GB/s)"
SCHEMA = json.loads(
    (resources.files("preflight") / "schema" / "compare.schema.json").read_text("utf-8")
)


def bench_result(busbw: float) -> dict[str, Any]:
    """The bench.allreduce result `preflight run --bench` writes for this bus bandwidth."""
    v = judge_allreduce(measured(busbw), GIB, 0.0)
    title = "All-reduce bus bandwidth across the node's GPUs meets the baseline"
    return CheckResult("bench.allreduce", title, v.status, v.summary, 1.0, v.findings).to_dict()


def write_node(folder: Path, hostname: str, profile: str, busbw: float | None) -> None:
    doc = copy.deepcopy(_cached(profile, "template-" + profile))
    doc["host"]["hostname"] = hostname
    if busbw is not None:
        with_results(doc, [bench_result(busbw)], older=hostname in OLDER)
    (folder / f"{hostname}.json").write_text(json.dumps(doc, indent=2) + "\n")


# Known fleet: DGX H100 at 360 ± 1.5 GB/s (MAD 1.0, so the cut is 3.5 × 1.4826 = 5.2 GB/s away),
# two planted low nodes and one just inside; HGX H200 all at exactly 400 (MAD 0: the 1 % rule),
# one 2.5 % low (outlier) and one 1 % low (not).
DGX = [(f"dgx-{k:02d}", 360.0 + (k % 7 - 3) * 0.5) for k in range(30)]
DGX += [("dgx-low-a", 250.0), ("dgx-low-b", 352.0), ("dgx-near", 357.0)]
H200 = [(f"h200-{k:02d}", 400.0) for k in range(10)] + [("h200-odd", 390.0), ("h200-ok", 396.0)]
PLANTED = {("dgx-h100", "dgx-low-a"), ("dgx-h100", "dgx-low-b"), ("hgx-h200", "h200-odd")}


OLDER = {"dgx-low-a", "h200-odd", *(name for name, _ in DGX[:30:2])}
"""Reports written as a preflight before `figures` did: compare reads their results instead."""


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("figures")
    for name, value in DGX:
        write_node(folder, name, "dgx-h100", value)
    for name, value in H200:
        write_node(folder, name, "hgx-h200", value)
    write_node(folder, "dgx-unmeasured", "dgx-h100", None)  # a run without --bench
    return folder


def test_figure_is_read_from_the_bench_result() -> None:
    assert result_figures.from_result(bench_result(232.44)) == [(METRIC, 232.44)]
    facts = {"bench.busbw_1g": 7, "cpu.count": 3}
    data = json.dumps({"results": [bench_result(232.44)], "facts": facts}, indent=2).encode()
    assert figures.extract(data, facts) == (
        (METRIC, 232.44),
        ("bench.busbw_1g", 7.0),
    )


def test_outliers_are_the_planted_ones(fleet_dir: Path) -> None:
    result = cli("compare", str(fleet_dir), "--format", "json", "--fail-on", "none")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    found = {(f["group"], o["hostname"]) for f in doc["figures"] for o in f["outliers"]}
    assert found == PLANTED
    by_group = {f["group"]: f for f in doc["figures"]}
    assert by_group["dgx-h100"]["metric"] == METRIC
    assert by_group["dgx-h100"]["nodes"] == len(DGX)  # the unmeasured node holds no figure
    assert by_group["dgx-h100"]["median"] == statistics.median(v for _, v in DGX)
    assert by_group["hgx-h200"]["mad"] == 0
    assert [o["hostname"] for o in by_group["dgx-h100"]["outliers"]] == ["dgx-low-a", "dgx-low-b"]
    assert by_group["hgx-h200"]["outliers"][0]["z"] is None


def test_table_and_html_show_them(fleet_dir: Path) -> None:
    result = cli("compare", str(fleet_dir), "--fail-on", "none")
    assert "Figures: outliers by median and MAD" in result.stdout
    assert "dgx-low-a 250" in result.stdout and "h200-odd 390" in result.stdout
    fleet = aggregate.collect(sources.expand([str(fleet_dir)]), jobs=1, detail=True)
    m = html.model(comparison.compare(fleet, "baseline"))
    marked = {(f["group"], m["nodes"][i][0]) for f in m["figures"] for i, _ in f["outliers"]}
    assert marked == PLANTED


CASES = [
    # values, outlier ids
    ([10.0, 10.1, 9.9, 10.0, 10.05, 3.0], [5]),
    ([10.0, 10.1, 9.9, 10.0, 10.05, 10.2], []),
    ([5.0] * 9 + [5.04], []),  # MAD 0: within 1 % of the median
    ([5.0] * 9 + [5.06, 4.0], [10, 9]),  # MAD 0: farthest first
    ([1.0, 2.0, 3.0, 4.0, 100.0], [4]),
]


@pytest.mark.parametrize(("values", "expected"), CASES)
def test_outlier_rule(values: list[float], expected: list[int]) -> None:
    _, _, found = figures.outliers(enumerate(values))
    assert [i for i, _, _ in found] == expected


def test_small_groups_are_not_judged() -> None:
    per_node = {i: (("m", float(i)),) for i in range(figures.MIN_NODES - 1)}
    assert figures.judge(per_node, {"g": list(per_node)}) == []
    per_node[99] = (("m", 1000.0),)
    (stats,) = figures.judge(per_node, {"g": list(per_node)})
    assert [i for i, _, _ in stats.outliers] == [99]


def test_hostile_figures_are_bounded() -> None:
    result = bench_result(100.0)
    result["findings"] = [
        {"subject": "x" * 500, "evidence": [{"observed": "1e999 GB/s"}, {"observed": "nan GB/s"}]}
    ] + [{"subject": f"s{k}", "evidence": [{"observed": f"{k} us"}]} for k in range(500)]
    facts = {"bench.inf": float("inf"), "bench.flag": True}
    data = json.dumps({"results": [result], "facts": facts}).encode()
    got = figures.extract(data, facts)
    assert len(got) == result_figures.FIGURES
    assert all(v == v and abs(v) != float("inf") for _, v in got)
    # a report's own list, as hostile: only finite numbers, names cut short, at most FIGURES
    given: dict[str, Any] = {f"m{k}": k for k in range(500)}
    given |= {"x" * 500: 1.0, "inf": float("inf"), "text": "1 GB/s", "flag": True, "none": None}
    got = figures.extract(data, {}, given)
    assert len(got) == result_figures.FIGURES
    assert all(type(v) is float and v == v and abs(v) != float("inf") for _, v in got)
    assert all(len(m) <= result_figures.METRIC_CHARS for m, _ in got)
    # a `figures` that is no object: the results are read instead
    assert figures.extract(data, facts, [1, 2]) == figures.extract(data, facts)


def test_baseline_pins_the_median_without_the_outliers(fleet_dir: Path) -> None:
    result = cli("baselines", "generate", str(fleet_dir), "--group", "dgx-h100")
    assert result.exit_code == 0, result.output
    inliers = [v for name, v in DGX if name not in ("dgx-low-a", "dgx-low-b")]
    floor = round(genbaseline.BUSBW_FLOOR_SHARE * statistics.median(inliers), 1)
    assert floor != round(genbaseline.BUSBW_FLOOR_SHARE * statistics.median(v for _, v in DGX), 1)
    section = result.stdout.split("[bench.allreduce]\n", 1)[1]
    line = section.splitlines()[0]
    assert line.startswith(f"min_busbw_gbps = {floor}  # {METRIC} median "), line
    assert f"without 2 outliers, x0.9: {len(inliers)} of " in line


def test_page_draws_the_distribution_and_marks_outliers(fleet_dir: Path, tmp_path: Path) -> None:
    exe = binary()
    if exe is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    page = tmp_path / "fleet.html"
    cli("compare", str(fleet_dir), "--format", "html", "--output", str(page))
    browser = Browser(exe)
    try:
        browser.open(page.as_uri())
        assert browser.errors() == []
        text = browser.evaluate("document.getElementById('figures').textContent")
        assert METRIC in text and "dgx-low-a" in text and "h200-odd" in text
        marks = browser.evaluate("document.querySelectorAll('#figures .dist i.o').length")
        assert marks == len(PLANTED)
        browser.evaluate("document.getElementById('figures').scrollIntoView()")
        browser.screenshot(artifacts() / "fleet-report-figures.png")
    finally:
        browser.close()


def test_the_checks_that_measure_are_those_compare_reads_in_older_reports() -> None:
    # A report without `figures` has them read from its results by id (cluster.figures): the
    # checks that declare figures must be exactly those, or old and new reports would differ.
    kinds = {spec.id: spec.figures for spec in discover(include_plugins=False)}
    per_gpu = {i for i, kind in kinds.items() if kind == result_figures.GPU_MEDIAN}
    assert per_gpu == set(figures.ACTIVE_RESULTS)
    each = {i for i, kind in kinds.items() if kind == result_figures.EACH}
    assert each == {i for i in kinds if i.startswith("bench.")}
