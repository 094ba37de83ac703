"""Recording sources: a snapshot keeps what the checks read, with no list of names to edit.

A check declared here (not a built-in one) reads an environment variable and kernel log lines
that no built-in check reads; the snapshot of a recorded run keeps them, and the replay of that
snapshot gives the same verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

from preflight.execute import RunOptions, execute
from preflight.inventory import Inventory
from preflight.model import Finding, Status, Verdict
from preflight.profile import host_from_profile
from preflight.registry import NoParams, Registry, check
from preflight.snapshot import profile_from, write

VARIABLE = "PREFLIGHT_TEST_FROBNICATE"
WORD = "frobnicator"


@check("site.frobnicate", title="The frobnicator is configured and quiet")
def frobnicate(inv: Inventory, params: NoParams) -> Verdict:
    """Reads a variable and kernel log lines that no built-in check reads."""
    value = inv.host.env.get(VARIABLE)
    log = inv.host.kernel_log([WORD]) or []
    faults = [line for line in log if line]
    if value is None:
        return Verdict(Status.FAIL, f"{VARIABLE} is not set")
    findings = [Finding(line, Status.FAIL, "frobnicator fault") for line in faults]
    status = Status.FAIL if faults else Status.PASS
    return Verdict(
        status, f"{VARIABLE}={value}, {len(faults)} of {len(log)} lines", tuple(findings)
    )


def _run(profile: str, record: bool = False) -> tuple[Verdict | str, dict[str, object] | None]:
    host = host_from_profile(profile)
    host = host.recorded() if record else host
    report = execute(
        RunOptions(profile=profile, baseline="generic", only=("site.frobnicate",)),
        registry=Registry([frobnicate]),
        host=host,
    )
    result = report.results[0]
    return f"{result.status.value}: {result.summary}", profile_from(host) if record else None


def test_a_new_checks_variable_and_log_lines_replay_from_the_snapshot(tmp_path: Path) -> None:
    node = tmp_path / "node.json"
    node.write_text(
        json.dumps(
            {
                "env": {VARIABLE: "fast", "UNREAD_TOKEN": "s3cret"},
                "kernel_log": ["boot", f"{WORD}: fault on unit 3", "an unrelated line"],
            }
        )
    )
    live, captured = _run(str(node), record=True)
    assert live == f"fail: {VARIABLE}=fast, 1 of 3 lines"
    assert captured is not None
    assert captured["env"] == {VARIABLE: "fast"}  # what was read; never what was not
    assert captured["kernel_log"] == ["", f"{WORD}: fault on unit 3", ""]
    path = tmp_path / "snapshot.json"
    write(captured, path)
    replay, _ = _run(str(path))
    assert replay == live


def test_a_variable_asked_for_but_unset_stays_unset_in_the_replay(tmp_path: Path) -> None:
    node = tmp_path / "node.json"
    node.write_text(json.dumps({"env": {"OTHER": "1"}, "kernel_log": False}))
    live, captured = _run(str(node), record=True)
    assert captured is not None and captured["env"] == {}
    assert captured["kernel_log"] is False
    path = tmp_path / "snapshot.json"
    write(captured, path)
    assert _run(str(path))[0] == live == f"fail: {VARIABLE} is not set"
