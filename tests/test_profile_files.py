"""ProfileFiles: a profile answered from memory gives every answer its materialized sysroot
gives (SysrootFiles over profile.materialize), hangs where the sysroot's FIFO hangs, and keeps
the same size limit. Random hostile profiles are compared in tests/hostile_child.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from preflight import profile
from preflight.errors import HostReadError
from preflight.host import Host
from preflight.runner import run_with_timeout
from preflight.sources.profile_files import ProfileFiles
from preflight.sysroot_path import MAX_LINKS


def answers(host: Host, path: str) -> tuple[Any, ...]:
    try:
        data: Any = host.read_bytes(path)
    except HostReadError as exc:
        data = str(exc)
    return (
        host.exists(path),
        host.is_dir(path),
        host.access(path),
        host.realpath(path),
        host.readlink(path),
        host.listdir(path),
        data,
        host.files.kind(path),
    )


def probes(data: dict[str, Any]) -> list[str]:
    """Every entry and each directory above it, with a name below, `..` and `../..` added."""
    paths = {"/", "/..", "/nonexistent"}
    for entry in [*data.get("files", {}), *data.get("symlinks", {}), *data.get("dirs", [])]:
        while entry != "/":
            paths.update((entry, f"{entry}/x", f"{entry}/..", f"{entry}/../.."))
            entry = os.path.dirname(entry)
    return sorted(paths)


def both(name: str) -> tuple[Host, Host]:
    return profile.host_from_profile(name), profile.host_from_profile(name, sysroot=True)


@pytest.fixture(autouse=True)
def _no_sysroot_left() -> Any:
    yield
    profile.remove_sysroots()


# hgx-h200: another vendor's tree; roce: Ethernet ports; cross-socket: relinked NICs.
@pytest.mark.parametrize("name", ["dgx-h100", "dgx-h100-roce", "hgx-h200"])
def test_a_builtin_profile_answers_as_its_sysroot(name: str) -> None:
    memory, disk = both(name)
    assert isinstance(memory.files, ProfileFiles)
    for path in probes(profile.resolve(name)):
        assert answers(memory, path) == answers(disk, path), path


def test_links_resolve_as_in_the_sysroot(tmp_path: Path) -> None:
    """Absolute targets restart at the root, `..` above the root is absent, a name below a
    file is absent, a chain of MAX_LINKS links resolves and one more does not."""
    chain = {f"/links/l{i}": f"l{i + 1}" for i in range(MAX_LINKS)}
    chain[f"/links/l{MAX_LINKS}"] = "/sys/devices"
    doc = {
        "files": {"/sys/devices/d/vendor": "0x10de\n", "/sys/devices/d/config": {"hex": "de10"}},
        "symlinks": {
            "/sys/bus/d": "../devices/d",
            "/sys/abs": "/sys/devices",
            "/sys/up": "..",
            "/sys/self": ".",
            "/sys/dangling": "nowhere/at/all",
            **chain,
        },
        "dirs": ["/sys/empty"],
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    memory, disk = both(str(path))
    asked = [
        "/sys/bus/d/vendor",
        "/sys/abs/d/vendor",
        "/sys/abs/../abs/d/config",
        "/sys/up/sys/up/sys/bus/d/vendor",
        "/sys/self/self/bus/d",
        "/sys/bus/d/vendor/more",
        "/sys/bus/d/../../../../..",
        "/sys/dangling",
        "/sys/empty",
        "/links/l0/d/vendor",
        "/links/l1/d/vendor",
        "/links/l2/d/vendor",
        "/sys/./bus//d/vendor",
        *probes(doc),
    ]
    for asked_path in asked:
        assert answers(memory, asked_path) == answers(disk, asked_path), asked_path
    assert memory.read_line("/links/l1/d/vendor") == "0x10de"  # l1 ... l40: 40 links
    assert memory.read_bytes("/links/l0/d/vendor") is None  # 41 links: too many
    assert memory.realpath("/sys/abs/../abs/d/config") == "/sys/devices/d/config"
    assert memory.readlink("/sys/abs") == "devices" and memory.readlink("/sys/up") == ".."
    assert memory.read_bytes("/sys/devices/d/config") == b"\xde\x10"


def test_the_size_limit_is_the_sysroots(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"files": {"/f": "abcd", "/z": {"hex": "01", "size": 4096}}}))
    memory, disk = both(str(path))
    for host in (memory, disk):
        assert host.read_bytes("/f", limit=4) == b"abcd"
        with pytest.raises(HostReadError, match=r"^/f: larger than 3 bytes$"):
            host.read_bytes("/f", limit=3)
        assert host.read_bytes("/z") == b"\x01" + bytes(4095)
        with pytest.raises(HostReadError, match=r"^/: not a regular file$"):
            host.read_bytes("/")


def test_a_hang_entry_blocks_the_reader_and_names_the_path(tmp_path: Path) -> None:
    """As a FIFO nobody writes: the read never returns, the runner abandons the thread at its
    timeout, and the path stays named as the one being read; other paths still answer."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"files": {"/sys/hung": {"fifo": True}, "/sys/ok": "1"}}))
    host = profile.host_from_profile(str(path))
    assert host.exists("/sys/hung") and not host.is_dir("/sys/hung")
    abandoned: list[int] = []
    outcome = run_with_timeout(lambda: host.read_bytes("/sys/hung"), 0.3, abandoned.append)  # type: ignore[arg-type,return-value]
    assert isinstance(outcome.error, TimeoutError)
    assert host.blocked_in(abandoned[0]) == "/sys/hung"
    assert host.read_line("/sys/ok") == "1"
