"""A summary never claims what was not checked (issue 12, class 7): a node whose kernel exposes
no PCIe link attributes gets a pcie.link SKIP that says so, not "N links at full speed"."""

from __future__ import annotations

from pathlib import Path

from preflight.checks import pcie
from preflight.host import Host
from preflight.inventory import Inventory
from preflight.model import Status
from tests.test_pci_acs_quirks import _node


def _inventory(root: Path) -> Inventory:
    return Inventory(Host(root=str(root), privileged=True, env={}, hostname="t"))


def test_link_without_attributes_is_a_skip_that_says_so(tmp_path: Path) -> None:
    v = pcie.link.func(_inventory(_node(tmp_path, False)), pcie.LinkParams())
    assert v.status is Status.SKIP
    assert "full speed" not in v.summary
    assert "no link attributes" in v.summary


def test_link_counts_only_what_passed(tmp_path: Path) -> None:
    root = _node(tmp_path, False)
    rp = root / "sys/devices/pci0000:00/0000:00:1c.0"
    for attr, value in (
        ("max_link_speed", "8.0 GT/s PCIe"),
        ("current_link_speed", "8.0 GT/s PCIe"),
        ("max_link_width", "4"),
        ("current_link_width", "4"),
    ):
        (rp / attr).write_text(value + "\n")
    v = pcie.link.func(_inventory(root), pcie.LinkParams())
    assert v.status is Status.PASS
    assert v.summary.startswith("1 links at full speed and width; 1 of 2 not checked: GPU0")
