"""Errors that end a command with a one-line message and a chosen exit code."""

from __future__ import annotations


class PreflightError(Exception):
    """Base of the errors the CLI turns into one line on stderr."""

    exit_code = 1


class UsageError(PreflightError):
    """The command line asks for something that does not exist (exit 2)."""

    exit_code = 2


class ConfigError(PreflightError):
    """A profile, baseline or --set value is malformed or names unknown things (exit 3)."""

    exit_code = 3


class ProfileError(ConfigError):
    """A hardware profile cannot be loaded."""


class HostReadError(PreflightError):
    """A file on the host exists but cannot be read (permission, EINVAL, I/O error)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ParseError(PreflightError):
    """Content read from the host does not have the format the kernel documents."""
