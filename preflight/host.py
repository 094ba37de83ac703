"""Host: the one door to the machine, composed of sources (preflight.sources).

Files under a root, the kernel log, resource limits and filesystem sizes, the environment, NVML
and the starting of programs each come from a source with a live and a profile implementation;
Host only composes them and gives the checks one object to read through. `recorded()` wraps
every source so that a snapshot keeps what the checks read.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from preflight.sources.environment import Environment
from preflight.sources.files import MAX_LINKS, MAX_READ_BYTES, FileSource, LiveFiles, SysrootFiles
from preflight.sources.kernel_log import (
    KernelLogSource,
    LiveKernelLog,
    ProfileKernelLog,
    read_kmsg,
)
from preflight.sources.limits import (
    LIMIT_NAMES,
    UNLIMITED,
    FsUsage,
    Limit,
    LiveResources,
    ProfileResources,
    ResourceSource,
)
from preflight.sources.nvml import LiveNvml, NvmlSource
from preflight.sources.processes import LiveProcesses, ProcessSource, ProfileProcesses

if TYPE_CHECKING:
    from preflight.nvml.probe import NvmlResult
    from preflight.sources.recording import Recording

__all__ = [
    "LIMIT_NAMES",
    "MAX_LINKS",
    "MAX_READ_BYTES",
    "UNLIMITED",
    "FsUsage",
    "Host",
    "Limit",
    "ProfileResources",
    "read_kmsg",
]


class Host:
    """Reads one machine: the live one (root "/") or a sysroot materialized from a profile.

    Sources not given are the live ones, except that a sysroot's kernel log is unreadable (a
    tree has no /dev/kmsg to ask) unless `kernel` is given.
    """

    def __init__(
        self,
        root: str = "/",
        *,
        env: Mapping[str, str] | None = None,
        privileged: bool | None = None,
        hostname: str | None = None,
        files: FileSource | None = None,
        kernel: KernelLogSource | None = None,
        resources: ResourceSource | None = None,
        nvml: NvmlSource | None = None,
        processes: ProcessSource | None = None,
        profile_name: str | None = None,
    ) -> None:
        if files is None:
            files = LiveFiles() if root == "/" else SysrootFiles(root)
        self.files = files
        if kernel is None:
            kernel = LiveKernelLog() if files.root == "/" else ProfileKernelLog(None)
        self.kernel = kernel
        self.resources: ResourceSource = resources or LiveResources()
        self.env: Environment = (
            env if isinstance(env, Environment) else Environment(os.environ if env is None else env)
        )
        self.nvml_source: NvmlSource = nvml or LiveNvml()
        self.privileged = os.geteuid() == 0 if privileged is None else privileged
        self.hostname = socket.gethostname() if hostname is None else hostname
        self.profile_name = profile_name
        if processes is None:
            processes = LiveProcesses() if profile_name is None else ProfileProcesses(profile_name)
        self.processes = processes
        self.recording: Recording | None = None

    def __repr__(self) -> str:
        return f"Host(root={self.root!r}, profile={self.profile_name!r})"

    @property
    def root(self) -> str:
        """Where "/" of the node is on this machine ("/" on the live node)."""
        return self.files.root

    @property
    def is_live(self) -> bool:
        """True when this Host reads the running machine (programs can be started on it)
        rather than a profile."""
        return self.processes.refused() is None

    def recorded(self) -> Host:
        """This host with every source wrapped to keep what is read (`recording`)."""
        from preflight.sources.recording import (  # a snapshot's: a run records nothing
            Recording,
            RecordingEnvironment,
            RecordingFiles,
            RecordingKernelLog,
            RecordingResources,
        )

        recording = Recording()
        host = Host(
            env=RecordingEnvironment(self.env, recording),
            privileged=self.privileged,
            hostname=self.hostname,
            files=RecordingFiles(self.files, recording),
            kernel=RecordingKernelLog(self.kernel, recording),
            resources=RecordingResources(self.resources, recording),
            nvml=self.nvml_source,
            processes=self.processes,
            profile_name=self.profile_name,
        )
        host.recording = recording
        return host

    # -- files ---------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        """True if the path exists (following symlinks)."""
        return self.files.exists(path)

    def is_dir(self, path: str) -> bool:
        """True if the path is a directory (following symlinks)."""
        return self.files.is_dir(path)

    def read_bytes(self, path: str, limit: int | None = None) -> bytes | None:
        """The file's content, or None when it does not exist (HostReadError when it cannot be
        read or is larger than `limit`, default MAX_READ_BYTES)."""
        return self.files.read_bytes(path, limit)

    def read_text(self, path: str) -> str | None:
        """The file's text (undecodable bytes replaced), or None when it does not exist."""
        data = self.files.read_bytes(path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def read_line(self, path: str) -> str | None:
        """The file's text without surrounding whitespace: the shape of one-value sysfs files."""
        text = self.read_text(path)
        return None if text is None else text.strip()

    def listdir(self, path: str) -> list[str]:
        """Sorted entries of a directory; empty when it does not exist or cannot be listed."""
        return self.files.listdir(path)

    def readlink(self, path: str) -> str | None:
        """The target of a symlink as stored, or None when the path is not a symlink."""
        return self.files.readlink(path)

    def realpath(self, path: str) -> str | None:
        """The canonical path with every symlink resolved, confined to the host's root; None
        when the path does not exist or resolves outside the root."""
        return self.files.realpath(path)

    def access(self, path: str) -> bool:
        """True if this process may open the path for reading and writing (a device node)."""
        return self.files.access(path)

    def blocked_in(self, thread_id: int | None) -> str | None:
        """The path a thread is reading right now (a read that hangs stays here)."""
        return self.files.blocked_in(thread_id)

    # -- kernel log, limits ----------------------------------------------------------------------
    def kernel_log(self, words: Iterable[str] | None = None) -> list[str] | None:
        """Kernel log lines of the current boot, or None when the log is not readable.

        A reader names the words it searches for: lines containing none of them come back
        empty (the count stays), on a live node as on a profile, and a snapshot keeps exactly
        the lines some reader searched for. `None` reads every line.
        """
        return self.kernel.lines(None if words is None else tuple(words))

    def limits(self) -> dict[str, Limit]:
        """memlock, stack and nofile limits of the process that runs the checks."""
        return self.resources.limits()

    def statvfs(self, path: str) -> FsUsage | None:
        """Size and free space of the filesystem mounted at path, or None when absent."""
        return self.resources.statvfs(path)

    # -- NVML ----------------------------------------------------------------------------------
    def nvml_start(self) -> None:
        """Start collecting NVML in a child process; returns at once."""
        self.nvml_source.start()

    @property
    def nvml_started(self) -> bool:
        """Whether NVML collection was started in this run."""
        return self.nvml_source.started

    def nvml(self) -> NvmlResult:
        """What NVML answered (an NvmlRecord) or why there is no answer (an NvmlFailure),
        collected once per Host in a child process killed at the source's deadline."""
        return self.nvml_source.result()
