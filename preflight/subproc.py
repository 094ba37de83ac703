"""Run a command with a hard time limit, in a session of its own that is killed as a whole.

The command leads a new session (and process group), so that on timeout SIGKILL reaches the
children it started too: a wrapper script's children would otherwise keep the output pipes
open and block the read after the wrapper died. A process in uninterruptible sleep survives
SIGKILL; it is abandoned after `grace_s` and the caller goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Finished:
    """How the command ended: its status and output, or timed_out (then killed, no output)."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


def run_in_session(
    argv: Sequence[str],
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    grace_s: float = 1.0,
) -> Finished:
    """Run argv (stdin from /dev/null, output captured) for at most timeout_s; OSError when it
    cannot be started."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=dict(env) if env is not None else None,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=grace_s)
        return Finished(proc.returncode, b"", b"", timed_out=True)
    return Finished(proc.returncode, out, err)
