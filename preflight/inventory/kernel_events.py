"""Kernel log events beyond GPU Xids: NVSwitch SXids, NIC cable and link faults, PCIe AER and
downtrained links, machine-check and EDAC memory errors, hung tasks, disk I/O errors.

`PATTERNS` is the catalogue: each row names the event, the message shape (from the source of the
code that prints it), the action class (`log_actions`) and what it means. The first row whose
keyword and regex match a line wins, so specific rows come before general ones. A row with
`after` counts only once the row it names matched the same subject earlier (a link that goes
down after it was up is a flap; the first "Link down" at boot is not); rows with `report` False
match lines that only continue or undo another (SXid data words, "Cable plugged").

Message sources: NVSwitch `SXid (PCI:%04x:%02x:%02x.%x): %05d, ` then "Fatal, ...",
"Non-fatal, ...", "Severity %d ..." (0 non-fatal, 1 fatal) or "Data {...}" (open GPU kernel
modules, common_nvswitch.h, error_nvswitch.c); mlx5 "Port module event[error]: module %u, %s,
%s" and "Detected insufficient power on the PCIe slot" (mlx5/core/events.c), "Link down" /
"Link up" of mlx5e netdevs; PCIe AER "PCIe Bus Error: severity=%s" (Corrected / Uncorrected
(Non-Fatal) / Uncorrected (Fatal); "Correctable", "Uncorrectable" since Linux 6.x) and
"... error (message) received ..." (drivers/pci/pcie/aer.c); "%u.%03u Gb/s available PCIe
bandwidth, limited by %s x%d link at %s (capable of ...)" (drivers/pci/pci.c); EDAC
"EDAC MC%d: %d CE|UE ..." (drivers/edac/edac_mc.c); GHES "[Hardware Error]: event severity: ..."
(drivers/firmware/efi/cper.c); "mce: Uncorrected hardware memory error" (arch/x86 mce) and
"Memory failure: 0x%lx: ..." (mm/memory-failure.c); "INFO: task %s:%d blocked for more than %ld
seconds." (kernel/hung_task.c); block-layer "I/O error, dev %s, sector" and NVMe controller
messages (drivers/nvme/host).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from preflight.host import Host
from preflight.inventory.kernel_log import split_records, timestamp_s
from preflight.inventory.log_actions import (
    DRAIN_RMA,
    IGNORE,
    INVESTIGATE,
    REBOOT,
    RESET_GPU,
    UNKNOWN,
)

HEX = "[0-9A-Fa-f]"
BDF = rf"{HEX}{{4}}:{HEX}{{2}}:{HEX}{{2}}\.[0-7]"
BDF_RE = re.compile(rf"\b{BDF}\b")
# Removable and virtual block devices whose I/O errors say nothing about the node (a BMC's
# virtual CD-ROM answers I/O errors at every boot).
SKIP_DEVICES = r"(?!sr\d|fd\d|loop\d|zram\d)"


@dataclass(frozen=True)
class Pattern:
    """One catalogue row: a kind of kernel log line and what a node that logged it needs."""

    id: str  # area.name, e.g. "pcie.aer_fatal"
    keyword: str  # a literal every matching line contains (cheap pre-filter)
    regex: re.Pattern[str]  # the named group `dev`, when present, is the subject
    action: str
    meaning: str
    after: str | None = None
    report: bool = True


def _p(
    id: str,
    keyword: str,
    regex: str,
    action: str,
    meaning: str,
    after: str | None = None,
    report: bool = True,
) -> Pattern:
    return Pattern(id, keyword, re.compile(regex), action, meaning, after, report)


PATTERNS: tuple[Pattern, ...] = (
    # NVSwitch (Hopper and earlier): SXid lines; the severity word is the driver's own verdict.
    _p(
        "nvswitch.sxid_data",
        "SXid",
        rf"SXid \(PCI:(?P<dev>{BDF})\): \d{{1,6}}, Data \{{",
        IGNORE,
        "SXid data words (continue the line before)",
        report=False,
    ),
    _p(
        "nvswitch.sxid_fatal",
        "SXid",
        rf"SXid \(PCI:(?P<dev>{BDF})\): \d{{1,6}}, (?:Fatal\b|Severity 1 )",
        REBOOT,
        "NVSwitch fatal error (SXid): the switch and its GPUs need a reset",
    ),
    _p(
        "nvswitch.sxid_nonfatal",
        "SXid",
        rf"SXid \(PCI:(?P<dev>{BDF})\): \d{{1,6}}, (?:Non-fatal\b|Severity 0 )",
        IGNORE,
        "NVSwitch non-fatal error (SXid)",
    ),
    _p(
        "nvswitch.sxid",
        "SXid",
        rf"SXid \(PCI:(?P<dev>{BDF})\): \d{{1,6}},",
        UNKNOWN,
        "NVSwitch error (SXid) without a severity word: look it up in the Fabric Manager guide",
    ),
    # NVIDIA driver: a GPU it could not bring up.
    _p(
        "gpu.init_failed",
        "RmInitAdapter failed",
        rf"NVRM: GPU (?P<dev>{BDF}): RmInitAdapter failed!",
        RESET_GPU,
        "the NVIDIA driver could not initialise the GPU",
    ),
    # NICs (mlx5): cables, transceivers, slot power, firmware health, link flaps.
    _p(
        "nic.module_error",
        "Port module event[error]",
        r"Port module event\[error\]: module \d{1,4}, [^,]{0,64}, (?P<error>.{1,128})",
        DRAIN_RMA,
        "cable or transceiver error: reseat or replace the module",
    ),
    _p(
        "nic.module_unplugged",
        "Port module event",
        r"Port module event: module \d{1,4}, Cable unplugged",
        INVESTIGATE,
        "a cable or transceiver was unplugged",
    ),
    _p(
        "nic.insufficient_power",
        "insufficient power",
        r"Detected insufficient power on the PCIe slot",
        DRAIN_RMA,
        "the NIC's PCIe slot does not supply enough power",
    ),
    _p(
        "nic.health",
        "health compromised",
        r"mlx5_core (?P<dev>\S{1,32}): .{0,64}health compromised",
        REBOOT,
        "NIC firmware health failed",
    ),
    _p(
        "nic.link_up",
        "Link up",
        rf"mlx5_core {BDF} (?P<dev>[\w.-]{{1,32}}): Link up",
        IGNORE,
        "link up",
        report=False,
    ),
    _p(
        "nic.link_flap",
        "Link down",
        rf"mlx5_core {BDF} (?P<dev>[\w.-]{{1,32}}): Link down",
        INVESTIGATE,
        "link went down after it was up (a flap): check the cable and the switch port",
        after="nic.link_up",
    ),
    # PCIe AER, as printed by the port driver or the device's own driver.
    _p(
        "pcie.aer_fatal",
        "Fatal)",
        r"(?:severity=|AER: (?:Multiple )?)Uncorrect(?:ed|able) \(Fatal\)",
        REBOOT,
        "uncorrectable fatal PCIe error: the link was reset",
    ),
    _p(
        "pcie.aer_nonfatal",
        "Non-Fatal)",
        r"(?:severity=|AER: (?:Multiple )?)Uncorrect(?:ed|able) \(Non-Fatal\)",
        INVESTIGATE,
        "uncorrectable non-fatal PCIe error: a transaction was lost or poisoned",
    ),
    _p(
        "pcie.aer_recovery_failed",
        "AER: device recovery failed",
        r"AER: device recovery failed",
        REBOOT,
        "the kernel could not recover a device after a PCIe error",
    ),
    _p(
        "pcie.aer_corrected",
        "orrect",
        r"(?:severity=|AER: (?:Multiple )?)Correct(?:ed|able)\b",
        IGNORE,
        "corrected PCIe error (pcie.aer judges the counts)",
    ),
    _p(
        "pcie.bandwidth_limited",
        "available PCIe bandwidth, limited by",
        rf"available PCIe bandwidth, limited by (?P<link>[^,]{{1,48}}) link at (?P<at>{BDF})",
        INVESTIGATE,
        "a PCIe link trained below its capability at boot (pcie.link judges the live link)",
    ),
    # Host memory and machine checks.
    _p(
        "memory.uncorrected",
        "EDAC",
        r"EDAC (?:\S{1,16} )?MC\d{1,3}: \d{1,9} UE ",
        DRAIN_RMA,
        "uncorrectable host memory error: replace the DIMM",
    ),
    _p(
        "memory.corrected",
        "EDAC",
        r"EDAC (?:\S{1,16} )?MC\d{1,3}: \d{1,9} CE ",
        IGNORE,
        "corrected host memory error",
    ),
    _p(
        "memory.poison",
        "emory",
        r"Uncorrected hardware memory error|Memory failure: 0x[0-9a-f]{1,16}: ",
        DRAIN_RMA,
        "uncorrectable host memory error hit a page: replace the DIMM",
    ),
    _p(
        "machine_check.fatal",
        "event severity: fatal",
        r"\[Hardware Error\]: event severity: fatal",
        REBOOT,
        "fatal hardware error reported by the firmware",
    ),
    _p(
        "machine_check.recoverable",
        "event severity: recoverable",
        r"\[Hardware Error\]: event severity: recoverable",
        INVESTIGATE,
        "uncorrected but recoverable hardware error reported by the firmware",
    ),
    _p(
        "machine_check.logged",
        "Machine check events logged",
        r"mce: \[Hardware Error\]: Machine check events logged",
        IGNORE,
        "corrected machine-check events logged",
    ),
    # The kernel itself: tasks and CPUs stuck.
    _p(
        "kernel.hung_task",
        "blocked for more than",
        r"task (?P<dev>[^ ]{1,64}?):\d{1,9} blocked for more than \d{1,9} seconds",
        INVESTIGATE,
        "a task was stuck in the kernel for minutes (often on a device or a file system)",
    ),
    _p(
        "kernel.soft_lockup",
        "soft lockup",
        r"soft lockup - CPU#\d{1,5} stuck for \d{1,9}s!",
        INVESTIGATE,
        "a CPU was stuck in the kernel",
    ),
    _p(
        "kernel.rcu_stall",
        "detected stall",
        r"rcu_(?:sched|preempt) (?:self-)?detected stall",
        INVESTIGATE,
        "an RCU stall: a CPU stopped responding for a while",
    ),
    # Local disks.
    _p(
        "storage.io_error",
        "error, dev ",
        rf"(?:I/O|critical medium|critical target) error, dev "
        rf"(?P<dev>{SKIP_DEVICES}[\w-]{{1,32}}), sector",
        DRAIN_RMA,
        "I/O error on a local disk",
    ),
    _p(
        "storage.io_error",
        "Buffer I/O error on dev ",
        rf"Buffer I/O error on dev (?P<dev>{SKIP_DEVICES}[\w-]{{1,32}}),",
        DRAIN_RMA,
        "I/O error on a local disk",
    ),
    _p(
        "storage.io_error",
        "I/O Error",
        r"(?P<dev>nvme\d{1,4}n\d{1,4}): I/O Cmd\(0x[0-9a-f]{1,4}\) @ LBA \d{1,20}, "
        r"\d{1,9} blocks, I/O Error",
        DRAIN_RMA,
        "I/O error on a local disk",
    ),
    _p(
        "storage.nvme_failed",
        "nvme",
        r"nvme (?P<dev>nvme\d{1,4}): (?:controller is down; will reset|Removing after probe "
        r"failure|Disabling device after reset failure|Device not ready; aborting reset)",
        DRAIN_RMA,
        "an NVMe controller stopped answering and was reset or removed",
    ),
    _p(
        "storage.nvme_timeout",
        "timeout",
        r"nvme (?P<dev>nvme\d{1,4}): I/O \d{1,9} (?:\([\w /]{1,16}\) )?QID \d{1,5} timeout",
        INVESTIGATE,
        "an NVMe command timed out",
    ),
    _p(
        "storage.read_only",
        "Remounting filesystem read-only",
        r"(?P<dev>\S{1,64}\)?): Remounting filesystem read-only",
        DRAIN_RMA,
        "a file system was remounted read-only after errors",
    ),
)


@dataclass(frozen=True)
class KernelEvent:
    """One kernel log line a catalogue row matched."""

    pattern: str  # the row's id
    subject: str  # the device, interface, task or disk it is about; "" when the line names none
    action: str
    meaning: str
    line: str
    timestamp_s: float | None


LOG_WORDS = tuple(sorted({p.keyword for p in PATTERNS}))
"""What the scan searches the kernel log for: every row's keyword."""


def match_line(line: str) -> tuple[Pattern, str] | None:
    """The first row matching the line, and its subject; None when none does."""
    for pattern in PATTERNS:
        if pattern.keyword not in line:
            continue
        m = pattern.regex.search(line)
        if m is None:
            continue
        subject = m.groupdict().get("dev") or ""
        if not subject:
            bdf = BDF_RE.search(line)
            subject = bdf.group(0) if bdf else ""
        return pattern, subject.lower() if BDF_RE.fullmatch(subject) else subject
    return None


def scan(lines: Sequence[str]) -> list[KernelEvent]:
    """Every catalogued event in the log, in log order."""
    seen: set[tuple[str, str]] = set()
    events = []
    for line in split_records(lines):
        found = match_line(line)
        if found is None:
            continue
        pattern, subject = found
        earlier = pattern.after is None or (pattern.after, subject) in seen
        seen.add((pattern.id, subject))
        if pattern.report and earlier:
            events.append(
                KernelEvent(
                    pattern.id,
                    subject,
                    pattern.action,
                    pattern.meaning,
                    line.strip(),
                    timestamp_s(line),
                )
            )
    return events


@dataclass(frozen=True)
class KernelLog:
    """The catalogued events of the current boot; `readable` False when the log is not."""

    readable: bool
    events: tuple[KernelEvent, ...]
    lines: int

    @classmethod
    def read(cls, host: Host) -> KernelLog:
        """Scan Host.kernel_log() (/dev/kmsg on a live node)."""
        lines = host.kernel_log(LOG_WORDS)
        if lines is None:
            return cls(False, (), 0)
        return cls(True, tuple(scan(lines)), len(lines))
