"""The state directory's file: opened without following links, locked, validated, replaced
atomically. Everything in it is hostile input, and nothing about it may stop a run: a problem is
a StateUnusable whose message is the one warning line's reason."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import math
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from preflight.outfile import replace_atomically
from preflight.safetext import clean_line

Say = Callable[[str], None]
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
FORMAT = "preflight-state"
VERSION = 1
MAX_BYTES = 1024 * 1024
"""A full state (8 HCAs × 12 counters, 32 devices' AER, 64 acks, 20 runs) is a few KiB."""
LOCK_WAIT_S = 3.0
LOCK_POLL_S = 0.05
HISTORY = 20  # runs kept
MAX_COUNTERS = 4096
MAX_ACKS = 64
MAX_MARKS = 64
MAX_FAILING = 256
MAX_TEXT = 256
REPLACED = "it is replaced after this run"
WARNING_TAIL = "; this run goes on without it"


class StateUnusable(Exception):
    """DIR or its file cannot be used; the message is the warning's reason."""


class StateCorrupt(StateUnusable):
    """The file is there but not a state this version wrote: it may be replaced."""


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def empty() -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "counters": None, "acks": [], "history": []}


# -- validation: the file is hostile ---------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise StateCorrupt(f"{what} is not a short string")
    return value


def _opt_text(value: Any, what: str) -> str | None:
    return None if value is None else _text(value, what)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise StateCorrupt(f"{what} is not a counter value")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StateCorrupt(f"{what} is not a number")
    return float(value)


def _counter_map(value: Any, what: str) -> dict[str, int]:
    if not isinstance(value, dict) or len(value) > MAX_COUNTERS:
        raise StateCorrupt(f"{what} is not a map of at most {MAX_COUNTERS} counters")
    return {_text(k, what): _count(v, f"{what}[{k!r}]") for k, v in value.items()}


def validate(doc: Any) -> dict[str, Any]:
    """The document when it is a state file this version writes, normalised; StateUnusable."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateCorrupt("not a preflight state file")
    if doc.get("version") != VERSION:
        raise StateCorrupt(f"state version {doc.get('version')!r} is not {VERSION}")
    out = empty()
    counters = doc.get("counters")
    if counters is not None:
        if not isinstance(counters, dict):
            raise StateCorrupt("counters is not an object")
        out["counters"] = {
            "at": _text(counters.get("at"), "counters.at"),
            "time": _number(counters.get("time"), "counters.time"),
            "boot_id": _opt_text(counters.get("boot_id"), "counters.boot_id"),
            "rdma": _counter_map(counters.get("rdma", {}), "counters.rdma"),
            "aer_correctable": _counter_map(
                counters.get("aer_correctable", {}), "counters.aer_correctable"
            ),
        }
    acks = doc.get("acks")
    if not isinstance(acks, list) or len(acks) > MAX_ACKS:
        raise StateCorrupt(f"acks is not a list of at most {MAX_ACKS}")
    for ack in acks:
        if not isinstance(ack, dict):
            raise StateCorrupt("an ack is not an object")
        marks = ack.get("marks")
        if not isinstance(marks, dict) or len(marks) > MAX_MARKS:
            raise StateCorrupt("ack marks are not a map of GPUs")
        clean = {}
        for bdf, mark in marks.items():
            if not isinstance(mark, dict):
                raise StateCorrupt("an ack mark is not an object")
            stamp = mark.get("timestamp_s")
            clean[_text(bdf, "ack GPU")] = {
                "timestamp_s": None if stamp is None else _number(stamp, "ack timestamp_s"),
                "count": _count(mark.get("count"), "ack count"),
            }
        out["acks"].append(
            {
                "at": _text(ack.get("at"), "ack at"),
                "by": _text(ack.get("by"), "ack by"),
                "gpu": _opt_text(ack.get("gpu"), "ack gpu"),
                "boot_id": _opt_text(ack.get("boot_id"), "ack boot_id"),
                "marks": clean,
            }
        )
    history = doc.get("history")
    if not isinstance(history, list):
        raise StateCorrupt("history is not a list")
    for run in history[-HISTORY:]:
        if not isinstance(run, dict):
            raise StateCorrupt("a history entry is not an object")
        entry = {
            "at": _text(run.get("at"), "history at"),
            "status": _text(run.get("status"), "history status"),
            "failing": _ids(run.get("failing"), "failing"),
        }
        if "passing" in run:  # entries written before runs recorded them have none
            entry["passing"] = _ids(run.get("passing"), "passing")
        out["history"].append(entry)
    return out


def _ids(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_FAILING:
        raise StateCorrupt(f"history {name} is not a list of check ids")
    return [_text(i, "history check id") for i in value]


# -- the directory and its lock --------------------------------------------------------------


class StateDir:
    """DIR, opened without following a symlink, owned by this user and 0700."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        try:
            os.mkdir(self.path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StateUnusable(f"cannot create it: {exc.strerror or exc}") from None
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise StateUnusable("not a directory (a symlink is not followed)") from None
            raise StateUnusable(f"cannot open it: {exc.strerror or exc}") from None
        st = os.fstat(self.fd)
        if st.st_uid != os.geteuid():
            os.close(self.fd)
            raise StateUnusable(f"owned by uid {st.st_uid}, not by this user ({os.geteuid()})")
        if stat.S_IMODE(st.st_mode) != 0o700:
            with contextlib.suppress(OSError):  # a read-only file system keeps its mode
                os.fchmod(self.fd, 0o700)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    @contextlib.contextmanager
    def locked(self, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
        """Hold DIR/state.lock (exclusive); StateUnusable when another run holds it past wait_s."""
        try:
            fd = os.open(
                LOCK_FILE,
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                0o600,
                dir_fd=self.fd,
            )
        except OSError as exc:
            raise StateUnusable(f"cannot open {LOCK_FILE}: {exc.strerror or exc}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StateUnusable(f"{LOCK_FILE} is not a regular file")
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StateUnusable(
                            f"another run holds {LOCK_FILE} for more than {wait_s:g} s"
                        ) from None
                    time.sleep(LOCK_POLL_S)
            yield
        finally:
            os.close(fd)  # releases the lock

    def read(self) -> dict[str, Any] | None:
        """The state document; None when there is none yet; StateUnusable when it is bad."""
        try:
            fd = os.open(
                STATE_FILE,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=self.fd,
            )
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateUnusable(f"{STATE_FILE} is a symlink (not followed)") from None
            raise StateUnusable(f"cannot read {STATE_FILE}: {exc.strerror or exc}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StateUnusable(f"{STATE_FILE} is not a regular file")
            data = os.read(fd, MAX_BYTES + 1)
            while len(data) <= MAX_BYTES and (more := os.read(fd, MAX_BYTES + 1 - len(data))):
                data += more
        except OSError as exc:
            raise StateUnusable(f"cannot read {STATE_FILE}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        if len(data) > MAX_BYTES:
            raise StateCorrupt(f"{STATE_FILE} is over {MAX_BYTES // 1024} KiB")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise StateCorrupt(f"{STATE_FILE} is not JSON") from None
        return validate(doc)

    def write(self, doc: Mapping[str, Any]) -> None:
        """Replace DIR/state.json atomically (0600); StateUnusable when it cannot be."""
        try:
            st = os.stat(STATE_FILE, dir_fd=self.fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise StateUnusable(f"{STATE_FILE} is not a regular file; not replaced")
        except FileNotFoundError:
            pass
        data = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
        if len(data) > MAX_BYTES:
            raise StateUnusable(f"the state would be over {MAX_BYTES // 1024} KiB; not written")
        try:
            replace_atomically(os.path.join(self.path, STATE_FILE), data, mode=0o600)
        except OSError as exc:
            raise StateUnusable(f"cannot write {STATE_FILE}: {exc.strerror or exc}") from None


def update(
    path: str, change: Callable[[dict[str, Any]], dict[str, Any]], say: Say, said: bool = False
) -> bool:
    """Read, change and write the state under the lock; False (after one warning) when the
    state cannot be used. A corrupt file is replaced by what `change` makes of an empty one
    (said, unless `said`: the run warned about it when it read the state)."""
    try:
        directory = StateDir(path)
    except StateUnusable as exc:
        warn(say, path, str(exc))
        return False
    try:
        with directory.locked():
            doc = read_or_fresh(directory, path, (lambda _: None) if said else say, "replaced")
            directory.write(change(doc))
        return True
    except StateUnusable as exc:
        warn(say, path, str(exc))
        return False
    finally:
        directory.close()


def warn(say: Say, path: str, why: str, keeps: bool = False) -> None:
    """One line on stderr; `keeps`: the run still records itself (a corrupt file is replaced)."""
    tail = "" if keeps else WARNING_TAIL
    say(clean_line(f"preflight: warning: state {path}: {why}{tail}"))


def read_or_fresh(directory: StateDir, path: str, say: Say, then: str) -> dict[str, Any]:
    """The state, or an empty one when the file is corrupt or too big (said); a symlink or a
    non-file stays StateUnusable: it is never replaced."""
    try:
        return directory.read() or empty()
    except StateCorrupt as exc:
        warn(say, path, f"{exc}; {then}", keeps=True)
        return empty()
