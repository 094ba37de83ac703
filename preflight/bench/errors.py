"""Errors of the benchmark: one line each, with the exit code the command ends with."""

from __future__ import annotations

from preflight.bench import TORCH_MISSING
from preflight.errors import ConfigError, PreflightError


class BenchError(PreflightError):
    """The benchmark could not complete: a rank missing or dead, a wait that timed out (exit 1)."""


class TorchMissing(ConfigError):
    """torch is not importable: the bench extra is not installed (exit 3)."""

    def __init__(self) -> None:
        super().__init__(TORCH_MISSING)


class BenchInterrupted(SystemExit):
    """A signal (SIGINT, SIGTERM, SIGHUP) stopped the benchmark: not a failure of the node.

    Raised by the `--nproc` launcher once its ranks are stopped, and by a rank's own signal
    handler. It is a SystemExit with status 128 + the signal's number (130 for SIGINT, 143 for
    SIGTERM), so that nothing catching Exception mistakes it for a failed measurement, and an
    uncaught one ends the process quietly with that status. `partial` is what the rank had
    measured when it was raised, if anything (a rank fills it in on the way out).
    """

    def __init__(self, signum: int, partial: object = None) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.partial = partial

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process the signal ended."""
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        """'SIGINT', 'SIGTERM', …"""
        import signal

        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"
