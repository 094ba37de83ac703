"""Recording: wrappers that keep what the checks read from any source, for `preflight snapshot`.

A wrapper answers exactly as the source it wraps and writes down the question and the answer
in a shared `Recording`: every path probed, the first content of each file read, each directory
listing, the environment variables asked for (by name or by a word of their names) and the
words the kernel log was searched for. A snapshot keeps those and nothing else.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from preflight.sources.environment import Environment
from preflight.sources.files import FileSource
from preflight.sources.kernel_log import KernelLogSource, keep_lines
from preflight.sources.limits import FsUsage, Limit, ResourceSource

if TYPE_CHECKING:
    from typing import BinaryIO


@dataclass
class Recording:
    """What was read through the wrappers that share it."""

    paths: set[str] = field(default_factory=set)
    captured: dict[str, bytes] = field(default_factory=dict)
    listed: dict[str, list[str]] = field(default_factory=dict)
    env_names: set[str] = field(default_factory=set)
    env_words: set[str] = field(default_factory=set)
    log_words: set[str] = field(default_factory=set)
    log_everything: bool = False
    kernel_log: list[str] | None = None
    kernel_log_read: bool = False
    sizes: dict[str, FsUsage | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """The variables of `env` a reader asked for."""
        upper = {w.upper() for w in self.env_words}
        return {
            k: v
            for k, v in sorted(env.items())
            if k in self.env_names or any(w in k.upper() for w in upper)
        }

    def kept_log(self) -> list[str] | None:
        """The kernel log lines a reader searched for (others empty), None when unreadable."""
        if self.kernel_log is None:
            return None
        return keep_lines(self.kernel_log, None if self.log_everything else self.log_words)


class RecordingFiles(FileSource):
    """Any file source, with each path probed, file read and directory listed kept."""

    def __init__(self, inner: FileSource, recording: Recording) -> None:
        super().__init__()
        self.inner = inner
        self.root = inner.root
        self.recording = recording

    def _note(self, path: str) -> None:
        with self.recording.lock:
            self.recording.paths.add(path)

    def local(self, path: str, follow_last: bool = True) -> str | None:
        return self.inner.local(path, follow_last)

    def _open(self, path: str, real: str) -> BinaryIO:
        return self.inner._open(path, real)

    def _list(self, real: str) -> list[str]:
        return self.inner._list(real)

    def exists(self, path: str) -> bool:
        self._note(path)
        return self.inner.exists(path)

    def is_dir(self, path: str) -> bool:
        self._note(path)
        return self.inner.is_dir(path)

    def read_bytes(self, path: str, limit: int | None = None) -> bytes | None:
        self._note(path)
        data = self.inner.read_bytes(path, limit)
        if data is not None:
            with self.recording.lock:
                self.recording.captured.setdefault(path, data)
        return data

    def entries(self, path: str) -> list[str] | None:
        self._note(path)
        entries = self.inner.entries(path)
        if entries is not None:
            with self.recording.lock:
                self.recording.listed.setdefault(path, entries)
        return entries

    def readlink(self, path: str) -> str | None:
        self._note(path)
        return self.inner.readlink(path)

    def realpath(self, path: str) -> str | None:
        self._note(path)
        return self.inner.realpath(path)

    def access(self, path: str) -> bool:
        self._note(path)
        return self.inner.access(path)

    def kind(self, path: str) -> str | None:
        return self.inner.kind(path)  # not noted: only the snapshot asks, after the checks

    def blocked_in(self, thread_id: int | None) -> str | None:
        return self.inner.blocked_in(thread_id)


class RecordingEnvironment(Environment):
    """An environment that keeps the names asked for (present or not) and the words searched."""

    def __init__(self, inner: Mapping[str, str], recording: Recording) -> None:
        super().__init__(inner)
        self.inner = inner
        self.recording = recording

    def __getitem__(self, name: str) -> str:
        with self.recording.lock:
            self.recording.env_names.add(name)
        return super().__getitem__(name)

    def __iter__(self) -> Iterator[str]:
        # Iterating reads every name: all of them are kept (readers ask by name or word).
        with self.recording.lock:
            self.recording.env_words.add("")
        return super().__iter__()

    def names_containing(self, word: str) -> dict[str, str]:
        with self.recording.lock:
            self.recording.env_words.add(word)
        return super().names_containing(word)


class RecordingKernelLog:
    """A kernel log read once (later readers get the same lines, as from a profile), with the
    words each reader searched for kept."""

    def __init__(self, inner: KernelLogSource, recording: Recording) -> None:
        self.inner = inner
        self.recording = recording

    def lines(self, words: Sequence[str] | None = None) -> list[str] | None:
        rec = self.recording
        with rec.lock:
            if words is None:
                rec.log_everything = True
            else:
                rec.log_words.update(words)
            if not rec.kernel_log_read:
                rec.kernel_log = self.inner.lines()
                rec.kernel_log_read = True
            return None if rec.kernel_log is None else keep_lines(rec.kernel_log, words)


class RecordingResources:
    """Limits and filesystem sizes, with each filesystem asked about kept."""

    def __init__(self, inner: ResourceSource, recording: Recording) -> None:
        self.inner = inner
        self.recording = recording

    def limits(self) -> dict[str, Limit]:
        return self.inner.limits()

    def statvfs(self, path: str) -> FsUsage | None:
        usage = self.inner.statvfs(path)
        with self.recording.lock:
            self.recording.sizes.setdefault(path, usage)
        return usage
