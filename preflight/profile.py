"""Mocked hardware profiles: load, resolve `extends`, validate; a Host answering from the
profile in memory, or from a private sysroot it is materialized into."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from preflight import safeio
from preflight.errors import ProfileError
from preflight.host import Host
from preflight.sources.files import MAX_LINKS, FileSource, SysrootFiles
from preflight.sources.kernel_log import ProfileKernelLog
from preflight.sources.limits import FsUsage, Limit, ProfileResources
from preflight.sources.nvml import DEFAULT_TIMEOUT_S, AbsentNvml, NvmlSource, ProfileNvml
from preflight.sources.profile_files import ProfileFiles
from preflight.suggest import did_you_mean

MAX_FILE_BYTES = 16 << 20
"""One file of a profile (`size` included): a sysfs attribute is a page, a config space 4 kB."""
MAX_SYSROOT_BYTES = 64 << 20
"""All files of a profile together (dgx-h100: 0.3 MB); the sysroot lives in /dev/shm, RAM."""
MAX_ENTRIES = 100_000
"""files + symlinks + dirs (dgx-h100: 2,425)."""
MAX_PATH_BYTES = 1024
"""A path or symlink target in a profile (real sysfs paths are under 300 bytes)."""
MAX_NAME_BYTES = 255
"""One path component (NAME_MAX)."""
MAX_DEPTH = 64
"""Components of one path (sysfs nests about 15)."""
_RESOLVE_BUDGET = 2_000_000
"""Steps the load-time symlink resolution may take in all (dgx-h100: ~5,000)."""

PROFILE_KEYS = {
    "description",
    "extends",
    "hostname",
    "privileged",
    "env",
    "limits",
    "statvfs",
    "kernel_log",
    "files",
    "symlinks",
    "dirs",
    "nvml",
}


def builtin_names() -> list[str]:
    """Names of the profiles shipped with preflight."""
    folder = resources.files("preflight") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def merge(base: Any, over: Any) -> Any:
    """Objects merge key by key, recursively; null deletes the key; anything else replaces."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = merge(out.get(key) if isinstance(out.get(key), dict) else {}, value)
        else:
            out[key] = value
    return out


_TOO_DEEP = object()


def _read(name_or_path: str, relative_to: Path | None) -> tuple[dict[str, Any], str, Path | None]:
    candidate = Path(name_or_path)
    if relative_to is not None and not candidate.is_absolute():
        candidate = relative_to / candidate
    if name_or_path in builtin_names() and not (relative_to and candidate.exists()):
        text = (resources.files("preflight") / "profiles" / f"{name_or_path}.json").read_text()
        origin, folder = f"built-in:{name_or_path}", None
    elif candidate.exists() or name_or_path.endswith((".json", ".json.gz")) or "/" in name_or_path:
        limit = safeio.PROFILE_MAX_BYTES
        try:
            raw = safeio.read_regular(candidate, limit)
            if raw[:2] == b"\x1f\x8b":  # gzip magic: a .json.gz snapshot
                raw = safeio.gunzip(raw, limit)
            text = raw.decode("utf-8")
        except OSError as exc:
            raise ProfileError(f"profile {name_or_path}: {exc.strerror or exc}") from None
        except safeio.InputRefused as exc:
            raise ProfileError(f"profile {name_or_path}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ProfileError(f"profile {name_or_path}: not UTF-8 JSON or gzip: {exc}") from None
        origin, folder = str(candidate.resolve()), candidate.resolve().parent
    else:
        raise ProfileError(
            f"unknown profile {name_or_path!r}"
            + did_you_mean(name_or_path, builtin_names())
            + " (see `preflight profiles list`, or give a path to a .json file)"
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(
            f"profile {name_or_path}: invalid JSON at line {exc.lineno} "
            f"column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        data = _TOO_DEEP
    if data is _TOO_DEEP or safeio.nesting(data) > safeio.MAX_NESTING:
        raise ProfileError(
            f"profile {name_or_path}: nested deeper than {safeio.MAX_NESTING} levels"
        )
    if not isinstance(data, dict):
        raise ProfileError(f"profile {name_or_path}: the top level must be a JSON object")
    return data, origin, folder


def resolve(
    name_or_path: str, _relative_to: Path | None = None, _seen: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The profile with its `extends` chain merged in, validated."""
    data, origin, folder = _read(name_or_path, _relative_to)
    if origin in _seen:
        chain = " -> ".join(s.removeprefix("built-in:") for s in (*_seen, origin))
        raise ProfileError(f"profile {name_or_path}: extends cycle {chain}")
    unknown = set(data) - PROFILE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise ProfileError(
            f"profile {name_or_path}: unknown key {key!r}" + did_you_mean(key, PROFILE_KEYS)
        )
    parent = data.get("extends")
    if parent is not None:
        if not isinstance(parent, str):
            raise ProfileError(f"profile {name_or_path}: extends must be a profile name or path")
        base = resolve(parent, folder, (*_seen, origin))
        data = merge(base, {k: v for k, v in data.items() if k != "extends"})
    validate(data, name_or_path)
    return data


def validate(data: Mapping[str, Any], name: str) -> None:
    """Reject shapes the materializer cannot honour, with a one-line reason."""

    def fail(msg: str) -> NoReturn:
        raise ProfileError(f"profile {name}: {msg}")

    for key, kind in (
        ("env", dict),
        ("limits", dict),
        ("statvfs", dict),
        ("files", dict),
        ("symlinks", dict),
        ("dirs", list),
        ("nvml", dict),
    ):
        if key in data and not isinstance(data[key], kind):
            fail(f"{key} must be a JSON {'object' if kind is dict else 'array'}")
    if "privileged" in data and not isinstance(data["privileged"], bool):
        fail("privileged must be true or false")
    _check_tree(data, fail)
    for limit, pair in data.get("limits", {}).items():
        if limit not in ("memlock", "stack", "nofile"):
            fail(f"unknown limit {limit!r} (memlock, stack, nofile)")
        if not (isinstance(pair, list) and len(pair) == 2 and all(_limit_ok(v) for v in pair)):
            fail(f'limits.{limit} must be [soft, hard], each an integer or "unlimited"')
    for mount, usage in data.get("statvfs", {}).items():
        ok = isinstance(usage, dict) and all(
            isinstance(usage.get(k, 0), int) and not isinstance(usage.get(k, 0), bool)
            for k in ("size_bytes", "free_bytes")
        )
        if not ok or "size_bytes" not in usage:
            fail(f'statvfs[{mount!r}] must be {{"size_bytes": N, "free_bytes": N}} (integers)')
    for var, value in data.get("env", {}).items():
        if not isinstance(value, str):
            fail(f"env[{_show(var)}] must be a string")
    log = data.get("kernel_log", [])
    if log is not False and not (
        isinstance(log, list) and all(isinstance(line, str) for line in log)
    ):
        fail("kernel_log must be a list of strings, or false (not readable)")
    if data.get("nvml"):
        from preflight.nvml.schema import SchemaError, validate_section

        try:
            validate_section(data["nvml"])
        except SchemaError as exc:
            fail(str(exc))


def _is_fifo(content: Any) -> bool:
    return isinstance(content, dict) and list(content) == ["fifo"] and content["fifo"] is True


Fail = Callable[[str], NoReturn]


def _show(text: str, limit: int = 80) -> str:
    """A profile's string in a one-line message: quoted, escaped, and cut when long."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _check_text(text: str, what: Callable[[], str], fail: Fail) -> int:
    """A path or link target the kernel can take: UTF-8 without NUL, within PATH_MAX.
    Returns its length in bytes. `what()` names it in a failure (built only then: a profile
    holds ~2,500 paths, and naming each costs more than checking it)."""
    if "\0" in text:
        fail(f"{what()} contains a NUL character")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        fail(f"{what()} is not valid Unicode (a lone surrogate)")
    if size > MAX_PATH_BYTES:
        fail(f"{what()} is longer than {MAX_PATH_BYTES} bytes")
    return size


def _check_path(path: Any, what: str, fail: Fail) -> tuple[str, ...]:
    """The components of an entry's path; a one-line failure unless it is absolute and plain."""
    if not isinstance(path, str):
        fail(f"{what} must be absolute paths (strings)")

    def shown() -> str:
        return f"{what} path {_show(path)}"

    size = _check_text(path, shown, fail)
    if not path.startswith("/") or path == "/":
        fail(f"{shown()} must be absolute, below /")
    plain = f"{path}/"
    if "//" in plain or "/./" in plain or "/../" in plain:
        fail(f"{shown()} must not contain '..', '.' or empty components ('//', a trailing '/')")
    parts = tuple(path[1:].split("/"))
    if len(parts) > MAX_DEPTH:
        fail(f"{shown()} is nested deeper than {MAX_DEPTH} components")
    if size > MAX_NAME_BYTES and any(len(p.encode("utf-8")) > MAX_NAME_BYTES for p in parts):
        fail(f"{shown()} has a component longer than {MAX_NAME_BYTES} bytes")
    return parts


def _target_of(link: str) -> Callable[[], str]:
    """How _check_text names a link's target in a failure."""
    return lambda: f"symlinks[{_show(link)}] target"


def _check_tree(data: Mapping[str, Any], fail: Fail) -> None:
    """files, symlinks and dirs form one tree inside the sysroot, and no link leads out of it.

    Each path is one thing (a file, a link or a directory), nothing lies below a file or a
    link (a link-then-file pair would write through the link), and every link resolves, with
    the profile's own links and the sysroot as "/", without climbing above it. An absolute
    target means a path on the profiled node, so it is taken relative to the sysroot.
    """
    files = data.get("files", {})
    links = data.get("symlinks", {})
    dirs = data.get("dirs", [])
    if len(files) + len(links) + len(dirs) > MAX_ENTRIES:
        fail(f"more than {MAX_ENTRIES} files, symlinks and dirs")
    kind: dict[tuple[str, ...], str] = {}
    total = 0
    for path, content in files.items():
        kind[_check_path(path, "files", fail)] = "file"
        total += _file_size(path, content, fail)
        if total > MAX_SYSROOT_BYTES:
            fail(f"files hold more than {MAX_SYSROOT_BYTES >> 20} MiB in all")
    targets: dict[tuple[str, ...], tuple[str, ...]] = {}
    for path, target in links.items():
        parts = _check_path(path, "symlinks", fail)
        if parts in kind:
            fail(f"{_show(path)} is both a file and a symlink")
        if not isinstance(target, str) or not target:
            fail(f"symlinks[{_show(path)}] must be a non-empty string")
        _check_text(target, _target_of(path), fail)
        kind[parts] = "link"
        targets[parts] = tuple(target.split("/"))
    for path in dirs:
        parts = _check_path(path, "dirs", fail)
        if kind.get(parts, "dir") != "dir":
            fail(f"{_show(path)} is both a directory and a {kind[parts]}")
        kind[parts] = "dir"
    verified: set[tuple[str, ...]] = set()  # directories whose ancestors are all directories
    for parts in list(kind):
        for depth in range(len(parts) - 1, 0, -1):
            if parts[:depth] in verified:
                break
            above = kind.setdefault(parts[:depth], "dir")
            verified.add(parts[:depth])
            if above != "dir":
                fail(
                    f"{_show('/' + '/'.join(parts))} lies below the {above} "
                    f"{_show('/' + '/'.join(parts[:depth]))}; entries may only lie in directories"
                )
    budget = [_RESOLVE_BUDGET]
    for parts, target in targets.items():
        problem = _resolve_link(parts, target, kind, targets, budget)
        if problem:
            link = "/" + "/".join(parts)
            fail(f"symlinks[{_show(link)}] -> {_show('/'.join(target))} {problem}")


def _resolve_link(
    link: tuple[str, ...],
    target: tuple[str, ...],
    kind: Mapping[tuple[str, ...], str],
    targets: Mapping[tuple[str, ...], tuple[str, ...]],
    budget: list[int],
) -> str | None:
    """Why a link's target would leave the sysroot (or loop), resolved as Host resolves it;
    None when it stays inside (a target that does not exist stays inside: it is dangling)."""
    done = list(link[:-1])
    todo = list(reversed(target))
    if target[0] == "":
        done = []
    followed = 0
    while todo:
        budget[0] -= 1
        if budget[0] < 0:
            return "(and the links before it) take too many steps to resolve"
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                return "climbs out of the profile's root"
            done.pop()
            continue
        here = (*done, part)
        what = kind.get(here)
        if what == "link":
            followed += 1
            if followed > MAX_LINKS:
                return "is a symlink loop"
            through = targets[here]
            if through[0] == "":
                done = []
            todo.extend(reversed(through))
            continue
        if what != "dir":
            return None  # a file or nothing: the rest cannot resolve, so cannot escape
        done.append(part)
    return None


def _file_size(path: str, content: Any, fail: Fail) -> int:
    """The bytes a files entry materializes to; a one-line failure unless it has a valid shape."""
    if _is_fifo(content):
        return 0
    if isinstance(content, str):
        try:
            size = len(content.encode("utf-8"))
        except UnicodeEncodeError:
            fail(f"files[{_show(path)}] is not valid Unicode (a lone surrogate)")
    else:
        if not isinstance(content, dict) or not isinstance(content.get("hex"), str):
            fail(
                f'files[{_show(path)}] must be a string, {{"hex": ..., "size": N}} '
                'or {"fifo": true}'
            )
        if len(content["hex"]) > 2 * MAX_FILE_BYTES:
            fail(f"files[{_show(path)}] is larger than {MAX_FILE_BYTES >> 20} MiB")
        try:
            raw = bytes.fromhex(content["hex"])
        except ValueError:
            fail(f"files[{_show(path)}]: hex is not valid hexadecimal")
        size = content.get("size", len(raw))
        if not isinstance(size, int) or isinstance(size, bool) or size < len(raw):
            fail(f"files[{_show(path)}]: size must be an integer >= the hex length")
    if size > MAX_FILE_BYTES:
        fail(f"files[{_show(path)}] is larger than {MAX_FILE_BYTES >> 20} MiB")
    return size


def _limit_ok(value: Any) -> bool:
    return value == "unlimited" or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0
    )


def _limit(value: int | str) -> int:
    return -1 if value == "unlimited" else int(value)


def materialize(data: Mapping[str, Any], root: str) -> None:
    """Write the profile's directories, files and symlinks under root, as on the node.

    Once `data` is validated, no entry lies below a file or a link: the
    directories and files are created before any link exists, and never through one; files are
    created exclusively without following links. Raises ProfileError when the OS refuses one.
    """
    validate(data, "to materialize")  # cheap (5 ms for dgx-h100), and the writes rely on it
    try:
        _materialize(data, root)
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else root
        shown = where[len(root) :] if where.startswith(root) else where
        raise ProfileError(
            f"profile entry {_show(shown or '/')} cannot be created: {exc.strerror or exc}"
        ) from None


def _materialize(data: Mapping[str, Any], root: str) -> None:
    made = {root}

    def make_dirs(real: str) -> None:
        """Create `real` and its missing parents, each once (a profile's ~2,000 entries share a
        few hundred directories; os.makedirs would stat and retry every one of them)."""
        missing = []
        while real not in made:
            missing.append(real)
            real = os.path.dirname(real)
        for path in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)
            made.add(path)

    for path in data.get("dirs", []):
        make_dirs(os.path.join(root, path.lstrip("/")))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for path, content in data.get("files", {}).items():
        real = os.path.join(root, path.lstrip("/"))
        make_dirs(os.path.dirname(real))
        if _is_fifo(content):
            # A named pipe nobody writes to: open() blocks, as a read of a hung device does.
            os.mkfifo(real, 0o600)
            continue
        if isinstance(content, str):
            payload = content.encode("utf-8")
        else:
            raw = bytes.fromhex(content["hex"])
            payload = raw + bytes(content.get("size", len(raw)) - len(raw))
        fd = os.open(real, flags, 0o644)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    for path, target in data.get("symlinks", {}).items():
        real = os.path.join(root, path.lstrip("/"))
        make_dirs(os.path.dirname(real))
        if target.startswith("/"):
            # A path on the profiled node: under the root. The link's parent is a directory,
            # never a link (validate), so the relative form is computed on the names alone.
            target = os.path.relpath(os.path.join(root, target.lstrip("/")), os.path.dirname(real))
        os.symlink(target, real)


def _scratch_dir() -> str | None:
    """tmpfs when there is one: a profile is ~2,000 small files, which a disk-backed /tmp
    creates 50x slower (measured 2.8 s vs 0.05 s for dgx-h100)."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


_SYSROOT_PREFIX = "preflight-profile-"
_SYSROOT_NAME = re.compile(r"preflight-profile-(\d+)-(\d+)-(\d+)-[A-Za-z0-9_]+")
"""preflight-profile-PID-START-PIDNS-RANDOM: whose sysroot it is (the process id, its start
time in clock ticks since boot, its pid namespace), so a stale one is told from a live one."""
_sysroots: list[str] = []


def _start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: when the process started; None when there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read(4096)
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces and ')'.
    fields = stat_line[stat_line.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def remove_stale_sysroots(folder: str) -> list[str]:
    """Remove the sysroots in `folder` left by preflight processes that no longer run (killed
    with SIGKILL, say); returns their paths.

    Only what is provably ours is removed: a directory (not a link) named by the pattern, owned
    by this user, mode 0700, whose process (same pid namespace) is gone or was started at
    another time. rmtree never follows links inside it.
    """
    removed = []
    namespace = _pid_namespace()
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        match = _SYSROOT_NAME.fullmatch(name)
        if not match or int(match[3]) != namespace:
            continue
        pid, started = int(match[1]), int(match[2])
        if _start_ticks(pid) == started:
            continue  # its process is running: a live run's sysroot
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        mine = stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
        if not mine or stat.S_IMODE(st.st_mode) != 0o700:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def remove_sysroots() -> None:
    """Remove every sysroot this process materialized. Idempotent and quick: safe to call from
    a signal handler (SIGTERM) and again at exit."""
    while _sysroots:
        shutil.rmtree(_sysroots.pop(), ignore_errors=True)


atexit.register(remove_sysroots)


def make_sysroot() -> str:
    """A new private (0700) directory for a profile, named after this process; stale ones of
    dead processes in the same folder are removed first."""
    folder = _scratch_dir() or tempfile.gettempdir()
    remove_stale_sysroots(folder)
    pid = os.getpid()
    prefix = f"{_SYSROOT_PREFIX}{pid}-{_start_ticks(pid) or 0}-{_pid_namespace()}-"
    root = tempfile.mkdtemp(prefix=prefix, dir=folder)
    _sysroots.append(root)
    return root


def host_from_profile(
    name_or_path: str,
    env_overrides: Mapping[str, str] | None = None,
    nvml_timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    sysroot: bool = False,
) -> Host:
    """A Host whose sources are the profile's: its files answered from memory (or, with
    `sysroot`, from a freshly materialized private sysroot, removed at exit or by
    remove_sysroots(), for a caller that needs a real tree), its limits, sizes, kernel log,
    environment and NVML."""
    data = resolve(name_or_path)
    files: FileSource
    if sysroot:
        root = make_sysroot()
        materialize(data, root)
        files = SysrootFiles(root)
    else:
        files = ProfileFiles(
            data.get("files", {}), data.get("symlinks", {}), data.get("dirs", []), name_or_path
        )
    env = dict(data.get("env", {}))
    env.update(env_overrides or {})
    limits = {k: Limit(_limit(v[0]), _limit(v[1])) for k, v in data.get("limits", {}).items()}
    statvfs = {
        k: FsUsage(int(v["size_bytes"]), int(v.get("free_bytes", v["size_bytes"])))
        for k, v in data.get("statvfs", {}).items()
    }
    section = data.get("nvml", {})
    nvml: NvmlSource = (
        ProfileNvml(section, nvml_timeout_s)
        if section
        else AbsentNvml(f"profile {name_or_path} has no nvml section", nvml_timeout_s)
    )
    return Host(
        files=files,
        env=env,
        privileged=bool(data.get("privileged", True)),
        hostname=str(data.get("hostname", name_or_path)),
        # false: not readable, as /dev/kmsg without CAP_SYSLOG.
        kernel=ProfileKernelLog(
            None if data.get("kernel_log") is False else list(data.get("kernel_log", []))
        ),
        resources=ProfileResources(limits, statvfs),
        nvml=nvml,
        profile_name=name_or_path,
    )
