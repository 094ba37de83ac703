"""RDMA devices from /sys/class/infiniband: ports, rates, GIDs, counters; GPUDirect prerequisites.

This module reads sysfs through Host. The text of each file is parsed by
:mod:`preflight.inventory.rdma_sysfs_text`; what the tools print (``ibstat``, ``ibv_devinfo``,
``ibstatus``) by :mod:`preflight.inventory.rdma_text`; the facts a report carries are assembled in
:mod:`preflight.inventory.facts`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from preflight.errors import HostReadError, ParseError
from preflight.host import Host
from preflight.inventory.pci import is_software_rdma, pci_function
from preflight.inventory.rdma_sysfs_text import (
    PHYS_LINK_UP,
    STATE_ACTIVE,
    ZERO_GID,
    Gid,
    LinkRate,
    PortState,
    parse_counter,
    parse_gid,
    parse_gid_type,
    parse_guid,
    parse_lid,
    parse_link_layer,
    parse_phys_state,
    parse_port_state,
    parse_rate,
)
from preflight.inventory.sortkeys import natural_key

if TYPE_CHECKING:
    from preflight.inventory.pci import PciDevice, PciInventory

IB_CLASS = "/sys/class/infiniband"
VERBS_CLASS = "/sys/class/infiniband_verbs"
DEV_INFINIBAND = "/dev/infiniband"


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


def nic_label(pci: PciInventory, nic: PciDevice) -> str:
    """mlx5_0 (its RDMA device names), or the PCI address of a NIC without one."""
    return ",".join(pci.rdma_pci.get(nic.bdf, [])) or nic.bdf
