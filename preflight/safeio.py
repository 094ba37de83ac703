"""Reading files that a user names (profiles, baselines, reports): regular files only, bounded.

preflight runs as root, and a path on its command line, in a profile's `extends` or inside a
folder of reports may be a FIFO (open() would block forever), a device (/dev/zero never ends),
or a link to one. Such a path is refused before it is opened; what is read is bounded, and so is
what a gzip stream may expand to (a 1 MB gzip of zeros is 1 GB).
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Iterator
from typing import IO, Any

MiB = 1 << 20

PROFILE_MAX_BYTES = 64 * MiB
"""A profile file, after decompression (the built-in dgx-h100 is 1 MB)."""
REPORT_MAX_BYTES = 64 * MiB
"""One run report (a file, a tarball member or one JSON line); a real one is ~100 kB."""
BASELINE_MAX_BYTES = 4 * MiB
"""A baseline TOML (the built-in ones are a few kB)."""
MAX_NESTING = 64
"""JSON/TOML nesting deeper than this is refused (reports and profiles nest 6 levels)."""


class InputRefused(Exception):
    """A named file that is not read: not a regular file, too large, or a broken gzip stream."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def size_text(limit: int) -> str:
    """A byte limit as people say it: 64 MiB, 512 kiB, 100 bytes."""
    if limit >= MiB and limit % MiB == 0:
        return f"{limit // MiB} MiB"
    if limit >= 1024 and limit % 1024 == 0:
        return f"{limit // 1024} kiB"
    return f"{limit} bytes"


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """The file opened for reading; InputRefused unless it is a regular file (links followed).

    The type is checked before open(), which would block on a FIFO and may act on a device,
    and again on the open descriptor, in case the path was swapped in between.
    Raises OSError when the file cannot be stat'ed or opened.
    """
    before = os.stat(path)
    if not stat.S_ISREG(before.st_mode):
        raise InputRefused(f"{_kind(before.st_mode)}, not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    f = os.fdopen(fd, "rb")
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        f.close()
        raise InputRefused(f"{_kind(mode)}, not a regular file")
    return f


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """A regular file's bytes, at most `limit` of them (InputRefused beyond; OSError as open)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise InputRefused(f"larger than {size_text(limit)}")
        data = read_at_most(f, limit, size + 1)
    if data is None:
        raise InputRefused(f"larger than {size_text(limit)}")
    return data


def read_at_most(stream: IO[bytes], limit: int, first: int = 64 * 1024) -> bytes | None:
    """A stream's bytes to its end, or None when there are more than `limit`.

    Read in chunks (`first`, then 1 MiB): one read of `limit` bytes would allocate them all up
    front, and procfs refuses a large count outright (/proc/sys answers ENOMEM).
    """
    chunks: list[bytes] = []
    total = 0
    size = max(1, min(first, limit + 1))
    while True:
        chunk = stream.read(size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None
        size = min(MiB, limit + 1 - total)


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip members, stopping as soon as the output passes `limit` bytes."""
    out = bytearray()
    rest = data
    while rest:
        unzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += unzip.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise InputRefused(f"not valid gzip: {exc}") from None
        if len(out) > limit or unzip.unconsumed_tail:
            raise InputRefused(f"decompresses to more than {size_text(limit)}")
        if not unzip.eof:
            raise InputRefused("not valid gzip: the stream is truncated")
        rest = unzip.unused_data.lstrip(b"\0")  # gzip(1) tolerates zero padding at the end
    return bytes(out)


class GunzipStream:
    """A gzip stream decompressed as it is read, never more than asked for at a time.

    tarfile's own gzip stream decompresses each compressed block whole and slices its buffer
    per read: a 1 MB bomb took minutes to skip through. Here each read() returns at most
    `size` bytes and keeps the rest compressed, so memory stays at one read and time linear.
    """

    CHUNK = 64 * 1024

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.unzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self.pending = b""  # compressed input not yet given to zlib
        self.done = False

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = MiB
        out = bytearray()
        while len(out) < size and not self.done:
            if not self.pending:
                self.pending = self.unzip.unconsumed_tail or self.raw.read(self.CHUNK)
                if not self.pending:
                    if not self.unzip.eof:
                        raise InputRefused("not valid gzip: the stream is truncated")
                    self.done = True
                    break
            try:
                out += self.unzip.decompress(self.pending, size - len(out))
            except zlib.error as exc:
                raise InputRefused(f"not valid gzip: {exc}") from None
            self.pending = b""
            if self.unzip.eof:  # another member may follow (gzip(1) concatenates them)
                rest = self.unzip.unused_data or self.raw.read(self.CHUNK)
                if rest.strip(b"\0"):
                    self.unzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                    self.pending = rest
                else:
                    self.done = True  # the end, or zero padding as gzip(1) tolerates
        return bytes(out)


def lines(stream: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line) of a stream, each line read with a bound: a line longer than
    `limit` comes as (number, None) and is skipped to its end, never held in memory whole."""
    number = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # skip the rest of the long line in bounded chunks
                chunk = stream.readline(MiB)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, line


def nesting(value: Any) -> int:
    """How deeply lists and dicts nest in a decoded document (iteratively: no recursion)."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            todo.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            todo.extend((v, depth + 1) for v in item)
    return deepest
