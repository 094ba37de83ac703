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
