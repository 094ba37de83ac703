"""Drift, the unique-key rule, hostlists, folding: the pure parts of compare, on plain values."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from preflight.cluster.drift import ABSENT, find_drift, judge_fact
from preflight.cluster.failures import by_check, failing_nodes
from preflight.cluster.hostlist import compress, shorten
from preflight.cluster.record import NodeRecord
from preflight.cluster.render import family, fold, show_change
from preflight.cluster.rules import FactRule, is_naturally_unique, mask
from preflight.model import Scalar


class TestJudgeFact:
    def test_agreement_is_no_drift(self) -> None:
        assert judge_fact("g", "dmi.bios_version", {"1.6.7": [0, 1, 2]}, [0, 1, 2]) is None

    def test_one_node_of_many_is_named(self) -> None:
        d = judge_fact("g", "dmi.bios_version", {"1.6.7": [0, 1, 3], "1.5.1": [2]}, [0, 1, 2, 3])
        assert d is not None
        assert d.expected == "1.6.7" and d.expected_nodes == 3
        assert d.differs == (("1.5.1", (2,)),) and d.deviating == 1

    def test_missing_fact_is_absent_drift(self) -> None:
        d = judge_fact("g", "pci.x.acs_ctl", {"0x0000": [0, 1]}, [0, 1, 2])
        assert d is not None and d.differs == ((ABSENT, (2,)),)

    def test_fact_present_on_few_nodes_expects_absent(self) -> None:
        d = judge_fact("g", "pci.x.bar1_bytes", {1: [4]}, [0, 1, 2, 3, 4])
        assert d is not None and d.expected is ABSENT and d.differs == ((1, (4,)),)

    def test_tie_is_broken_by_value_not_input_order(self) -> None:
        a = judge_fact("g", "k", {"b": [0], "a": [1]}, [0, 1])
        b = judge_fact("g", "k", {"a": [1], "b": [0]}, [0, 1])
        assert a is not None and b is not None and a.expected == b.expected == "a"

    def test_golden_value_replaces_majority(self) -> None:
        d = judge_fact("g", "k", {"new": [0, 1, 2], "old": [3]}, [0, 1, 2, 3], golden="old")
        assert d is not None and d.expected == "old"
        assert d.differs == (("new", (0, 1, 2)),)

    def test_golden_without_the_fact(self) -> None:
        d = judge_fact("g", "k", {"x": [0]}, [0, 1], golden=ABSENT)
        assert d is not None and d.differs == (("x", (0,)),)

    def test_differs_fewest_nodes_first(self) -> None:
        d = judge_fact("g", "k", {"a": [0, 1, 2, 3], "b": [4, 5], "c": [6]}, list(range(7)))
        assert d is not None and [v for v, _ in d.differs] == ["c", "b"]


class TestFindDrift:
    FACTS: ClassVar[dict[str, dict[str, dict[Any, list[int]]]]] = {
        "h100": {
            "dmi.bios_version": {"1.6.7": [0, 1, 2, 3], "1.5.1": [4]},
            "kernel.release": {"5.15": [0, 1, 2], "6.8": [3, 4]},
            "numa.nodes": {2: [0, 1, 2, 3, 4]},
        },
        "h200": {"dmi.bios_version": {"2.1": [5, 6]}},
    }
    GROUPS: ClassVar[dict[str, list[int]]] = {"h100": [0, 1, 2, 3, 4], "h200": [5, 6]}

    def test_rarest_first_and_groups_apart(self) -> None:
        drift = find_drift(self.FACTS, self.GROUPS)
        assert [(d.group, d.key, d.deviating) for d in drift] == [
            ("h100", "dmi.bios_version", 1),
            ("h100", "kernel.release", 2),
        ]

    def test_golden_compares_every_fact_including_its_own(self) -> None:
        golden: dict[str, Scalar] = {"dmi.bios_version": "1.5.1", "numa.nodes": 2, "gpu.extra": "x"}
        drift = {d.key: d for d in find_drift(self.FACTS, {"h100": [0, 1, 2, 3, 4]}, golden)}
        assert drift["dmi.bios_version"].differs == (("1.6.7", (0, 1, 2, 3)),)
        assert drift["kernel.release"].expected is ABSENT
        assert drift["gpu.extra"].differs == ((ABSENT, (0, 1, 2, 3, 4)),)
        assert "numa.nodes" not in drift


@pytest.mark.parametrize(
    ("key", "unique"),
    [
        ("host.hostname", True),
        ("dmi.product_serial", True),
        ("dmi.product_uuid", True),
        ("gpu.0.uuid", True),
        ("gpu.3.serial", True),
        ("rdma.mlx5_0.node_guid", True),
        ("rdma.mlx5_0.port1.lid", True),
        ("net.eth0.mac", True),
        ("net.eth0.perm_addr", True),
        ("net.eth0.ipv4", True),
        ("node.boot_id", True),
        ("run.finished_at", True),
        ("dmi.chassis_asset_tag", True),
        ("dmi.bios_version", False),
        ("dmi.bios_date", False),
        ("kernel.cmdline", False),
        ("pci.0000:18:00.0.max_read_request", False),
        ("rdma.mlx5_0.fw_ver", False),
        ("nvidia.driver_version", False),
    ],
)
def test_unique_key_rule(key: str, unique: bool) -> None:
    assert is_naturally_unique(key) is unique


def test_ignore_fact_globs_add_to_the_rule() -> None:
    rule = FactRule(("pci.*.current_link_speed",))
    assert rule.left_out("pci.0000:18:00.0.current_link_speed") == "ignored"
    assert rule.left_out("dmi.board_serial") == "unique"
    assert rule.left_out("pci.0000:18:00.0.max_link_speed") is None


def test_uuids_inside_values_are_masked() -> None:
    cmdline = "BOOT_IMAGE=/vmlinuz root=UUID=2c09fbb2-8bf4-f89f-a0e0-ec6304f531f1 ro iommu=pt"
    assert mask(cmdline) == "BOOT_IMAGE=/vmlinuz root=UUID=<uuid> ro iommu=pt"
    assert mask("5.15.0-1067-nvidia") == "5.15.0-1067-nvidia"
    assert mask(8) == 8


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["n1", "n2", "n3", "n7"], "n[1-3,7]"),
        (["gpu-001", "gpu-002", "gpu-004"], "gpu-[001-002,004]"),
        (["gpu-0001-01", "gpu-0001-02", "gpu-0002-01"], "gpu-0001-[01-02],gpu-0002-01"),
        (["login", "n5"], "login,n5"),
        (["n9", "n10"], "n9,n10"),
        ([], ""),
    ],
)
def test_hostlist(names: list[str], expected: str) -> None:
    assert compress(names) == expected


def test_shorten_cuts_at_a_comma() -> None:
    assert shorten("a1,b2,c3,d4", 7) == "a1,b2,…"
    assert shorten("a1", 7) == "a1"


def test_family_and_fold() -> None:
    assert family("pci.0000:18:00.0.acs_ctl") == "pci.*.acs_ctl"
    assert family("gpu.3.serial") == "gpu.*.serial"
    facts: dict[str, dict[str, dict[Scalar, list[int]]]] = {
        "g": {
            "pci.0000:15:01.0.acs_ctl": {"0x0000": [0, 1], "0x001d": [2]},
            "pci.0000:26:01.0.acs_ctl": {"0x0000": [0, 1], "0x001d": [2]},
            "pci.0000:15:01.0.max_payload": {256: [0, 1, 2]},
            "pci.0000:18:00.0.max_read_request": {512: [0, 1, 2]},
        }
    }
    drift = find_drift(facts, {"g": [0, 1, 2, 3]})
    rows = fold(drift)
    labels = sorted(label for label, _ in rows)
    # ACS changed on node 2 (and missing on node 3) is one row; the other facts node 3 lacks are
    # another
    assert labels == ["pci.*.acs_ctl", "pci.*.max_payload, pci.*.max_read_request"]


def test_long_strings_show_tokens_added_and_removed() -> None:
    want = "BOOT_IMAGE=/vmlinuz ro intel_iommu=on iommu=pt console=tty0 quiet"
    have = "BOOT_IMAGE=/vmlinuz ro intel_iommu=on console=tty0 quiet pci=noacs"
    assert show_change(have, want) == "-iommu=pt +pci=noacs"
    assert show_change("1.5.1", "1.6.7") == "1.5.1"


def _record(name: str, *failing: tuple[str, str, str]) -> NodeRecord:
    return NodeRecord(name, f"{name}.json", "fail" if failing else "pass", "", "b", None, failing)


def test_failures_by_check_and_by_node() -> None:
    records = [
        _record("n2", ("pcie.acs", "fail", "ACS on"), ("pcie.link", "error", "boom")),
        _record("n1", ("pcie.acs", "fail", "ACS on")),
        _record("n3"),
    ]
    checks = by_check(records)
    assert [(c.check, [n for n, _, _ in c.nodes]) for c in checks] == [
        ("pcie.acs", ["n1", "n2"]),
        ("pcie.link", ["n2"]),
    ]
    assert checks[0].common_summary == ("ACS on", 2)
    assert [r.name for r in failing_nodes(records)] == ["n1", "n2"]
