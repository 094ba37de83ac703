"""preflight.subproc: a command time-boxed in a session of its own, killed as a whole."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from preflight.subproc import run_in_session


def test_output_and_status_come_back() -> None:
    done = run_in_session(["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
    assert (done.returncode, done.stdout, done.stderr, done.timed_out) == (
        3,
        b"out\n",
        b"err\n",
        False,
    )


def test_a_child_holding_the_pipes_dies_with_the_session(tmp_path: Path) -> None:
    # The wrapper's background child keeps stdout open: killing only the wrapper would leave the
    # read blocked until the child ends (60 s).
    pidfile = tmp_path / "child.pid"
    start = time.monotonic()
    done = run_in_session(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], 0.5)
    assert done.timed_out and done.stdout == b""
    assert time.monotonic() - start < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the session's child {child} outlived the timeout")


def test_a_missing_program_is_an_oserror_for_the_caller() -> None:
    with pytest.raises(FileNotFoundError):
        run_in_session(["/nonexistent/preflight-no-such-program"], 1)


def test_the_environment_is_the_one_given() -> None:
    done = run_in_session(
        ["sh", "-c", 'echo "$ONLY"'], 10, env={"ONLY": "this", "PATH": "/bin:/usr/bin"}
    )
    assert done.stdout == b"this\n"
