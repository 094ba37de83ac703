"""Files of one node: the live filesystem, or a sysroot (a profile's tree on disk).

Paths given are the real absolute paths (`/sys/bus/pci/devices/...`). A sysroot maps them under
its root and keeps symlink resolution inside it. Both note which path each thread is reading,
so the runner can name the read that hung.
"""

from __future__ import annotations

import os
import stat
import threading
from typing import BinaryIO

from preflight.errors import HostReadError
from preflight.safeio import read_at_most
from preflight.sysroot_path import MAX_LINKS as MAX_LINKS  # profile.py checks links by it
from preflight.sysroot_path import Resolved, confine

MAX_READ_BYTES = 16 << 20
"""The most one read takes of one file: a sysfs attribute is one page, a PCI config space 4 kB."""
"""Symlinks followed while resolving one path, as the kernel's ELOOP limit."""


def _readable_kind(mode: int) -> bool:
    """What a sysroot may hand to a check: a regular file, or a FIFO (a profile's hung read)."""
    return stat.S_ISREG(mode) or stat.S_ISFIFO(mode)


def _absolute(path: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"Host paths are absolute, got {path!r}")


class FileSource:
    """What every file source answers; `root` is "/" on the live node."""

    root = "/"

    def __init__(self) -> None:
        self._inflight: dict[int, str] = {}

    # -- the OS side, per implementation -------------------------------------------------------
    def local(self, path: str, follow_last: bool = True) -> str | None:
        """The path to hand to the OS, or None when it does not exist (sysroot)."""
        raise NotImplementedError

    def _open(self, path: str, real: str) -> BinaryIO:
        raise NotImplementedError

    def _list(self, real: str) -> list[str]:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        """True if the path exists (following symlinks)."""
        raise NotImplementedError

    def realpath(self, path: str) -> str | None:
        """The canonical path, confined to the root; None when missing or outside."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def is_dir(self, path: str) -> bool:
        """True if the path is a directory (following symlinks)."""
        real = self.local(path)
        return real is not None and os.path.isdir(real)

    def read_bytes(self, path: str, limit: int | None = None) -> bytes | None:
        """The file's content, or None when it does not exist.

        Raises HostReadError when the file exists but cannot be read (EACCES, EINVAL, EIO), is
        larger than `limit` bytes (default MAX_READ_BYTES), or (in a sysroot) is neither a
        regular file nor a FIFO.
        """
        real = self.local(path)
        if real is None:
            return None
        ident = threading.get_ident()
        self._inflight[ident] = path
        try:
            limit = MAX_READ_BYTES if limit is None else limit
            with self._open(path, real) as f:
                # sysfs and procfs answer a page per read; /proc/sys refuses a count of many MB.
                data = read_at_most(f, limit)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise HostReadError(path, exc.strerror or type(exc).__name__) from exc
        finally:
            self._inflight.pop(ident, None)
        if data is None:
            size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"
            raise HostReadError(path, f"larger than {size}")
        return data

    def listdir(self, path: str) -> list[str]:
        """Sorted entries of a directory; empty when it does not exist or cannot be listed."""
        entries = self.entries(path)
        return [] if entries is None else entries

    def entries(self, path: str) -> list[str] | None:
        """Sorted entries of a directory; None when it does not exist or cannot be listed."""
        real = self.local(path)
        if real is None:
            return None
        try:
            return sorted(self._list(real))
        except OSError:
            return None

    def readlink(self, path: str) -> str | None:
        """The target of a symlink as stored, or None when the path is not a symlink."""
        real = self.local(path, follow_last=False)
        if real is None:
            return None
        try:
            return os.readlink(real)
        except OSError:
            return None

    def access(self, path: str) -> bool:
        """True if this process may open the path for reading and writing (a device node)."""
        real = self.local(path)
        return real is not None and os.access(real, os.R_OK | os.W_OK)

    def kind(self, path: str) -> str | None:
        """What the path is without following a last symlink: "dir", "link" or "other" (a
        file, a FIFO, a device); None when it does not exist."""
        real = self.local(path, follow_last=False)
        if real is None:
            return None
        try:
            mode = os.lstat(real).st_mode
        except OSError:
            return None
        return "link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "other"

    def blocked_in(self, thread_id: int | None) -> str | None:
        """The path a thread is reading right now (a read that hangs stays here)."""
        return None if thread_id is None else self._inflight.get(thread_id)


class LiveFiles(FileSource):
    """The running machine's filesystem, as the kernel resolves it."""

    def local(self, path: str, follow_last: bool = True) -> str | None:
        _absolute(path)
        return path

    def _open(self, path: str, real: str) -> BinaryIO:
        return open(real, "rb")

    def _list(self, real: str) -> list[str]:
        return os.listdir(real)

    def exists(self, path: str) -> bool:
        _absolute(path)
        return os.path.exists(path)

    def realpath(self, path: str) -> str | None:
        _absolute(path)
        return os.path.realpath(path) if os.path.exists(path) else None


class SysrootFiles(FileSource):
    """A directory standing for a node's "/" (a materialized profile, a test's tree)."""

    def __init__(self, root: str) -> None:
        super().__init__()
        # Compare resolved paths against the resolved root: a root reached through a symlink
        # (a symlinked TMPDIR) would otherwise make every realpath() look like an escape.
        self.root = os.path.realpath(root)
        # Each directory prefix once resolved (preflight.sysroot_path): a profile's ~2,000 reads
        # share a few hundred directories.
        self._resolved: dict[str, Resolved] = {}

    def local(self, path: str, follow_last: bool = True) -> str | None:
        """The real path under the sysroot that `path` names, or None when it does not exist.

        Resolves one component at a time with lstat/readlink, as the kernel would with the root
        as "/": an absolute link target starts again at the root, and a `..` that would climb
        above the root, a loop or more than MAX_LINKS links makes the path not exist. Every
        component of the result but the last is a real directory, never a link, so the
        result is opened with O_NOFOLLOW and nothing outside the root is ever reached. The
        sysroot is a private 0700 directory that only root could change between the checks.
        """
        _absolute(path)
        return confine(self.root, path, follow_last, self._resolved)

    def _open(self, path: str, real: str) -> BinaryIO:
        # Checked before open(), which may act on a device, and again on the descriptor.
        # A profile's FIFO stands for a hung device: open() blocks, as on the node.
        if not _readable_kind(os.lstat(real).st_mode):
            raise HostReadError(path, "not a regular file")
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
        f = os.fdopen(fd, "rb")
        if not _readable_kind(os.fstat(fd).st_mode):
            f.close()
            raise HostReadError(path, "not a regular file")
        return f

    def _list(self, real: str) -> list[str]:
        fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return self.local(path) is not None

    def realpath(self, path: str) -> str | None:
        real = self.local(path)
        if real is None:
            return None
        root = self.root.rstrip("/")
        if real == root:
            return "/"
        return real[len(root) :] if real.startswith(root + "/") else None
