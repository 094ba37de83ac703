"""Parsers for the text the kernel prints in /sys/class/infiniband: ports, rates, GIDs, counters.

The strings are those of ``/sys/class/infiniband/<dev>/ports/<n>/*`` (drivers/infiniband/core/
sysfs.c). Nothing here reads a file: :mod:`preflight.inventory.rdma` reads sysfs through Host and
hands the text over, and :mod:`preflight.inventory.rdma_text` reuses these for what the tools
(``ibstat``, ``ibv_devinfo``, ``ibstatus``) print.

Every public parser returns a typed value or raises :class:`ParseError` with a one-line message;
nothing else escapes, whatever the input (tested with hypothesis).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from preflight.errors import ParseError

_QUOTE_MAX = 60


def _quote(text: str) -> str:
    return repr(text[:_QUOTE_MAX]) + ("..." if len(text) > _QUOTE_MAX else "")


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ParseError(f"expected {what} as text, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------------------------
# Port state and physical state: ports/<n>/state, ports/<n>/phys_state
# --------------------------------------------------------------------------------------------
#
# state_show(): "%d: %s" with ib_port_state_to_str() names NOP, DOWN, INIT, ARMED, ACTIVE,
# ACTIVE_DEFER (anything else UNKNOWN). phys_state_show(): "%u: %s" with phys_state_to_str()
# names Sleep, Polling, Disabled, PortConfigurationTraining, LinkUp, LinkErrorRecovery,
# "Phy Test", else "<unknown>".
PORT_STATES = {0: "NOP", 1: "DOWN", 2: "INIT", 3: "ARMED", 4: "ACTIVE", 5: "ACTIVE_DEFER"}
PHYS_STATES = {
    1: "Sleep",
    2: "Polling",
    3: "Disabled",
    4: "PortConfigurationTraining",
    5: "LinkUp",
    6: "LinkErrorRecovery",
    7: "Phy Test",
}
STATE_ACTIVE = 4
PHYS_LINK_UP = 5
_STATE_RE = re.compile(r"([0-9]{1,3}): ([^\n]{1,40})")


@dataclass(frozen=True)
class PortState:
    """A numbered state as sysfs prints it: ``4: ACTIVE``."""

    code: int
    name: str

    def __str__(self) -> str:
        return f"{self.code}: {self.name}"


def _parse_numbered(text: str, what: str, example: str) -> PortState:
    s = _require_str(text, what).strip()
    m = _STATE_RE.fullmatch(s)
    if m is None:
        raise ParseError(f"expected {what} like {example!r}, got {_quote(text)}")
    return PortState(int(m.group(1)), m.group(2).strip())


def parse_port_state(text: str) -> PortState:
    """``4: ACTIVE`` → PortState(4, "ACTIVE")."""
    return _parse_numbered(text, "an IB port state", "4: ACTIVE")


def parse_phys_state(text: str) -> PortState:
    """``5: LinkUp`` → PortState(5, "LinkUp")."""
    return _parse_numbered(text, "an IB physical port state", "5: LinkUp")


# --------------------------------------------------------------------------------------------
# Link rate: ports/<n>/rate
# --------------------------------------------------------------------------------------------
#
# rate_show(): "%d%s Gb/sec (%dX%s)\n" of rate/10, ".5" when rate%10, the width (1, 2, 4, 8, 12)
# and the speed name with a leading space: " SDR" (kernels before 5.x printed nothing for SDR),
# " DDR", " QDR", " FDR10", " FDR", " EDR", " HDR", " NDR", " XDR". Per-lane deci-Gb/s: SDR 25,
# DDR 50, QDR 100, FDR10 100, FDR 140, EDR 250, HDR 500, NDR 1000, XDR 2000. A port that is down
# reports SDR ("10 Gb/sec (4X SDR)", ibstat "Rate: 10"). RoCE ports report the IB pair nearest
# their Ethernet speed: 100 GbE = "100 Gb/sec (4X EDR)", 400 GbE = "400 Gb/sec (4X NDR)".
LANE_GBPS = {
    "SDR": 2.5,
    "DDR": 5.0,
    "QDR": 10.0,
    "FDR10": 10.0,
    "FDR": 14.0,
    "EDR": 25.0,
    "HDR": 50.0,
    "NDR": 100.0,
    "XDR": 200.0,
}
_RATE_RE = re.compile(r"([0-9]{1,5}(?:\.5)?) Gb/sec \(([0-9]{1,2})X(?: ([A-Z][A-Z0-9]{1,7}))?\)")


@dataclass(frozen=True)
class LinkRate:
    """An IB port rate: total Gb/s, lanes, and the IB speed name ('' = SDR on old kernels)."""

    gbps: float
    width: int
    speed: str

    def __str__(self) -> str:
        whole = f"{self.gbps:g}"
        suffix = f" {self.speed}" if self.speed else ""
        return f"{whole} Gb/sec ({self.width}X{suffix})"


def parse_rate(text: str) -> LinkRate:
    """``400 Gb/sec (4X NDR)`` → LinkRate(400.0, 4, "NDR").

    Only the sysfs form is accepted: ``ibstat``'s bare ``Rate: 400`` is a tool's rendering and
    carries neither the width nor the generation.
    """
    s = _require_str(text, "an IB port rate").strip()
    m = _RATE_RE.fullmatch(s)
    if m is None:
        raise ParseError(f"expected an IB rate like '400 Gb/sec (4X NDR)', got {_quote(text)}")
    width = int(m.group(2))
    if width not in (1, 2, 4, 8, 12):
        raise ParseError(
            f"expected an IB rate with 1, 2, 4, 8 or 12 lanes ('400 Gb/sec (4X NDR)'), "
            f"got {width}X in {_quote(text)}"
        )
    return LinkRate(float(m.group(1)), width, m.group(3) or "")


# --------------------------------------------------------------------------------------------
# LIDs, GUIDs, firmware, link layer
# --------------------------------------------------------------------------------------------
#
# lid_show()/sm_lid_show(): "0x%x" (0 on RoCE ports; 0xffff = "permissive", no LID assigned:
# ibstat "Base lid: 65535" on a down port). node_guid/sys_image_guid: "%04x:%04x:%04x:%04x".
# fw_ver: mlx5 "%d.%d.%04d" (28.41.1000). link_layer: "InfiniBand", "Ethernet" or "Unknown".
LID_UNASSIGNED = (0x0, 0xFFFF)
LINK_LAYERS = ("InfiniBand", "Ethernet", "Unknown")
_LID_RE = re.compile(r"0x[0-9a-fA-F]{1,4}")
_GUID_RE = re.compile(r"[0-9a-f]{4}(?::[0-9a-f]{4}){3}")
_FW_RE = re.compile(r"[0-9]{1,5}(?:\.[0-9]{1,5}){1,3}")


def parse_lid(text: str) -> int:
    """``0x1a`` → 26 (a 16-bit LID as sysfs prints it)."""
    s = _require_str(text, "a LID").strip()
    if not _LID_RE.fullmatch(s):
        raise ParseError(f"expected a LID like '0x1a', got {_quote(text)}")
    return int(s, 16)


def parse_guid(text: str) -> int:
    """``a088:c203:0074:cfda`` → the 64-bit GUID."""
    s = _require_str(text, "a GUID").strip().lower()
    if not _GUID_RE.fullmatch(s):
        raise ParseError(f"expected a GUID like 'a088:c203:0074:cfda', got {_quote(text)}")
    return int(s.replace(":", ""), 16)


def parse_fw_version(text: str) -> tuple[int, ...]:
    """``28.41.1000`` → (28, 41, 1000), for ordering versions numerically."""
    s = _require_str(text, "a firmware version").strip()
    if not _FW_RE.fullmatch(s):
        raise ParseError(f"expected a firmware version like '28.41.1000', got {_quote(text)}")
    return tuple(int(p) for p in s.split("."))


def parse_link_layer(text: str) -> str:
    """``InfiniBand`` | ``Ethernet`` | ``Unknown``."""
    s = _require_str(text, "a link layer").strip()
    if s not in LINK_LAYERS:
        raise ParseError(f"expected link layer InfiniBand, Ethernet or Unknown, got {_quote(text)}")
    return s


# --------------------------------------------------------------------------------------------
# GIDs: ports/<n>/gids/<i>, gid_attrs/types/<i>, gid_attrs/ndevs/<i>
# --------------------------------------------------------------------------------------------
#
# show_port_gid(): "%pI6" = eight groups of four hex digits. Unused entries are all zeros.
# gid_attrs/types: "IB/RoCE v1" (IB_GID_TYPE_IB == IB_GID_TYPE_ROCE) or "RoCE v2"; reading an
# unpopulated index fails with EINVAL. gid_attrs/ndevs: the netdev name the GID is bound to.
GID_TYPES = ("IB/RoCE v1", "RoCE v2")
ROCE_V2 = "RoCE v2"
ZERO_GID = ":".join(["0000"] * 8)
_GID_RE = re.compile(r"[0-9a-f]{4}(?::[0-9a-f]{4}){7}")


def parse_gid(text: str) -> str:
    """A GID in sysfs' full form, lower case: ``fe80:0000:…:cfda``."""
    s = _require_str(text, "a GID").strip().lower()
    if not _GID_RE.fullmatch(s):
        raise ParseError(f"expected a GID of 8 groups of 4 hex digits, got {_quote(text)}")
    return s


def parse_gid_type(text: str) -> str:
    """``IB/RoCE v1`` or ``RoCE v2``."""
    s = _require_str(text, "a GID type").strip()
    if s not in GID_TYPES:
        raise ParseError(f"expected GID type 'IB/RoCE v1' or 'RoCE v2', got {_quote(text)}")
    return s


def gid_ipv4(gid: str) -> str | None:
    """The IPv4 address of an IPv4-mapped GID (``::ffff:a.b.c.d``), else None."""
    groups = gid.split(":")
    if len(groups) != 8 or groups[:6] != ["0000"] * 5 + ["ffff"]:
        return None
    raw = int(groups[6] + groups[7], 16)
    return ".".join(str(raw >> s & 0xFF) for s in (24, 16, 8, 0))


@dataclass(frozen=True)
class Gid:
    """One populated GID table entry of a port."""

    index: int
    gid: str
    type: str | None  # None when gid_attrs is absent or unreadable
    ndev: str | None  # netdev the entry is bound to (RoCE), None on IB

    @property
    def ipv4(self) -> str | None:
        return gid_ipv4(self.gid)


# --------------------------------------------------------------------------------------------
# Counters: ports/<n>/counters/*, ports/<n>/hw_counters/*
# --------------------------------------------------------------------------------------------
#
# PMA PortCounters (drivers/infiniband/core/sysfs.c show_pma_counter()): "%llu" of a field of the
# given width, or "N/A (no PMA)" when the device has no Performance Management Agent (captured on
# an i40iw iWARP device). The legacy fields are small and saturate at their maximum instead of
# wrapping (IBA 16.1.3.5): a value at the maximum means "at least this many" and can no longer
# show growth. Widths in bits (sysfs.c PORT_PMA_ATTR()); the data/packet counters are 32-bit
# legacy or 64-bit extended (ConnectX-7 shows 64-bit values, CAP_COUNTERS).
COUNTER_BITS = {
    "symbol_error": 16,
    "link_error_recovery": 8,
    "link_downed": 8,
    "port_rcv_errors": 16,
    "port_rcv_remote_physical_errors": 16,
    "port_rcv_switch_relay_errors": 16,
    "port_xmit_discards": 16,
    "port_xmit_constraint_errors": 8,
    "port_rcv_constraint_errors": 8,
    "local_link_integrity_errors": 4,
    "excessive_buffer_overrun_errors": 4,
    "VL15_dropped": 16,
    "port_xmit_wait": 32,
}
NO_PMA = "N/A (no PMA)"
_UINT_RE = re.compile(r"[0-9]{1,20}")


def parse_counter(text: str) -> int | None:
    """A counter file: its value, or None for ``N/A (no PMA)``."""
    s = _require_str(text, "a counter value").strip()
    if s == NO_PMA:
        return None
    if not _UINT_RE.fullmatch(s):
        raise ParseError(f"expected a counter value or {NO_PMA!r}, got {_quote(text)}")
    value = int(s)
    if value >= 1 << 64:
        raise ParseError(f"expected a counter below 2^64, got {s}")
    return value


def counter_saturated(name: str, value: int | None) -> bool:
    """True when a legacy PMA counter sits at its maximum (it stopped counting there)."""
    bits = COUNTER_BITS.get(name.rsplit("/", 1)[-1])
    return bits is not None and value is not None and value >= (1 << bits) - 1


# --------------------------------------------------------------------------------------------
# Kernel release (GPUDirect RDMA's dma-buf path needs 5.12 or later)
# --------------------------------------------------------------------------------------------
_RELEASE_RE = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})")


def parse_kernel_release(text: str) -> tuple[int, int]:
    """``5.15.0-1067-nvidia`` → (5, 15)."""
    s = _require_str(text, "a kernel release").strip()
    m = _RELEASE_RE.match(s)
    if m is None:
        raise ParseError(f"expected a kernel release like '5.15.0-1067-nvidia', got {_quote(text)}")
    return int(m.group(1)), int(m.group(2))
