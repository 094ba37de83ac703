"""XID events in the kernel log: `NVRM: Xid (PCI:0000:5d:00): 79, ...`, with NVIDIA's action.

The NVIDIA driver logs every GPU error it detects as an Xid with a number; NVIDIA's Xid catalogue
(`xid_catalogue`) says what each one calls for. The driver prints (kernel_rc.c, open GPU kernel
modules 595.45.04)

    NVRM: Xid (PCI:%04x:%02x:%02x): %d, pid=%s, name=%s, %s%s
    NVRM: Xid (PCI:%04x:%02x:%02x): %d, %s%s                      (no process)

with ` GPU-I:%02u` and ` GPU-CI:%02u` inside the parentheses when the error belongs to a MIG GPU
or compute instance, and " caused by previous Xid %d" after an Xid 45's message. Drivers before
the R4xx series print no `PCI:` prefix (`NVRM: Xid (0000:03:00): 14, Channel 00000001`). The
address has no function number (GPUs are function 0). NVLink5 Xids 144-150 name the unit and a
severity word (`149, NETIR_LINK_EVT Fatal XC0 i0 Link 00 (...)`); where the catalogue leaves the
action to that word, or has no row, the word decides.

A GPU can also fall off the bus with no Xid line: the driver's probe prints "The NVIDIA GPU
0000:b3:00.0 (PCI ID: 10de:2330) installed in this system has fallen off the bus and is not
responding to commands." (osapi.c, three printed lines), older drivers "GPU at 0000:01:00.0 has
fallen off the bus."; those become events without an Xid number. /dev/kmsg holds the current
boot only, so every event read from it happened since boot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from preflight.host import Host
from preflight.inventory.kernel_log import split_records, timestamp_s
from preflight.inventory.log_actions import (
    ACTION_TEXT,
    DRAIN,
    DRAIN_RMA,
    IGNORE,
    INVESTIGATE,
    REBOOT,
    RESET_GPU,
    RESTART_APP,
    UNKNOWN,
)
from preflight.inventory.xid_catalogue import (
    BUCKET_ACTION,
    PREFLIGHT_ACTIONS,
    RECOVERY,
    ROWS,
    SEVERITY,
)

__all__ = [
    "ACTION_TEXT",
    "CATALOGUE",
    "DRAIN",
    "DRAIN_RMA",
    "IGNORE",
    "INVESTIGATE",
    "REBOOT",
    "RESET_GPU",
    "RESTART_APP",
    "UNKNOWN",
    "XidEvent",
    "XidInfo",
    "XidLog",
    "classify",
    "parse_xid_line",
    "parse_xids",
]


@dataclass(frozen=True)
class XidInfo:
    """One catalogue row: the Xid's mnemonic and description and NVIDIA's immediate action."""

    mnemonic: str
    meaning: str
    bucket: str  # NVIDIA's "Resolution Bucket (Immediate Action)", "" where it has none

    @property
    def action(self) -> str:
        """The action class of the bucket (SEVERITY / RECOVERY: the line decides)."""
        return BUCKET_ACTION.get(self.bucket, UNKNOWN)


CATALOGUE: dict[int, XidInfo] = {
    xid: XidInfo(mnemonic, description, bucket) for xid, mnemonic, description, bucket in ROWS
}

# Xid 154 names the new recovery action (nvmlDeviceGpuRecoveryAction_t names).
RECOVERY_ACTIONS = {
    "none": IGNORE,
    "gpu reset required": RESET_GPU,
    "node reboot required": REBOOT,
    "drain p2p": RESET_GPU,
    "drain and reset": RESET_GPU,
}

# Severity words the driver prints: "Fatal" / "Nonfatal" (NVLink5), "Non-fatal" (SXid style).
SEVERITY_ACTIONS = {"fatal": RESET_GPU, "link fatal": RESET_GPU, "nonfatal": IGNORE}

HEX = "[0-9A-Fa-f]"
XID_RE = re.compile(
    rf"NVRM: Xid \((?:PCI:)?(?P<pci>{HEX}{{4}}:{HEX}{{2}}:{HEX}{{2}})(?:\.[0-7])?"
    r"(?: GPU-I:(?P<gi>\d{1,3}))?(?: GPU-CI:(?P<ci>\d{1,3}))?\): "
    r"(?P<xid>\d{1,6}),?[ \t]*(?P<rest>.*)$"
)
# "pid=1896, " / "pid='<unknown>', " / "name=python3, " before the message.
PREFIX_FIELD_RE = re.compile(r"^(?:pid|name)=(?:'[^']*'|[^,]*),\s*")
RECOVERY_RE = re.compile(r"recovery action changed from .*? to 0x[0-9a-fA-F]+ \((?P<to>[^)]*)\)")
CAUSE_RE = re.compile(r" caused by previous Xid (?P<xid>\d{1,6})\s*$")
# The unit mnemonic, then the severity: "SAW_MVB Nonfatal XC0", "NETIR Fatal XC0".
SEVERITY_RE = re.compile(
    r"^(?:[A-Z][A-Z0-9_]*(?:/[A-Z0-9_]+)*\s+)?(?P<sev>Link Fatal|Fatal|Non-?fatal)\b", re.I
)

BDF = rf"{HEX}{{4}}:{HEX}{{2}}:{HEX}{{2}}\.[0-7]"
LOST_PROBE_RE = re.compile(rf"NVRM: The NVIDIA GPU (?P<bdf>{BDF})\b")
LOST_LINE_RES = (
    re.compile(rf"NVRM: GPU (?P<bdf>{BDF}): GPU has fallen off the bus"),
    re.compile(rf"NVRM: GPU at (?:PCI:)?(?P<bdf>{BDF}) has fallen off the bus"),
)
LOST_WORDS = "fallen off the bus"
LOG_WORDS = ("NVRM", LOST_WORDS)
"""What every line the parser reads contains."""
SEVERITY_SPAN = 96
"""The unit mnemonic and severity word come first; longer units are not the driver's."""
LOST_MEANING = "GPU has fallen off the bus (driver message, no Xid)"


@dataclass(frozen=True)
class XidEvent:
    """One Xid line, or a driver message that a GPU fell off the bus (`xid` None)."""

    bdf: str  # the GPU, function 0: 0000:5d:00.0
    xid: int | None
    message: str  # the text after the number, pid= and name= fields removed
    line: str
    timestamp_s: float | None  # seconds since boot, when the line carries dmesg's stamp
    action: str
    meaning: str
    gpu_instance: int | None = None  # MIG attribution: GPU-I
    compute_instance: int | None = None  # MIG attribution: GPU-CI
    severity: str | None = None  # the line's own severity word, lower case
    cause_xid: int | None = None  # Xid 45: "caused by previous Xid N"

    @property
    def drain(self) -> bool:
        """Whether the GPU must be reset, the node rebooted or serviced."""
        return self.action in DRAIN

    @property
    def label(self) -> str:
        """`Xid 79`, or `no Xid` for a driver message."""
        return f"Xid {self.xid}" if self.xid is not None else "no Xid"


def severity_word(message: str) -> str | None:
    """`fatal`, `link fatal` or `nonfatal` when the message starts with one (after a unit)."""
    m = SEVERITY_RE.match(message[:SEVERITY_SPAN])
    if m is None:
        return None
    return m.group("sev").lower().replace("-", "")


def classify(xid: int, message: str) -> tuple[str, str]:
    """(action class, meaning) of an Xid and its message."""
    info = CATALOGUE.get(xid)
    severity = severity_word(message)
    if info is not None and info.action == RECOVERY:
        m = RECOVERY_RE.search(message)
        action = RECOVERY_ACTIONS.get(m.group("to").strip().lower(), UNKNOWN) if m else UNKNOWN
        target = m.group("to") if m else "unreadable"
        return action, f"GPU recovery action changed to {target}"
    if info is not None and info.action not in (SEVERITY, UNKNOWN):
        meaning = info.meaning
        cause = CAUSE_RE.search(message)
        if cause:
            meaning = f"{meaning}: caused by Xid {cause.group('xid')}"
        return info.action, meaning
    meaning = info.meaning if info is not None else "an Xid this tool does not know"
    if severity is not None:
        return SEVERITY_ACTIONS[severity], f"{meaning}, {severity} by the line"
    if xid in PREFLIGHT_ACTIONS:
        action, reason = PREFLIGHT_ACTIONS[xid]
        return action, f"{meaning} ({reason})"
    return UNKNOWN, meaning


def parse_xid_line(line: str) -> XidEvent | None:
    """The Xid of one kernel log line (dmesg, journalctl or /dev/kmsg form), or None."""
    m = XID_RE.search(line) if "NVRM: Xid (" in line else None
    if m is None:
        return None
    rest = m.group("rest").strip()
    while True:
        stripped = PREFIX_FIELD_RE.sub("", rest, count=1)
        if stripped == rest:
            break
        rest = stripped
    xid = int(m.group("xid"))
    action, meaning = classify(xid, rest)
    cause = CAUSE_RE.search(rest)
    return XidEvent(
        bdf=f"{m.group('pci').lower()}.0",
        xid=xid,
        message=rest,
        line=line.strip(),
        timestamp_s=timestamp_s(line),
        action=action,
        meaning=meaning,
        gpu_instance=int(m.group("gi")) if m.group("gi") else None,
        compute_instance=int(m.group("ci")) if m.group("ci") else None,
        severity=severity_word(rest),
        cause_xid=int(cause.group("xid")) if cause else None,
    )


def _lost(bdf: str, line: str) -> XidEvent:
    return XidEvent(
        bdf=f"{bdf[:-2].lower()}.0",
        xid=None,
        message=LOST_MEANING,
        line=line.strip(),
        timestamp_s=timestamp_s(line),
        action=REBOOT,
        meaning=LOST_MEANING,
    )


def parse_lost_gpus(lines: Sequence[str]) -> list[XidEvent]:
    """GPUs the driver says fell off the bus in messages that carry no Xid, in log order."""
    events = []
    for i, line in enumerate(lines):
        if "NVRM: " not in line:
            continue
        for regex in LOST_LINE_RES:
            m = regex.search(line)
            if m:
                events.append(_lost(m.group("bdf"), line))
                break
        else:
            m = LOST_PROBE_RE.search(line)
            # The probe message spans three printed lines: address, PCI ID, "fallen off".
            if m and any(LOST_WORDS in later for later in lines[i : i + 3]):
                events.append(_lost(m.group("bdf"), line))
    return events


def parse_xids(lines: Sequence[str]) -> list[XidEvent]:
    """Every Xid in the log in log order, then every no-Xid fallen-off-the-bus message."""
    printed = split_records(lines)
    xids = [e for e in (parse_xid_line(line) for line in printed) if e is not None]
    return xids + parse_lost_gpus(printed)


@dataclass(frozen=True)
class XidLog:
    """The Xids of the current boot; `readable` False when the kernel log could not be read."""

    readable: bool
    events: tuple[XidEvent, ...]
    lines: int

    @classmethod
    def read(cls, host: Host) -> XidLog:
        """Parse Host.kernel_log() (/dev/kmsg on a live node): the driver's lines."""
        lines = host.kernel_log(LOG_WORDS)
        if lines is None:
            return cls(False, (), 0)
        return cls(True, tuple(parse_xids(lines)), len(lines))
