"""`run --format prometheus`: the node_exporter textfile format, read by prometheus_client."""

from __future__ import annotations

import io
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from preflight.cli import app
from preflight.model import CheckResult, Report, Status
from preflight.output import FORMATS, RenderOptions, junit, renderers
from preflight.output.prometheus import bench_families, render
from preflight.promtext import escape, write

runner = CliRunner()


def parse(text: str) -> dict[str, Any]:
    """Metric name → {labels tuple → value}; the parser raises on any malformed line."""
    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert s.timestamp is None  # the textfile collector rejects timestamps
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def make_report(**over: Any) -> Report:
    results = (
        CheckResult("pcie.acs", "ACS", Status.FAIL, 'root port "0000:15:01.0"\nACS on', 0.0012),
        CheckResult("pcie.link", "Links", Status.PASS, "48 links", 0.002),
        CheckResult("host.bios", "BIOS", Status.SKIP, "nothing pinned", 0.0),
    )
    fields: dict[str, Any] = {
        "tool_version": "0.1.0",
        "hostname": "gpu-001",
        "started_at": "2025-06-01T03:04:05+00:00",
        "duration_s": 0.25,
        "baseline": "dgx-h100",
        "baseline_source": "built-in:dgx-h100",
        "profile": None,
        "results": results,
    }
    fields.update(over)
    return Report(**fields)


def rendered(report: Report) -> str:
    out = io.StringIO()
    render(report, out, RenderOptions())
    return out.getvalue()


def test_registered_as_a_run_format() -> None:
    assert "prometheus" in FORMATS and renderers()["prometheus"] is render


def test_each_check_is_a_state_set() -> None:
    metrics = parse(rendered(make_report()))
    status = metrics["preflight_check_status"]
    assert len(status) == 3 * len(Status)
    assert status[(("check", "pcie.acs"), ("status", "fail"))] == 1
    assert status[(("check", "pcie.acs"), ("status", "pass"))] == 0
    assert status[(("check", "host.bios"), ("status", "skip"))] == 1
    assert sum(v for k, v in status.items() if ("check", "pcie.link") in k) == 1
    assert metrics["preflight_check_duration_seconds"][(("check", "pcie.acs"),)] == 0.0012


def test_node_summary_timestamp_and_info() -> None:
    metrics = parse(rendered(make_report()))
    assert metrics["preflight_node_healthy"][()] == 0
    assert metrics["preflight_node_status"][(("status", "fail"),)] == 1
    assert metrics["preflight_checks"][(("status", "pass"),)] == 1
    assert metrics["preflight_last_run_timestamp_seconds"][()] == 1748747045.0
    assert metrics["preflight_run_duration_seconds"][()] == 0.25
    info = metrics["preflight_info"]
    assert list(info) == [
        (
            ("baseline", "dgx-h100"),
            ("hostname", "gpu-001"),
            ("profile", ""),
            ("version", "0.1.0"),
        )
    ]


def test_healthy_node_and_label_escaping() -> None:
    passing = make_report(
        results=(CheckResult("pcie.link", "Links", Status.PASS, "ok", 0.0),),
        profile='odd "name"\\with\nnewline',
    )
    text = rendered(passing)
    metrics = parse(text)
    assert metrics["preflight_node_healthy"][()] == 1
    labels = dict(next(iter(metrics["preflight_info"])))
    assert labels["profile"] == 'odd "name"\\with\nnewline'
    assert escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_bench_figures() -> None:
    out = io.StringIO()
    write(
        bench_families(
            [(1 << 20, 10.5, 19.6875), (1 << 30, 200.0, 375.0)],
            gate=(1 << 30, 375.0, True),
            started_at="2025-06-01T03:04:05+00:00",
        ),
        out,
    )
    metrics = parse(out.getvalue())
    busbw = metrics["preflight_bench_allreduce_busbw_bytes_per_second"]
    assert busbw[(("size_bytes", str(1 << 30)),)] == 375e9
    assert (
        metrics["preflight_bench_allreduce_algbw_bytes_per_second"][(("size_bytes", str(1 << 20)),)]
        == 10.5e9
    )
    assert metrics["preflight_bench_allreduce_gate_passed"][(("size_bytes", str(1 << 30)),)] == 1
    assert metrics["preflight_bench_last_run_timestamp_seconds"][()] == 1748747045.0


def test_run_format_prometheus_on_a_faulty_profile() -> None:
    result = runner.invoke(
        app, ["run", "--profile", "dgx-h100-acs-enabled", "--format", "prometheus"]
    )
    assert result.exit_code == 1
    metrics = parse(result.stdout)
    assert metrics["preflight_check_status"][(("check", "pcie.acs"), ("status", "fail"))] == 1
    assert metrics["preflight_node_healthy"][()] == 0
    assert result.stdout.endswith("\n")


def test_figures_and_what_slurm_did() -> None:
    measured = (("gpu.gemm BF16 GEMM (TFLOPS)", 700.5),)
    results = (CheckResult("gpu.gemm", "GEMM", Status.PASS, "ok", 1.0, figures=measured),)
    held = {"node": "gpu-001", "action": "held", "message": "not drained: 2 of 4", "guard": None}
    metrics = parse(rendered(make_report(results=results, slurm=held)))
    assert metrics["preflight_figure"] == {(("metric", "gpu.gemm BF16 GEMM (TFLOPS)"),): 700.5}
    slurm = metrics["preflight_slurm_action"]
    assert slurm[(("action", "held"),)] == 1 and sum(slurm.values()) == 1
    plain = parse(rendered(make_report()))
    assert "preflight_figure" not in plain and "preflight_slurm_action" not in plain
    xml = io.StringIO()
    junit.render(make_report(slurm=held), xml, RenderOptions())
    assert '<property name="slurm_action" value="held" />' in xml.getvalue()
    assert '<property name="slurm_message" value="not drained: 2 of 4" />' in xml.getvalue()
