"""Where a command's output goes: standard output (`-` or no --output), or a file replaced
atomically, so that a crash, a full disk or a signal never leaves a truncated report in place of
the last good one.

A regular file (or a new one) is written to a temporary file in the same directory, flushed to
disk and renamed over the target; the target keeps its permissions (a new file gets 0666 less
the umask, as open() would give it). What is not a regular file (/dev/null, /dev/stdout, a FIFO)
is written in place: renaming over a device node would replace it.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
import tempfile

from preflight.errors import PreflightError

STDOUT = "-"


class OutputError(PreflightError):
    """The output cannot be written (exit 2, like a path that cannot exist)."""

    exit_code = 2


def write_output(target: str | os.PathLike[str] | None, data: str | bytes) -> None:
    """Write data to target (None or `-`: standard output); OutputError when that fails.

    A closed pipe on standard output raises BrokenPipeError for the top level to end quietly.
    """
    if target is None or os.fspath(target) == STDOUT:
        write_stdout(data)
        return
    path = os.fspath(target)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        replace_atomically(path, raw)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_stdout(data: str | bytes) -> None:
    """Write and flush standard output; a full disk or a bad descriptor is an OutputError."""
    try:
        if isinstance(data, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data)
            sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write standard output: {exc.strerror or exc}") from None


def replace_atomically(path: str, data: bytes, mode: int | None = None) -> None:
    """Put data at path by renaming a synced temporary file over it (in place when the target
    exists and is not a regular file); `mode` sets the file's permissions."""
    real = os.path.realpath(path)  # a symlink names where the report goes; the link stays
    try:
        st: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "Is a directory", path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(real, "wb") as f:
            f.write(data)
        return
    directory = os.path.dirname(real)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif st is not None:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            with contextlib.suppress(OSError):  # only root may give a file away
                os.chown(tmp, st.st_uid, st.st_gid)
        if mode is None and st is None:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power loss
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Buffer(io.StringIO):
    """Rendered text on its way to write_output, with the encoding of where it goes, so that a
    rich console draws ASCII boxes for an ASCII terminal."""

    def __init__(self, target: str | os.PathLike[str] | None) -> None:
        super().__init__()
        to_stdout = target is None or os.fspath(target) == STDOUT
        self._encoding = (getattr(sys.stdout, "encoding", None) if to_stdout else None) or "utf-8"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The target's encoding (rich reads it to choose box characters)."""
        return self._encoding
