"""The kernel log of the current boot: /dev/kmsg on the live node, a profile's lines."""

from __future__ import annotations

import errno
import functools
import os
import re
from collections.abc import Iterable, Sequence
from typing import Protocol


class KernelLogSource(Protocol):
    """The kernel log searched for words: lines containing none of them come back empty (the
    count stays); None when the log cannot be read. `words` None reads every line."""

    def lines(self, words: Sequence[str] | None = None) -> list[str] | None: ...


class LiveKernelLog:
    """/dev/kmsg (structured records "prio,seq,ts,-;msg"), read non-blocking so an empty
    buffer never waits."""

    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.path = path

    def lines(self, words: Sequence[str] | None = None) -> list[str] | None:
        lines = read_kmsg(self.path)
        return None if lines is None else keep_lines(lines, words)


class ProfileKernelLog:
    """A profile's `kernel_log` section; None (`false` in the profile) when not readable."""

    def __init__(self, lines: Sequence[str] | None) -> None:
        self._lines = None if lines is None else list(lines)

    def lines(self, words: Sequence[str] | None = None) -> list[str] | None:
        return None if self._lines is None else keep_lines(self._lines, words)


def keep_lines(lines: Sequence[str], words: Iterable[str] | None) -> list[str]:
    """The lines containing one of `words`, the others as empty strings (a reader counts the
    lines it searched); every line when `words` is None."""
    if words is None:
        return list(lines)
    wanted = tuple(sorted(set(words)))
    if not wanted:
        return [""] * len(lines)
    search = _any_of(wanted).search
    return [ln if search(ln) else "" for ln in lines]


@functools.lru_cache(maxsize=16)
def _any_of(words: tuple[str, ...]) -> re.Pattern[str]:
    """One pass over a line for all the words (a catalogue searches for dozens)."""
    return re.compile("|".join(re.escape(w) for w in words))


def read_kmsg(path: str, max_records: int = 200_000) -> list[str] | None:
    """Read every record currently in /dev/kmsg without blocking; None if not permitted."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    lines: list[str] = []
    try:
        for _ in range(max_records):
            try:
                rec = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError as exc:
                # EPIPE: the record we were about to read was overwritten; keep going.
                if exc.errno == errno.EPIPE:
                    continue
                break
            if not rec:
                break
            text = rec.decode("utf-8", errors="replace")
            _, sep, msg = text.partition(";")
            lines.append(msg.split("\n", 1)[0] if sep else text.rstrip("\n"))
    finally:
        os.close(fd)
    return lines
