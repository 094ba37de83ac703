"""dcgm.diag: dcgmi's JSON parsed on real outputs (tests/data/real/dcgm, ground truth in each
file's SOURCE line), the process behaviour through the stand-in tests/standins/dcgmi (which
replays those outputs; not a diagnostic), and a property test of the parser."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight.active.collect import MEASURED, ActiveOutcome
from preflight.active.dcgm import (
    DcgmParseError,
    DcgmUnavailable,
    could_not_run,
    parse,
    run_diag,
    trusted_program,
)
from preflight.active.judge import judge_dcgm
from preflight.execute import RunOptions, execute
from preflight.model import Status
from tests.paths import DATA

REAL = DATA / "real" / "dcgm"
STANDIN = Path(__file__).parent / "standins" / "dcgmi"


def real(name: str) -> str:
    return (REAL / name).read_text()


def test_v3_pass_with_banner_and_nulls() -> None:
    run = parse(real("v3.1.0_8gpu_pass_nvvs-jsonresult-test.txt"))
    assert run.version == "3.1.0"
    assert len(run.results) == 10 * 8
    assert {r.gpu for r in run.results} == set(range(8))
    assert {r.status for r in run.results} == {"pass"}
    assert {r.test for r in run.results if r.category == "Custom"} == {"software"}
    verdict = judge_dcgm(ActiveOutcome("dcgm", MEASURED, dcgm=run), {0: "GPU0 0000:18:00.0"})
    assert verdict.status is Status.PASS
    assert verdict.summary == "DCGM diagnostic 3.1.0 passed on 8 subjects"


def test_v4_test_object_from_issue_215() -> None:
    text = real("v4_r3_diagnostic-test_8gpu_pass_dcgm-issue215.json")
    test = json.loads(text[text.find("{") :])
    doc = {"DCGM Diagnostic": {"test_categories": [{"category": "Hardware", "tests": [test]}]}}
    run = parse(json.dumps(doc))
    assert [(r.test, r.gpu, r.status) for r in run.results] == [
        ("diagnostic", g, "pass") for g in range(8)
    ]


def test_v4_gb10_software_fail() -> None:
    run = parse(real("v4.2.3_r1_gb10_software-fail_exit226.json"))
    assert run.version == "4.2.3"
    [result] = run.results
    assert (result.category, result.test, result.gpu, result.status) == (
        "Deployment",
        "software",
        0,
        "fail",
    )
    assert result.detail.startswith("Persistence Mode: Persistence mode for GPU 0 is disabled")
    verdict = judge_dcgm(ActiveOutcome("dcgm", MEASURED, dcgm=run), {0: "GPU0 0000:18:00.0"})
    assert verdict.status is Status.FAIL
    assert verdict.summary.startswith("GPU0 0000:18:00.0: fail: software (Persistence Mode:")


def test_v3_issue139_every_test_skipped_is_a_skip_not_a_pass_or_fail() -> None:
    run = parse(real("v3_r3_t400_all-skip_dcgm-issue139.json"))
    assert [(r.category, r.test, r.gpu, r.status) for r in run.results] == [
        ("Integration", "PCIe", 0, "skip"),
        ("Hardware", "GPU Memory", 0, "skip"),
        ("Hardware", "Diagnostic", 0, "skip"),
        ("Hardware", "EUD Test", 0, "skip"),
        ("Stress", "Targeted Stress", 0, "skip"),
    ]
    verdict = judge_dcgm(ActiveOutcome("dcgm", MEASURED, dcgm=run), {0: "GPU0 0000:18:00.0"})
    assert verdict.status is Status.SKIP
    assert verdict.summary == "every DCGM test was skipped"


REAL_VERDICTS = [
    # file, version, results, statuses seen, verdict (ground truth in each file's SOURCE line)
    ("v3.1.0_8gpu_pass_nvvs-jsonresult-test.txt", "3.1.0", 80, {"pass"}, Status.PASS),
    ("v4.2.3_r1_gb10_software-fail_exit226.json", "4.2.3", 1, {"fail"}, Status.FAIL),
    ("v3_r3_t400_all-skip_dcgm-issue139.json", "", 5, {"skip"}, Status.SKIP),
]


@pytest.mark.parametrize(("name", "version", "count", "statuses", "verdict"), REAL_VERDICTS)
def test_real_outputs_against_their_ground_truth(
    name: str, version: str, count: int, statuses: set[str], verdict: Status
) -> None:
    run = parse(real(name))
    assert (run.version, len(run.results), {r.status for r in run.results}) == (
        version,
        count,
        statuses,
    )
    assert judge_dcgm(ActiveOutcome("dcgm", MEASURED, dcgm=run), {}).status is verdict


def in_use_document() -> str:
    """dcgmi -j's document when the diagnostic cannot start (dcgmi/Diag.cpp
    HelperDisplayFailureMessage) around the real DCGM_ST_IN_USE message (NVSentinel #1363)."""
    message = real("dcgm-st-in-use_message_nvsentinel-issue1363.txt").splitlines()[-1]
    error = f"Error: Unable to complete diagnostic for group 2. Return: (-34) : {message}\n"
    return json.dumps({"DCGM Diagnostic": {"runtime_error": error, "version": "4.2.3"}}, indent=3)


def test_in_use_document_is_a_skip_with_the_reason_never_a_fail() -> None:
    run = parse(in_use_document())
    assert run.results == () and "affected resource is in use" in run.runtime_error
    verdict = judge_dcgm(ActiveOutcome("dcgm", MEASURED, dcgm=run), {})
    assert verdict.status is Status.SKIP
    assert verdict.summary == "the GPUs are in use (DCGM_ST_IN_USE): run it on an idle node"


@pytest.mark.parametrize("exit_status", ["0", "222"])
def test_in_use_through_the_standin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exit_status: str
) -> None:
    replay = tmp_path / "in-use.json"
    replay.write_text(in_use_document())
    monkeypatch.setenv("PREFLIGHT_STANDIN_DCGMI_REPLAY", str(replay))
    monkeypatch.setenv("PREFLIGHT_STANDIN_DCGMI_EXIT", exit_status)
    answer = run_diag(2, 30, str(STANDIN))
    assert answer == DcgmUnavailable(
        "in_use", "the GPUs are in use (DCGM_ST_IN_USE): run it on an idle node"
    )


COULD_NOT_RUN = [
    # exit status, output, kind (None: a result to parse); dcgmReturn_t values: dcgm_structs.h
    (222, "", "in_use"),
    (217, "", "in_use"),  # DCGM_ST_DIAG_ALREADY_RUNNING -39
    (0, "Return: (-39) : A diag instance is already running, cannot run", "in_use"),
    (235, "", "engine"),  # DCGM_ST_CONNECTION_NOT_VALID -21
    (0, "Error: unable to establish a connection to the specified host: localhost", "engine"),
    (0, "Error: Unable to connect to host engine. Host engine connection invalid", "engine"),
    (250, "", None),  # DCGM_ST_NOT_SUPPORTED -6: not a missing engine
    (226, "", None),  # DCGM_ST_NVVS_ERROR -30: the results say what failed
    (0, "", None),
]


@pytest.mark.parametrize(("code", "text", "kind"), COULD_NOT_RUN)
def test_could_not_run_table(code: int, text: str, kind: str | None) -> None:
    answer = could_not_run(code, text)
    assert (answer.kind if answer else None) == kind


def test_other_runtime_error_is_an_error_with_dcgms_words() -> None:
    doc = {
        "DCGM Diagnostic": {
            "runtime_error": "Error: Unable to complete diagnostic. Return: "
            "(-52) : The NVVS binary was not found\n",
            "version": "4.0.0",
        }
    }
    run = parse(json.dumps(doc))
    verdict = judge_dcgm(ActiveOutcome("dcgm", MEASURED, dcgm=run), {})
    assert verdict.status is Status.ERROR
    assert "NVVS binary was not found" in verdict.summary


def test_v4_summary_only_test_counts_for_the_group() -> None:
    test = {"name": "software", "results": [], "test_summary": {"status": "Fail", "info": ["x"]}}
    doc = {"DCGM Diagnostic": {"test_categories": [{"category": "Deployment", "tests": [test]}]}}
    [r] = parse(json.dumps(doc)).results
    assert (r.test, r.gpu, r.status, r.detail) == ("software", None, "fail", "x")


@pytest.mark.parametrize("text", ["", "Error: could not open", "{not json", "[]", '{"x": 1}'])
def test_not_a_result_document(text: str) -> None:
    with pytest.raises(DcgmParseError):
        parse(text)


def test_unknown_status_is_not_read_as_pass() -> None:
    doc = {
        "DCGM Diagnostic": {
            "test_categories": [
                {
                    "category": "c",
                    "tests": [
                        {
                            "name": "t",
                            "results": [
                                {"entity_group": "GPU", "entity_id": 0, "status": "Inconclusive"}
                            ],
                        }
                    ],
                }
            ]
        }
    }
    with pytest.raises(DcgmParseError, match="unknown status"):
        parse(json.dumps(doc))


STATUS = st.sampled_from(["Pass", "PASS", "Fail", "Warn", "Skip", "Not Run"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(max_size=8), st.lists(st.tuples(st.integers(0, 15), STATUS), max_size=6)),
        max_size=5,
    ),
    st.booleans(),
)
def test_parser_counts_every_result(
    tests: list[tuple[str, list[tuple[int, str]]]], v4: bool
) -> None:
    def result(gpu: int, status: str) -> dict[str, Any]:
        if v4:
            return {"entity_group": "GPU", "entity_id": gpu, "status": status}
        return {"gpu_ids": gpu, "status": status}

    body = [{"name": n, "results": [result(g, s) for g, s in rs]} for n, rs in tests]
    root = "DCGM Diagnostic" if v4 else "DCGM GPU Diagnostic"
    run = parse(json.dumps({root: {"test_categories": [{"category": "c", "tests": body}]}}))
    assert len(run.results) == sum(len(rs) for _, rs in tests)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=3),
        max_leaves=12,
    )
)
def test_parser_only_raises_its_own_error(doc: Any) -> None:
    """Any JSON, in any place of the document: parsed, or DcgmParseError, never another error."""
    entity = {"entity_group": "GPU", "entity_id": doc, "status": "Pass"}
    tests = [{"name": "t", "results": [entity, {"gpu_ids": doc, "status": doc}]}]
    shapes = (doc, {"DCGM GPU Diagnostic": doc}, {"DCGM Diagnostic": {"test_categories": doc}})
    for wrapped in (*shapes, {"DCGM Diagnostic": {"test_categories": [{"tests": tests}]}}):
        with contextlib.suppress(DcgmParseError):
            parse(json.dumps(wrapped))


# -- process behaviour, through the stand-in ----------------------------------------------------


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(
        "PREFLIGHT_STANDIN_DCGMI_REPLAY", str(REAL / "v4.2.3_r1_gb10_software-fail_exit226.json")
    )
    return str(STANDIN)


def test_standin_replay_with_exit_226_is_still_judged(
    standin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFLIGHT_STANDIN_DCGMI_EXIT", "226")
    answer = run_diag(1, 30, standin)
    assert not isinstance(answer, DcgmUnavailable)
    assert [r.status for r in answer.results] == ["fail"]


@pytest.mark.parametrize(("mode", "kind"), [("in-use", "in_use"), ("no-engine", "engine")])
def test_could_not_run_is_never_a_hardware_failure(
    standin: str, monkeypatch: pytest.MonkeyPatch, mode: str, kind: str
) -> None:
    monkeypatch.setenv("PREFLIGHT_STANDIN_DCGMI_MODE", mode)
    answer = run_diag(2, 30, standin)
    assert isinstance(answer, DcgmUnavailable) and answer.kind == kind
    verdict = judge_dcgm(ActiveOutcome("dcgm", MEASURED, dcgm=answer), {})
    assert verdict.status is Status.SKIP


def test_a_hung_dcgmi_is_killed_with_its_process_group(
    standin: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    monkeypatch.setenv("PREFLIGHT_STANDIN_DCGMI_MODE", "hang")
    monkeypatch.setenv("PREFLIGHT_STANDIN_DCGMI_PIDS", str(pids))
    start = time.monotonic()
    answer = run_diag(3, 3.0, standin)
    assert time.monotonic() - start < 10
    assert isinstance(answer, DcgmUnavailable) and answer.kind == "timeout"
    assert answer.reason == "dcgmi diag -r 3 did not finish within 3 s (killed)"
    verdict = judge_dcgm(ActiveOutcome("dcgm", MEASURED, dcgm=answer), {})
    assert verdict.status is Status.ERROR
    for line in pids.read_text().splitlines():
        pid = int(line.split()[0])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        assert not _alive(pid), f"process {pid} of the group survived"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(shutil.which("dcgmi") is not None, reason="this machine has DCGM")
def test_without_dcgm_it_skips_saying_so() -> None:
    answer = run_diag(1, 5)
    assert isinstance(answer, DcgmUnavailable) and answer.kind == "missing"
    assert answer.reason == "DCGM is not installed (no dcgmi on PATH)"


def test_end_to_end_through_run(standin: str) -> None:
    env = {"PREFLIGHT_ACTIVE_TEST_DCGMI": standin}
    report = execute(RunOptions(profile="dgx-h100", only=("dcgm.diag",), env=env))
    [result] = report.results
    assert result.status is Status.FAIL
    assert result.summary.startswith("GPU0 0000:18:00.0: fail: software")


def test_on_a_profile_dcgm_skips() -> None:
    report = execute(RunOptions(profile="dgx-h100", level=3, only=("dcgm.diag",)))
    assert report.results[0].status is Status.SKIP
    assert "profile describes a mocked node" in report.results[0].summary
    assert os.environ.get("PREFLIGHT_ACTIVE_TEST_DCGMI") is None


# -- PREFLIGHT_ACTIVE_TEST_DCGMI: an environment value that names a program run as root ---------


def _program(folder: Path, mode: int = 0o755, folder_mode: int = 0o755, uid: int = -1) -> str:
    folder.mkdir(exist_ok=True)
    path = folder / "dcgmi"
    path.write_bytes(STANDIN.read_bytes())
    path.chmod(mode)
    folder.chmod(folder_mode)
    if uid >= 0:
        os.chown(path, uid, -1)
    return str(path)


TRUST = [
    # how the program is set up, the refusal (None: it may run)
    (lambda d: _program(d), None),
    (lambda d: "tests/standins/dcgmi", "not an absolute path"),
    (lambda d: str(d / "missing"), "No such file or directory"),
    (lambda d: _program(d, mode=0o644), "not an executable regular file"),
    (lambda d: (_program(d), str(d))[1], "not an executable regular file"),  # a folder
    (lambda d: _program(d, mode=0o775), "it is writable by group or others (mode 775)"),
    (lambda d: _program(d, mode=0o757), "it is writable by group or others (mode 757)"),
    (
        lambda d: _program(d, folder_mode=0o777),
        "its folder is writable by group or others (mode 777)",
    ),
]


@pytest.mark.parametrize(("make", "refusal"), TRUST)
def test_trusted_program_table(tmp_path: Path, make: Any, refusal: str | None) -> None:
    assert trusted_program(make(tmp_path / "bin")) == refusal


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_program_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = _program(tmp_path / "bin", uid=65534)
    assert trusted_program(path) == "it is owned by uid 65534, not root or this user"


def test_a_refused_program_is_an_error_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "bin" / "dcgmi"
    path.parent.mkdir()
    path.write_text(f"#!/bin/sh\ntouch {marker}\n")
    path.chmod(0o777)
    env = {"PREFLIGHT_ACTIVE_TEST_DCGMI": str(path)}
    report = execute(RunOptions(profile="dgx-h100", only=("dcgm.diag",), env=env))
    [result] = report.results
    assert result.status is Status.ERROR
    assert result.summary == (
        f"PREFLIGHT_ACTIVE_TEST_DCGMI='{path}' refused: it is writable by group or others "
        "(mode 777)"
    )
    assert not marker.exists()
