"""Hostile inputs under watch, run as a child process of tests/test_hostile.py.

`python tests/hostile_child.py profiles|reports WATCHED EXAMPLES` bounds its own memory, CPU
time and file sizes (setrlimit), records every path the process opens or creates (an audit
hook: open, os.mkdir, os.symlink, os.rename, os.remove, shutil.rmtree, os.listdir...), and lets
hypothesis throw hostile profiles or report files at preflight. It fails (a traceback, exit 1)
when preflight reads or writes outside the watched tree's allowed parts, changes the tree's
`outside/` folder, puts the secret into anything it returns, or raises anything but its own
one-line errors. Prints "ok N" when all examples passed.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import sys
from pathlib import Path
from typing import Any

GiB = 1 << 30
resource.setrlimit(resource.RLIMIT_AS, (2 * GiB, 2 * GiB))
resource.setrlimit(resource.RLIMIT_CPU, (240, 240))
resource.setrlimit(resource.RLIMIT_FSIZE, (128 << 20, 128 << 20))

MODE, WATCHED, EXAMPLES = sys.argv[1], Path(sys.argv[2]).resolve(), int(sys.argv[3])
OUTSIDE, VICTIM, WORK = WATCHED / "outside", WATCHED / "victim", WATCHED / "work"
SECRET = b"TOP-SECRET-7f3a9c"

# Everything preflight imports lazily is imported now, before the watch starts.
import difflib  # noqa: E402,F401
import gzip  # noqa: E402
import io  # noqa: E402
import tarfile  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import preflight.cluster.aggregate  # noqa: E402
import preflight.cluster.compare  # noqa: E402
import preflight.cluster.genbaseline  # noqa: E402
import preflight.cluster.render  # noqa: E402
import preflight.nvml.schema  # noqa: E402
import preflight.registry  # noqa: E402
from preflight import profile  # noqa: E402
from preflight.cli import app  # noqa: E402
from preflight.errors import HostReadError, ProfileError  # noqa: E402

preflight.registry.discover()  # imports every check module

EVENTS = {
    "open",
    "os.mkdir",
    "os.symlink",
    "os.link",
    "os.rename",
    "os.remove",
    "os.rmdir",
    "os.truncate",
    "os.chmod",
    "os.chown",
    "os.utime",
    "os.listdir",
    "os.scandir",
    "shutil.rmtree",
    "shutil.move",
    "shutil.copyfile",
}
WRITES = EVENTS - {"open", "os.listdir", "os.scandir"}
watching = False
seen: list[tuple[str, str, bool]] = []
CODE = (
    sys.prefix,
    sys.base_prefix,
    os.path.dirname(os.path.abspath(preflight.registry.__file__)),
    *(os.path.abspath(p) for p in sys.path if p and os.path.exists(p)),
)


def audit(event: str, args: tuple[Any, ...]) -> None:
    if not watching or event not in EVENTS or not args:
        return
    if event == "os.symlink":
        names = [args[1]]  # (target, where the link is made, dir_fd): the target is only text
    elif event in ("os.rename", "os.link", "shutil.move", "shutil.copyfile"):
        names = [args[0], args[1]]
    else:
        names = [args[0]]
    write = event in WRITES
    if event == "open":
        mode, flags = args[1], args[2]
        write = bool(
            (isinstance(mode, str) and any(c in mode for c in "wax+"))
            or (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        )
    for path in names:
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str):
            continue  # a descriptor: its path was recorded when it was opened
        # Relative names come from shutil.rmtree, which walks with dir_fd (never following
        # links); stop() accepts them only after an rmtree of an allowed folder.
        seen.append((event, os.path.abspath(path) if path.startswith("/") else path, write))


sys.addaudithook(audit)


def allowed(path: str, write: bool) -> bool:
    """Writes only in WORK (profiles, reports, the sysroots); reads also of Python's own code
    and of /proc/PID/stat (a sysroot owner's start time)."""
    if path == str(WORK) or path.startswith(f"{WORK}/"):
        return True
    if write:
        return False
    if path.startswith("/proc/") and path.endswith("/stat"):
        return True
    # Installed code and metadata (entry points), the built-in profiles and baselines.
    return path.startswith(CODE)


def tree(folder: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(top, name)
            st_ = p.lstat()
            if stat.S_ISLNK(st_.st_mode):
                out[str(p)] = "-> " + os.readlink(p)
            elif stat.S_ISREG(st_.st_mode):
                out[str(p)] = p.read_bytes()
            else:
                out[str(p)] = f"mode {st_.st_mode:o}"
    return out


def start() -> dict[str, bytes | str]:
    global watching
    before = tree(OUTSIDE)
    seen.clear()
    watching = True
    return before


def stop(before: dict[str, bytes | str]) -> None:
    global watching
    watching = False
    bad, in_rmtree = [], False
    for event, path, write in seen:
        if event == "shutil.rmtree":
            in_rmtree = allowed(path, True)
        if not (allowed(path, write) or (in_rmtree and not path.startswith("/"))):
            bad.append((event, path, write))
    assert not bad, f"touched outside the watched tree: {bad[:5]}"
    assert tree(OUTSIDE) == before, "the outside folder changed"
    assert list(VICTIM.iterdir()) == [], "something was created in the victim folder"


PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)

# ------------------------------------------------------------------------------------ profiles
UP = "../" * 40  # more than any sysroot is deep: `..` at "/" stays at "/" for the kernel
OUT_REL = str(OUTSIDE).lstrip("/")
components = st.sampled_from(
    ["sys", "proc", "x", "y", "..", ".", "", "a\x00b", "\udcff", "n" * 300, "é", "cmdline"]
)
paths = st.one_of(
    st.builds(
        lambda lead, parts: lead + "/".join(parts),
        st.sampled_from(["/", "", "//", "/sys/"]),
        st.lists(components, max_size=5),
    ),
    st.sampled_from(["/sys/a", "/sys/b/c", "/proc/cmdline", "/sys/x", "/sys/x/evil", "/a"]),
    st.integers(60, 70).map(lambda n: "/d" * n),
)
targets = st.one_of(
    paths,
    st.sampled_from(
        [
            f"{UP}{OUT_REL}/secret",
            f"{UP}{OUT_REL}",
            f"{UP}{str(VICTIM).lstrip('/')}",
            f"/{OUT_REL}/secret",
            f"{UP}dev/zero",
            "/dev/zero",
            "../../..",
            "x/../../../..",
            "b/c/../../../../..",
            "/",
            ".",
            "",
        ]
    ),
)
contents = st.one_of(
    st.text(max_size=5),
    st.just({"hex": "00ff"}),
    st.builds(
        lambda size: {"hex": "", "size": size},
        st.sampled_from([0, 4096, 10**15, (16 << 20) + 1, -1, True]),
    ),
    st.none(),
)
hostile_profiles = st.fixed_dictionaries(
    {},
    optional={
        "files": st.dictionaries(paths, contents, max_size=4),
        "symlinks": st.dictionaries(paths, targets, max_size=4),
        "dirs": st.lists(paths, max_size=3),
    },
)
# A link and an entry below it: writing the entry would go through the link.
link_then_file = st.builds(
    lambda link, target, below, content: {
        "symlinks": {link: target},
        "files" if below == "file" else "dirs": (
            {f"{link}/evil": content} if below == "file" else [f"{link}/evil"]
        ),
    },
    st.sampled_from(["/sys/x", "/etc"]),
    targets,
    st.sampled_from(["file", "dir"]),
    contents,
)
PROBES = ["/", "/sys", "/proc/cmdline", "/sys/x", "/sys/x/evil", "/sys/x/secret", "/dev/zero"]


def read_everything(host: Any, keys: list[str]) -> list[Any]:
    """Every answer the host gives about the keys and the probes."""
    answers: list[Any] = []
    for path in [*keys, *PROBES]:
        if not isinstance(path, str) or not path.startswith("/"):
            continue
        listing = host.listdir(path)
        assert "secret" not in listing or not path.startswith("/sys/x"), (path, listing)
        try:
            data = host.read_bytes(path)
        except HostReadError as exc:
            data, error = None, str(exc)
        else:
            error = ""
        assert "\n" not in error
        assert data is None or SECRET not in data, f"read the secret through {path!r}"
        answers.append(
            (
                path,
                host.exists(path),
                host.is_dir(path),
                host.access(path),
                host.realpath(path),
                host.readlink(path),
                listing,
                data,
                error,
            )
        )
    return answers


def lexical_escape(data: dict[str, Any]) -> bool:
    """An absolute link target with `..` in it: materialize() normalizes it by name (as
    os.path.relpath does) where the kernel, and the in-memory source, resolve the links
    before each `..`; the two trees may then differ."""
    links = data.get("symlinks", {})
    return any(isinstance(t, str) and t.startswith("/") and ".." in t for t in links.values())


@PROPERTY
@given(data=st.one_of(hostile_profiles, link_then_file))
def profiles_stay_inside(data: dict[str, Any]) -> None:
    """Both file sources (the profile in memory, and its materialized sysroot) stay inside and
    give the same answers."""
    path = WORK / "p.json"
    path.write_text(json.dumps(data))
    answers: dict[bool, list[Any]] = {}
    errors: dict[bool, str] = {}
    for sysroot in (False, True):
        before = start()
        try:
            try:
                host = profile.host_from_profile(str(path), sysroot=sysroot)
            except ProfileError as exc:
                host, errors[sysroot] = None, str(exc)
            else:
                errors[sysroot] = ""
            if host is not None:
                keys = [*data.get("files", {}), *data.get("symlinks", {}), *data.get("dirs", [])]
                answers[sysroot] = read_everything(host, keys)
        finally:
            profile.remove_sysroots()
            stop(before)
        assert "\n" not in errors[sysroot]
        assert [p.name for p in WORK.iterdir()] == ["p.json"], "a sysroot was left behind"
    assert errors[False] == errors[True]
    if not lexical_escape(data):
        assert answers.get(False) == answers.get(True)


# ------------------------------------------------------------------------------------- reports
# Node text with rich markup and terminal escapes mixed in: compare prints it literally.
texts = st.one_of(
    st.text(max_size=8), st.sampled_from(["[/b]", "[node7]", "\x1b]0;x\x07", "[bold red]x"])
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)
results = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["pcie.acs", "gpu.count", "x"]) | values,
            "title": texts,
            "status": st.sampled_from(["pass", "fail", "error", "warn"]) | values,
            "summary": texts | values,
        }
    ),
    max_size=3,
)
reports = st.builds(
    lambda host, counts, res, facts, extra: {
        "schema_version": 1,
        "tool": {"name": "preflight", "version": "0"},
        "host": {"hostname": host},
        "summary": {"status": "pass", "counts": counts},
        "results": res,
        "facts": facts,
        **extra,
    },
    texts | values,
    st.dictionaries(st.sampled_from(["pass", "fail", "error"]), st.integers() | values),
    results | values,
    st.dictionaries(st.sampled_from(["dmi.product_name", "k", "gpu.0.uuid"]), values, max_size=3)
    | values,
    st.dictionaries(st.sampled_from(["baseline", "started_at", "schema_version"]), values),
)
SPECIAL = {  # by name, so that a failing example prints short
    "deep-list": b"[" * 200_000 + b"]" * 200_000,
    "deep-object": b'{"a":' * 100_000,
    "not-utf8": b"\xff\xfe{}",
    "gzip": gzip.compress(b"{}"),
}
raw_reports = st.one_of(
    reports.map(lambda doc: json.dumps(doc).encode()),
    st.binary(max_size=64),
    st.sampled_from(sorted(SPECIAL)),
)
kinds = st.sampled_from(["file", "file", "file", "fifo", "zero-link", "jsonl", "tar"])


def place(folder: Path, index: int, kind: str, payload: bytes | str) -> None:
    if isinstance(payload, str):
        payload = SPECIAL[payload]
    if kind == "fifo":
        os.mkfifo(folder / f"r{index}.json")
    elif kind == "zero-link":
        (folder / f"r{index}.json").symlink_to("/dev/zero")
    elif kind == "jsonl":
        (folder / f"r{index}.jsonl").write_bytes(payload.replace(b"\n", b" ") + b"\n" + payload)
    elif kind == "tar":
        with tarfile.open(folder / f"r{index}.tar.gz", "w:gz") as tar:
            info = tarfile.TarInfo("in/r.json")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    else:
        (folder / f"r{index}.json").write_bytes(payload)


@PROPERTY
@given(batch=st.lists(st.tuples(kinds, raw_reports), min_size=1, max_size=4))
def reports_never_break_compare(batch: list[tuple[str, bytes | str]]) -> None:
    folder = WORK / "reports"
    for old in folder.glob("*"):
        old.unlink()
    for index, (kind, payload) in enumerate(batch):
        place(folder, index, kind, payload)
    first = sorted(folder.iterdir())[0]
    runner = CliRunner()
    before = start()
    try:
        for argv in (
            ["compare", str(folder), "--jobs", "1"],
            ["compare", str(folder), "--jobs", "1", "--golden", str(first)],
            ["baselines", "generate", str(folder), "--jobs", "1"],
        ):
            result = runner.invoke(app, argv)
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                argv,
                repr(result.exception),
            )
            assert result.exit_code in (0, 1, 2, 3), (argv, result.exit_code)
            assert "Traceback" not in result.output and "Traceback" not in result.stderr
            if result.exit_code in (2, 3):
                lines = result.stderr.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("preflight: error: "), lines
    finally:
        stop(before)


if __name__ == "__main__":
    OUTSIDE.mkdir()
    (OUTSIDE / "secret").write_bytes(SECRET)
    (OUTSIDE / "sub").mkdir()
    VICTIM.mkdir()
    WORK.mkdir()
    if MODE == "profiles":
        profile._scratch_dir = lambda: str(WORK)  # sysroots inside the watched tree
        profiles_stay_inside()
    else:
        (WORK / "reports").mkdir()
        reports_never_break_compare()
    print(f"ok {EXAMPLES}")
