"""What the RDMA tools print: ``ibstat``, ``ibv_devinfo [-v]`` and ``ibstatus``.

These are captures from a node (bug reports, support bundles), never what `preflight run` reads:
it reads sysfs (:mod:`preflight.inventory.rdma`). The formats follow the printing code of
rdma-core (checked at commit 691953d, 2026-08-20):

* ``ibstat`` (infiniband-diags/ibstat.c): ``<node type> '<name>'`` headers (``CA``, ``Switch``,
  ``Router``, ``iWARP RNIC``, ``???``), ``<node type>: '<name>'`` when one port was asked for;
  ``Rate: %d``, ``Rate: %d (FDR10)`` or ``Rate: 2.5``; ``State: ???`` for a state above Active
  (ACTIVE_DEFER) and ``Physical state: ???`` above PhyTest; empty ``CA type:`` and
  ``Firmware version:`` when the driver has no such file (rxe, irdma, siw). libibumad prints
  ``ibwarn: [pid] func: …`` warnings and goes on; ``ibpanic: …`` ends the program.
* ``ibv_devinfo`` (libibverbs/examples/devinfo.c): ``PORT_ACTIVE (4)``, ``invalid state (N)``,
  ``PORT_CONFIGURATION TRAINNING (4)``; ``active_width: %sX (%d)`` with the width *code* in
  parentheses (1=1X, 2=4X, 4=8X, 8=12X, 16=2X). Since rdma-core 29 (bbce02ea3, 2020) a GID on an
  Ethernet port ends in ``, RoCE v1`` or ``, RoCE v2``, and RoCE v2 GIDs are printed by
  inet_ntop, compressed (``fe80::…``, ``::ffff:10.0.0.1``).
* ``ibstatus`` (infiniband-diags/scripts/ibstatus): the sysfs files themselves, ``unknown`` for an
  unreadable one and ``IB`` when there is no link_layer file.

Every parser returns a typed value or raises :class:`ParseError`; nothing else escapes.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from preflight.errors import ParseError
from preflight.inventory.rdma_sysfs_text import (
    LinkRate,
    PortState,
    parse_gid,
    parse_lid,
    parse_link_layer,
    parse_phys_state,
    parse_port_state,
    parse_rate,
)

_QUOTE_MAX = 60
_LINE_MAX = 4096  # longer "lines" are not tool output


def _quote(text: str) -> str:
    return repr(text[:_QUOTE_MAX]) + ("..." if len(text) > _QUOTE_MAX else "")


def _lines(text: object, what: str) -> list[str]:
    if not isinstance(text, str):
        raise ParseError(f"expected {what} as text, got {type(text).__name__}")
    return text.splitlines()


# ibstat's port_state_str[] and port_phy_state_str[] (the index is the IB state code).
IBSTAT_STATES = {"Down": 1, "Initializing": 2, "Armed": 3, "Active": 4}
IBSTAT_PHYS = {
    "No state change": 0,
    "Sleep": 1,
    "Polling": 2,
    "Disabled": 3,
    "PortConfigurationTraining": 4,
    "LinkUp": 5,
    "LinkErrorRecovery": 6,
    "PhyTest": 7,
    "Phy Test": 7,  # the sysfs spelling, in case a wrapper script copied it
}
IBSTAT_UNKNOWN = "???"  # a state code past the end of ibstat's table
NODE_TYPES = ("CA", "Switch", "Router", "iWARP RNIC", "???")
# devinfo.c width_str(): IB PortInfo LinkWidthActive code -> lanes.
DEVINFO_WIDTHS = {1: 1, 2: 4, 4: 8, 8: 12, 16: 2}
DEVINFO_GID_TYPES = ("RoCE v1", "RoCE v2", "Invalid gid type")

_HEADER_RE = re.compile(r"(CA|Switch|Router|iWARP RNIC|\?\?\?)(:?) '([^']{1,64})'")
_PORT_RE = re.compile(r"Port ([0-9]{1,3}):")
_IBSTAT_RATE_RE = re.compile(r"([0-9]{1,4}(?:\.5)?)( \(FDR10\))?")
_NUMBER_RE = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")
_DECIMAL_RE = re.compile(r"[0-9]{1,5}")
_CODED_RE = re.compile(r"([^()]{1,40}) \(([0-9]{1,5})\)")
_WIDTH_RE = re.compile(r"([^()]{1,20})X \(([0-9]{1,3})\)")
_GID_KEY_RE = re.compile(r"GID\[ {0,4}([0-9]{1,5})\]")


@dataclass(frozen=True)
class ToolGid:
    """One GID line of ``ibv_devinfo -v``: the address in sysfs' full form, and its type."""

    index: int
    gid: str
    type: str | None  # "RoCE v1" / "RoCE v2" on Ethernet ports (rdma-core >= 29), else None


@dataclass
class ToolPort:
    """One port as a tool printed it; None where the tool printed no value or ``???``."""

    num: int
    state: int | None = None
    phys_state: int | None = None
    rate_gbps: float | None = None  # ibstat "Rate: 400"
    fdr10: bool = False  # ibstat "Rate: 10 (FDR10)"
    effective_gbps: float | None = None  # ibstat "Effective speed:", devinfo "effective_speed:"
    lid: int | None = None
    sm_lid: int | None = None
    link_layer: str | None = None
    active_width: int | None = None  # lanes, from devinfo "4X (2)"
    active_speed: str | None = None  # devinfo "50.0 Gbps (64)", kept as printed
    gids: list[ToolGid] = field(default_factory=list)


@dataclass
class ToolCa:
    """One CA / hca_id as a tool printed it."""

    name: str
    node_type: str | None = None  # ibstat "CA", "iWARP RNIC", …; devinfo transport
    ca_type: str | None = None  # ibstat "MT4129"; ibv_devinfo vendor_part_id "4129"
    fw_ver: str | None = None  # None: the driver has no firmware version (rxe, siw, irdma)
    ports: dict[int, ToolPort] = field(default_factory=dict)


@dataclass
class ToolOutput:
    """Parsed tool output: the CAs read, the warnings printed, the error it ended with."""

    cas: list[ToolCa]
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def _decimal(value: str, what: str, line: str) -> int:
    if not _DECIMAL_RE.fullmatch(value):
        raise ParseError(f"expected {what} as a decimal number, got {_quote(line)}")
    return int(value)


def _number(value: str, what: str, line: str) -> float:
    if not _NUMBER_RE.fullmatch(value):
        raise ParseError(f"expected {what} as a number, got {_quote(line)}")
    return float(value)


def _ibstat_port_field(port: ToolPort, key: str, value: str, line: str) -> None:
    if key == "State":
        if value != IBSTAT_UNKNOWN and value not in IBSTAT_STATES:
            raise ParseError(f"expected an ibstat port state, got {_quote(line)}")
        port.state = IBSTAT_STATES.get(value)
    elif key == "Physical state":
        if value != IBSTAT_UNKNOWN and value not in IBSTAT_PHYS:
            raise ParseError(f"expected an ibstat physical state, got {_quote(line)}")
        port.phys_state = IBSTAT_PHYS.get(value)
    elif key == "Rate":
        m = _IBSTAT_RATE_RE.fullmatch(value)
        if m is None:
            raise ParseError(f"expected 'Rate: <Gb/s>' or 'Rate: 10 (FDR10)', got {_quote(line)}")
        port.rate_gbps, port.fdr10 = float(m.group(1)), m.group(2) is not None
    elif key == "Effective speed":
        port.effective_gbps = _number(value, "an effective speed", line)
    elif key == "Base lid":
        port.lid = _decimal(value, "a base LID", line)
    elif key == "SM lid":
        port.sm_lid = _decimal(value, "an SM LID", line)
    elif key == "Link layer":
        port.link_layer = value or None


def parse_ibstat(text: str) -> ToolOutput:
    """``ibstat`` output: ``CA 'mlx5_0'`` blocks with ``Port N:`` sections.

    Lines with a value elided as ``...`` and ``#`` comments are skipped; ``ibwarn:`` lines are
    collected as warnings and the listing goes on (ibstat warns about one device and lists the
    next); an ``ibpanic:`` line ends the output and is returned as ``error``.
    """
    cas: list[ToolCa] = []
    port: ToolPort | None = None
    out = ToolOutput(cas)
    for raw in _lines(text, "ibstat output"):
        line = raw.strip()[:_LINE_MAX]
        if not line or line == "..." or line.startswith("#") or line.startswith("ibdebug:"):
            continue
        if line.startswith("ibpanic:"):
            out.error = line
            break
        if line.startswith("ibwarn:"):
            out.warnings.append(line)
            continue
        m = _HEADER_RE.fullmatch(line)
        if m:
            cas.append(ToolCa(m.group(3), node_type=m.group(1)))
            port = None
            continue
        if not cas:
            continue  # prompt or command line before the first CA
        ca = cas[-1]
        m = _PORT_RE.fullmatch(line)
        if m:
            port = ToolPort(int(m.group(1)))
            ca.ports[port.num] = port
            continue
        key, sep, value = line.partition(":")
        value = value.strip()
        if not sep or value == "...":
            continue
        if port is None:
            if key == f"{ca.node_type} type":
                ca.ca_type = value or None
            elif key == "Firmware version":
                ca.fw_ver = value or None
            continue
        _ibstat_port_field(port, key, value, line)
    return out


def _devinfo_gid(key: str, value: str, line: str) -> ToolGid:
    m = _GID_KEY_RE.fullmatch(key)
    if m is None:
        raise ParseError(f"expected 'GID[  N]:', got {_quote(line)}")
    address, _, gid_type = value.partition(", ")
    if gid_type and gid_type not in DEVINFO_GID_TYPES:
        raise ParseError(f"expected a GID type 'RoCE v1' or 'RoCE v2', got {_quote(line)}")
    try:
        gid = ipaddress.IPv6Address(address[:64]).exploded
    except ValueError:
        raise ParseError(f"expected a GID (an IPv6 address), got {_quote(line)}") from None
    return ToolGid(int(m.group(1)), parse_gid(gid), gid_type or None)


def _devinfo_port_field(port: ToolPort, key: str, value: str, line: str) -> None:
    if key in ("state", "phys_state"):
        m = _CODED_RE.fullmatch(value)
        if m is None:
            raise ParseError(f"expected a state like 'PORT_ACTIVE (4)', got {_quote(line)}")
        setattr(port, key, int(m.group(2)))
    elif key == "port_lid":
        port.lid = _decimal(value, "a port LID", line)
    elif key == "sm_lid":
        port.sm_lid = _decimal(value, "an SM LID", line)
    elif key == "link_layer":
        port.link_layer = value or None
    elif key == "active_width":
        m = _WIDTH_RE.fullmatch(value)
        if m is None:
            raise ParseError(f"expected an active width like '4X (2)', got {_quote(line)}")
        port.active_width = DEVINFO_WIDTHS.get(int(m.group(2)))
    elif key == "active_speed":
        port.active_speed = value
    elif key == "effective_speed":
        port.effective_gbps = _number(value.removesuffix(" Gbps"), "an effective speed", line)
    elif key.startswith("GID["):
        port.gids.append(_devinfo_gid(key, value, line))


def parse_ibv_devinfo(text: str) -> ToolOutput:
    """``ibv_devinfo [-v]`` output: ``hca_id:`` blocks with ``port:`` sections.

    States print as ``PORT_ACTIVE (4)`` / ``LINK_UP (5)`` and the number is kept;
    ``active_speed`` is kept as printed (``50.0 Gbps (64)``, ``invalid speed (0)``). Lines before
    the first ``hca_id`` (a capture that starts mid-output) are ignored, as are the tool's
    ``Failed to …`` messages on stderr.
    """
    cas: list[ToolCa] = []
    port: ToolPort | None = None
    for raw in _lines(text, "ibv_devinfo output"):
        line = raw.strip()[:_LINE_MAX]
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")  # "GID[  0]:" ends at the first colon too
        key, value = key.strip(), value.strip()
        if key == "hca_id" and sep:
            cas.append(ToolCa(value))
            port = None
            continue
        if not cas or not sep:
            continue
        ca = cas[-1]
        if key == "port":
            port = ToolPort(_decimal(value, "a port number", line))
            ca.ports[port.num] = port
            continue
        if port is None:
            if key == "fw_ver":
                ca.fw_ver = value or None
            elif key == "vendor_part_id":
                ca.ca_type = value or None
            elif key == "transport":
                ca.node_type = value or None
            continue
        _devinfo_port_field(port, key, value, line)
    return ToolOutput(cas)


# --------------------------------------------------------------------------------------------
# ibstatus: the sysfs files, one block per port
# --------------------------------------------------------------------------------------------

_IBSTATUS_HEADER_RE = re.compile(r"Infiniband device '([^']{1,64})' port ([0-9]{1,3}) status:")
IBSTATUS_UNKNOWN = "unknown"  # the script's text for an unreadable file
IBSTATUS_NO_LINK_LAYER = "IB"  # the script's text when there is no link_layer file


@dataclass
class IbstatusPort:
    """One ``ibstatus`` block: sysfs values, None where the script printed ``unknown``."""

    device: str
    num: int
    gid: str | None = None
    lid: int | None = None
    sm_lid: int | None = None
    state: PortState | None = None
    phys_state: PortState | None = None
    rate: LinkRate | None = None
    link_layer: str | None = None

    @property
    def name(self) -> str:
        return f"{self.device}/{self.num}"


def _ibstatus_field(port: IbstatusPort, key: str, value: str) -> None:
    if value == IBSTATUS_UNKNOWN:
        return
    if key == "default gid":
        port.gid = parse_gid(value)
    elif key == "base lid":
        port.lid = parse_lid(value)
    elif key == "sm lid":
        port.sm_lid = parse_lid(value)
    elif key == "state":
        port.state = parse_port_state(value)
    elif key == "phys state":
        port.phys_state = parse_phys_state(value)
    elif key == "rate":
        port.rate = parse_rate(value)
    elif key == "link_layer":
        port.link_layer = (
            "InfiniBand" if value == IBSTATUS_NO_LINK_LAYER else parse_link_layer(value)
        )


def parse_ibstatus(text: str) -> list[IbstatusPort]:
    """``ibstatus`` output: ``Infiniband device 'mlx5_0' port 1 status:`` blocks."""
    ports: list[IbstatusPort] = []
    for raw in _lines(text, "ibstatus output"):
        line = raw.strip()[:_LINE_MAX]
        if not line or line.startswith("#"):
            continue
        if line.startswith("Fatal error:"):
            raise ParseError(f"ibstatus failed: {_quote(line)}")
        m = _IBSTATUS_HEADER_RE.fullmatch(line)
        if m:
            ports.append(IbstatusPort(m.group(1), int(m.group(2))))
            continue
        key, sep, value = line.partition(":")
        if not ports or not sep:
            continue
        _ibstatus_field(ports[-1], key.strip(), value.strip())
    return ports
