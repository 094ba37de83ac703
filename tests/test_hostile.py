"""Hostile profiles, reports and baselines (issue 10, items 1, 7 and 9), run as root.

The attacks of the issue first, each as it was reproduced: a profile link that climbs out of the
sysroot to read a host file into the report or /dev/zero, a link-then-file pair that plants
files outside, a FIFO or a device where a file is named, bombs and nesting. Then hypothesis
throws random hostile profiles and report files at preflight in a child process that bounds its
memory and records every path it opens or creates (tests/hostile_child.py).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from preflight import profile, safeio
from preflight.cli import app
from preflight.errors import HostReadError, ProfileError
from preflight.host import Host
from preflight.slurm import run_bounded

runner = CliRunner()
HERE = Path(__file__).parent
SECRET = "TOP-SECRET-41c2"
UP = "../" * 40  # more ".." than any sysroot is deep: the kernel stops at "/"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside every sysroot, holding a secret file and an empty victim folder."""
    folder = tmp_path / "outside"
    (folder / "victim").mkdir(parents=True)
    (folder / "secret").write_text(SECRET)
    return folder


def run_profile(path: Path, *extra: str) -> Any:
    return runner.invoke(app, ["run", "--profile", str(path), "--format", "json", *extra])


def one_error_line(result: Any) -> str:
    """The single `preflight: error:` line of a refused command (and no traceback)."""
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("preflight: error: "), result.stderr
    return str(lines[0])


def write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


# ------------------------------------------------------------------ item 1: the attacks


def test_link_climbing_out_cannot_read_a_host_file_into_the_report(
    tmp_path: Path, outside: Path
) -> None:
    target = UP + str(outside / "secret").lstrip("/")
    path = write(
        tmp_path / "p.json",
        {
            "extends": "dgx-h100",
            "files": {"/proc/cmdline": None},  # null: the base's file is deleted
            "symlinks": {"/proc/cmdline": target},
        },
    )
    result = run_profile(path, "--only", "host.kernel_cmdline")
    assert result.exit_code == 3
    assert "climbs out of the profile's root" in one_error_line(result)
    assert SECRET not in result.output


def test_link_to_dev_zero_is_refused_at_once(tmp_path: Path) -> None:
    for target in (f"{UP}dev/zero", "../../../../../../../../../../dev/zero"):
        path = write(tmp_path / "p.json", {"symlinks": {"/proc/cmdline": target}})
        t0 = time.monotonic()
        result = run_profile(path)
        assert result.exit_code == 3 and time.monotonic() - t0 < 10
        assert "climbs out" in one_error_line(result)


@pytest.mark.parametrize("sysroot", [False, True], ids=["in-memory", "sysroot"])
def test_absolute_link_targets_stay_in_the_sysroot(
    tmp_path: Path, outside: Path, sysroot: bool
) -> None:
    """An absolute target names a path on the profiled node: it is looked up in the profile
    (in memory, or its materialized sysroot), never on this machine (so /dev/zero or the
    secret are simply not there)."""
    path = write(
        tmp_path / "p.json",
        {
            "files": {"/sys/devices/x/vendor": "0x10de\n"},
            "symlinks": {
                "/sys/bus/x": "/sys/devices/x",
                "/proc/zero": "/dev/zero",
                "/proc/secret": str(outside / "secret"),
            },
        },
    )
    host = profile.host_from_profile(str(path), sysroot=sysroot)
    try:
        assert host.read_line("/sys/bus/x/vendor") == "0x10de"
        assert host.realpath("/sys/bus/x") == "/sys/devices/x"
        assert host.read_bytes("/proc/zero") is None
        assert host.read_bytes("/proc/secret") is None
        assert host.readlink("/proc/zero") == "../dev/zero"
        if sysroot:
            assert os.readlink(os.path.join(host.root, "proc/zero")) == "../dev/zero"
    finally:
        profile.remove_sysroots()


@pytest.mark.parametrize("kind", ["file", "dir", "link"])
@pytest.mark.parametrize("absolute", [False, True])
def test_link_then_entry_creates_nothing_outside(
    tmp_path: Path, outside: Path, kind: str, absolute: bool
) -> None:
    """`/sys/x` -> a folder outside, then `/sys/x/evil`: the issue planted files this way in
    /etc/profile.d. Refused before anything is written."""
    victim = outside / "victim"
    target = str(victim) if absolute else UP + str(victim).lstrip("/")
    doc: dict[str, Any] = {"symlinks": {"/sys/x": target}}
    if kind == "file":
        doc["files"] = {"/sys/x/evil": "echo owned\n"}
    elif kind == "dir":
        doc["dirs"] = ["/sys/x/evil"]
    else:
        doc["symlinks"]["/sys/x/evil"] = "/etc/passwd"
    result = run_profile(write(tmp_path / "p.json", doc))
    assert result.exit_code == 3
    assert "lies below the link '/sys/x'" in one_error_line(result)
    assert list(victim.iterdir()) == []


HOSTILE_ENTRIES = [
    # (profile, what the one-line error says)
    ({"files": {"/sys/../etc/x": "a"}}, "must not contain '..'"),
    ({"files": {"/sys/./x": "a"}}, "must not contain '..'"),
    ({"files": {"/sys//x": "a"}}, "empty components"),
    ({"files": {"/sys/x/": "a"}}, "empty components"),
    ({"files": {"sys/x": "a"}}, "must be absolute"),
    ({"files": {"/": "a"}}, "must be absolute, below /"),
    ({"files": {"/sys/a\u0000b": "a"}}, "contains a NUL character"),
    ({"files": {"/sys/\udcff": "a"}}, "lone surrogate"),
    ({"files": {"/sys/x": "\udcff"}}, "lone surrogate"),
    ({"symlinks": {"/sys/x": "a\u0000b"}}, "contains a NUL character"),
    ({"symlinks": {"/sys/x": "\udcff"}}, "lone surrogate"),
    ({"files": {"/" + "n" * 256: "a"}}, "component longer than 255 bytes"),
    ({"files": {"/" + "/n" * 600: "a"}}, "longer than 1024 bytes"),
    ({"files": {"/d" * 65: "a"}}, "deeper than 64 components"),
    ({"files": {"/sys/a": "x", "/sys/a/b": "y"}}, "lies below the file '/sys/a'"),
    ({"files": {"/sys/a": "x"}, "dirs": ["/sys/a"]}, "both a directory and a file"),
    ({"files": {"/sys/a": "x"}, "symlinks": {"/sys/a": "b"}}, "both a file and a symlink"),
    ({"symlinks": {"/sys/a": "b"}, "dirs": ["/sys/a"]}, "both a directory and a link"),
    ({"symlinks": {"/a": "../x"}}, "climbs out of the profile's root"),
    ({"symlinks": {"/a/b": "/../../x"}}, "climbs out of the profile's root"),
    # Each link alone stays inside; `..` after the link /d/x (-> /z) climbs from /z, not /d.
    ({"symlinks": {"/d/x": "/z", "/d/l": "x/../.."}, "dirs": ["/z"]}, "climbs out"),
    ({"symlinks": {"/a": "b", "/b": "a"}}, "is a symlink loop"),
    ({"symlinks": {"/a": "a/b"}}, "is a symlink loop"),
    ({"files": {"/x": {"hex": "", "size": 10**15}}}, "larger than 16 MiB"),
    ({"files": {"/x": {"hex": "", "size": True}}}, "size must be an integer"),
    (
        {"files": {f"/f{i}": {"hex": "", "size": 15 << 20} for i in range(5)}},
        "more than 64 MiB in all",
    ),
]


@pytest.mark.parametrize(("doc", "message"), HOSTILE_ENTRIES)
def test_hostile_entries_are_one_line_errors(tmp_path: Path, doc: Any, message: str) -> None:
    result = run_profile(write(tmp_path / "p.json", doc))
    assert result.exit_code == 3
    assert message in one_error_line(result)


def test_entries_below_a_link_in_a_base_profile_are_refused_after_the_merge(
    tmp_path: Path, outside: Path
) -> None:
    base = write(tmp_path / "base.json", {"symlinks": {"/sys/x": str(outside / "victim")}})
    child = write(tmp_path / "child.json", {"extends": str(base), "dirs": ["/sys/x/evil"]})
    result = run_profile(child)
    assert result.exit_code == 3 and "lies below the link" in one_error_line(result)
    assert list((outside / "victim").iterdir()) == []


# ------------------------------------------------------------ item 1: Host confined at read time


@pytest.fixture
def hostile_sysroot(tmp_path: Path, outside: Path) -> Path:
    """A sysroot made by hand (not by a profile, so nothing validated it) full of escapes."""
    root = tmp_path / "root"
    (root / "sys/d").mkdir(parents=True)
    (root / "z").mkdir()
    (root / "sys/ok").write_text("fine\n")
    links = {
        "sys/rel": UP + str(outside / "secret").lstrip("/"),
        "sys/abs": str(outside / "secret"),
        "sys/dir": UP + str(outside).lstrip("/"),
        "sys/zero": UP + "dev/zero",
        "sys/d/x": "/z",  # inside the root
        "sys/d/via": "x/../../" + UP + str(outside).lstrip("/") + "/secret",
        "sys/loop": "loop",
    }
    for name, target in links.items():
        (root / name).symlink_to(target)
    os.mknod(root / "sys/null", 0o600 | 0o020000, os.makedev(1, 3))  # a character device
    return root


@pytest.mark.parametrize("path", ["/sys/rel", "/sys/abs", "/sys/zero", "/sys/d/via", "/sys/loop"])
def test_host_never_follows_a_link_out_of_its_root(hostile_sysroot: Path, path: str) -> None:
    host = Host(root=str(hostile_sysroot), privileged=True, env={})
    assert host.read_bytes(path) is None
    assert host.exists(path) is False and host.realpath(path) is None
    assert host.readlink(path) is not None  # the link itself is inside


def test_host_does_not_list_or_open_outside(hostile_sysroot: Path) -> None:
    host = Host(root=str(hostile_sysroot), privileged=True, env={})
    assert host.listdir("/sys/dir") == []
    assert host.read_bytes("/sys/dir/secret") is None
    assert host.is_dir("/sys/dir") is False and host.access("/sys/dir/secret") is False
    assert host.read_line("/sys/d/x/../sys/ok") == "fine"  # `..` after a link, inside the root
    with pytest.raises(HostReadError, match="not a regular file"):
        host.read_bytes("/sys/null")  # a device inside a sysroot is never read


def test_host_reads_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(bytes(17 << 20))
    with pytest.raises(HostReadError, match="larger than 16 MiB"):
        Host(root=str(tmp_path), env={}).read_bytes("/big")


def test_bounded_live_reads_still_read_procfs() -> None:
    """/proc/sys answers ENOMEM to one read of the whole bound: reads go in chunks."""
    with open("/proc/sys/kernel/osrelease", "rb") as f:
        expected = f.read()
    assert Host().read_bytes("/proc/sys/kernel/osrelease") == expected


# --------------------------------------------------------------------- item 7: no sysroot left


def _sysroots(folder: str) -> set[str]:
    return {n for n in os.listdir(folder) if n.startswith("preflight-profile-")}


def test_remove_sysroots_removes_this_process_sysroots() -> None:
    host = profile.host_from_profile("dgx-h100", sysroot=True)
    assert os.path.isdir(host.root)
    assert os.stat(host.root).st_mode & 0o777 == 0o700
    profile.remove_sysroots()
    assert not os.path.exists(host.root)
    profile.remove_sysroots()  # idempotent


def test_a_killed_run_sysroot_is_removed_by_the_next_one(tmp_path: Path, outside: Path) -> None:
    """kill -9 leaves the sysroot; the next profile run removes it, without following the
    links inside it, and leaves a live process's sysroot alone."""
    path = write(
        tmp_path / "p.json",
        {"files": {"/sys/f": "x"}, "symlinks": {"/sys/out": str(outside)}},
    )
    code = (
        "import os, signal\n"
        "from preflight.profile import host_from_profile\n"
        f"h = host_from_profile({str(path)!r}, sysroot=True)\n"
        "os.symlink({outside!r}, os.path.join(h.root, 'escape'))\n"
        "print(h.root, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    ).replace("{outside!r}", repr(str(outside)))
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert killed.returncode == -9
    stale = killed.stdout.strip()
    assert os.path.isdir(stale)
    live = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom preflight.profile import host_from_profile\n"
            "print(host_from_profile('dgx-h100', sysroot=True).root, flush=True)\n"
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout is not None
        live_root = live.stdout.readline().strip()
        assert not os.path.exists(stale), "the next run removes the dead run's sysroot"
        fresh = profile.host_from_profile(str(path), sysroot=True)
        assert os.path.isdir(live_root), "a running process's sysroot is never removed"
        assert sorted(p.name for p in outside.iterdir()) == ["secret", "victim"]
        assert (outside / "secret").read_text() == SECRET
        assert os.path.basename(fresh.root) in _sysroots(os.path.dirname(fresh.root))
    finally:
        live.communicate("", timeout=30)
        profile.remove_sysroots()
    assert not os.path.exists(live_root), "the live run removed its own at exit"


def test_stale_removal_only_takes_what_is_provably_ours(tmp_path: Path) -> None:
    folder = tmp_path / "scratch"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ns = os.stat("/proc/self/ns/pid").st_ino
    me = os.getpid()
    started = profile._start_ticks(me)
    names = {
        "dead": f"preflight-profile-{dead.pid}-1-{ns}-abc",
        "reused_pid": f"preflight-profile-{me}-{(started or 0) + 1}-{ns}-abc",
        "live": f"preflight-profile-{me}-{started}-{ns}-abc",
        "other_pidns": f"preflight-profile-{dead.pid}-1-{ns + 1}-abc",
        "other_owner": f"preflight-profile-{dead.pid}-2-{ns}-abc",
        "loose_mode": f"preflight-profile-{dead.pid}-3-{ns}-abc",
        "a_link": f"preflight-profile-{dead.pid}-4-{ns}-abc",
        "old_style": "preflight-profile-x8k2",
    }
    for key, name in names.items():
        if key == "a_link":
            (folder / name).symlink_to(tmp_path)
            continue
        (folder / name).mkdir(mode=0o700)
    os.chown(folder / names["other_owner"], 65534, 65534)
    (folder / names["loose_mode"]).chmod(0o755)
    removed = {os.path.basename(p) for p in profile.remove_stale_sysroots(str(folder))}
    assert removed == {names["dead"], names["reused_pid"]}
    assert sorted(os.listdir(folder)) == sorted(set(names.values()) - removed)
    assert tmp_path.is_dir()


# --------------------------------------------------------------------- item 9: bounded inputs


@pytest.fixture
def specials(tmp_path: Path) -> dict[str, Path]:
    """Paths that are no regular file: a FIFO nobody writes, /dev/zero and a link to it."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    return {"fifo": fifo, "zero-link": zero, "dev-zero": Path("/dev/zero"), "dir": tmp_path}


KINDS = ["fifo", "zero-link", "dev-zero", "dir"]


def python_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process: a FIFO that blocks fails the test by timeout, not by hang."""
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_profile_that_is_no_regular_file_is_refused(specials: dict[str, Path], kind: str) -> None:
    done = python_cli("run", "--profile", str(specials[kind]))
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert done.stderr.startswith("preflight: error: profile ")
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("kind", ["fifo", "zero-link"])
def test_extends_that_is_no_regular_file_is_refused(
    tmp_path: Path, specials: dict[str, Path], kind: str
) -> None:
    child = write(tmp_path / "child.json", {"extends": str(specials[kind])})
    with pytest.raises(ProfileError, match="not a regular file"):
        profile.resolve(str(child))


@pytest.mark.parametrize("kind", ["fifo", "zero-link"])
def test_baseline_that_is_no_regular_file_is_refused(
    tmp_path: Path, specials: dict[str, Path], kind: str
) -> None:
    done = python_cli("run", "--profile", "dgx-h100", "--baseline", str(specials[kind]))
    assert done.returncode == 3 and "not a regular file" in done.stderr
    extends = tmp_path / "b.toml"
    extends.write_text(f'[baseline]\nextends = "{specials[kind]}"\n')
    done = python_cli("baselines", "show", str(extends))
    assert done.returncode == 3 and "not a regular file" in done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("kind", ["fifo", "zero-link"])
def test_compare_reports_no_regular_file_as_unreadable(
    tmp_path: Path, specials: dict[str, Path], kind: str
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    os.symlink(specials[kind], folder / "a.json")
    os.symlink(specials[kind], folder / "b.jsonl")
    done = python_cli("compare", str(folder), "--format", "json")
    assert done.returncode == 1, done.stderr
    unreadable = json.loads(done.stdout)["unreadable"]
    assert len(unreadable) == 2
    assert all("not a regular file" in u["error"] for u in unreadable), unreadable
    gen = python_cli("baselines", "generate", str(folder))
    assert gen.returncode == 2 and "not a regular file" in gen.stderr
    golden = python_cli("compare", str(folder), "--golden", str(specials[kind]))
    assert golden.returncode == 3 and "not a regular file" in golden.stderr


def zero_bomb(compressed_mib: int) -> bytes:
    """A gzip stream of `compressed_mib` MB that expands ~1000-fold to zeros, made without
    compressing a GB: full-flushed deflate blocks of zeros repeat byte for byte."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = squeeze.compress(bytes(1 << 20)) + squeeze.flush(zlib.Z_FULL_FLUSH)
    block = squeeze.compress(bytes(1 << 20)) + squeeze.flush(zlib.Z_FULL_FLUSH)
    count = (compressed_mib << 20) // len(block)
    return head + block * count + squeeze.flush(zlib.Z_FINISH)


# The child's own peak: VmHWM of its address space. getrusage's ru_maxrss would not do: Linux
# carries the forking parent's peak across fork and exec (pytest's ~500 MiB after many tests).
MEASURE = """
import json, sys
from typer.testing import CliRunner
from preflight.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
with open("/proc/self/status") as status:
    peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) // 1024
print(json.dumps({"peak_mib": peak, "code": result.exit_code, "stderr": result.stderr,
                  "stdout": result.stdout, "exception": repr(result.exception)}))
"""


def measured(*args: str) -> dict[str, Any]:
    """The CLI in a child process: its exit code, output and peak resident memory (MiB)."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_gzip_bomb_profile_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(zero_bomb(1))
    assert bomb.stat().st_size < (2 << 20)
    out = measured("run", "--profile", str(bomb))
    assert out["code"] == 3 and "decompresses to more than 64 MiB" in out["stderr"]
    assert out["peak_mib"] < 400, out  # the 64 MiB limit plus the interpreter


def test_gzip_bomb_tarball_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """A tarball whose member says it is 1 GB of zeros: unreadable, streamed through."""
    header = tarfile.TarInfo("reports/r.json")
    header.size = 1 << 30
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = squeeze.compress(header.tobuf()) + squeeze.flush(zlib.Z_FULL_FLUSH)
    block = squeeze.compress(bytes(1 << 20)) + squeeze.flush(zlib.Z_FULL_FLUSH)
    body = block * ((1 << 30) // (1 << 20) + 1)  # the member, its padding, the end blocks
    bomb = tmp_path / "bomb.tar.gz"
    bomb.write_bytes(head + body + squeeze.flush(zlib.Z_FINISH))
    assert bomb.stat().st_size < (2 << 20)
    out = measured("compare", str(bomb), "--format", "json")
    assert out["code"] == 1, out
    reasons = [u["error"] for u in json.loads(out["stdout"])["unreadable"]]
    assert "cannot read: larger than 64 MiB" in reasons, reasons
    assert out["peak_mib"] < 400, out


def test_report_and_profile_size_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safeio, "PROFILE_MAX_BYTES", 1000)
    big = write(tmp_path / "big.json", {"description": "x" * 2000})
    with pytest.raises(ProfileError, match="larger than 1000 bytes"):
        profile.resolve(str(big))
    (tmp_path / "big.json.gz").write_bytes(gzip.compress(big.read_bytes()))
    with pytest.raises(ProfileError, match="decompresses to more than 1000 bytes"):
        profile.resolve(str(tmp_path / "big.json.gz"))


def test_long_json_line_is_one_unreadable_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from preflight.cluster import sources

    monkeypatch.setattr(safeio, "REPORT_MAX_BYTES", 100)
    stream = io.BytesIO(b'{"a": 1}\n' + b"x" * 5000 + b"\n" + b'{"b": 2}\n')
    items = list(sources._lines(stream, "s"))
    assert [(i.source, i.data, i.error) for i in items] == [
        ("s:1", b'{"a": 1}\n', None),
        ("s:2", None, "cannot read: longer than 100 bytes"),
        ("s:3", b'{"b": 2}\n', None),
    ]


def test_bz2_tarball_is_refused(tmp_path: Path) -> None:
    from preflight.cluster import sources

    path = tmp_path / "r.tar"
    with tarfile.open(path, "w:bz2") as tar:
        tar.addfile(tarfile.TarInfo("r.json"), io.BytesIO(b""))
    items = list(sources.expand([str(path)]))
    assert len(items) == 1 and "only plain and gzip tarballs" in str(items[0].error)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000),
        ("deep-object.json", '{"nvml": ' * 70 + "{}" + "}" * 70),
    ],
)
def test_deep_profile_json_is_one_line(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    result = run_profile(tmp_path / name)
    assert result.exit_code == 3 and "nested deeper than 64 levels" in one_error_line(result)


def test_deep_baseline_toml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = runner.invoke(app, ["baselines", "show", str(path)])
    assert result.exit_code == 3 and "nested deeper than 64 levels" in one_error_line(result)


def test_scontrol_output_that_is_not_utf8_is_replaced() -> None:
    """A real process printing Latin-1 (a drain reason typed on another terminal)."""
    code = "import sys; sys.stdout.buffer.write(b'Reason=caf\\xe9 \\xff'); sys.exit(0)"
    result = run_bounded([sys.executable, "-c", code], 10.0)
    assert result.ok and result.output == "Reason=caf\ufffd \ufffd"


# ------------------------------------------------------------- hypothesis, watched, in a child


def run_child(mode: str, examples: int, watched: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(HERE / "hostile_child.py"), mode, str(watched), str(examples)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=watched,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done.stdout


def test_random_hostile_profiles_never_touch_outside_the_watched_tree(tmp_path: Path) -> None:
    assert run_child("profiles", 60, tmp_path).strip() == "ok 60"


def test_random_hostile_reports_never_break_compare(tmp_path: Path) -> None:
    assert run_child("reports", 20, tmp_path).strip() == "ok 20"
