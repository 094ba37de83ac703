"""Where reports come from: files, folders, globs, tarballs, JSON-lines files and stdin (JSON
lines or concatenated JSON documents).

Each argument becomes a stream of items, one per report. A plain file stays a path so that a
worker process reads it itself; reports inside a tarball or a JSON-lines stream are read here
and travel as bytes. Globs are expanded here too, so a fleet of 100,000 files can be named as
`'reports/*.json'` without hitting the shell's argument-length limit.
"""

from __future__ import annotations

import glob
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from preflight import safeio
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
            with safeio.open_regular(path) as f:
                yield from _lines(f, path)
        except OSError as exc:
            yield Item(path, error=f"cannot read: {exc.strerror or exc}")
        except safeio.InputRefused as exc:
            yield Item(path, error=f"cannot read: {exc}")
    else:
        yield Item(path)


# A JSON string never holds a raw newline, so braces can be counted line by line once the
# strings on the line are skipped.
_BRACES = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}]')


def _depth_change(line: bytes) -> int:
    change = 0
    for match in _BRACES.finditer(line):
        token = match.group()
        if token == b"{":
            change += 1
        elif token == b"}":
            change -= 1
    return change


def _lines(stream: IO[bytes], name: str) -> Iterator[Item]:
    """Reports in a stream: JSON lines (one compact report per line) or concatenated JSON
    documents (`cat *.json`, indented as `run --format json` writes them), or both mixed.
    Blank lines are skipped; a report larger than a report may be is unreadable and never held
    in memory whole; a `{` at the start of a line inside a report that never closed starts the
    next report (the unclosed one is unreadable, not the rest of the stream)."""
    limit = safeio.REPORT_MAX_BYTES
    parts: list[bytes] = []
    start, depth, size, too_big = 0, 0, 0, False

    def finished() -> Item:
        where = f"{name}:{start}"
        if too_big:
            return Item(where, error=f"cannot read: longer than {safeio.size_text(limit)}")
        return Item(where, data=b"".join(parts))

    for number, line in safeio.lines(stream, limit):
        if depth > 0 and (line is None or line.startswith(b"{")):
            yield Item(f"{name}:{start}", error="cannot read: a JSON document that never ends")
            parts, depth = [], 0
        if line is None:
            yield Item(
                f"{name}:{number}", error=f"cannot read: longer than {safeio.size_text(limit)}"
            )
            continue
        if depth == 0:
            if not line.strip():
                continue
            parts, start, size, too_big = [], number, 0, False
        size += len(line)
        if size > limit:
            too_big, parts = True, []
        elif not too_big:
            parts.append(line)
        depth += _depth_change(line)
        if depth <= 0:  # a whole document, or a line that is none (the decoder says why)
            yield finished()
            parts, depth = [], 0
    if depth > 0:
        yield Item(f"{name}:{start}", error="cannot read: a JSON document that never ends")


def _tarball(path: str) -> Iterator[Item]:
    """Report members of a tar archive (plain or gzip), read as a stream: memory stays bounded
    by one report, a larger member is unreadable. gzip expands at most 1032x, so a 1 MB bomb
    is at most 1 GB to stream through (about a second); bz2 and xz, which expand without such
    a bound, are refused."""
    limit = safeio.REPORT_MAX_BYTES
    try:
        with safeio.open_regular(path) as raw:
            magic = raw.read(3)
            raw.seek(0)
            if magic[:3] in (b"BZh", b"\xfd7z"):
                yield Item(path, error="cannot read the archive: only plain and gzip tarballs")
                return
            stream = safeio.GunzipStream(raw) if magic[:2] == b"\x1f\x8b" else raw
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    if not member.isfile() or not member.name.endswith((".json", *LINES_SUFFIXES)):
                        continue
                    where = f"{path}:{member.name}"
                    if member.name.endswith(".json") and member.size > limit:
                        yield Item(
                            where, error=f"cannot read: larger than {safeio.size_text(limit)}"
                        )
                        continue
                    f = tar.extractfile(member)
                    if f is None:
                        continue
                    if member.name.endswith(LINES_SUFFIXES):
                        yield from _lines(f, where)
                    else:
                        yield Item(where, data=f.read())
    except (OSError, tarfile.TarError, EOFError) as exc:
        yield Item(path, error=f"cannot read the archive: {exc}")
    except safeio.InputRefused as exc:
        yield Item(path, error=f"cannot read the archive: {exc}")
