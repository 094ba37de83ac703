"""Tests for preflight.model (Status, worst, Verdict, Report) and preflight.exitcodes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from preflight import exitcodes
from preflight.exitcodes import ExitCode
from preflight.model import (
    SCHEMA_VERSION,
    CheckResult,
    Evidence,
    Finding,
    Report,
    Status,
    Verdict,
    worst,
)

# ----------------------------------------------------------------------------- helpers


def result(status: Status, check_id: str = "area.prop", **kw: Any) -> CheckResult:
    return CheckResult(check_id, "Title", status, f"{status.value} summary", 0.1234567891, **kw)


def report(*statuses: Status, **kw: object) -> Report:
    results = tuple(result(s, f"area.c{i}") for i, s in enumerate(statuses))
    return Report(
        tool_version="1.2.3",
        hostname="node1",
        started_at="2024-01-01T00:00:00Z",
        duration_s=1.23456789,
        baseline="generic",
        baseline_source="built-in:generic",
        profile=None,
        results=results,
        **kw,  # type: ignore[arg-type]
    )


def finding(subject: str, status: Status, message: str = "msg") -> Finding:
    return Finding(subject, status, message)


# ----------------------------------------------------------------------------- Status.rank


def test_rank_ordering() -> None:
    assert Status.PASS.rank == Status.SKIP.rank == 0
    assert Status.PASS.rank < Status.WARN.rank < Status.ERROR.rank < Status.FAIL.rank


def test_status_is_str_enum() -> None:
    assert Status("fail") is Status.FAIL
    assert Status.WARN.value == "warn" and isinstance(Status.WARN, str)


# ----------------------------------------------------------------------------- worst


def test_worst_empty_returns_default() -> None:
    assert worst([]) is Status.PASS
    assert worst([], default=Status.SKIP) is Status.SKIP


def test_worst_all_skipped_is_skip() -> None:
    assert worst([Status.SKIP, Status.SKIP]) is Status.SKIP


@pytest.mark.parametrize(
    "statuses",
    [
        [Status.SKIP, Status.PASS],
        [Status.PASS, Status.SKIP],
        [Status.SKIP, Status.PASS, Status.SKIP],
    ],
)
def test_worst_skip_only_when_everything_skipped(statuses: list[Status]) -> None:
    assert worst(statuses) is Status.PASS


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([Status.PASS, Status.WARN], Status.WARN),
        ([Status.SKIP, Status.WARN], Status.WARN),
        ([Status.WARN, Status.ERROR], Status.ERROR),
        ([Status.ERROR, Status.WARN, Status.PASS], Status.ERROR),
        ([Status.ERROR, Status.FAIL], Status.FAIL),
        ([Status.FAIL, Status.ERROR, Status.WARN, Status.SKIP, Status.PASS], Status.FAIL),
    ],
)
def test_worst_by_severity(statuses: list[Status], expected: Status) -> None:
    assert worst(statuses) is expected
    assert worst(reversed(statuses)) is expected


def test_worst_accepts_generator() -> None:
    assert worst(s for s in (Status.PASS, Status.FAIL)) is Status.FAIL


# ----------------------------------------------------------------------------- Verdict


def test_from_findings_empty_is_skip_with_reason() -> None:
    v = Verdict.from_findings([], ok="all good")
    assert v.status is Status.SKIP
    assert v.summary  # a reason, never empty
    assert v.findings == ()


def test_from_findings_empty_custom_reason_and_status() -> None:
    v = Verdict.from_findings([], ok="ok", empty="no GPUs", empty_status=Status.FAIL)
    assert v.status is Status.FAIL
    assert v.summary == "no GPUs"


def test_from_findings_all_pass_uses_ok() -> None:
    items = [finding("gpu0", Status.PASS), finding("gpu1", Status.PASS)]
    v = Verdict.from_findings(items, ok="2 GPUs fine")
    assert v.status is Status.PASS
    assert v.summary == "2 GPUs fine"
    assert v.findings == tuple(items)


def test_from_findings_pass_and_skip_is_pass() -> None:
    v = Verdict.from_findings(
        [finding("a", Status.SKIP, "no link attributes"), finding("b", Status.PASS)], ok="ok"
    )
    assert v.status is Status.PASS
    # A summary never claims what was not checked.
    assert v.summary == "ok; 1 of 2 not checked: a: no link attributes"


def test_from_findings_all_skipped_says_why_not_ok() -> None:
    items = [finding("gpu0", Status.SKIP, "no link attributes")] * 2
    v = Verdict.from_findings(items, ok="2 links at full speed and width")
    assert v.status is Status.SKIP
    assert v.summary == "2 of 2 skip: gpu0: no link attributes; …"
    one = Verdict.from_findings(items[:1], ok="1 links at full speed and width")
    assert one.summary == "gpu0: no link attributes"


def test_from_findings_one_failure_names_subject() -> None:
    items = [
        finding("gpu0", Status.PASS),
        finding("gpu1", Status.FAIL, "link x8, expected x16"),
        finding("gpu2", Status.WARN, "slow"),
    ]
    v = Verdict.from_findings(items, ok="fine")
    assert v.status is Status.FAIL
    assert v.summary == "gpu1: link x8, expected x16"
    assert len(v.findings) == 3


def test_from_findings_several_failures_n_of_m() -> None:
    items = [
        finding("gpu0", Status.FAIL, "bad a"),
        finding("gpu1", Status.PASS),
        finding("gpu2", Status.FAIL, "bad b"),
        finding("gpu3", Status.PASS),
    ]
    v = Verdict.from_findings(items, ok="fine")
    assert v.status is Status.FAIL
    assert v.summary.startswith("2 of 4 fail: gpu0: bad a")


def test_from_findings_only_worst_status_counted() -> None:
    items = [finding("a", Status.WARN, "w"), finding("b", Status.ERROR, "e")]
    v = Verdict.from_findings(items, ok="fine")
    assert v.status is Status.ERROR
    assert v.summary == "b: e"


def test_verdict_skip() -> None:
    v = Verdict.skip("not here")
    assert (v.status, v.summary, v.findings) == (Status.SKIP, "not here", ())


# ----------------------------------------------------------------------------- to_dict


def test_finding_and_evidence_to_dict() -> None:
    f = Finding("gpu0", Status.WARN, "m", (Evidence("sysfs:/x", 3, "== 4"),))
    assert f.to_dict() == {
        "subject": "gpu0",
        "status": "warn",
        "message": "m",
        "evidence": [{"source": "sysfs:/x", "observed": 3, "expected": "== 4"}],
    }


def test_check_result_to_dict_traceback_only_when_set() -> None:
    plain = result(Status.PASS).to_dict()
    assert "traceback" not in plain
    assert plain["duration_s"] == round(0.1234567891, 6)
    assert plain["status"] == "pass"
    crashed = result(Status.ERROR, traceback="Traceback...").to_dict()
    assert crashed["traceback"] == "Traceback..."


def test_report_counts() -> None:
    r = report(Status.PASS, Status.PASS, Status.FAIL, Status.SKIP)
    assert r.counts == {"pass": 2, "warn": 0, "fail": 1, "skip": 1, "error": 0}
    assert set(r.counts) == {s.value for s in Status}


def test_report_status() -> None:
    assert report().status is Status.SKIP
    assert report(Status.SKIP, Status.SKIP).status is Status.SKIP
    assert report(Status.SKIP, Status.PASS).status is Status.PASS
    assert report(Status.WARN, Status.ERROR).status is Status.ERROR


def test_report_to_dict_shape() -> None:
    r = report(Status.PASS, Status.WARN, facts={"z.key": 1, "a.key": "x"})
    d = r.to_dict()
    assert set(d) == {
        "schema_version",
        "tool",
        "host",
        "started_at",
        "duration_s",
        "baseline",
        "summary",
        "figures",
        "results",
        "facts",
    }
    assert list(d).index("figures") < list(d).index("results")  # compare reads it from the head
    assert d["figures"] == {}
    assert d["schema_version"] == SCHEMA_VERSION
    assert d["tool"] == {"name": "preflight", "version": "1.2.3"}
    assert d["host"] == {"hostname": "node1", "profile": None}
    assert d["started_at"] == "2024-01-01T00:00:00Z"
    assert d["duration_s"] == round(1.23456789, 6)
    assert d["baseline"] == {"name": "generic", "source": "built-in:generic"}
    assert d["summary"]["status"] == "warn"
    assert d["summary"]["counts"] == r.counts
    assert [x["id"] for x in d["results"]] == ["area.c0", "area.c1"]
    assert list(d["facts"]) == ["a.key", "z.key"]  # sorted
    json.dumps(d)  # serialisable


# ----------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("statuses", "strict", "expected"),
    [
        ((Status.PASS, Status.FAIL), False, ExitCode.FAILED),
        ((Status.PASS, Status.ERROR), False, ExitCode.FAILED),
        ((Status.PASS, Status.WARN), False, ExitCode.OK),
        ((Status.PASS, Status.WARN), True, ExitCode.FAILED),
        ((Status.PASS, Status.SKIP), True, ExitCode.OK),
        ((Status.SKIP, Status.SKIP), False, ExitCode.OK),
        ((Status.SKIP, Status.SKIP), True, ExitCode.OK),
        ((), False, ExitCode.OK),
    ],
)
def test_for_report(statuses: tuple[Status, ...], strict: bool, expected: ExitCode) -> None:
    code = exitcodes.for_report(report(*statuses), strict=strict)
    assert code is expected
    assert int(code) == int(expected)


def test_exit_code_values() -> None:
    assert (ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE, ExitCode.CONFIG) == (0, 1, 2, 3)


def test_report_figures_are_its_results_first_of_each_metric() -> None:
    results = (
        CheckResult("b.x", "", Status.PASS, "", 0.0, figures=(("m (GB/s)", 2.0), ("a (us)", 1.0))),
        CheckResult("c.y", "", Status.FAIL, "", 0.0, figures=(("m (GB/s)", 9.0),)),
    )
    r = Report("1", "n", "t", 0.0, "b", "b", None, results)
    assert r.to_dict()["figures"] == {"a (us)": 1.0, "m (GB/s)": 2.0}
