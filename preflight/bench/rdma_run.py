"""Running a perftest server and its client, bounded: each in its own process group, killed with
its group at its deadline, named in the outcome. Nothing is left running or listening.

perftest's client connects once (``Couldn't connect to HOST:PORT`` and exit when nobody listens),
and its server accepts one client then exits. So the server is started first, the client only
once the server's TCP port is in LISTEN state (read from /proc/net/tcp, without connecting: a
probe connection would be taken for the client).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess  # noqa: TID251  (starting perftest is this module's job)
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

MAX_OUTPUT = 1024 * 1024  # bytes of a side's output kept; perftest prints a few KiB
KILL_GRACE_S = 1.0
POLL_S = 0.05
TCP_LISTEN = "0A"  # st column of /proc/net/tcp: TCP_LISTEN


@dataclass
class SideOutcome:
    """What one side (server or client) did."""

    role: str
    argv: list[str]
    returncode: int | None = None  # None: it never ended by itself (killed) or never started
    timed_out: bool = False
    killed: bool = False
    output: str = ""
    elapsed_s: float = 0.0
    start_error: str | None = None
    pid: int | None = None  # also its process group id

    def describe(self) -> str:
        """``server killed after 3.0 s (timeout)``, ``client exited 1`` …"""
        if self.start_error:
            return f"{self.role} did not start: {self.start_error}"
        if self.timed_out:
            return f"{self.role} killed after {self.elapsed_s:.1f} s (timeout)"
        if self.killed:
            return f"{self.role} killed after {self.elapsed_s:.1f} s (its peer had failed)"
        if self.returncode is None:
            return f"{self.role} not run"
        if self.returncode < 0:
            return f"{self.role} ended by signal {-self.returncode}"
        return f"{self.role} exited {self.returncode}"


@dataclass
class PairOutcome:
    """Both sides, and the one-line reason when the pair did not complete."""

    server: SideOutcome
    client: SideOutcome
    problem: str | None = None


def listening(port: int, proc_net: str = "/proc/net") -> bool:
    """Whether any socket is in TCP LISTEN on this port (IPv4 or IPv6)."""
    want = f":{port:04X}"
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc_net, name), encoding="ascii", errors="replace") as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[1].endswith(want) and fields[3] == TCP_LISTEN:
                        return True
        except OSError:
            continue
    return False


class _Side:
    def __init__(self, role: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.outcome = SideOutcome(role, list(argv))
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  (closed in finish())
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=self.file,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd="/",
                start_new_session=True,  # its own process group, killed as one
            )
        except OSError as exc:
            self.outcome.start_error = exc.strerror or str(exc)
        else:
            self.outcome.pid = self.proc.pid

    def text(self) -> str:
        self.file.seek(0)
        return self.file.read(MAX_OUTPUT).decode("utf-8", errors="replace")

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, timed_out: bool) -> None:
        """SIGTERM to the group, SIGKILL after the grace time; reaps the process."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.outcome.killed = True
            self.outcome.timed_out = timed_out
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.proc.wait(timeout=KILL_GRACE_S)
                if sig == signal.SIGTERM:
                    # the leader is gone; children of the group may linger: finish them too
                    continue
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=KILL_GRACE_S)

    def finish(self) -> SideOutcome:
        self.outcome.elapsed_s = time.monotonic() - self.started
        if self.proc is not None:
            code = self.proc.poll()
            self.outcome.returncode = None if self.outcome.killed else code
        self.outcome.output = self.text()
        self.file.close()
        return self.outcome


def run_pair(
    server_argv: Sequence[str],
    client_argv: Sequence[str],
    port: int,
    timeout_s: float,
    listen_timeout_s: float = 10.0,
    env: Mapping[str, str] | None = None,
    proc_net: str = "/proc/net",
) -> PairOutcome:
    """Start the server, wait until it listens on port, start the client, wait for both.

    The server gets listen_timeout_s to listen; then both get timeout_s to finish. Every process
    group still alive at the end is killed, whatever happened.
    """
    env = dict(os.environ if env is None else env)
    server = _Side("server", server_argv, env)
    client: _Side | None = None
    problem: str | None = None
    try:
        if server.outcome.start_error:
            problem = server.outcome.describe()
            return PairOutcome(server.finish(), SideOutcome("client", list(client_argv)), problem)
        limit = time.monotonic() + listen_timeout_s
        while not listening(port, proc_net):
            if not server.alive():
                problem = f"server exited before listening on port {port}"
                break
            if time.monotonic() >= limit:
                server.kill(timed_out=True)
                problem = f"server did not listen on port {port} within {listen_timeout_s:g} s"
                break
            time.sleep(POLL_S)
        if problem is None:
            client = _Side("client", client_argv, env)
            if client.outcome.start_error:
                problem = client.outcome.describe()
            deadline = time.monotonic() + timeout_s
            while client.alive() or server.alive():
                if time.monotonic() >= deadline:
                    stuck = [s for s in (server, client) if s.alive()]
                    for side in stuck:
                        side.kill(timed_out=True)
                    names = " and ".join(s.outcome.role for s in stuck)
                    problem = f"{names} still running after {timeout_s:g} s: killed"
                    break
                if not client.alive() and client.poll() not in (None, 0):
                    # the client failed: the server would wait for it forever
                    server.kill(timed_out=False)
                    break
                time.sleep(POLL_S)
    finally:
        for leftover in (server, client):
            if leftover is not None and leftover.alive():
                leftover.kill(timed_out=False)
    server_out = server.finish()
    client_out = client.finish() if client else SideOutcome("client", list(client_argv))
    if problem is None:
        bad = [s for s in (client_out, server_out) if s.returncode not in (0, None) or s.killed]
        if bad:
            problem = "; ".join(s.describe() for s in bad)
    return PairOutcome(server_out, client_out, problem)


def run_one(
    argv: Sequence[str], timeout_s: float, env: Mapping[str, str] | None = None
) -> SideOutcome:
    """One process (the client of a pair whose server runs elsewhere), bounded the same way."""
    side = _Side("client", argv, dict(os.environ if env is None else env))
    try:
        deadline = time.monotonic() + timeout_s
        while side.alive():
            if time.monotonic() >= deadline:
                side.kill(timed_out=True)
                break
            time.sleep(POLL_S)
    finally:
        if side.alive():
            side.kill(timed_out=False)
    return side.finish()


class ServerHandle:
    """A perftest server started for a peer's client (`bench rdma --serve`)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self._side = _Side("server", argv, env)

    def wait_listening(
        self, port: int, timeout_s: float, proc_net: str = "/proc/net"
    ) -> str | None:
        """None once it listens; else why not (it is killed then)."""
        if self._side.outcome.start_error:
            return self._side.outcome.describe()
        limit = time.monotonic() + timeout_s
        while not listening(port, proc_net):
            if not self._side.alive():
                return f"server exited before listening on port {port}"
            if time.monotonic() >= limit:
                self._side.kill(timed_out=True)
                return f"server did not listen on port {port} within {timeout_s:g} s"
            time.sleep(POLL_S)
        return None

    def finish(self, timeout_s: float) -> SideOutcome:
        """Wait for it to end (killed with its group at the timeout) and return its outcome."""
        try:
            deadline = time.monotonic() + timeout_s
            while self._side.alive():
                if time.monotonic() >= deadline:
                    self._side.kill(timed_out=True)
                    break
                time.sleep(POLL_S)
        finally:
            if self._side.alive():
                self._side.kill(timed_out=False)
        return self._side.finish()
