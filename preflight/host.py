"""Host: the one door to the machine: files, limits, statvfs and the kernel log."""

from __future__ import annotations

import os
import resource
import socket
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.errors import HostReadError
from preflight.safeio import read_at_most
from preflight.sysroot_path import MAX_LINKS as MAX_LINKS  # profile.py checks links by it
from preflight.sysroot_path import Resolved, confine

if TYPE_CHECKING:
    from preflight.nvml.probe import NvmlResult

MAX_READ_BYTES = 16 << 20
"""The most Host reads of one file: a sysfs attribute is one page, a PCI config space 4 kB."""

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


def _readable_kind(mode: int) -> bool:
    """What a sysroot may hand to a check: a regular file, or a FIFO (a profile's hung read)."""
    return stat.S_ISREG(mode) or stat.S_ISFIFO(mode)


def _limit_from_rlimit(value: int) -> int:
    return UNLIMITED if value == resource.RLIM_INFINITY else int(value)


@dataclass
class Host:
    """Reads one machine: the live one (root "/") or a sysroot materialized from a profile.

    Paths given to Host are the real absolute paths (`/sys/bus/pci/devices/...`); Host maps them
    under `root` and keeps symlink resolution inside it. Every path read is recorded in `reads`
    so a snapshot can capture exactly what a run looked at.
    """

    root: str = "/"
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    privileged: bool = field(default_factory=lambda: os.geteuid() == 0)
    hostname: str = field(default_factory=socket.gethostname)
    limits_override: Mapping[str, Limit] | None = None
    statvfs_override: Mapping[str, FsUsage] | None = None
    kernel_log_override: Sequence[str] | None = None
    nvml_profile: Mapping[str, Any] | None = None
    profile_name: str | None = None
    reads: set[str] = field(default_factory=set)
    record: bool = False
    """When True, the first content read from each file (`captured`) and every directory
    listing (`listed`) are kept too, for `preflight snapshot`."""
    captured: dict[str, bytes] = field(default_factory=dict, repr=False)
    listed: dict[str, list[str]] = field(default_factory=dict, repr=False)
    nvml_timeout_s: float = 5.0
    _inflight: dict[int, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _nvml_probe: Any = field(default=None, repr=False)
    _resolved: dict[str, Resolved] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Compare resolved paths against the resolved root: a root reached through a symlink
        # (a symlinked TMPDIR) would otherwise make every realpath() look like an escape.
        if self.root != "/":
            self.root = os.path.realpath(self.root)

    @property
    def is_live(self) -> bool:
        """True when this Host reads the running machine rather than a profile."""
        return self.profile_name is None

    # -- paths -------------------------------------------------------------------------------
    def _map(self, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"Host paths are absolute, got {path!r}")
        if self.root == "/":
            return path
        return os.path.join(self.root, path.lstrip("/"))

    def _unmap(self, real: str) -> str | None:
        if self.root == "/":
            return real
        root = self.root.rstrip("/")
        if real == root:
            return "/"
        if real.startswith(root + "/"):
            return real[len(root) :]
        return None

    def _note(self, path: str) -> None:
        with self._lock:
            self.reads.add(path)

    def _confined(self, path: str, follow_last: bool = True) -> str | None:
        """The real path under a sysroot that `path` names, or None when it does not exist
        (preflight.sysroot_path.confine). The sysroot is a private 0700 directory that only
        root could change between the checks, so its directories are resolved once per Host."""
        return confine(self.root, path, follow_last, self._resolved)

    def _local(self, path: str, follow_last: bool = True) -> str | None:
        """The path to hand to the OS: as given on the live host, confined under a sysroot."""
        if self.root == "/":
            return self._map(path)
        return self._confined(path, follow_last)

    def exists(self, path: str) -> bool:
        """True if the path exists (following symlinks)."""
        self._note(path)
        if self.root == "/":
            return os.path.exists(path)
        return self._confined(path) is not None

    def is_dir(self, path: str) -> bool:
        """True if the path is a directory (following symlinks)."""
        self._note(path)
        real = self._local(path)
        return real is not None and os.path.isdir(real)

    def read_bytes(self, path: str, limit: int | None = None) -> bytes | None:
        """The file's content, or None when it does not exist.

        Raises HostReadError when the file exists but cannot be read (EACCES, EINVAL, EIO), is
        larger than `limit` bytes (default MAX_READ_BYTES), or (in a sysroot) is neither a
        regular file nor a FIFO.
        """
        self._note(path)
        real = self._local(path)
        if real is None:
            return None
        ident = threading.get_ident()
        self._inflight[ident] = path
        try:
            data = self._read_file(path, real, MAX_READ_BYTES if limit is None else limit)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise HostReadError(path, exc.strerror or type(exc).__name__) from exc
        finally:
            self._inflight.pop(ident, None)
        if self.record:
            with self._lock:
                self.captured.setdefault(path, data)
        return data

    def _read_file(self, path: str, real: str, limit: int) -> bytes:
        if self.root == "/":
            f = open(real, "rb")  # noqa: SIM115 - closed below
        else:
            # Checked before open(), which may act on a device, and again on the descriptor.
            # A profile's FIFO stands for a hung device: open() blocks, as on the node.
            if not _readable_kind(os.lstat(real).st_mode):
                raise HostReadError(path, "not a regular file")
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
            f = os.fdopen(fd, "rb")
            if not _readable_kind(os.fstat(fd).st_mode):
                f.close()
                raise HostReadError(path, "not a regular file")
        with f:
            # sysfs and procfs answer a page per read; /proc/sys refuses a count of many MB.
            data = read_at_most(f, limit)
        if data is None:
            size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"
            raise HostReadError(path, f"larger than {size}")
        return data

    def blocked_in(self, thread_id: int | None) -> str | None:
        """The path a thread is reading right now (a read that hangs stays here)."""
        return None if thread_id is None else self._inflight.get(thread_id)

    def read_text(self, path: str) -> str | None:
        """The file's text (undecodable bytes replaced), or None when it does not exist."""
        data = self.read_bytes(path)
        if data is None:
            return None
        return data.decode("utf-8", errors="replace")

    def read_line(self, path: str) -> str | None:
        """The file's text without surrounding whitespace: the shape of one-value sysfs files."""
        text = self.read_text(path)
        return None if text is None else text.strip()

    def listdir(self, path: str) -> list[str]:
        """Sorted entries of a directory; empty when it does not exist or cannot be listed."""
        self._note(path)
        real = self._local(path)
        if real is None:
            return []
        try:
            if self.root == "/":
                entries = sorted(os.listdir(real))
            else:
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(real, flags)
                try:
                    entries = sorted(os.listdir(fd))
                finally:
                    os.close(fd)
        except OSError:
            return []
        if self.record:
            with self._lock:
                self.listed.setdefault(path, entries)
        return entries

    def readlink(self, path: str) -> str | None:
        """The target of a symlink as stored, or None when the path is not a symlink."""
        self._note(path)
        real = self._local(path, follow_last=False)
        if real is None:
            return None
        try:
            return os.readlink(real)
        except OSError:
            return None

    def realpath(self, path: str) -> str | None:
        """The canonical path with every symlink resolved, confined to the host's root.

        Returns None when the path does not exist or resolves outside the root.
        """
        self._note(path)
        if self.root == "/":
            return os.path.realpath(path) if os.path.exists(path) else None
        real = self._confined(path)
        return None if real is None else self._unmap(real)

    def access(self, path: str) -> bool:
        """True if this process may open the path for reading and writing (a device node)."""
        self._note(path)
        real = self._local(path)
        return real is not None and os.access(real, os.R_OK | os.W_OK)

    # -- process environment -----------------------------------------------------------------
    def limits(self) -> dict[str, Limit]:
        """memlock, stack and nofile limits of the process that runs the checks."""
        if self.limits_override is not None:
            return dict(self.limits_override)
        out = {}
        for name, res in LIMIT_NAMES.items():
            soft, hard = resource.getrlimit(res)
            out[name] = Limit(_limit_from_rlimit(soft), _limit_from_rlimit(hard))
        return out

    def statvfs(self, path: str) -> FsUsage | None:
        """Size and free space of the filesystem mounted at path, or None when absent."""
        if self.statvfs_override is not None:
            return self.statvfs_override.get(path)
        try:
            st = os.statvfs(path)
        except OSError:
            return None
        return FsUsage(size_bytes=st.f_blocks * st.f_frsize, free_bytes=st.f_bavail * st.f_frsize)

    def kernel_log(self) -> list[str] | None:
        """Kernel log lines of the current boot, or None when the ring buffer is not readable.

        The live machine is read through /dev/kmsg (structured records "prio,seq,ts,-;msg"),
        non-blocking, so an empty buffer never waits.
        """
        if self.kernel_log_override is not None:
            return list(self.kernel_log_override)
        kmsg = self._local("/dev/kmsg")
        lines = None if kmsg is None else read_kmsg(kmsg)
        if self.record and lines is not None:
            # A recording Host answers every later call with these lines, as a profile does.
            self.kernel_log_override = lines
        return lines

    # -- NVML ----------------------------------------------------------------------------------
    def nvml_start(self) -> None:
        """Start collecting NVML in a child process (preflight.nvml.probe); returns at once.

        A profile's `nvml` section goes to the child, which answers from the fake NVML; a live
        host's child loads libnvidia-ml. This process never imports pynvml.
        """
        if self.profile_name is not None and not self.nvml_profile:
            return
        from preflight.nvml.probe import NvmlProbe

        with self._lock:
            if self._nvml_probe is None:
                section = dict(self.nvml_profile or {}) if self.profile_name is not None else None
                self._nvml_probe = NvmlProbe(section, self.nvml_timeout_s)
        self._nvml_probe.start()

    def nvml_prefetch(self) -> None:
        """Start NVML early when there is a driver to ask (a profile, or /proc/driver/nvidia
        on a live node): the child then runs while other checks do."""
        if self.profile_name is not None or os.path.exists(self._map("/proc/driver/nvidia")):
            self.nvml_start()

    @property
    def nvml_started(self) -> bool:
        """Whether NVML collection was started in this run (by a check, or ahead of them)."""
        return self._nvml_probe is not None

    def nvml(self) -> NvmlResult:
        """What NVML answered (an NvmlRecord) or why there is no answer (an NvmlFailure).

        Collected once per Host, in a child process killed at `nvml_timeout_s`.
        """
        from preflight.nvml.probe import NvmlFailure

        if self.profile_name is not None and not self.nvml_profile:
            return NvmlFailure("absent", f"profile {self.profile_name} has no nvml section")
        self.nvml_start()
        result: NvmlResult = self._nvml_probe.result()
        return result


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
                if exc.errno == 32:
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
