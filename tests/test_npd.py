"""`preflight run --npd`: node-problem-detector's custom plugin protocol (exit 0 OK, 1 problem,
2 unknown; stdout trimmed and cut at max_output_length bytes, 80 by default, is the condition's
message), run as NPD runs it: a real process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from preflight import npd
from preflight.model import Action, CheckResult, Report, Status

CASES = [
    # profile, exit code, how the message starts
    ("dgx-h100", 0, "OK "),
    ("dgx-h100-unprivileged", 0, "OK "),
    ("dgx-h100-acs-enabled", 1, "fix-config: FAIL pcie.acs"),
    ("dgx-h100-gpu-missing", 1, "reboot: FAIL "),
    ("dgx-h100-xid-79", 1, "reboot: FAIL "),
]


def _plugin(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "preflight", "run", "--npd", *args],
        capture_output=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("profile", "code", "start"), CASES)
def test_plugin_answers_in_one_short_line(profile: str, code: int, start: str) -> None:
    proc = _plugin("--profile", profile)
    assert proc.returncode == code, proc.stderr
    out = proc.stdout
    assert out.endswith(b"\n") and out.count(b"\n") == 1, out
    line = out.decode("ascii").strip()
    assert line.startswith(start), line
    assert len(out.strip()) <= npd.MAX_OUTPUT_LENGTH


def test_a_run_that_cannot_happen_is_unknown() -> None:
    proc = _plugin("--profile", "no-such-profile")
    assert proc.returncode == npd.UNKNOWN
    assert proc.stdout.decode().startswith("UNKNOWN unknown profile")
    assert len(proc.stdout.strip()) <= npd.MAX_OUTPUT_LENGTH
    assert proc.stderr.decode().count("\n") == 1
    assert proc.stderr.startswith(b"preflight: error:")


def test_output_still_gets_the_report(tmp_path: object) -> None:
    from pathlib import Path

    out = Path(str(tmp_path)) / "r.json"
    proc = _plugin("--profile", "dgx-h100-acs-enabled", "--format", "json", "--output", str(out))
    assert proc.returncode == 1
    assert proc.stdout.decode().startswith("fix-config: FAIL pcie.acs")
    assert b'"pcie.acs"' in out.read_bytes()


def _report(statuses: list[tuple[str, Status]]) -> Report:
    results = tuple(CheckResult(i, i, s, "", 0.0) for i, s in statuses)
    return Report("0", "n", "", 0.0, "b", "b", None, results)


def test_failing_checks_first_and_the_count_of_those_left_out() -> None:
    many = [(f"site.check_{k:02d}", Status.FAIL) for k in range(12)]
    report = _report([("gpu.clocks", Status.WARN), ("gpu.ecc", Status.ERROR), *many])
    line = npd.message(report)
    assert line.startswith("FAIL site.check_00,site.check_01")
    assert len(line) <= 80
    rest = 12 - line.split("; ")[0].count(",") - 1
    assert f" +{rest}" in line
    assert "ERROR" in line  # room is left for the errored checks' count at least
    assert npd.exit_code(report) == npd.PROBLEM


@pytest.mark.parametrize("limit", [16, 40, 80, 200])
def test_message_fits_any_limit(limit: int) -> None:
    report = _report(
        [(f"c{k}", Status.FAIL) for k in range(50)] + [(f"e{k}", Status.ERROR) for k in range(9)]
    )
    assert len(npd.message(report, limit=limit)) <= limit


def test_warnings_are_ok_unless_strict() -> None:
    report = _report([("a.ok", Status.PASS), ("gpu.clocks", Status.WARN)])
    assert npd.exit_code(report) == npd.OK
    assert npd.message(report) == "OK 1 pass, 1 warn: gpu.clocks"
    assert npd.exit_code(report, strict=True) == npd.PROBLEM
    assert npd.message(report, strict=True) == "WARN gpu.clocks"


def test_the_action_class_comes_first_when_there_is_room() -> None:
    results = (
        CheckResult("gpu.row_remap", "", Status.FAIL, "", 0.0, action=Action.RESET_GPU),
        CheckResult("pcie.acs", "", Status.FAIL, "", 0.0, action=Action.FIX_CONFIG),
        CheckResult("xid.events", "", Status.ERROR, "", 0.0),
    )
    report = Report("0", "n", "", 0.0, "b", "b", None, results)
    assert npd.message(report) == "reset-gpu: FAIL gpu.row_remap,pcie.acs; ERROR xid.events"
    # the checks matter more: without room for both, the class is left out
    assert npd.message(report, limit=20) == "FAIL 2; ERROR 1"


def test_hostile_text_stays_one_ascii_line() -> None:
    report = _report([("site.\u2028evil\nline\x1b[31m\u00e9", Status.FAIL)])
    line = npd.message(report)
    assert line == "FAIL site.?evil?line?[31m?"
    assert line.isascii() and line.isprintable()
