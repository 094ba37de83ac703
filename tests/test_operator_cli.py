"""The command line as an operator scanning many nodes meets it (issue 13): failures first,
what was not checked, one error style, precise messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import assert_one_line_error, cli, run_json

ROW_STATUSES = ("ERROR", "FAIL", "WARN", "PASS", "SKIP")


def row_statuses(text: str) -> list[str]:
    cells = [line.split()[1] for line in text.splitlines() if line.startswith("│")]
    return [c for c in cells if c != "│"]  # continuation lines of a folded summary


def test_the_failing_check_is_the_first_row() -> None:
    result = cli("run", "--profile", "dgx-h100-acs-enabled")
    assert result.exit_code == 1
    statuses = row_statuses(result.stdout)
    assert statuses[0] == "FAIL"
    assert statuses == sorted(statuses, key=ROW_STATUSES.index)
    assert "failed: pcie.acs" in result.stdout


@pytest.mark.parametrize("flag", ["--problems", "--quiet", "-q"])
def test_problems_shows_only_what_is_not_passing(flag: str) -> None:
    result = cli("run", "--profile", "dgx-h100-acs-enabled", flag)
    assert result.exit_code == 1
    assert row_statuses(result.stdout) == ["FAIL"]
    assert "pcie.acs" in result.stdout


def test_problems_on_a_healthy_node_says_so_in_one_line() -> None:
    result = cli("run", "--profile", "dgx-h100", "-q")
    assert result.exit_code == 0
    assert row_statuses(result.stdout) == []
    assert "no problems" in result.stdout.splitlines()[0]


# -- unchecked is not healthy ----------------------------------------------------------------

UNPRIVILEGED = ("run", "--profile", "dgx-h100-unprivileged")


def test_essential_checks_that_could_not_run_are_named_in_the_footer() -> None:
    result = cli(*UNPRIVILEGED)
    assert result.exit_code == 0  # as before: a warning to read, not a failure
    assert result.stdout.splitlines()[-1] == "not checked: pcie.acs, pcie.devctl: needs root"


def test_strict_turns_unchecked_essential_checks_into_a_failure() -> None:
    result = cli(*UNPRIVILEGED, "--strict", "-q")
    assert result.exit_code == 1
    assert row_statuses(result.stdout) == ["SKIP", "SKIP"]  # -q keeps what was not checked
    assert result.stdout.splitlines()[-2].startswith("FAIL: ")


def test_the_json_report_carries_what_was_not_checked() -> None:
    code, doc = run_json("--profile", "dgx-h100-unprivileged", "--strict")
    assert code == 1
    assert [u["id"] for u in doc["summary"]["unchecked"]] == ["pcie.acs", "pcie.devctl"]
    assert doc["summary"]["unchecked_fails"] is True and doc["summary"]["status"] == "fail"
    code, doc = run_json("--profile", "dgx-h100")  # as root: everything essential ran
    assert code == 0 and doc["summary"]["unchecked"] == []


def test_a_baseline_can_make_unchecked_essential_checks_fail(tmp_path: Path) -> None:
    toml = tmp_path / "site.toml"
    toml.write_text('[baseline]\nextends = "dgx-h100"\nunchecked_fails = true\n')
    result = cli(*UNPRIVILEGED, "--baseline", str(toml))
    assert result.exit_code == 1
    assert "not checked: pcie.acs, pcie.devctl: needs root" in result.stdout
    toml.write_text('[baseline]\nextends = "dgx-h100"\nessential = ["pcie.acs", "xid.events"]\n')
    result = cli(*UNPRIVILEGED, "--baseline", str(toml), "--strict")
    assert result.exit_code == 1
    assert "not checked: pcie.acs: needs root" in result.stdout  # devctl no longer essential


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ('essential = ["pcie.acss"]', "unknown check 'pcie.acss' (did you mean 'pcie.acs'?)"),
        ('essential = "pcie.acs"', "baseline.essential must be a list of check ids"),
        ('unchecked_fails = "yes"', "baseline.unchecked_fails must be true or false"),
    ],
)
def test_a_bad_essential_setting_is_a_config_error(tmp_path: Path, meta: str, needle: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(f"[baseline]\n{meta}\n")
    assert_one_line_error(cli(*UNPRIVILEGED, "--baseline", str(toml)), 3, needle)
