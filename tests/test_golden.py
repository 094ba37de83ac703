"""The four output formats are contracts (dashboards, CI parsers, node_exporter read them): each
renders one fixed report, with every status and the awkward characters real summaries carry,
exactly as its golden file in tests/data/golden/ says. After an intended change run
`pytest tests/test_golden.py --regen-golden` and review the diff.

The JUnit mapping of the two statuses JUnit has no word for is asserted separately: WARN is a
passing testcase with the warning in system-out (a warning must not fail a CI job), SKIP is
<skipped>, not a pass.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable

import jsonschema
import pytest

from preflight.model import Action, CheckResult, Evidence, Finding, Report, Status
from preflight.output import FORMATS, RenderOptions, renderers
from tests.harness import SCHEMA

GPU0 = "0000:18:00.0"
REPORT = Report(
    tool_version="0.1.0",
    hostname="gpu-node-017",
    started_at="2026-11-29T12:00:00+00:00",
    duration_s=1.234567,
    baseline="dgx-h100",
    baseline_source="built-in:dgx-h100",
    profile=None,
    results=(
        CheckResult(
            "pcie.link",
            "GPU and NIC links at full speed and width",
            Status.PASS,
            "16 devices at their maximum link",
            0.012,
            (
                Finding(
                    f"GPU0 {GPU0}",
                    Status.PASS,
                    "32.0 GT/s x16",
                    (Evidence(f"sysfs:/sys/bus/pci/devices/{GPU0}/current_link_width", 16, "16"),),
                ),
            ),
        ),
        CheckResult(
            "cpu.governor",
            "Every CPU runs the performance frequency governor",
            Status.WARN,
            "cpu0 and 3 more: 4 CPUs on powersave, expected performance",
            0.003,
            (
                Finding(
                    "cpu0 and 3 more",
                    Status.WARN,
                    "4 CPUs on powersave, expected performance",
                    (
                        Evidence(
                            "sysfs:/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
                            "powersave",
                            "performance",
                        ),
                    ),
                    Action.FIX_CONFIG,
                    "`cpupower frequency-set -g performance`",
                ),
            ),
            action=Action.FIX_CONFIG,
            action_text="`cpupower frequency-set -g performance`",
        ),
        CheckResult(
            "rdma.port_state",
            "RDMA ports are active",
            Status.FAIL,
            'mlx5_3 port 1: state DOWN, phys "Polling" <expected LinkUp> & µs',
            0.0456,
            (
                Finding(
                    "mlx5_3 port 1",
                    Status.FAIL,
                    'state DOWN, phys "Polling"',
                    (
                        Evidence("sysfs:/sys/class/infiniband/mlx5_3/ports/1/state", "1: DOWN"),
                        Evidence(
                            "sysfs:/sys/class/infiniband/mlx5_3/ports/1/phys_state",
                            "2: Polling",
                            "5: LinkUp",
                        ),
                    ),
                    Action.REPLACE,
                    'reseat the cable of mlx5_3 port 1 <"QSFP"> & µs',
                ),
                Finding("mlx5_0 port 1", Status.PASS, "ACTIVE, LinkUp"),
            ),
            action=Action.REPLACE,
            action_text='reseat the cable of mlx5_3 port 1 <"QSFP"> & µs',
        ),
        CheckResult(
            "gpu.nvml_available",
            "NVML answers for every GPU",
            Status.SKIP,
            "no NVIDIA GPU on this node",
            0.0,
        ),
        CheckResult(
            "xid.events",
            "No GPU Xid errors since boot",
            Status.ERROR,
            "did not finish within 10 s; abandoned (blocked reading /dev/kmsg)",
            10.000001,
            traceback='Traceback (most recent call last):\n  File "x.py", line 1\nTimeoutError\n',
        ),
    ),
    facts={"pci.gpu_count": 8, "kernel.release": "5.15.0-1067-nvidia", "shm.size_bytes": None},
)


def rendered(fmt: str, verbose: bool = False, width: int = 120, problems: bool = False) -> str:
    out = io.StringIO()
    options = RenderOptions(verbose=verbose, color=False, width=width, problems=problems)
    renderers()[fmt](REPORT, out, options)
    return out.getvalue()


GOLDEN_FILES = {
    ("table", False): "report.table.txt",
    ("table", True): "report.table-verbose.txt",
    ("json", False): "report.json",
    ("jsonl", False): "report.jsonl",
    ("junit", False): "report.junit.xml",
    ("prometheus", False): "report.prom",
}


def test_every_format_has_a_golden_file() -> None:
    assert {fmt for fmt, _ in GOLDEN_FILES} == set(FORMATS)
    assert {r.status for r in REPORT.results} == set(Status)


@pytest.mark.parametrize(("fmt", "verbose"), sorted(GOLDEN_FILES))
def test_output_matches_its_golden_file(
    fmt: str, verbose: bool, golden: Callable[[str, str], None]
) -> None:
    golden(GOLDEN_FILES[fmt, verbose], rendered(fmt, verbose))


# The table in an 80-column terminal, and the same narrowed further: columns fold, rows keep
# their failures-first order; --problems leaves the passing and skipped rows out.
TABLE_VARIANTS = {
    "report.table-80.txt": {"width": 80},
    "report.table-60.txt": {"width": 60},
    "report.table-problems.txt": {"width": 120, "problems": True},
}


@pytest.mark.parametrize("name", sorted(TABLE_VARIANTS))
def test_table_variants_match_their_golden_files(
    name: str, golden: Callable[[str, str], None]
) -> None:
    golden(name, rendered("table", **TABLE_VARIANTS[name]))  # type: ignore[arg-type]


def test_table_rows_are_failures_first_and_the_footer_names_them() -> None:
    lines = rendered("table").splitlines()
    cells = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert [c for c in cells if c] == ["ERROR", "FAIL", "WARN", "PASS", "SKIP"]  # action lines
    assert lines[-2:] == ["failed: rdma.port_state", "could not run: xid.events"]
    assert all(line == line.rstrip() for line in lines)


def test_problems_view_shows_only_what_is_not_passing() -> None:
    text = rendered("table", problems=True)
    assert "rdma.port_state" in text and "xid.events" in text and "cpu.governor" in text
    assert "pcie.link" not in text and "gpu.nvml_available" not in text
    assert "1 pass" in text and "1 skip" in text  # the footer still counts everything


def test_the_json_golden_file_is_a_valid_report() -> None:
    jsonschema.validate(json.loads(rendered("json")), SCHEMA)


def junit_cases() -> dict[str, ET.Element]:
    root = ET.fromstring(rendered("junit"))
    return {case.attrib["name"]: case for case in root.iter("testcase")}


def test_junit_warn_is_a_passing_case_that_says_warn() -> None:
    case = junit_cases()["cpu.governor"]
    assert [child.tag for child in case] == ["system-out"]
    out = case.find("system-out")
    assert out is not None and out.text is not None
    assert out.text.startswith("WARN: cpu0 and 3 more: 4 CPUs on powersave")
    assert "observed 'powersave', expected performance" in out.text


def test_junit_skip_is_skipped_with_the_reason() -> None:
    case = junit_cases()["gpu.nvml_available"]
    assert [(child.tag, child.attrib) for child in case] == [
        ("skipped", {"message": "no NVIDIA GPU on this node"})
    ]


def test_junit_fail_error_and_pass() -> None:
    cases = junit_cases()
    assert [child.tag for child in cases["pcie.link"]] == []
    failure = cases["rdma.port_state"].find("failure")
    assert failure is not None and failure.attrib["message"].startswith("mlx5_3 port 1")
    assert "mlx5_0" not in (failure.text or "")  # only the findings that are not a pass
    error = cases["xid.events"].find("error")
    assert error is not None and "TimeoutError" in (error.text or "")
    suite = ET.fromstring(rendered("junit")).find("testsuite")
    assert suite is not None
    assert {k: suite.attrib[k] for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
    }


def test_the_prometheus_golden_file_parses() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    names = {f.name for f in text_string_to_metric_families(rendered("prometheus"))}
    assert "preflight_check_status" in names
