"""`--nproc N`: start N local rank processes in one process group, and never leave one behind.

The ranks share a process group of their own (not the parent's), so one killpg ends every rank
and anything a rank started. The parent kills that group when a rank fails (after a short grace
so the others can print their own error), when its deadline passes, when it is interrupted, and
on its way out in every case. When the parent itself is killed (SIGKILL leaves it no way out),
each rank dies with it: preflight.isolated starts them with a parent-death signal and a thread
that watches the parent's pid.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess  # noqa: TID251  (the launcher's job is to start rank processes)
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from preflight import isolated
from preflight.bench.env import LAUNCHED_ENV, TOKEN_ENV
from preflight.bench.errors import BenchInterrupted
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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Signals that stop the ranks and end the launcher with 128 + the signal's number."""
INTERRUPT_GRACE_S = 5.0
"""After passing an interrupt on to the ranks, how long rank 0 gets to print the rows it has
measured and exit by itself (a second interrupt cuts it short)."""


class _Received:
    """A signal handler that only records: the supervising loop acts on it, so no signal, however
    many and whenever they come, raises in the middle of starting or stopping the ranks."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def __call__(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def count(self) -> int:
        """How many have arrived."""
        return len(self.signals)


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
    signal or the deadline passed). SIGINT, SIGTERM or SIGHUP (when called from the main thread)
    are passed on to the ranks, which get INTERRUPT_GRACE_S to print what they measured; then
    the ranks are killed, the three signals are left ignored (a handler that only records them,
    so that a second Ctrl-C cannot interrupt the caller's way out) and BenchInterrupted is raised.

    The ranks run isolated (preflight.isolated: no import from the working directory, killed
    when this process dies), and share a fresh random PREFLIGHT_BENCH_TOKEN that authenticates
    them to each other at the rendezvous (preflight.bench.auth).
    """
    report = report if report is not None else sys.stderr
    env = {k: v for k, v in os.environ.items() if k not in OUTER_LAUNCHER_VARS}
    env.update(
        MASTER_ADDR="127.0.0.1",  # the store listens on loopback only (preflight.bench.dist)
        MASTER_PORT=str(free_port()),
        WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc),
    )
    env[LAUNCHED_ENV] = "1"
    env[TOKEN_ENV] = secrets.token_hex(32)  # fresh for every run
    procs: list[subprocess.Popen[bytes]] = []
    pgid = 0
    received = _Received()
    old_handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            old_handlers[sig] = signal.signal(sig, received)
    code = 0
    try:
        command = isolated.command("preflight", argv)
        for rank in range(nproc):
            if received.count():
                break
            rank_env = dict(env, RANK=str(rank), LOCAL_RANK=str(rank))
            target = pgid
            proc = subprocess.Popen(
                command,
                env=rank_env,
                stdout=stdout[rank] if stdout else None,
                stderr=stderr[rank] if stderr else None,
                # The first rank leads a new process group; the others join it.
                preexec_fn=lambda target=target: os.setpgid(0, target),
            )
            procs.append(proc)
            if rank == 0:
                pgid = proc.pid
        if not received.count():
            code = _supervise(procs, pgid, deadline_s, report, received)
        if received.count():
            _pass_on(received, pgid, procs)
    finally:
        if pgid:
            kill_group(pgid, procs)
        if not received.count():
            for signum, handler in old_handlers.items():
                signal.signal(signum, handler)
        # Interrupted: `received` stays, recording and ignoring the next signals (SIG_IGN would
        # turn one already pending into an OSError when Python gets to it).
    if received.count():
        first = received.signals[0]
        report.write(
            f"preflight: interrupted by {signal.Signals(first).name}: stopped the "
            f"{len(procs)} rank processes\n"
        )
        report.flush()
        raise BenchInterrupted(first)
    return code


def _pass_on(received: _Received, pgid: int, procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Send the first signal to the ranks; wait for them to exit, until the grace or another."""
    if not pgid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, received.signals[0])
    seen = received.count()
    deadline = time.monotonic() + INTERRUPT_GRACE_S
    while time.monotonic() < deadline and received.count() == seen:
        if all(p.poll() is not None for p in procs):
            return
        time.sleep(0.02)


def _supervise(
    procs: Sequence[subprocess.Popen[bytes]],
    pgid: int,
    deadline_s: float | None,
    report: IO[str],
    received: _Received,
) -> int:
    """The ranks' verdict; returns early (with 0) as soon as a signal has been received."""
    start = time.monotonic()
    while not received.count():
        codes = [p.poll() for p in procs]
        failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            rank, first = failed[0]
            grace = time.monotonic() + GRACE_S
            while time.monotonic() < grace and any(p.poll() is None for p in procs):
                if received.count():
                    return ExitCode.OK
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
    return ExitCode.OK
