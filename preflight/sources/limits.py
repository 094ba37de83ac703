"""Resource limits and filesystem sizes: the live process's, or a profile's."""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

UNLIMITED = -1
"""Limits use -1 for RLIM_INFINITY, as `ulimit` prints `unlimited`."""

LIMIT_NAMES = {
    "memlock": resource.RLIMIT_MEMLOCK,
    "stack": resource.RLIMIT_STACK,
    "nofile": resource.RLIMIT_NOFILE,
}


@dataclass(frozen=True)
class Limit:
    """A resource limit pair; -1 means unlimited."""

    soft: int
    hard: int


@dataclass(frozen=True)
class FsUsage:
    """Size of a mounted filesystem, from statvfs."""

    size_bytes: int
    free_bytes: int


class ResourceSource(Protocol):
    """Limits of the process that runs the checks, and sizes of mounted filesystems."""

    def limits(self) -> dict[str, Limit]: ...

    def statvfs(self, path: str) -> FsUsage | None: ...


def _limit_from_rlimit(value: int) -> int:
    return UNLIMITED if value == resource.RLIM_INFINITY else int(value)


class LiveResources:
    """getrlimit(2) of this process and statvfs(2) of the running machine."""

    def limits(self) -> dict[str, Limit]:
        """memlock, stack and nofile limits of the process that runs the checks."""
        out = {}
        for name, res in LIMIT_NAMES.items():
            soft, hard = resource.getrlimit(res)
            out[name] = Limit(_limit_from_rlimit(soft), _limit_from_rlimit(hard))
        return out

    def statvfs(self, path: str) -> FsUsage | None:
        """Size and free space of the filesystem mounted at path, or None when absent."""
        try:
            st = os.statvfs(path)
        except OSError:
            return None
        return FsUsage(st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)


@dataclass(frozen=True)
class ProfileResources:
    """A profile's `limits` and `statvfs` sections: nothing of the live process leaks in."""

    limit_table: Mapping[str, Limit] = field(default_factory=dict)
    sizes: Mapping[str, FsUsage] = field(default_factory=dict)

    def limits(self) -> dict[str, Limit]:
        return dict(self.limit_table)

    def statvfs(self, path: str) -> FsUsage | None:
        return self.sizes.get(path)
