"""Run one worker process with a deadline; a worker that hangs is killed and named.

Like the NVML collector (preflight.nvml.probe): an isolated interpreter (`python -I`, see
preflight.isolated), in its own process group so the kill reaches anything it started; at the
deadline the group gets SIGKILL and is reaped with a short bound, then abandoned (a process
stuck in the GPU driver cannot be reaped until its call returns). The last `@step` line the
worker wrote names where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from preflight import isolated
from preflight.active.worker import STEP_PREFIX

REAP_S = 0.5
MAX_OUTPUT = 16 << 20
"""A worker's record is small; more than this is not a record."""


@dataclass(frozen=True)
class ChildRecord:
    data: dict[str, Any]
    elapsed_s: float


@dataclass(frozen=True)
class ChildFailure:
    """No record: `timeout` (killed at the deadline) or `crash` (ended without one)."""

    kind: str
    message: str
    step: str | None = None
    elapsed_s: float = 0.0


ChildResult = ChildRecord | ChildFailure


def run_worker(request: Mapping[str, Any], timeout_s: float) -> ChildResult:
    """Start `preflight.active.worker`, hand it the request, wait at most timeout_s."""
    start = time.monotonic()
    env = dict(os.environ)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # device i = the i-th GPU in PCI order, as NVML
    proc = subprocess.Popen(
        isolated.command("preflight.active.worker"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,
        start_new_session=True,  # its own process group: the kill reaches all it started
        env=env,
    )
    try:
        out, err = proc.communicate(json.dumps(dict(request)).encode(), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        _, where = last_step(_drain(proc))
        return ChildFailure(
            "timeout",
            f"did not finish within {timeout_s:g} s" + (f" (stopped in {where})" if where else ""),
            where,
            time.monotonic() - start,
        )
    elapsed = time.monotonic() - start
    text = err.decode(errors="replace")
    lines, where = last_step(text)
    if proc.returncode != 0:
        how = (
            f"signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exit status {proc.returncode}"
        )
        last = f": {lines[-1][:300]}" if lines else ""
        during = f" during {where}" if where else ""
        return ChildFailure("crash", f"the worker ended with {how}{during}{last}", where, elapsed)
    try:
        if len(out) > MAX_OUTPUT:
            raise ValueError("record too large")
        data = json.loads(out.decode())
    except ValueError as exc:
        return ChildFailure("crash", f"the worker printed no record: {exc}", where, elapsed)
    if not isinstance(data, dict):
        return ChildFailure("crash", "the worker printed no record", where, elapsed)
    return ChildRecord(data, elapsed)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the worker's process group, then reap with a bound (or abandon it)."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(REAP_S)


def _drain(proc: subprocess.Popen[bytes]) -> str:
    """What the killed worker wrote on stderr, waiting at most REAP_S for a pipe still held."""
    text = ""
    with contextlib.suppress(subprocess.TimeoutExpired, OSError, ValueError):
        _, err = proc.communicate(timeout=REAP_S)
        text = (err or b"").decode(errors="replace")
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None and not pipe.closed:
            with contextlib.suppress(OSError):
                pipe.close()
    return text


def last_step(stderr: str) -> tuple[list[str], str | None]:
    """The worker's other stderr lines, and its last `@step` (where it was)."""
    where = None
    other = []
    for line in stderr.splitlines():
        if line.startswith(STEP_PREFIX):
            where = line[len(STEP_PREFIX) :].strip()[:100]
        elif line.strip():
            other.append(line)
    return other, where
