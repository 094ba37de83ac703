"""Mounted filesystems (/proc/self/mounts) and whether each answers statvfs within a deadline.

A dead NFS or Lustre server makes statvfs(2) on its mount point block in the kernel, without
a timeout; a node in that state starts jobs that hang on their first read. The probe runs each
statvfs in a daemon thread and stops waiting at the deadline (the blocked thread is left
behind, as the runner leaves a check blocked in a read).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from preflight.errors import HostReadError
from preflight.host import FsUsage, Host

MOUNTS = "/proc/self/mounts"
# The kernel escapes space, tab, newline and backslash in mount fields as octal (\040 …).
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mounts."""

    source: str
    point: str
    fstype: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class MountProbe:
    """What statvfs on a mount point did within the deadline."""

    point: str
    answered: bool
    seconds: float
    usage: FsUsage | None = None


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> dict[str, Mount]:
    """Mounts by mount point; the last mount on a point is the visible one."""
    out: dict[str, Mount] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[1].startswith("/"):
            continue
        point = _unescape(fields[1])
        out[point] = Mount(_unescape(fields[0]), point, fields[2], tuple(fields[3].split(",")))
    return out


@dataclass
class MountTable:
    """The node's mounts; `readable` False when /proc/self/mounts could not be read."""

    mounts: dict[str, Mount]
    readable: bool
    error: str | None = None

    @classmethod
    def read(cls, host: Host) -> MountTable:
        try:
            text = host.read_text(MOUNTS)
        except HostReadError as exc:
            return cls({}, False, exc.reason)
        if text is None:
            return cls({}, False, f"{MOUNTS} does not exist")
        return cls(parse_mounts(text), True)


def probe_mounts(host: Host, points: Sequence[str], timeout_s: float) -> dict[str, MountProbe]:
    """statvfs on every point at once; a point that has not answered by the deadline is
    reported as not answering (its thread stays blocked, as a daemon)."""
    answers: dict[str, tuple[FsUsage | None, float]] = {}
    start = time.monotonic()

    def statvfs(point: str) -> None:
        usage = host.statvfs(point)
        answers[point] = (usage, time.monotonic() - start)

    threads = [
        threading.Thread(target=statvfs, args=(p,), name="preflight-statvfs", daemon=True)
        for p in points
    ]
    for thread in threads:
        thread.start()
    deadline = start + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    out: dict[str, MountProbe] = {}
    for point in points:
        answer = answers.get(point)
        if answer is None:
            out[point] = MountProbe(point, False, timeout_s)
        else:
            out[point] = MountProbe(point, True, answer[1], answer[0])
    return out
