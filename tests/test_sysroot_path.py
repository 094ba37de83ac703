"""sysroot_path.confine: a per-sysroot cache of resolved directories changes no answer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from preflight.sysroot_path import MAX_LINKS, Resolved, confine


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small sysfs-like tree: relative and absolute links, a link climbing out, a loop."""
    root = tmp_path / "root"
    (root / "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0").mkdir(parents=True)
    dev = root / "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0"
    (dev / "vendor").write_text("0x10de\n")
    (root / "sys/bus/pci/devices").mkdir(parents=True)
    os.symlink(
        "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0",
        root / "sys/bus/pci/devices/0000:01:00.0",
    )
    os.symlink("/sys/devices", root / "sys/abs")  # absolute: starts again at the root
    os.symlink("../../../../..", root / "sys/bus/pci/out")  # climbs above the root
    os.symlink("loop", root / "sys/loop")
    # A chain of links, each one step: links/l0 -> l1 -> ... -> l{n} -> /sys/devices
    (root / "links").mkdir()
    for i in range(MAX_LINKS):
        os.symlink(f"l{i + 1}", root / f"links/l{i}")
    os.symlink("/sys/devices", root / f"links/l{MAX_LINKS}")
    return root


PATHS = [
    "/sys/bus/pci/devices/0000:01:00.0/vendor",
    "/sys/bus/pci/devices/0000:01:00.0/../0000:01:00.0/vendor",
    "/sys/bus/pci/devices/0000:01:00.0/..",
    "/sys/abs/pci0000:00/0000:00:01.0/0000:01:00.0/vendor",
    "/sys/bus/pci/out/etc/passwd",
    "/sys/bus/pci/devices/0000:01:00.0/vendor/more",
    "/sys/loop/x",
    "/sys/./bus//pci/devices",
    "/../../sys/devices",
    "/nonexistent/x",
    "/",
    # From l2, 39 links reach /sys/devices; with the device link, 40 in all: allowed. From l1
    # that is 41, and from l0 the chain alone is 41: too many, as the kernel's ELOOP.
    "/links/l2/pci0000:00/0000:00:01.0/0000:01:00.0/vendor",
    "/links/l2/../bus/pci/devices/0000:01:00.0/vendor",
    "/links/l1/../bus/pci/devices/0000:01:00.0/vendor",
    "/links/l0/pci0000:00/0000:00:01.0/0000:01:00.0/vendor",
    # The cached prefix /links/l2 carries its 39 links: with abs and the device link, 41.
    "/links/l2/../abs/../bus/pci/devices/0000:01:00.0/vendor",
]


@pytest.mark.parametrize("follow_last", [True, False])
def test_cached_answers_equal_uncached_ones_in_any_order(tree: Path, follow_last: bool) -> None:
    root = str(tree)
    expected = {p: confine(root, p, follow_last) for p in PATHS}
    for order in (PATHS, PATHS[::-1], PATHS * 2):
        cache: dict[str, Resolved] = {}
        got = {p: confine(root, p, follow_last, cache) for p in order}
        assert got == expected
        assert cache  # the prefixes were kept, so later paths did start from them


def test_the_answers_themselves(tree: Path) -> None:
    root = str(tree)
    dev = f"{root}/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0"
    cache: dict[str, Resolved] = {}
    assert confine(root, PATHS[0], cache=cache) == f"{dev}/vendor"
    assert confine(root, PATHS[3], cache=cache) == f"{dev}/vendor"
    assert confine(root, "/sys/bus/pci/out/etc/passwd", cache=cache) is None
    assert confine(root, "/sys/loop/x", cache=cache) is None
    assert confine(root, "/sys/loop", follow_last=False, cache=cache) == f"{root}/sys/loop"
    # The links of a cached prefix still count toward the limit of the whole path.
    assert confine(root, PATHS[11], cache=cache) == f"{dev}/vendor"
    assert confine(root, PATHS[12], cache=cache) == f"{dev}/vendor"  # 40 links
    assert confine(root, PATHS[13], cache=cache) is None  # 41 links
    assert confine(root, PATHS[14], cache=cache) is None
    assert "links/l2" in cache
    assert confine(root, PATHS[15], cache=cache) is None


def test_relative_paths_are_refused(tree: Path) -> None:
    with pytest.raises(ValueError, match="absolute"):
        confine(str(tree), "sys/devices", cache={})
