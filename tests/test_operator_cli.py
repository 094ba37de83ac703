"""The command line as an operator scanning many nodes meets it (issue 13): failures first,
what was not checked, one error style, precise messages."""

from __future__ import annotations

import pytest

from tests.harness import cli

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
