"""Xid lines from the kernel log: parsing real line shapes, NVIDIA's action classes, the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from preflight.checks.xid import judge_xids
from preflight.host import Host
from preflight.inventory import Inventory, xid_catalogue
from preflight.inventory.xid import (
    ACTION_TEXT,
    CATALOGUE,
    IGNORE,
    REBOOT,
    RESET_GPU,
    RESTART_APP,
    UNKNOWN,
    XidLog,
    classify,
    parse_xid_line,
    parse_xids,
)
from preflight.model import Status
from preflight.registry import discover
from preflight.sources.kernel_log import ProfileKernelLog

# Line shapes of hardware-facts §4.1 and the ml-engineering capture (tests/data/captures/
# nvidia-smi-q_excerpt_A100-SXM4-80GB_ECC-DRAM-correctable-177_remap-pending_ml-engineering.txt).
REMAP_63 = (
    "NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, Row Remapper: New row marked for remapping, "
    "reset gpu to activate."
)
FELL_OFF_79 = "NVRM: Xid (PCI:0000:2b:00): 79, GPU has fallen off the bus."
APP_45 = "NVRM: Xid (PCI:0000:61:00): 45, pid=1496200, name=distprovers-gpu, Ch 0000000a"
RECOVERY_154 = (
    "NVRM: Xid (PCI:0000:9a:00): 154, GPU recovery action changed from 0x0 (None) to 0x2 "
    "(Node Reboot Required)"
)


@pytest.mark.parametrize(
    ("line", "bdf", "xid", "action", "message"),
    [
        (REMAP_63, "0000:10:1c.0", 63, IGNORE, "Row Remapper: New row marked for remapping"),
        (FELL_OFF_79, "0000:2b:00.0", 79, REBOOT, "GPU has fallen off the bus."),
        (APP_45, "0000:61:00.0", 45, RESTART_APP, "Ch 0000000a"),
        (RECOVERY_154, "0000:9a:00.0", 154, REBOOT, "GPU recovery action changed"),
        # dmesg stamp, pid='<unknown>' as newer drivers print it
        (
            "[86412.301184] NVRM: Xid (PCI:0000:5d:00): 79, pid='<unknown>', name=<unknown>, "
            "GPU has fallen off the bus.",
            "0000:5d:00.0",
            79,
            REBOOT,
            "GPU has fallen off the bus.",
        ),
        # journalctl -k
        (
            "Nov 14 07:00:14 dgx-h100-01 kernel: NVRM: Xid (PCI:0000:AB:00): 48, pid=7, "
            "name=python3, An uncorrectable double bit error (DBE) has been detected",
            "0000:ab:00.0",
            48,
            RESET_GPU,
            "An uncorrectable double bit error",
        ),
        ("NVRM: Xid (PCI:0000:18:00): 13, Graphics Exception", "0000:18:00.0", 13, RESTART_APP, ""),
        ("NVRM: Xid (PCI:0000:18:00): 9999, something new", "0000:18:00.0", 9999, UNKNOWN, ""),
    ],
)
def test_parses_real_line_shapes(line: str, bdf: str, xid: int, action: str, message: str) -> None:
    event = parse_xid_line(line)
    assert event is not None
    assert (event.bdf, event.xid, event.action) == (bdf, xid, action)
    assert event.message.startswith(message)
    assert not event.message.startswith(("pid=", "name="))


def test_timestamp_kept_when_dmesg_prints_one() -> None:
    event = parse_xid_line("[   72015.551029] NVRM: Xid (PCI:0000:9a:00): 119, pid=2980, x")
    assert event is not None and event.timestamp_s == pytest.approx(72015.551029)
    assert parse_xid_line(FELL_OFF_79).timestamp_s is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "line",
    [
        "NVRM: GPU 0000:5d:00.0: GPU has fallen off the bus.",
        "NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  565.57.01",
        "NVRM: GPU 0000:ba:00.0: RmInitAdapter failed! (0x25:0x65:1457)",
        "nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 12028, Non-fatal, Link 33 egress",
        "",
    ],
)
def test_other_lines_are_not_xids(line: str) -> None:
    assert parse_xid_line(line) is None


@pytest.mark.parametrize(
    ("target", "action"),
    [
        ("0x0 (None)", IGNORE),
        ("0x1 (GPU Reset Required)", RESET_GPU),
        ("0x2 (Node Reboot Required)", REBOOT),
        ("0x3 (Drain P2P)", RESET_GPU),
        ("0x4 (Drain and Reset)", RESET_GPU),
        ("0x9 (Something Else)", UNKNOWN),
    ],
)
def test_xid_154_action_comes_from_the_line(target: str, action: str) -> None:
    assert classify(154, f"GPU recovery action changed from 0x0 (None) to {target}")[0] == action


def test_catalogue_covers_the_drain_policy_of_hardware_facts() -> None:
    # §4.1: drain on these; warn on application Xids. 167 has no catalogue bucket yet: this
    # tool's own call (PREFLIGHT_ACTIONS) keeps it draining.
    for xid in (46, 48, 62, 64, 74, 79, 95, 109, 119, 120, 136, 140, 143, 158, 167):
        assert classify(xid, "")[0] in (RESET_GPU, REBOOT), xid
    for xid in (13, 31, 45, 68, 94):
        assert classify(xid, "")[0] == RESTART_APP, xid
    # NVIDIA's catalogue says IGNORE for 43 ("the GPU remains in a healthy state").
    assert classify(43, "")[0] == IGNORE


def test_catalogue_is_complete_and_dated() -> None:
    assert sorted(CATALOGUE) == list(range(1, 177))
    assert xid_catalogue.CATALOGUE_DATE and xid_catalogue.CATALOGUE_SOURCE.startswith("https://")
    buckets = {info.bucket for info in CATALOGUE.values()} - {""}
    assert buckets <= xid_catalogue.BUCKET_ACTION.keys()
    for action, _ in xid_catalogue.PREFLIGHT_ACTIONS.values():
        assert action in ACTION_TEXT


@pytest.mark.parametrize(
    ("line", "bdf", "gi", "ci", "xid"),
    [
        # The driver's own examples (kern_gpu_error_cont_ga100.c comment; NVIDIA's A100 memory
        # error management guide).
        (
            "NVRM: Xid (PCI:0000:01:00 GPU-I:05): 94, pid=7194, Contained: CE User Channel "
            "(0x9). RST: No, D-RST: No",
            "0000:01:00.0",
            5,
            None,
            94,
        ),
        # Synthetic: the kernel_rc.c format string with both attributions filled in.
        (
            "NVRM: Xid (PCI:0000:3b:00 GPU-I:01 GPU-CI:02): 13, pid=9, name=a, Graphics Exception",
            "0000:3b:00.0",
            1,
            2,
            13,
        ),
        # Pre-R4xx drivers print no PCI: prefix (NVIDIA Xid doc example; Bumblebee #329).
        ("NVRM: Xid (0000:03:00): 14, Channel 00000001", "0000:03:00.0", None, None, 14),
    ],
)
def test_mig_attribution_and_old_prefix(
    line: str, bdf: str, gi: int | None, ci: int | None, xid: int
) -> None:
    event = parse_xid_line(line)
    assert event is not None
    assert (event.bdf, event.gpu_instance, event.compute_instance, event.xid) == (bdf, gi, ci, xid)


@pytest.mark.parametrize(
    ("message", "action"),
    [
        ("SAW_MVB Nonfatal XC0 i0 Link 0 (0x00000001 0x00000008 0x00000000)", IGNORE),
        ("NETIR_LINK_EVT Fatal XC0 i0 Link 00 (0x026001c6 0x00000000)", RESET_GPU),
        ("NETIR Fatal XC0 i0 Link -1 (0x000fe406 0x00000000)", RESET_GPU),
        ("no severity word here", UNKNOWN),
    ],
)
def test_nvlink5_xids_take_the_lines_severity(message: str, action: str) -> None:
    assert classify(149, message)[0] == action


def test_severity_word_decides_an_xid_the_catalogue_lacks() -> None:
    assert classify(9999, "SOME_UNIT Fatal XC0")[0] == RESET_GPU
    assert classify(9999, "SOME_UNIT Non-fatal")[0] == IGNORE
    assert classify(9999, "something new")[0] == UNKNOWN


def test_xid_45_names_its_cause() -> None:
    event = parse_xid_line(
        "kernel: NVRM: Xid (PCI:0000:dc:00): 45, pid=1818990, name=python3, Ch 00000001 "
        "caused by previous Xid 149"
    )
    assert event is not None and event.cause_xid == 149 and "Xid 149" in event.meaning
    assert event.action == RESTART_APP


PROBE_LOST = [
    "[ 1843.308145] NVRM: The NVIDIA GPU 0000:b3:00.0",
    "               NVRM: (PCI ID: 10de:26b5) installed in this system has",
    "               NVRM: fallen off the bus and is not responding to commands.",
    "[ 1843.439662] NVRM: The NVIDIA probe routine failed for 1 device(s).",
]


@pytest.mark.parametrize(
    "lines",
    [
        PROBE_LOST,
        # /dev/kmsg keeps the three printed lines in one record, newlines escaped.
        [
            "NVRM: The NVIDIA GPU 0000:b3:00.0\\x0aNVRM: (PCI ID: 10de:26b5) installed in this "
            "system has\\x0aNVRM: fallen off the bus and is not responding to commands."
        ],
        ["NVRM: GPU 0000:b3:00.0: GPU has fallen off the bus."],
        ["[ 36.508494] NVRM: GPU at 0000:b3:00.0 has fallen off the bus."],
    ],
)
def test_gpu_lost_without_xid_fails_for_that_gpu(lines: list[str]) -> None:
    events = parse_xids(lines)
    assert [(e.bdf, e.xid, e.action) for e in events][:1] == [("0000:b3:00.0", None, REBOOT)]
    findings = judge_xids(events, {"0000:b3:00.0": "GPU5 0000:b3:00.0"}, ())
    assert [(f.subject, f.status) for f in findings] == [("GPU5 0000:b3:00.0", Status.FAIL)]
    assert "fallen off the bus" in findings[0].message


def test_probe_line_without_the_fallen_off_words_is_not_a_lost_gpu() -> None:
    lines = ["NVRM: The NVIDIA GPU 0000:01:00.0 (PCI ID: 10de:1c8d)", "NVRM: installed in this"]
    assert parse_xids(lines) == []


def test_lost_message_next_to_xid_79_is_one_finding() -> None:
    events = parse_xids([FELL_OFF_79.replace("2b:00", "b3:00"), *PROBE_LOST])
    findings = judge_xids(events, {}, ())
    assert len(findings) == 1 and findings[0].message.startswith("Xid 79")


def test_judge_groups_per_gpu_and_xid() -> None:
    events = parse_xids([FELL_OFF_79, APP_45, APP_45, REMAP_63, RECOVERY_154])
    labels = {"0000:2b:00.0": "GPU1 0000:2b:00.0"}
    findings = {f.subject: f for f in judge_xids(events, labels, ())}
    assert findings["GPU1 0000:2b:00.0"].status is Status.FAIL
    assert "reboot the node" in findings["GPU1 0000:2b:00.0"].message
    app = findings["PCI 0000:61:00.0"]
    assert app.status is Status.WARN and "2 times" in app.message
    assert findings["PCI 0000:10:1c.0"].status is Status.PASS
    assert findings["PCI 0000:9a:00.0"].status is Status.FAIL
    assert app.evidence[0].observed == APP_45
    ignored = judge_xids(events, labels, (45, 79, 63, 154))
    assert ignored == []


def _run(host: Host):  # type: ignore[no-untyped-def]
    spec = discover(include_plugins=False).get("xid.events")
    return spec.func(Inventory(host), spec.params())


def test_check_on_profiles() -> None:
    from preflight.profile import host_from_profile

    assert _run(host_from_profile("dgx-h100")).status is Status.PASS
    v = _run(host_from_profile("dgx-h100-xid-79"))
    assert v.status is Status.FAIL
    assert v.summary.startswith("GPU3 0000:5d:00.0: Xid 79 (GPU has fallen off the bus)")
    remap = _run(host_from_profile("dgx-h100-row-remap-pending"))
    assert remap.status is Status.PASS  # 63 is informational; gpu.row_remap fails instead
    assert any("Xid 63" in f.message for f in remap.findings)


def test_unreadable_kernel_log_skips(tmp_path: Path) -> None:
    host = Host(root=str(tmp_path), kernel=ProfileKernelLog(None))  # no /dev/kmsg under this root
    assert XidLog.read(host).readable is False
    v = _run(host)
    assert v.status is Status.SKIP and "dmesg_restrict" in v.summary
