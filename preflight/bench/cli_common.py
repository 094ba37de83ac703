"""What the `bench` command lines share: the one-line error and its exit, and the report writer."""

from __future__ import annotations

from pathlib import Path

import typer

from preflight.errors import PreflightError
from preflight.exitcodes import ExitCode


def fail(exc: PreflightError) -> typer.Exit:
    """`preflight: error: …` (control characters escaped) and the error's own exit code."""
    from preflight.safetext import clean_line

    typer.echo(f"preflight: error: {clean_line(exc)}", err=True)
    return typer.Exit(exc.exit_code)


def usage(message: str) -> typer.Exit:
    """The same line for a command line that cannot run (exit 2)."""
    from preflight.safetext import clean_line

    typer.echo(f"preflight: error: {clean_line(message)}", err=True)
    return typer.Exit(ExitCode.USAGE)


def write_report(text: str, output: Path | None) -> None:
    """Standard output (None or -), or the file replaced atomically; OutputError (exit 2) when
    that fails. Host and device names come from ranks and peers: control characters are shown
    escaped (JSON has them escaped already)."""
    from preflight.outfile import write_output
    from preflight.safetext import clean

    write_output(output, clean(text))
