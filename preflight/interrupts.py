"""SIGINT and SIGTERM during `preflight run`: an interrupted run is not a failed node.

Inside `watching()`, the first SIGINT or SIGTERM raises `Interrupted` in the main thread, so the
run unwinds through its context managers and atexit handlers (a profile's temporary sysroot is
removed) and the command ends with 128 + the signal's number, having drained, resumed and
reported nothing. Later signals only add to what was received: cleanup goes on.

Code that installs handlers of its own for a while (the benchmark launcher stops its ranks on a
signal) cannot hide the signal from the run: the process's wakeup file descriptor receives the
number of every signal that has a Python handler, whoever's handler that is, and the run asks
`Watch.received()` before it trusts its results.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The process received SIGINT or SIGTERM (a BaseException: `except Exception` lets it by)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """130 for SIGINT, 143 for SIGTERM: the shell's 128 + signal number."""
        return 128 + self.signum


class Watch:
    """What arrived while watching."""

    def __init__(self, wakeup_fd: int | None = None) -> None:
        self._fd = wakeup_fd
        self._seen: int | None = None
        self.raised = False
        self.settled = False

    def received(self) -> int | None:
        """The first SIGINT/SIGTERM received so far, by any handler; None when none."""
        if self._seen is None and self._fd is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                while chunk := os.read(self._fd, 512):
                    for signum in chunk:
                        if signum in SIGNALS and self._seen is None:
                            self._seen = signum
        return self._seen

    def check(self) -> None:
        """Raise Interrupted when a signal was received: the results are not the node's."""
        signum = self.received()
        if signum is not None:
            raise Interrupted(signum)

    def settle(self) -> None:
        """From now on a signal is noted, not raised: the verdict stands and is acted on (a drain
        half done is worse than one finished)."""
        self.check()
        self.settled = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._seen is None:
            self._seen = signum
        if self.raised or self.settled:
            return
        self.raised = True
        raise Interrupted(signum)


@contextlib.contextmanager
def watching() -> Iterator[Watch]:
    """Turn SIGINT/SIGTERM into Interrupted, and record every one, while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield Watch()
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    watch = Watch(read_fd)
    old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    old_handlers = {sig: signal.signal(sig, watch._handle) for sig in SIGNALS}
    try:
        yield watch
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        watch.received()  # what the pipe holds, before it closes
        signal.set_wakeup_fd(old_fd)
        os.close(write_fd)
        watch._fd = None
        os.close(read_fd)
