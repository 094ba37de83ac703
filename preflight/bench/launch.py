"""`--nproc N`: start N local rank processes in one process group, and never leave one behind.

The ranks share a process group of their own (not the parent's), so one killpg ends every rank
and anything a rank started. The parent kills that group when a rank fails (after a short grace
so the others can print their own error), when its deadline passes, when it is interrupted, and
on its way out in every case.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess  # noqa: TID251  (the launcher's job is to start rank processes)
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from preflight.bench.env import LAUNCHED_ENV
from preflight.bench.hooks import EXIT_STATUS
from preflight.exitcodes import ExitCode

GRACE_S = 2.0
"""After the first failure, how long the other ranks get to report and exit by themselves."""
KILL_WAIT_S = 2.0
"""After SIGTERM, how long before SIGKILL."""
# Variables of an outer launcher that would confuse the ranks about who they are.
OUTER_LAUNCHER_VARS = ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE", "SLURM_PROCID")


def free_port() -> int:
    """A TCP port nobody listens on right now (the store binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def under_launcher(env: Mapping[str, str]) -> str | None:
    """The launcher this process already runs under, if any."""
    if LAUNCHED_ENV in env:
        return "--nproc"
    if "TORCHELASTIC_RUN_ID" in env or ("RANK" in env and "WORLD_SIZE" in env):
        return "torchrun"
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1") or 1) > 1:
        return "srun"
    return None


class _Interrupted(Exception):
    pass


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def kill_group(pgid: int, procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM the group, SIGKILL what is left after KILL_WAIT_S, reap the ranks."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + KILL_WAIT_S
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.02)
        if all(p.poll() is not None for p in procs):
            # Ranks are gone; anything they started is still in the group: one SIGKILL for it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            return


def describe(code: int) -> str:
    """'status 17' or 'signal SIGKILL'."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}" + (" (test hook EXIT_AFTER)" if code == EXIT_STATUS else "")


def launch_local(
    nproc: int,
    argv: Sequence[str],
    *,
    deadline_s: float | None = None,
    stdout: Sequence[IO[Any] | None] | None = None,
    stderr: Sequence[IO[Any] | None] | None = None,
    report: IO[str] | None = None,
) -> int:
    """Run `python -m preflight ARGV` as ranks 0…nproc-1; the exit code the command should end with.

    0 when every rank exited 0; otherwise the first failing rank's code (1 when it died by a
    signal or the deadline passed).
    """
    report = report if report is not None else sys.stderr
    env = {k: v for k, v in os.environ.items() if k not in OUTER_LAUNCHER_VARS}
    env.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc),
    )
    env[LAUNCHED_ENV] = "1"
    procs: list[subprocess.Popen[bytes]] = []
    pgid = 0
    old_handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, _raise_interrupted)
    code = 0
    try:
        for rank in range(nproc):
            rank_env = dict(env, RANK=str(rank), LOCAL_RANK=str(rank))
            target = pgid
            proc = subprocess.Popen(
                [sys.executable, "-m", "preflight", *argv],
                env=rank_env,
                stdout=stdout[rank] if stdout else None,
                stderr=stderr[rank] if stderr else None,
                # The first rank leads a new process group; the others join it.
                preexec_fn=lambda target=target: os.setpgid(0, target),
            )
            procs.append(proc)
            if rank == 0:
                pgid = proc.pid
        code = _supervise(procs, pgid, deadline_s, report)
    except _Interrupted as exc:
        report.write(f"preflight: error: interrupted ({exc}); stopping the ranks\n")
        code = ExitCode.FAILED
    finally:
        if pgid:
            kill_group(pgid, procs)
        for signum, handler in old_handlers.items():
            signal.signal(signum, handler)
    return code


def _supervise(
    procs: Sequence[subprocess.Popen[bytes]], pgid: int, deadline_s: float | None, report: IO[str]
) -> int:
    start = time.monotonic()
    while True:
        codes = [p.poll() for p in procs]
        failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            rank, first = failed[0]
            grace = time.monotonic() + GRACE_S
            while time.monotonic() < grace and any(p.poll() is None for p in procs):
                time.sleep(0.02)
            left = [r for r, p in enumerate(procs) if p.poll() is None]
            if left:
                report.write(
                    f"preflight: error: rank {rank} exited with {describe(first)}; "
                    f"killing process group {pgid} (ranks still running: {left})\n"
                )
            return first if first > 0 else ExitCode.FAILED
        if all(c == 0 for c in codes):
            return ExitCode.OK
        if deadline_s is not None and time.monotonic() - start > deadline_s:
            left = [r for r, p in enumerate(procs) if p.poll() is None]
            report.write(
                f"preflight: error: ranks {left} still running after the {deadline_s:g} s "
                f"deadline; killing process group {pgid}\n"
            )
            return ExitCode.FAILED
        time.sleep(0.05)
