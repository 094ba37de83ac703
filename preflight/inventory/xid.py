"""XID events in the kernel log: `NVRM: Xid (PCI:0000:5d:00): 79, ...`, with NVIDIA's action.

The NVIDIA driver logs every GPU error it detects as an Xid with a number. NVIDIA's Xid catalogue
(docs.nvidia.com/deploy/xid-errors, "Resolution Bucket (Immediate Action)", Ampere and newer)
says what each one calls for; `CATALOGUE` maps the ones a training node meets to four action
classes. Log shapes (hardware-facts §4.1):

    NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, Row Remapper: New row marked for remapping, ...
    NVRM: Xid (PCI:0000:2b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.
    NVRM: Xid (PCI:0000:61:00): 45, pid=1496200, name=distprovers-gpu, Ch 0000000a
    NVRM: Xid (PCI:0000:9a:00): 154, GPU recovery action changed from 0x0 (None) to 0x2 (Node
    Reboot Required)

The address has no function number (GPUs are function 0). /dev/kmsg holds the current boot only,
so every Xid read from it happened since boot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from preflight.host import Host

RESET_GPU = "reset_gpu"
REBOOT = "reboot"
RESTART_APP = "restart_app"
IGNORE = "ignore"
UNKNOWN = "unknown"
DRAIN = frozenset({RESET_GPU, REBOOT})
"""Action classes that take the GPU (and so the node) out of service until acted on."""

ACTION_TEXT = {
    RESET_GPU: "reset the GPU (or reboot the node)",
    REBOOT: "reboot the node",
    RESTART_APP: "restart the application; the GPU stays usable",
    IGNORE: "informational",
    UNKNOWN: "not in the catalogue this tool knows: look it up in NVIDIA's Xid catalogue",
}


@dataclass(frozen=True)
class XidInfo:
    """One catalogue row: what the Xid means and its immediate action class."""

    meaning: str
    action: str


# NVIDIA Xid catalogue, immediate action column (hardware-facts §4.1, VERIFIED rows), with the
# catalogue's workflow buckets mapped to the action they end in: WORKFLOW_XID_48 (DBE: "a GPU
# reset or node reboot is needed") and WORKFLOW_NVLINK_ERR ("GPU reset or node reboot is
# needed") -> reset; WORKFLOW_XID_45 (preemptive cleanup after another fault or an abort) ->
# restart the app; RESTART_BM (bare-metal restart) -> reboot.
CATALOGUE: dict[int, XidInfo] = {
    8: XidInfo("GPU stopped processing (idle timeout)", RESTART_APP),
    13: XidInfo("graphics engine exception (application error)", RESTART_APP),
    31: XidInfo("GPU memory page fault (application error)", RESTART_APP),
    41: XidInfo("copy engine exception", RESTART_APP),
    43: XidInfo("GPU stopped processing: the GPU remains in a healthy state", RESTART_APP),
    45: XidInfo("preemptive cleanup after an abort or another fault", RESTART_APP),
    46: XidInfo("GPU stopped processing", RESET_GPU),
    48: XidInfo("double bit ECC error", RESET_GPU),
    62: XidInfo("internal micro-controller halt", RESET_GPU),
    63: XidInfo("GPU memory remapping event (a pending remap is judged by gpu.row_remap)", IGNORE),
    64: XidInfo("GPU memory remapping failure", RESET_GPU),
    68: XidInfo("video processor exception (application error)", RESTART_APP),
    74: XidInfo("NVLink error", RESET_GPU),
    79: XidInfo("GPU has fallen off the bus", REBOOT),
    92: XidInfo("high single-bit ECC error rate", IGNORE),
    94: XidInfo("contained memory error: reset the GPU when convenient", RESTART_APP),
    95: XidInfo("uncontained memory error", RESET_GPU),
    109: XidInfo("context switch timeout", RESET_GPU),
    119: XidInfo("GSP RPC timeout", RESET_GPU),
    120: XidInfo("GSP error", RESET_GPU),
    136: XidInfo("link training failed", RESET_GPU),
    140: XidInfo("ECC unrecovered error", RESET_GPU),
    143: XidInfo("GPU initialization error", RESET_GPU),
    154: XidInfo("GPU recovery action changed", UNKNOWN),  # the line says which action
    156: XidInfo("resource retirement event", RESET_GPU),
    158: XidInfo("GPU fatal timeout", RESET_GPU),
    167: XidInfo("PCIe fatal timeout", RESET_GPU),
}

# Xid 154 names the new recovery action (nvmlDeviceGpuRecoveryAction_t names).
RECOVERY_ACTIONS = {
    "none": IGNORE,
    "gpu reset required": RESET_GPU,
    "node reboot required": REBOOT,
    "drain p2p": RESET_GPU,
    "drain and reset": RESET_GPU,
}

XID_RE = re.compile(
    r"NVRM: Xid \(PCI:(?P<pci>[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2})(?:\.[0-7])?\): "
    r"(?P<xid>\d+),\s*(?P<rest>.*)$"
)
TIMESTAMP_RE = re.compile(r"^\[\s*(?P<ts>\d+\.\d+)\]")
# "pid=1896, " / "pid='<unknown>', " / "name=python3, " before the message.
PREFIX_FIELD_RE = re.compile(r"^(?:pid|name)=(?:'[^']*'|[^,]*),\s*")
RECOVERY_RE = re.compile(r"recovery action changed from .*? to 0x[0-9a-fA-F]+ \((?P<to>[^)]*)\)")


@dataclass(frozen=True)
class XidEvent:
    """One Xid line."""

    bdf: str  # the GPU, function 0: 0000:5d:00.0
    xid: int
    message: str  # the text after the number, pid= and name= fields removed
    line: str
    timestamp_s: float | None  # seconds since boot, when the line carries dmesg's stamp
    action: str
    meaning: str

    @property
    def drain(self) -> bool:
        """Whether the GPU must be reset or the node rebooted."""
        return self.action in DRAIN


def classify(xid: int, message: str) -> tuple[str, str]:
    """(action class, meaning) of an Xid, reading Xid 154's new recovery action."""
    info = CATALOGUE.get(xid)
    if xid == 154:
        m = RECOVERY_RE.search(message)
        action = RECOVERY_ACTIONS.get(m.group("to").strip().lower(), UNKNOWN) if m else UNKNOWN
        target = m.group("to") if m else "unreadable"
        return action, f"GPU recovery action changed to {target}"
    if info is None:
        return UNKNOWN, "an Xid this tool does not know"
    return info.action, info.meaning


def parse_xid_line(line: str) -> XidEvent | None:
    """The Xid of one kernel log line (dmesg, journalctl or /dev/kmsg form), or None."""
    m = XID_RE.search(line)
    if m is None:
        return None
    rest = m.group("rest").strip()
    while True:
        stripped = PREFIX_FIELD_RE.sub("", rest, count=1)
        if stripped == rest:
            break
        rest = stripped
    ts = TIMESTAMP_RE.match(line.strip())
    xid = int(m.group("xid"))
    action, meaning = classify(xid, rest)
    return XidEvent(
        bdf=f"{m.group('pci').lower()}.0",
        xid=xid,
        message=rest,
        line=line.strip(),
        timestamp_s=float(ts.group("ts")) if ts else None,
        action=action,
        meaning=meaning,
    )


def parse_xids(lines: Sequence[str]) -> list[XidEvent]:
    """Every Xid in the log, in log order."""
    return [e for e in (parse_xid_line(line) for line in lines) if e is not None]


@dataclass(frozen=True)
class XidLog:
    """The Xids of the current boot; `readable` False when the kernel log could not be read."""

    readable: bool
    events: tuple[XidEvent, ...]
    lines: int

    @classmethod
    def read(cls, host: Host) -> XidLog:
        """Parse Host.kernel_log() (/dev/kmsg on a live node)."""
        lines = host.kernel_log()
        if lines is None:
            return cls(False, (), 0)
        return cls(True, tuple(parse_xids(lines)), len(lines))
