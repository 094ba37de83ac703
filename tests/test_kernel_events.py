"""Kernel log events beyond Xids: catalogue rows, the flap rule, the judge, the check, and no
input line that makes a parser raise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight.checks.kernel import judge_kernel_events
from preflight.host import Host
from preflight.inventory import Inventory
from preflight.inventory.kernel_events import LOG_WORDS, PATTERNS, KernelLog, match_line, scan
from preflight.inventory.kernel_log import MAX_LINE, split_records, timestamp_s
from preflight.inventory.log_actions import ACTIONS
from preflight.inventory.xid import parse_lost_gpus, parse_xid_line, parse_xids
from preflight.model import Status
from preflight.registry import discover
from preflight.sources.kernel_log import ProfileKernelLog

# Synthetic (no public sample found): mlx5e netdev link messages at boot and after a flap.
LINK_UP = "mlx5_core 0000:19:00.0 enp25s0np0: Link up"
LINK_DOWN = "mlx5_core 0000:19:00.0 enp25s0np0: Link down"


def test_catalogue_rows_are_well_formed() -> None:
    ids = {p.id for p in PATTERNS}
    for p in PATTERNS:
        assert re.fullmatch(r"[a-z_]+\.[a-z0-9_]+", p.id), p.id
        assert p.action in ACTIONS, p.id
        assert p.after is None or p.after in ids, p.id
        assert p.keyword and p.meaning, p.id


# Synthetic lines, one per catalogue row, filled in from the format strings the module
# docstring names (real samples of most rows are in tests/data/real/kernel-log/).
ROW_EXAMPLES = {
    "nvswitch.sxid_data": "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 12028, Data {0x1, 0x2}",
    "nvswitch.sxid_fatal": "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 22013, Fatal, Link 04 x",
    "nvswitch.sxid_nonfatal": "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 12028, Non-fatal, L",
    "nvswitch.sxid": "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 10001, Unexpected something",
    "gpu.init_failed": "NVRM: GPU 0000:ba:00.0: RmInitAdapter failed! (0x25:0x65:1457)",
    "nic.module_error": "mlx5_core 0000:19:00.0: Port module event[error]: module 0, Cable "
    "error, Bad or shorted cable/module",
    "nic.module_unplugged": "mlx5_core 0000:19:00.0: Port module event: module 0, Cable unplugged",
    "nic.insufficient_power": "mlx5_core 0000:19:00.0: mlx5_pcie_event:299:(pid 1): Detected "
    "insufficient power on the PCIe slot (27W).",
    "nic.health": "mlx5_core 0000:19:00.0: mlx5_health_check:1:(pid 0): device's health "
    "compromised - reached miss count",
    "nic.link_up": LINK_UP,
    "nic.link_flap": LINK_DOWN,
    "pcie.aer_fatal": "pcieport 0000:00:01.0: PCIe Bus Error: severity=Uncorrectable (Fatal), x",
    "pcie.aer_nonfatal": "pcieport 0000:00:01.0: AER: Uncorrected (Non-Fatal) error received: "
    "0000:01:00.0",
    "pcie.aer_recovery_failed": "pcieport 0000:00:01.0: AER: device recovery failed",
    "pcie.aer_corrected": "pcieport 0000:00:01.0: PCIe Bus Error: severity=Corrected, type=x",
    "pcie.bandwidth_limited": "nvidia 0000:18:00.0: 126.016 Gb/s available PCIe bandwidth, "
    "limited by 8.0 GT/s PCIe x16 link at 0000:17:00.0 (capable of 504.112 Gb/s with 32.0 GT/s "
    "PCIe x16 link)",
    "memory.uncorrected": "EDAC MC0: 1 UE memory read error on CPU_SrcID#0_MC#0_Chan#0_DIMM#0 (x)",
    "memory.corrected": "EDAC skx MC1: 3 CE memory read error on CPU_SrcID#1_MC#0 (x)",
    "memory.poison": "mce: Uncorrected hardware memory error in user-access at 1e16677000",
    "machine_check.fatal": "{1}[Hardware Error]: event severity: fatal",
    "machine_check.recoverable": "{1}[Hardware Error]: event severity: recoverable",
    "machine_check.logged": "mce: [Hardware Error]: Machine check events logged",
    "kernel.hung_task": "INFO: task pt_main_thread:4242 blocked for more than 245 seconds.",
    "kernel.soft_lockup": "watchdog: BUG: soft lockup - CPU#18 stuck for 27s! [python3:2254956]",
    "kernel.rcu_stall": "rcu: INFO: rcu_preempt self-detected stall on CPU",
    "storage.io_error": "I/O error, dev nvme1n1, sector 2048 op 0x1:(WRITE) flags 0x0",
    "storage.nvme_failed": "nvme nvme1: controller is down; will reset: CSTS=0xffffffff",
    "storage.nvme_timeout": "nvme nvme1: I/O 12 QID 3 timeout, aborting",
    "storage.read_only": "EXT4-fs (nvme1n1p1): Remounting filesystem read-only",
}


def test_every_row_has_an_example_that_matches_it_and_survives_a_snapshot() -> None:
    assert ROW_EXAMPLES.keys() == {p.id for p in PATTERNS}
    for row, line in ROW_EXAMPLES.items():
        found = match_line(line)
        assert found is not None and found[0].id == row, (row, found)
        assert any(w in line for w in LOG_WORDS), row  # the inventory searches for it


def test_link_down_counts_only_after_link_up() -> None:
    assert scan([LINK_DOWN, LINK_UP]) == []  # the interface coming up at boot
    flaps = scan([LINK_DOWN, LINK_UP, LINK_DOWN, LINK_UP])
    assert [(e.pattern, e.subject) for e in flaps] == [("nic.link_flap", "enp25s0np0")]


@pytest.mark.parametrize(
    "line",
    [
        "blk_update_request: I/O error, dev sr0, sector 0 op 0x0:(READ) flags 0x0",
        "Buffer I/O error on dev fd0, logical block 0, async page read",
        "mlx5_core 0000:19:00.0: Port module event: module 0, Cable plugged",
    ],
)
def test_benign_lines_report_nothing(line: str) -> None:
    assert scan([line]) == []


def test_judge_groups_and_maps_actions() -> None:
    events = scan(
        [
            "nvidia-nvswitch2: SXid (PCI:0000:05:00.0): 12028, Non-fatal, Link 33 egress",
            "nvidia-nvswitch2: SXid (PCI:0000:05:00.0): 12028, Non-fatal, Link 33 egress",
            "[ 9.1] INFO: task python3:77 blocked for more than 122 seconds.",
            "pcieport 0000:00:03.0: PCIe Bus Error: severity=Uncorrected (Fatal), type=x",
        ]
    )
    findings = judge_kernel_events(events, {"0000:00:03.0": "bridge 0000:00:03.0"}, ())
    by_subject = {f.subject: f for f in findings}
    assert by_subject["0000:05:00.0"].status is Status.PASS
    assert "2 times" in by_subject["0000:05:00.0"].message
    assert by_subject["python3"].status is Status.WARN
    assert by_subject["bridge 0000:00:03.0"].status is Status.FAIL
    assert judge_kernel_events(events, {}, ("pcie.aer_fatal",))[0].subject != "0000:00:03.0"


def _run(host: Host):  # type: ignore[no-untyped-def]
    spec = discover(include_plugins=False).get("kernel.events")
    return spec.func(Inventory(host), spec.params())


def test_check_fails_on_a_cable_error_and_skips_unreadable_log(tmp_path: Path) -> None:
    bad = Host(
        root=str(tmp_path),
        kernel=ProfileKernelLog(
            [
                "mlx5_core 0000:19:00.0: mlx5_port_module_event:1131:(pid 0): Port module "
                "event[error]: module 0, Cable error, High Temperature"
            ]
        ),
    )
    verdict = _run(bad)
    assert verdict.status is Status.FAIL and "nic.module_error" in verdict.summary
    assert _run(Host(root=str(tmp_path), kernel=ProfileKernelLog([]))).status is Status.PASS
    assert KernelLog.read(Host(root=str(tmp_path))).readable is False
    assert _run(Host(root=str(tmp_path))).status is Status.SKIP


def test_split_records_and_timestamps() -> None:
    assert split_records(["a\\x0ab", "c\nd", "x" * 10000]) == ["a", "b", "c", "d", "x" * MAX_LINE]
    assert timestamp_s("<4>[16450.076098] NVRM: x") == pytest.approx(16450.076098)
    assert timestamp_s("[Sun Feb 23 16:24:18 2025] NVRM") is None


LOGISH = st.text(
    alphabet=st.sampled_from(list("NVRM:Xid() PCI0123456789abcdefGU-IC,.=[]{}/\\x\n\tSAERmlx5_")),
    max_size=300,
)
FRAGMENTS = st.lists(
    st.sampled_from(
        [
            "NVRM: Xid (",
            "PCI:0000:01:00",
            " GPU-I:05",
            " GPU-CI:99",
            "): ",
            "99999999999999999999",
            ", ",
            "pid=",
            "'<unknown>'",
            " caused by previous Xid ",
            "NETIR Fatal ",
            "Nonfatal",
            "NVRM: The NVIDIA GPU 0000:b3:00.0",
            "fallen off the bus",
            "SXid (PCI:0000:05:00.0): ",
            "Severity 1 ",
            "Port module event[error]: module 1, ",
            "severity=Uncorrected (Fatal)",
            "EDAC MC0: 1 UE ",
            "task a:b:1 blocked for more than 9 seconds",
            "I/O error, dev nvme0n1, sector",
            "\\x0a",
            "\x00",
            "é",
        ]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(LOGISH, FRAGMENTS, st.text(max_size=200)))
def test_no_line_makes_a_parser_raise(line: str) -> None:
    parse_xid_line(line)
    parse_lost_gpus([line])
    match_line(line)
    events = parse_xids([line, line])
    scan([line, line])
    for e in events:
        assert e.bdf.endswith(".0")
