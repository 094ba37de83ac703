"""RDMA devices from /sys/class/infiniband: ports, rates, GIDs, counters; GPUDirect prerequisites.

The parsers here read the exact strings the kernel prints in
``/sys/class/infiniband/<dev>/ports/<n>/*`` (drivers/infiniband/core/sysfs.c). What the tools print
(``ibstat``, ``ibv_devinfo``, ``ibstatus``) is parsed in :mod:`preflight.inventory.rdma_text`.

Every public parser returns a typed value or raises :class:`ParseError` with a one-line message;
nothing else escapes, whatever the input (tested with hypothesis).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from preflight.errors import HostReadError, ParseError
from preflight.host import Host
from preflight.inventory.pci import is_software_rdma, pci_function
from preflight.inventory.sortkeys import natural_key
from preflight.inventory.topology import gpu_nic_paths

if TYPE_CHECKING:
    from preflight.inventory.nccl_env import NcclEnv
    from preflight.inventory.net import NetInventory
    from preflight.inventory.pci import PciDevice, PciInventory
    from preflight.model import Scalar

IB_CLASS = "/sys/class/infiniband"
VERBS_CLASS = "/sys/class/infiniband_verbs"
DEV_INFINIBAND = "/dev/infiniband"

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
# The inventory
# --------------------------------------------------------------------------------------------


@dataclass
class IbPort:
    """One port of an RDMA device. Fields are None where the file is absent or unusable."""

    device: str
    num: int
    state: PortState | None = None
    phys_state: PortState | None = None
    rate: LinkRate | None = None
    link_layer: str | None = None
    lid: int | None = None
    sm_lid: int | None = None
    gids: list[Gid] = field(default_factory=list)
    counters: dict[str, int | None] = field(default_factory=dict)  # "counters/x", "hw_counters/y"
    netdevs: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # file (relative to the port) -> reason

    @property
    def name(self) -> str:
        """``mlx5_0/1``: the subject used in findings (NCCL_IB_HCA's ``hca:port``)."""
        return f"{self.device}/{self.num}"

    @property
    def path(self) -> str:
        return f"{IB_CLASS}/{self.device}/ports/{self.num}"

    @property
    def active(self) -> bool:
        return self.state is not None and self.state.code == STATE_ACTIVE

    @property
    def link_up(self) -> bool:
        return self.phys_state is not None and self.phys_state.code == PHYS_LINK_UP

    @property
    def is_roce(self) -> bool:
        return self.link_layer == "Ethernet"

    @property
    def is_ib(self) -> bool:
        return self.link_layer == "InfiniBand"

    @property
    def netdev(self) -> str | None:
        """The port's main netdev: IPoIB child interfaces (ib0.8001) come after the parent."""
        plain = [n for n in self.netdevs if "." not in n]
        names = plain or self.netdevs
        return names[0] if names else None


@dataclass
class IbDevice:
    """One RDMA device (an HCA, or one function of a multi-port NIC)."""

    name: str
    pci_bdf: str | None = None  # None: not a PCI function (SCIF, virtual) or no device link
    software: bool = False  # a software provider on top of a netdev (rxe), not an RDMA NIC
    node_type: str | None = None
    node_guid: int | None = None
    sys_image_guid: int | None = None
    fw_ver: str | None = None
    hca_type: str | None = None
    board_id: str | None = None
    ports: dict[int, IbPort] = field(default_factory=dict)
    netdevs: list[str] = field(default_factory=list)  # device/net/* of the PCI function
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """hca_type (MT4129 = ConnectX-7), or '?' when the driver does not say."""
        return self.hca_type or "?"

    @property
    def is_nic(self) -> bool:
        """A hardware RDMA device on a PCI function: what counts as an RDMA NIC."""
        return self.pci_bdf is not None and not self.software


@dataclass(frozen=True)
class CounterSample:
    """Counter values of every port at one moment: {(port name, "counters/x"): value}."""

    taken_at: float  # time.monotonic()
    values: Mapping[tuple[str, str], int | None]


class RdmaInventory:
    """Every RDMA device in /sys/class/infiniband with its ports, GIDs and counters.

    Building it reads every counter once: that is the run's first counter sample
    (``first_sample``), which ``resample()`` compares against at the end of the run.
    """

    def __init__(self, host: Host) -> None:
        self.host = host
        self.devices: dict[str, IbDevice] = {}
        for name in sorted(host.listdir(IB_CLASS), key=natural_key):
            self.devices[name] = self._read_device(name)
        self.first_sample = CounterSample(
            time.monotonic(),
            {(p.name, c): v for p in self.ports() for c, v in p.counters.items()},
        )

    # -- views ---------------------------------------------------------------------------------
    def ports(self) -> list[IbPort]:
        """Every port of every device, devices in natural order (mlx5_2 before mlx5_10)."""
        return [p for d in self.devices.values() for _, p in sorted(d.ports.items())]

    def port(self, name: str) -> IbPort | None:
        """A port by its ``mlx5_0/1`` name."""
        dev, _, num = name.partition("/")
        d = self.devices.get(dev)
        return d.ports.get(int(num)) if d and num.isdigit() else None

    def by_pci(self) -> dict[str, list[IbDevice]]:
        """RDMA devices per PCI function."""
        out: dict[str, list[IbDevice]] = {}
        for d in self.devices.values():
            if d.pci_bdf and d.is_nic:
                out.setdefault(d.pci_bdf, []).append(d)
        return out

    def resample(self, keys: Iterable[tuple[str, str]]) -> CounterSample:
        """Read the given (port, counter) files again now: the end of the sampling window."""
        values: dict[tuple[str, str], int | None] = {}
        for port_name, rel in keys:
            port = self.port(port_name)
            if port is None:
                continue
            try:
                text = self.host.read_text(f"{port.path}/{rel}")
                values[(port_name, rel)] = parse_counter(text) if text is not None else None
            except (HostReadError, ParseError):
                continue
        return CounterSample(time.monotonic(), values)

    # -- gathering -----------------------------------------------------------------------------
    def _line(self, path: str, errors: dict[str, str], key: str) -> str | None:
        try:
            return self.host.read_line(path)
        except HostReadError as exc:
            errors[key] = exc.reason
            return None

    def _read_device(self, name: str) -> IbDevice:
        host, base = self.host, f"{IB_CLASS}/{name}"
        dev = IbDevice(name)
        dev.pci_bdf = pci_function(host.realpath(f"{base}/device"))
        dev.software = is_software_rdma(host, name)
        dev.node_type = self._line(f"{base}/node_type", dev.errors, "node_type")
        # Absent for drivers without firmware (ib_qib, rxe, siw); an empty file means the same.
        dev.fw_ver = self._line(f"{base}/fw_ver", dev.errors, "fw_ver") or None
        dev.hca_type = self._line(f"{base}/hca_type", dev.errors, "hca_type")
        dev.board_id = self._line(f"{base}/board_id", dev.errors, "board_id")
        for attr in ("node_guid", "sys_image_guid"):
            text = self._line(f"{base}/{attr}", dev.errors, attr)
            if text:
                try:
                    setattr(dev, attr, parse_guid(text))
                except ParseError as exc:
                    dev.errors[attr] = str(exc)
        dev.netdevs = sorted(host.listdir(f"{base}/device/net"), key=natural_key)
        for entry in host.listdir(f"{base}/ports"):
            if entry.isdigit():
                dev.ports[int(entry)] = self._read_port(dev, int(entry))
        if dev.netdevs:
            self._map_netdevs(dev)
        return dev

    def _read_port(self, dev: IbDevice, num: int) -> IbPort:
        port = IbPort(dev.name, num)
        base = port.path
        parsers = (
            ("state", parse_port_state),
            ("phys_state", parse_phys_state),
            ("rate", parse_rate),
            ("link_layer", parse_link_layer),
            ("lid", parse_lid),
            ("sm_lid", parse_lid),
        )
        for attr, parse in parsers:
            text = self._line(f"{base}/{attr}", port.errors, attr)
            if text is None:
                continue
            try:
                setattr(port, attr, parse(text))
            except ParseError as exc:
                port.errors[attr] = str(exc)
        # GID 0 of an IB port is the port GID (subnet prefix + port GUID); only RoCE ports have a
        # table worth scanning (up to 255 entries: one per IP address and RoCE version).
        indices = sorted(
            (int(i) for i in self.host.listdir(f"{base}/gids") if i.isdigit()),
        )
        if not port.is_roce:
            indices = indices[:1]
        for index in indices:
            gid = self._read_gid(port, index)
            if gid is not None:
                port.gids.append(gid)
        for group in ("counters", "hw_counters"):
            for cname in self.host.listdir(f"{base}/{group}"):
                if cname == "lifespan":  # hw_counters' cache lifetime in ms, not a counter
                    continue
                rel = f"{group}/{cname}"
                text = self._line(f"{base}/{rel}", port.errors, rel)
                if text is None:
                    continue
                try:
                    port.counters[rel] = parse_counter(text)
                except ParseError as exc:
                    port.errors[rel] = str(exc)
        return port

    def _read_gid(self, port: IbPort, index: int) -> Gid | None:
        base = port.path
        text = self._line(f"{base}/gids/{index}", port.errors, f"gids/{index}")
        if text is None:
            return None
        try:
            gid = parse_gid(text)
        except ParseError as exc:
            port.errors[f"gids/{index}"] = str(exc)
            return None
        if gid == ZERO_GID:
            return None
        gid_type = ndev = None
        try:
            raw_type = self.host.read_line(f"{base}/gid_attrs/types/{index}")
            gid_type = parse_gid_type(raw_type) if raw_type else None
        except (HostReadError, ParseError):
            gid_type = None  # EINVAL for entries the kernel has no attributes for
        try:
            ndev = self.host.read_line(f"{base}/gid_attrs/ndevs/{index}") or None
        except HostReadError:
            ndev = None
        return Gid(index, gid, gid_type, ndev)

    def _map_netdevs(self, dev: IbDevice) -> None:
        """Give each port its netdevs: dev_port (0-based) names the port of a multi-port
        function; RoCE GIDs name their netdev directly."""
        for netdev in dev.netdevs:
            try:
                dev_port = self.host.read_line(f"/sys/class/net/{netdev}/dev_port")
            except HostReadError:
                dev_port = None
            num = int(dev_port) + 1 if dev_port and dev_port.isdigit() else min(dev.ports)
            if num in dev.ports:
                dev.ports[num].netdevs.append(netdev)
        for port in dev.ports.values():
            for gid in port.gids:
                if gid.ndev and gid.ndev not in port.netdevs:
                    port.netdevs.append(gid.ndev)


# --------------------------------------------------------------------------------------------
# GPUDirect RDMA prerequisites
# --------------------------------------------------------------------------------------------
#
# NCCL (src/transport/net_ib/gdr.cc) treats peer memory as loaded when one of these exists; the
# first two are the legacy nv_peer_mem module's, the last nvidia-peermem's.
PEERMEM_PATHS = (
    "/sys/kernel/mm/memory_peers/nv_mem/version",
    "/sys/kernel/mm/memory_peers/nv_mem_nc/version",
    "/sys/module/nvidia_peermem/version",
)
_RELEASE_RE = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})")


def parse_kernel_release(text: str) -> tuple[int, int]:
    """``5.15.0-1067-nvidia`` → (5, 15)."""
    s = _require_str(text, "a kernel release").strip()
    m = _RELEASE_RE.match(s)
    if m is None:
        raise ParseError(f"expected a kernel release like '5.15.0-1067-nvidia', got {_quote(text)}")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class VerbsDevice:
    """/sys/class/infiniband_verbs/uverbsN and its character device /dev/infiniband/uverbsN."""

    name: str
    ibdev: str | None
    dev_path: str
    present: bool
    accessible: bool


@dataclass
class GpuDirectInfo:
    """What GPUDirect RDMA needs outside the GPU driver: a peer-memory module and verbs nodes."""

    peermem: dict[str, str]  # present path -> version text
    verbs: list[VerbsDevice]
    dev_infiniband: list[str]  # entries of /dev/infiniband

    @classmethod
    def read(cls, host: Host) -> GpuDirectInfo:
        """Read the peer-memory version files, /sys/class/infiniband_verbs and /dev/infiniband."""
        peermem: dict[str, str] = {}
        for path in PEERMEM_PATHS:
            try:
                text = host.read_line(path)
            except HostReadError:
                text = ""  # present but unreadable still means the module is loaded
            if text is not None:
                peermem[path] = text
        verbs = []
        for name in sorted(host.listdir(VERBS_CLASS), key=natural_key):
            if not name.startswith("uverbs"):
                continue  # abi_version
            try:
                ibdev = host.read_line(f"{VERBS_CLASS}/{name}/ibdev")
            except HostReadError:
                ibdev = None
            dev_path = f"{DEV_INFINIBAND}/{name}"
            present = host.exists(dev_path)
            verbs.append(
                VerbsDevice(name, ibdev, dev_path, present, present and host.access(dev_path))
            )
        return cls(peermem, verbs, host.listdir(DEV_INFINIBAND))


# --------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------
_FACT_UNSAFE = re.compile(r"[^A-Za-z0-9_:.-]")


def _key(part: str) -> str:
    return _FACT_UNSAFE.sub("_", part) or "_"


def nic_label(pci: PciInventory, nic: PciDevice) -> str:
    """mlx5_0 (its RDMA device names), or the PCI address of a NIC without one."""
    return ",".join(pci.rdma_pci.get(nic.bdf, [])) or nic.bdf


def network_facts(
    pci: PciInventory,
    rdma: RdmaInventory,
    net: NetInventory,
    nccl: NcclEnv,
    gdr: GpuDirectInfo,
) -> dict[str, Scalar]:
    """RDMA, netdev, GPU↔NIC topology, GPUDirect and NCCL settings as flat facts."""
    facts: dict[str, Scalar] = {}
    for dev in rdma.devices.values():
        p = f"rdma.{_key(dev.name)}."
        facts[p + "fw_ver"] = dev.fw_ver
        facts[p + "hca_type"] = dev.hca_type
        facts[p + "board_id"] = dev.board_id
        facts[p + "pci"] = dev.pci_bdf
        for port in dev.ports.values():
            q = f"{p}port{port.num}."
            facts[q + "state"] = str(port.state) if port.state else None
            facts[q + "phys_state"] = str(port.phys_state) if port.phys_state else None
            facts[q + "rate"] = str(port.rate) if port.rate else None
            facts[q + "link_layer"] = port.link_layer
            facts[q + "netdev"] = port.netdev
            if port.is_ib:
                facts[q + "lid"] = port.lid
                facts[q + "sm_lid"] = port.sm_lid
            netdev = net.devices.get(port.netdev or "")
            if netdev is not None:
                n = f"net.{_key(netdev.name)}."
                facts[n + "operstate"] = netdev.operstate
                facts[n + "mtu"] = netdev.mtu
                facts[n + "speed_mbps"] = netdev.speed_mbps
    gpus, nics = pci.gpus(), pci.nics()
    for index, (_gpu, row) in enumerate(gpu_nic_paths(gpus, nics)):
        t = f"topology.GPU{index}."
        for nic, distance in row:
            facts[t + _key(nic_label(pci, nic))] = distance.name
        if row:
            facts[t + "nearest_nic"] = f"{nic_label(pci, row[0][0])} {row[0][1].name}"
    facts["gdr.peermem"] = next(iter(gdr.peermem.values()), None) if gdr.peermem else None
    facts["gdr.uverbs"] = len(gdr.verbs)
    for name, setting in sorted(nccl.settings.items()):
        facts[f"nccl.{_key(name)}"] = setting.value
    facts["nccl.conf_files"] = ",".join(f.path for f in nccl.files if f.present) or None
    return facts
