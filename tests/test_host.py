"""Tests for preflight.host.Host over a private sysroot in tmp_path."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from preflight.errors import HostReadError
from preflight.host import UNLIMITED, FsUsage, Host, Limit
from preflight.sources.kernel_log import ProfileKernelLog
from preflight.sources.limits import ProfileResources

IS_ROOT = os.geteuid() == 0


def make_host(root: Path, **kw: object) -> Host:
    return Host(root=str(root), privileged=False, env={}, hostname="t", **kw)  # type: ignore[arg-type]


@pytest.fixture
def sysroot(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    dev = root / "sys/devices/pci0000:00/0000:01:00.0"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x10de\n")
    (dev / "config").write_bytes(bytes([0xDE, 0x10, 0x30, 0x23, 0xFF]))
    (dev / "label").write_bytes(b"  caf\xe9 \n")
    links = root / "sys/bus/pci/devices"
    links.mkdir(parents=True)
    (links / "0000:01:00.0").symlink_to("../../../devices/pci0000:00/0000:01:00.0")
    return root


DEV = "/sys/devices/pci0000:00/0000:01:00.0"
LINK = "/sys/bus/pci/devices/0000:01:00.0"


# ----------------------------------------------------------------------------- reads


def test_read_existing(sysroot: Path) -> None:
    host = make_host(sysroot)
    assert host.read_text(f"{DEV}/vendor") == "0x10de\n"
    assert host.read_line(f"{DEV}/vendor") == "0x10de"
    assert host.read_bytes(f"{DEV}/config") == bytes([0xDE, 0x10, 0x30, 0x23, 0xFF])


def test_read_through_symlink(sysroot: Path) -> None:
    assert make_host(sysroot).read_line(f"{LINK}/vendor") == "0x10de"


def test_read_text_replaces_undecodable_bytes(sysroot: Path) -> None:
    host = make_host(sysroot)
    assert host.read_line(f"{DEV}/label") == "caf\ufffd"


@pytest.mark.parametrize(
    "path",
    [
        "/sys/missing",
        f"{DEV}/missing",
        "/nope/deeper/still",
        f"{DEV}/vendor/below_a_file",  # a file where a directory is expected
    ],
)
def test_read_missing_is_none(sysroot: Path, path: str) -> None:
    host = make_host(sysroot)
    assert host.read_bytes(path) is None
    assert host.read_text(path) is None
    assert host.read_line(path) is None


def test_read_directory_raises_host_read_error(sysroot: Path) -> None:
    (sysroot / "proc/sys/kernel/numa_balancing").mkdir(parents=True)
    host = make_host(sysroot)
    with pytest.raises(HostReadError) as exc:
        host.read_text("/proc/sys/kernel/numa_balancing")
    assert exc.value.path == "/proc/sys/kernel/numa_balancing"
    assert exc.value.reason
    assert str(exc.value).startswith("/proc/sys/kernel/numa_balancing: ")


@pytest.mark.skipif(IS_ROOT, reason="root bypasses file permissions")
def test_unreadable_file_raises_host_read_error(sysroot: Path) -> None:
    secret = sysroot / "sys/secret"
    secret.write_text("x")
    secret.chmod(0)
    try:
        with pytest.raises(HostReadError, match=r"^/sys/secret: "):
            make_host(sysroot).read_bytes("/sys/secret")
    finally:
        secret.chmod(0o600)


def test_permission_error_becomes_host_read_error(
    sysroot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EACCES as an unprivileged reader sees it, simulated so it also runs as root."""

    def denied(path: str, flags: int, mode: int = 0o777) -> None:
        raise PermissionError(13, "Permission denied", path)

    # A sysroot's files are opened with os.open (O_NOFOLLOW), a live host's with open().
    monkeypatch.setattr("preflight.host.os.open", denied)
    with pytest.raises(HostReadError) as exc:
        make_host(sysroot).read_bytes(f"{DEV}/config")
    assert exc.value.path == f"{DEV}/config"
    assert exc.value.reason == "Permission denied"


def test_relative_path_rejected(sysroot: Path) -> None:
    with pytest.raises(ValueError, match="absolute"):
        make_host(sysroot).read_text("sys/devices")


def test_exists_and_is_dir(sysroot: Path) -> None:
    host = make_host(sysroot)
    assert host.exists(f"{DEV}/vendor")
    assert host.exists(LINK)
    assert not host.exists("/sys/missing")
    assert host.is_dir(LINK)
    assert host.is_dir("/sys")
    assert not host.is_dir(f"{DEV}/vendor")


# ----------------------------------------------------------------------------- listdir


def test_listdir_sorted(sysroot: Path) -> None:
    host = make_host(sysroot)
    assert host.listdir(DEV) == ["config", "label", "vendor"]
    assert host.listdir("/") == ["sys"]
    assert host.listdir("/sys/bus/pci/devices") == ["0000:01:00.0"]


def test_listdir_missing_or_file_is_empty(sysroot: Path) -> None:
    host = make_host(sysroot)
    assert host.listdir("/sys/class/infiniband") == []
    assert host.listdir(f"{DEV}/vendor") == []


# ----------------------------------------------------------------------------- links


def test_realpath_relative_symlink_unmapped(sysroot: Path) -> None:
    host = make_host(sysroot)
    assert host.realpath(LINK) == DEV
    assert host.realpath(f"{LINK}/vendor") == f"{DEV}/vendor"
    assert host.realpath(DEV) == DEV
    assert host.realpath("/") == "/"


def test_realpath_trailing_slash_root(sysroot: Path) -> None:
    host = Host(root=f"{sysroot}/", privileged=False, env={})
    assert host.realpath(LINK) == DEV


def test_realpath_missing_is_none(sysroot: Path) -> None:
    host = make_host(sysroot)
    assert host.realpath("/sys/missing") is None
    (sysroot / "sys/dangling").symlink_to("nowhere")
    assert host.realpath("/sys/dangling") is None


def test_realpath_escaping_root_is_none(sysroot: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("x")
    # ../../outside from /sys/x inside the root leaves the root.
    (sysroot / "sys/escape").symlink_to("../../outside")
    (sysroot / "sys/escape_abs").symlink_to(outside)
    # A sibling directory whose name starts with the root's name is still outside.
    sibling = tmp_path / "root2"
    sibling.mkdir()
    (sysroot / "sys/sibling").symlink_to(sibling)
    host = make_host(sysroot)
    assert host.realpath("/sys/escape") is None
    assert host.realpath("/sys/escape/f") is None
    assert host.realpath("/sys/escape_abs") is None
    assert host.realpath("/sys/sibling") is None


def test_realpath_root_given_through_symlink(sysroot: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(sysroot)
    host = make_host(alias)
    assert host.read_line(f"{LINK}/vendor") == "0x10de"  # reads work through the alias
    assert host.realpath(LINK) == DEV


def test_realpath_relative_root(sysroot: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(sysroot.parent)
    host = make_host(Path(sysroot.name))
    assert host.read_line(f"{LINK}/vendor") == "0x10de"
    assert host.realpath(LINK) == DEV


def test_readlink(sysroot: Path) -> None:
    host = make_host(sysroot)
    assert host.readlink(LINK) == "../../../devices/pci0000:00/0000:01:00.0"
    assert host.readlink(DEV) is None  # a directory, not a link
    assert host.readlink(f"{DEV}/vendor") is None
    assert host.readlink("/sys/missing") is None


def test_reads_are_recorded(sysroot: Path) -> None:
    host = make_host(sysroot).recorded()
    assert host.recording is not None
    assert host.recording.paths == set()
    host.read_text(f"{DEV}/vendor")
    host.read_bytes("/sys/missing")
    host.listdir("/sys/bus/pci/devices")
    host.readlink(LINK)
    host.realpath(LINK)
    host.exists("/sys/other")
    assert host.recording.paths == {
        f"{DEV}/vendor",
        "/sys/missing",
        "/sys/bus/pci/devices",
        LINK,
        "/sys/other",
    }


def test_is_live() -> None:
    assert Host(root="/", env={}).is_live
    profile = Host(root="/", env={}, profile_name="p")
    assert not profile.is_live  # its processes source refuses to start programs
    assert profile.processes.refused() == (
        "profile p describes a mocked node: programs run only on this machine"
    )


# ----------------------------------------------------------------------------- environment


def test_limits_override(tmp_path: Path) -> None:
    lims = {"memlock": Limit(UNLIMITED, UNLIMITED), "nofile": Limit(1024, 4096)}
    host = make_host(tmp_path, resources=ProfileResources(lims))
    out = host.limits()
    assert out == lims
    out["stack"] = Limit(1, 1)  # a copy: callers cannot change the host
    assert "stack" not in host.limits()


def test_limits_empty_override_is_respected(tmp_path: Path) -> None:
    assert make_host(tmp_path, resources=ProfileResources({})).limits() == {}


def test_live_limits() -> None:
    out = Host(root="/", env={}).limits()
    assert set(out) == {"memlock", "stack", "nofile"}
    for name, res in (
        ("memlock", resource.RLIMIT_MEMLOCK),
        ("stack", resource.RLIMIT_STACK),
        ("nofile", resource.RLIMIT_NOFILE),
    ):
        soft, hard = resource.getrlimit(res)
        lim = out[name]
        assert isinstance(lim, Limit)
        assert lim.soft == (UNLIMITED if soft == resource.RLIM_INFINITY else soft)
        assert lim.hard == (UNLIMITED if hard == resource.RLIM_INFINITY else hard)
        assert lim.soft >= -1
        assert lim.hard >= -1


def test_live_limits_unlimited_is_minus_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(res: int) -> tuple[int, int]:
        return (resource.RLIM_INFINITY, resource.RLIM_INFINITY)

    monkeypatch.setattr(resource, "getrlimit", fake)
    out = Host(root="/", env={}).limits()
    assert out["memlock"] == Limit(-1, -1)
    assert out["stack"] == Limit(-1, -1)


def test_statvfs_override(tmp_path: Path) -> None:
    shm = FsUsage(size_bytes=64 << 30, free_bytes=60 << 30)
    host = make_host(tmp_path, resources=ProfileResources({}, {"/dev/shm": shm}))
    assert host.statvfs("/dev/shm") == shm
    assert host.statvfs("/") is None


def test_statvfs_live(tmp_path: Path) -> None:
    host = Host(root="/", env={})
    usage = host.statvfs(str(tmp_path))
    assert usage is not None
    assert usage.size_bytes > 0
    assert 0 <= usage.free_bytes <= usage.size_bytes
    assert host.statvfs(str(tmp_path / "missing")) is None


def test_kernel_log_override(tmp_path: Path) -> None:
    host = make_host(tmp_path, kernel=ProfileKernelLog(("a", "b", "ab")))
    assert host.kernel_log() == ["a", "b", "ab"]
    assert host.kernel_log(["a"]) == ["a", "", "ab"]  # the lines searched for; the count stays


def test_kernel_log_missing_kmsg_is_none(tmp_path: Path) -> None:
    assert make_host(tmp_path).kernel_log() is None
