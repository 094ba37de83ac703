"""Slurm drain/resume: parsing, the decision table, and `run --slurm-*` against a fake scontrol."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preflight import slurm
from preflight.cli import app
from preflight.slurm import (
    REASON_MAX,
    Action,
    CallResult,
    NodeState,
    carry_out,
    decide,
    drain_reason,
    parse_show_node,
    run_bounded,
)
from tests.harness import assert_one_line_error

runner = CliRunner()

# `scontrol show node n2` from Slurm 22.05 (Debian bookworm), drained by preflight
SHOW_DRAINED = """\
NodeName=n2 Arch=x86_64 CoresPerSocket=1
   CPUAlloc=0 CPUEfctv=1 CPUTot=1 CPULoad=0.40
   NodeAddr=localhost NodeHostName=localhost Port=16819 Version=22.05.8
   RealMemory=100 AllocMem=0 FreeMem=23168 Sockets=1 Boards=1
   State=IDLE+DRAIN ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A
   Partitions=debug
   Reason=preflight: pcie.acs [root@2026-11-23T01:09:20]
"""
SHOW_ONE_LINE = (
    "NodeName=n3 Arch=x86_64 CoresPerSocket=1 State=MIXED+DRAIN ThreadsPerCore=1 "
    "Partitions=debug Reason=PSU swap, ticket 42 [alice@2026-11-23T01:09:20]"
)
SHOW_IDLE = "NodeName=n1 Arch=x86_64\n   State=IDLE ThreadsPerCore=1 TmpDisk=0\n"


def test_parse_show_node() -> None:
    drained = parse_show_node("n2", SHOW_DRAINED)
    assert drained == NodeState("n2", "IDLE+DRAIN", "preflight: pcie.acs")
    assert drained.drained and drained.drained_by_preflight
    operator = parse_show_node("n3", SHOW_ONE_LINE)
    assert operator.state == "MIXED+DRAIN" and operator.reason == "PSU swap, ticket 42"
    assert operator.drained and not operator.drained_by_preflight
    idle = parse_show_node("n1", SHOW_IDLE)
    assert idle.reason is None and not idle.drained


def test_drain_reason_names_checks_and_stays_short() -> None:
    assert drain_reason(["pcie.acs", "pcie.link"]) == "preflight: pcie.acs,pcie.link"
    many = [f"area.check_number_{i}" for i in range(40)]
    reason = drain_reason(many)
    assert len(reason) <= REASON_MAX and reason.startswith("preflight: area.check_number_0,")
    shown = reason.split(": ", 1)[1].split(",…")[0].count(",") + 1
    assert reason.endswith(f",… (+{40 - shown})")


IDLE = NodeState("n1", "IDLE", None)
OURS = NodeState("n1", "IDLE+DRAIN", "preflight: pcie.acs")
OPERATOR = NodeState("n1", "DOWN+DRAIN", "PSU swap")


@pytest.mark.parametrize(
    ("passed", "state", "drain", "resume", "kind"),
    [
        (False, IDLE, True, False, "drain"),
        (False, None, True, False, "drain"),  # state unknown: a failing node must not take jobs
        (False, OURS, True, False, "drain"),  # new failing set: the reason is updated
        (False, OPERATOR, True, True, "none"),  # never overwrite an operator's reason
        (False, IDLE, False, True, "none"),
        (True, OURS, False, True, "resume"),
        (True, OPERATOR, True, True, "none"),  # never undrain what an operator drained
        (True, IDLE, True, True, "none"),
        (True, None, True, True, "none"),  # reason unknown: not resumed
        (True, OURS, True, False, "none"),
    ],
)
def test_decide(
    passed: bool, state: NodeState | None, drain: bool, resume: bool, kind: str
) -> None:
    failing = [] if passed else ["pcie.link"]
    assert decide(passed, failing, state, drain, resume).kind == kind


def test_same_reason_is_not_rewritten() -> None:
    assert decide(False, ["pcie.acs"], OURS, True, True).kind == "none"


class FakeRunner:
    def __init__(self, show: CallResult) -> None:
        self.show = show
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout_s: float) -> CallResult:
        self.calls.append(list(argv))
        return self.show if argv[1] == "show" else CallResult(True, "")


def test_carry_out_drains_resumes_and_dry_runs() -> None:
    said: list[str] = []
    fake = FakeRunner(CallResult(True, SHOW_IDLE))
    assert carry_out(
        "n1",
        False,
        ["pcie.acs"],
        drain=True,
        resume=True,
        dry_run=False,
        runner=fake,
        say=said.append,
    ).ok
    assert fake.calls[-1] == [
        "scontrol",
        "update",
        "NodeName=n1",
        "State=DRAIN",
        "Reason=preflight: pcie.acs",
    ]
    fake = FakeRunner(CallResult(True, SHOW_DRAINED))
    carry_out("n2", True, [], drain=True, resume=True, dry_run=False, runner=fake, say=said.append)
    assert fake.calls[-1] == ["scontrol", "update", "NodeName=n2", "State=RESUME"]
    fake = FakeRunner(CallResult(True, SHOW_DRAINED))
    carry_out("n2", True, [], drain=True, resume=True, dry_run=True, runner=fake, say=said.append)
    assert [c[1] for c in fake.calls] == ["show"]
    assert said[-1].startswith(
        "preflight: slurm: dry run: would run: scontrol update NodeName=n2 State=RESUME"
    )


def test_carry_out_reports_a_failed_update() -> None:
    said: list[str] = []

    def failing(argv: Sequence[str], timeout_s: float) -> CallResult:
        if argv[1] == "show":
            return CallResult(True, SHOW_IDLE)
        return CallResult(False, "", "scontrol exited 1: Invalid node name specified")

    ok = carry_out(
        "n1",
        False,
        ["x.y"],
        drain=True,
        resume=False,
        dry_run=False,
        runner=failing,
        say=said.append,
    ).ok
    assert not ok and said[-1] == (
        "preflight: slurm: cannot drain node n1: scontrol exited 1: Invalid node name specified"
    )


def test_action_for_unknown_node_name_uses_short_hostname() -> None:
    assert slurm.node_name({"SLURMD_NODENAME": "n7"}) == "n7"
    assert "." not in slurm.node_name({})
    assert Action("none", "x").reason is None


# -- a fake scontrol on PATH ------------------------------------------------------------------

FAKE = """#!/bin/sh
echo "$*" >> "{log}"
if [ "$1" = show ]; then cat "{state}"; fi
if [ -e "{hang}" ]; then sleep 30; fi
exit 0
"""


@pytest.fixture
def fake_scontrol(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "log": tmp_path / "calls.log",
        "state": tmp_path / "state.txt",
        "hang": tmp_path / "hang",
        "bin": tmp_path / "bin",
    }
    paths["bin"].mkdir()
    script = paths["bin"] / "scontrol"
    script.write_text(FAKE.format(log=paths["log"], state=paths["state"], hang=paths["hang"]))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    paths["state"].write_text(SHOW_IDLE)
    paths["log"].write_text("")
    return paths


def invoke(paths: dict[str, Path], *args: str) -> tuple[int, str, float]:
    env = {"PATH": f"{paths['bin']}:{os.environ['PATH']}", "SLURMD_NODENAME": "n1"}
    t0 = time.monotonic()
    result = runner.invoke(app, ["run", *args, "--format", "json", "--output", os.devnull], env=env)
    return result.exit_code, result.stderr, time.monotonic() - t0


def calls(paths: dict[str, Path]) -> list[str]:
    return paths["log"].read_text().splitlines()


def test_run_drains_a_failing_node(fake_scontrol: dict[str, Path]) -> None:
    code, err, _ = invoke(fake_scontrol, "--profile", "dgx-h100-acs-enabled", "--slurm-drain")
    assert code == 1
    assert calls(fake_scontrol) == [
        "show node n1",
        "update NodeName=n1 State=DRAIN Reason=preflight: fix-config pcie.acs",
    ]
    assert "preflight: slurm: drained node n1: preflight: fix-config pcie.acs" in err


def test_run_resumes_only_what_preflight_drained(fake_scontrol: dict[str, Path]) -> None:
    fake_scontrol["state"].write_text(SHOW_DRAINED.replace("n2", "n1"))
    code, _, _ = invoke(fake_scontrol, "--profile", "dgx-h100", "--slurm-resume")
    assert code == 0 and calls(fake_scontrol)[-1] == "update NodeName=n1 State=RESUME"
    fake_scontrol["log"].write_text("")
    fake_scontrol["state"].write_text(SHOW_ONE_LINE.replace("n3", "n1"))
    code, err, _ = invoke(fake_scontrol, "--profile", "dgx-h100", "--slurm-resume")
    assert code == 0 and calls(fake_scontrol) == ["show node n1"]
    assert "drained by someone else (reason 'PSU swap, ticket 42'), not resumed" in err


def test_dry_run_changes_nothing(fake_scontrol: dict[str, Path]) -> None:
    code, err, _ = invoke(
        fake_scontrol, "--profile", "dgx-h100-acs-enabled", "--slurm-drain", "--dry-run"
    )
    assert code == 1 and calls(fake_scontrol) == ["show node n1"]
    assert (
        "dry run: would run: scontrol update NodeName=n1 State=DRAIN "
        "'Reason=preflight: fix-config pcie.acs'" in err
    )


def test_hung_scontrol_is_abandoned_and_the_run_ends(fake_scontrol: dict[str, Path]) -> None:
    fake_scontrol["hang"].write_text("")
    code, err, elapsed = invoke(
        fake_scontrol,
        "--profile",
        "dgx-h100-acs-enabled",
        "--slurm-drain",
        "--slurm-timeout",
        "0.5",
    )
    assert code == 1  # the report's verdict stands
    assert "scontrol did not answer within 0.5 s; abandoned" in err
    # show and update each abandoned at 0.5 s (+ up to 1 s reaping), far from the 30 s sleep
    assert elapsed < 8, elapsed


def test_run_bounded_kills_the_whole_process_group(tmp_path: Path) -> None:
    # the child `sleep` holds stdout open: killing only the shell would leave the read blocked
    t0 = time.monotonic()
    result = run_bounded(["sh", "-c", "echo started; sleep 30; echo never"], 0.3)
    assert not result.ok and "did not answer within 0.3 s" in (result.error or "")
    assert time.monotonic() - t0 < 3
    missing = run_bounded([str(tmp_path / "no-such-scontrol")], 1.0)
    assert not missing.ok and "cannot run" in (missing.error or "")
    failed = run_bounded(["sh", "-c", "echo 'slurm_load_node error' >&2; exit 1"], 5.0)
    assert failed.error == "sh exited 1: slurm_load_node error"


def test_dry_run_alone_is_a_usage_error() -> None:
    result = runner.invoke(app, ["run", "--profile", "dgx-h100", "--dry-run"])
    assert result.exit_code == 2 and "--dry-run needs --slurm-drain" in result.stderr


def test_drain_with_a_profile_needs_the_node_named(fake_scontrol: dict[str, Path]) -> None:
    # A mocked node's failure must not drain the real host: the name has to be given.
    env = {"PATH": f"{fake_scontrol['bin']}:{os.environ['PATH']}", "SLURMD_NODENAME": ""}
    args = ["run", "--profile", "dgx-h100-acs-enabled", "--format", "json", "--output", os.devnull]
    for flag in ("--slurm-drain", "--slurm-resume"):
        result = runner.invoke(app, [*args, flag], env=env)
        assert_one_line_error(result, 2, "name it with --node-name or SLURMD_NODENAME")
    assert calls(fake_scontrol) == []
    result = runner.invoke(app, [*args, "--slurm-drain", "--node-name", "n9"], env=env)
    assert result.exit_code == 1
    assert calls(fake_scontrol)[-1] == (
        "update NodeName=n9 State=DRAIN Reason=preflight: fix-config pcie.acs"
    )


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--node-name", "n1"], "--node-name needs --slurm-drain or --slurm-resume"),
        (["--slurm-drain", "--node-name", "n1 State=DOWN"], "--node-name: expected a Slurm node"),
    ],
)
def test_node_name_is_checked(extra: list[str], needle: str) -> None:
    assert_one_line_error(runner.invoke(app, ["run", "--profile", "dgx-h100", *extra]), 2, needle)
