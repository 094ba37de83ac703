"""Run a command with a hard time limit and a cap on its output, in a session of its own that is
killed as a whole.

The command leads a new session (and process group), so that on timeout SIGKILL reaches the
children it started too: a wrapper script's children would otherwise keep the output pipes
open and block the read after the wrapper died. Output beyond `max_output` bytes ends the
command the same way, rather than let it fill memory. A process in uninterruptible sleep
survives SIGKILL; it is abandoned after `grace_s` and the caller goes on.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_OUTPUT = 64 << 20
"""Bytes of output (both pipes together) read by default: `sinfo --Node` of a 100,000-node
cluster is a few MiB, a `dcgmi diag -j` of eight GPUs well under one."""


@dataclass(frozen=True)
class Finished:
    """How the command ended: its status and output, or timed_out / overflowed (then killed,
    no output)."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    overflowed: bool = False


def run_in_session(
    argv: Sequence[str],
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    grace_s: float = 1.0,
    max_output: int = MAX_OUTPUT,
) -> Finished:
    """Run argv (stdin from /dev/null, output captured) for at most timeout_s and max_output
    bytes; OSError when it cannot be started."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=dict(env) if env is not None else None,
    )
    deadline = time.monotonic() + timeout_s
    try:
        chunks, why = _read(proc, deadline, max_output)
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    if why is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.05, deadline - time.monotonic()))
        if proc.returncode is None:
            why = "time"
    if why is not None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
        return Finished(
            proc.returncode, b"", b"", timed_out=why == "time", overflowed=why == "size"
        )
    return Finished(proc.returncode, b"".join(chunks[1]), b"".join(chunks[2]))


def _read(
    proc: subprocess.Popen[bytes], deadline: float, max_output: int
) -> tuple[dict[int, list[bytes]], str | None]:
    """Both pipes until they close; why it gave up ("time", "size") or None."""
    chunks: dict[int, list[bytes]] = {1: [], 2: []}
    if proc.stdout is None or proc.stderr is None:  # Popen was given PIPE for both
        raise OSError("the command has no output pipe")
    total = 0
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, 1)
        sel.register(proc.stderr, selectors.EVENT_READ, 2)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return chunks, "time"
            for key, _ in sel.select(left):
                data = os.read(key.fd, 1 << 16)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                total += len(data)
                if total > max_output:
                    return chunks, "size"
                chunks[key.data].append(data)
    return chunks, None
