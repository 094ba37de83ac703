"""Where reports come from: files, folders, globs, tarballs, JSON-lines files and stdin.

Each argument becomes a stream of items, one per report. A plain file stays a path so that a
worker process reads it itself; reports inside a tarball or a JSON-lines stream are read here
and travel as bytes. Globs are expanded here too, so a fleet of 100,000 files can be named as
`'reports/*.json'` without hitting the shell's argument-length limit.
"""

from __future__ import annotations

import glob
import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from preflight.errors import UsageError

TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
LINES_SUFFIXES = (".jsonl", ".ndjson")
REPORT_SUFFIXES = (".json", *LINES_SUFFIXES, *TAR_SUFFIXES)
STDIN = "-"


@dataclass(frozen=True)
class Item:
    """One report to read: a file path, or bytes already read; `error` when it cannot be read."""

    source: str
    data: bytes | None = None
    error: str | None = None


def expand(args: Sequence[str], stdin: IO[bytes] | None = None) -> Iterator[Item]:
    """Items for every argument, in order; a path that does not exist is a UsageError."""
    for arg in args:
        if arg == STDIN:
            if stdin is None:
                raise UsageError("'-' given but no standard input to read")
            yield from _lines(stdin, "<stdin>")
        elif os.path.isdir(arg):
            yield from _folder(arg)
        elif os.path.exists(arg):
            yield from _file(arg)
        elif glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise UsageError(f"no file matches {arg!r}")
            for path in matches:
                yield from _folder(path) if os.path.isdir(path) else _file(path)
        else:
            raise UsageError(f"{arg}: no such file or directory")


def _folder(path: str) -> Iterator[Item]:
    """Report files under a folder, recursively, in name order; other files are not reports."""
    found: list[str] = []
    for top, dirs, files in os.walk(path):
        dirs.sort()
        found.extend(os.path.join(top, f) for f in files if f.endswith(REPORT_SUFFIXES))
    for file in sorted(found):
        yield from _file(file)


def _file(path: str) -> Iterator[Item]:
    if path.endswith(TAR_SUFFIXES):
        yield from _tarball(path)
    elif path.endswith(LINES_SUFFIXES):
        try:
            with open(path, "rb") as f:
                yield from _lines(f, path)
        except OSError as exc:
            yield Item(path, error=f"cannot read: {exc.strerror or exc}")
    else:
        yield Item(path)


def _lines(stream: IO[bytes], name: str) -> Iterator[Item]:
    """JSON lines: one compact report per line; blank lines are skipped."""
    for number, line in enumerate(stream, 1):
        if line.strip():
            yield Item(f"{name}:{number}", data=line)


def _tarball(path: str) -> Iterator[Item]:
    """Report members of a tar archive (compressed or not), read as a stream."""
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                if not member.isfile() or not member.name.endswith((".json", *LINES_SUFFIXES)):
                    continue
                f = tar.extractfile(member)
                if f is None:
                    continue
                where = f"{path}:{member.name}"
                if member.name.endswith(LINES_SUFFIXES):
                    yield from _lines(f, where)
                else:
                    yield Item(where, data=f.read())
    except (OSError, tarfile.TarError, EOFError) as exc:
        yield Item(path, error=f"cannot read the archive: {exc}")
