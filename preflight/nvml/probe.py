"""The parent side: start the NVML child, enforce its deadline, name the call that hung.

NVML can block forever on a sick GPU (the process sits in `D` state), and a Python thread cannot
interrupt a blocked C call; so NVML runs in a child process. The parent reads the child's pipes
with a deadline. When it passes, the child is killed (SIGKILL) and reaped with a short bound:
a child stuck in the kernel cannot be reaped until its call returns, and it is then abandoned
rather than waited for. The last `@call` line the child wrote names the call that hung.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from preflight import isolated
from preflight.nvml.child import CALL_PREFIX

DEFAULT_TIMEOUT_S = 5.0
REAP_S = 0.5
"""How long to wait for a killed child to be reaped before abandoning it."""


@dataclass(frozen=True)
class NvmlRecord:
    """What the collector returned (see preflight.nvml.schema), and how long it took."""

    data: dict[str, Any]
    elapsed_s: float
    source: str  # "libnvidia-ml" or "profile"


@dataclass(frozen=True)
class NvmlFailure:
    """No record: NVML hung (`timeout`), the collector died (`crash`), or a profile has no
    `nvml` section (`absent`)."""

    kind: str
    message: str
    call: str | None = None  # the NVML function that never returned
    where: str | None = None  # the GPU it was called on ("GPU4 0000:9a:00.0"), if any
    elapsed_s: float = 0.0
    timeout_s: float | None = None  # the deadline that passed (timeouts)


NvmlResult = NvmlRecord | NvmlFailure


class NvmlProbe:
    """One run of the child; start() returns at once, result() waits (bounded) for the answer."""

    def __init__(self, section: Mapping[str, Any] | None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.section = section
        self.timeout_s = timeout_s
        self._result: NvmlResult | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the child and the thread that watches it (once)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="preflight-nvml", daemon=True)
            self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def result(self) -> NvmlResult:
        """The record or the failure; never waits much longer than the timeout."""
        self.start()
        if not self._done.wait(self.timeout_s + REAP_S + 5.0):
            return NvmlFailure("timeout", "the NVML watcher itself did not finish", None)
        assert self._result is not None
        return self._result

    # -- the watcher thread --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._result = self._watch()
        except Exception as exc:  # never leave result() waiting
            self._result = NvmlFailure("crash", f"could not run the NVML collector: {exc}")
        finally:
            self._done.set()

    def _watch(self) -> NvmlResult:
        start = time.monotonic()
        deadline = start + self.timeout_s
        payload = json.dumps({"section": self.section} if self.section is not None else {})
        deadline_arg = ["--deadline", f"{self.timeout_s:g}"]
        cmd = isolated.command("preflight.nvml.child", deadline_arg, site=False)
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        out, err = bytearray(), bytearray()
        todo = memoryview(payload.encode())
        sel = selectors.DefaultSelector()
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE)
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        timed_out = False
        try:
            while sel.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(remaining):
                    if key.fileobj is proc.stdin:
                        try:
                            todo = todo[os.write(proc.stdin.fileno(), todo[:65536]) :]
                        except BrokenPipeError:
                            todo = todo[:0]
                        if not todo:
                            sel.unregister(proc.stdin)
                            proc.stdin.close()
                        continue
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        key.data.extend(chunk)
                    else:
                        sel.unregister(key.fileobj)
            if not timed_out:
                try:
                    proc.wait(max(0.05, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
        finally:
            sel.close()
        elapsed = time.monotonic() - start
        call, where = last_call(err.decode(errors="replace"))
        if timed_out:
            _kill(proc)
            what = f"{call} on {where}" if where else (call or "starting the NVML collector")
            return NvmlFailure(
                "timeout",
                f"NVML call {what} did not return within {self.timeout_s:g} s",
                call,
                where or None,
                elapsed,
                self.timeout_s,
            )
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if not pipe.closed:
                pipe.close()
        if proc.returncode != 0:
            tail = [
                line
                for line in err.decode(errors="replace").splitlines()
                if line.strip() and not line.startswith(CALL_PREFIX)
            ]
            how = (
                f"signal {-proc.returncode}"
                if proc.returncode < 0
                else f"exit status {proc.returncode}"
            )
            during = f" during {call}" + (f" on {where}" if where else "") if call else ""
            last = f": {tail[-1]}" if tail else ""
            return NvmlFailure(
                "crash", f"the NVML collector ended with {how}{during}{last}", call, where, elapsed
            )
        try:
            data = json.loads(out.decode())
        except ValueError as exc:
            return NvmlFailure("crash", f"the NVML collector printed no record: {exc}")
        if not isinstance(data, dict):
            return NvmlFailure("crash", "the NVML collector printed no record")
        return NvmlRecord(data, elapsed, "profile" if self.section is not None else "libnvidia-ml")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL, then reap with a bound: a child in uninterruptible sleep is abandoned."""
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(REAP_S)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None and not pipe.closed:
            with contextlib.suppress(OSError):
                pipe.close()


def last_call(stderr: str) -> tuple[str | None, str]:
    """The last `@call <function> <where>` line: the call in progress when the child stopped."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(CALL_PREFIX):
            name, _, where = line[len(CALL_PREFIX) :].partition(" ")
            return name, where.strip()
    return None, ""
