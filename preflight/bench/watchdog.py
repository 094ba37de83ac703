"""A deadline on whatever the rank is waiting for, enforced from a thread.

A collective blocked in C (a dead peer, a hung GPU) cannot be interrupted from Python. The
watchdog thread notices that no progress was made for the armed timeout, writes one line naming
what was being waited for, and ends the process with os._exit: the interpreter's own shutdown
could block on the same stuck communicator.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from preflight.exitcodes import ExitCode

POLL_S = 0.1


class Watchdog:
    """Armed with (what, timeout); `beat()` after each collective restarts the clock."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._what = ""
        self._timeout = 0.0
        self._deadline: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="preflight-watchdog", daemon=True)
        self._thread.start()

    def arm(self, what: str, timeout_s: float) -> None:
        """From now on, fail if no beat comes within timeout_s."""
        self._what, self._timeout = what, timeout_s
        self._deadline = time.monotonic() + timeout_s

    def beat(self) -> None:
        """Progress: the next wait gets a full timeout."""
        self._deadline = time.monotonic() + self._timeout

    def disarm(self) -> None:
        """Nothing is being waited for."""
        self._deadline = None

    @contextmanager
    def waiting(self, what: str, timeout_s: float) -> Iterator[None]:
        """Armed for the duration of the block."""
        self.arm(what, timeout_s)
        try:
            yield
        finally:
            self.disarm()

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline:
                sys.stdout.flush()
                sys.stderr.write(
                    f"preflight: error: {self.label}: {self._what} did not complete within "
                    f"{self._timeout:g} s: a peer rank is dead or stuck\n"
                )
                sys.stderr.flush()
                os._exit(ExitCode.FAILED)
