"""PCI devices from /sys/bus/pci: identity, links, config space, AER, IOMMU group, BARs, tree."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from preflight.errors import HostReadError, ParseError
from preflight.host import Host
from preflight.inventory.attrs import read_attr
from preflight.inventory.pci_acs_quirks import (
    QUIRK_LOG_WORDS,
    QuirkAcs,
    acs_quirk_kind,
    quirk_acs,
    quirk_log,
)
from preflight.inventory.pci_config import PciConfig, parse_config_space
from preflight.inventory.sysfs_text import (
    Bar,
    parse_aer_counters,
    parse_int,
    parse_link_speed,
    parse_resource,
)

PCI_DEVICES = "/sys/bus/pci/devices"
BDF_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
HOST_BRIDGE_RE = re.compile(r"^pci[0-9a-f]{4}:[0-9a-f]{2}$")

VENDOR_NVIDIA = 0x10DE
VENDOR_MELLANOX = 0x15B3
# PCI class codes (base class << 16 | subclass << 8 | prog-if).
CLASS_VGA = 0x0300
CLASS_3D = 0x0302
CLASS_ETHERNET = 0x0200
CLASS_INFINIBAND = 0x0207
CLASS_PCI_BRIDGE = 0x0604
CLASS_NVSWITCH = 0x0680  # "bridge, other" as NVSwitch presents itself (NCCL xml.h)

AER_KINDS = ("correctable", "nonfatal", "fatal")

T = TypeVar("T")


@dataclass
class PciDevice:
    """One PCI function as sysfs describes it. Fields are None where the file is absent."""

    bdf: str
    path: str  # canonical /sys/devices/pci.../<bdf>
    vendor: int | None = None
    device: int | None = None
    subsystem_vendor: int | None = None
    subsystem_device: int | None = None
    class_code: int | None = None
    numa_node: int | None = None
    max_link_speed: float | None = None  # GT/s per lane
    max_link_width: int | None = None
    current_link_speed: float | None = None
    current_link_width: int | None = None
    config: PciConfig | None = None
    config_size: int | None = None
    aer: dict[str, dict[str, int]] = field(default_factory=dict)
    aer_rootport: dict[str, int] = field(default_factory=dict)
    iommu_group: str | None = None
    iommu_type: str | None = None
    bars: list[Bar] | None = None
    driver: str | None = None
    is_virtfn: bool = False
    acs_quirk: QuirkAcs | None = None  # ACS the kernel provides by quirk (Intel PCH root ports)
    upstream: tuple[str, ...] = ()  # bridges from the root port down to the parent
    host_bridge: str | None = None  # e.g. "pci0000:15"
    errors: dict[str, str] = field(default_factory=dict)  # sysfs attribute -> why it is unusable

    @property
    def base_class(self) -> int | None:
        """Class without the programming interface byte (0x0302 = 3D controller)."""
        return None if self.class_code is None else self.class_code >> 8

    @property
    def is_gpu(self) -> bool:
        """An NVIDIA display or 3D controller."""
        return self.vendor == VENDOR_NVIDIA and self.base_class in (CLASS_VGA, CLASS_3D)

    @property
    def is_bridge(self) -> bool:
        """A PCI-to-PCI bridge: root port or switch port."""
        return self.base_class == CLASS_PCI_BRIDGE

    @property
    def is_nvswitch(self) -> bool:
        """An NVSwitch, which presents itself as an NVIDIA "other bridge"."""
        return self.vendor == VENDOR_NVIDIA and self.base_class == CLASS_NVSWITCH

    @property
    def parent(self) -> str | None:
        """The bridge directly above this device, or None at the root complex."""
        return self.upstream[-1] if self.upstream else None

    @property
    def ids(self) -> str:
        """vendor:device as lspci -n prints it."""
        return f"{self.vendor or 0:04x}:{self.device or 0:04x}"


def pci_function(real: str | None) -> str | None:
    """The PCI address a canonical sysfs device path ends in, or None for a device that is not a
    PCI function (a SCIF or platform device, a virtual device, no path at all)."""
    if not real:
        return None
    parts = [p for p in real.split("/") if p]
    if not parts or not BDF_RE.match(parts[-1]) or not any(HOST_BRIDGE_RE.match(p) for p in parts):
        return None
    return parts[-1]


# Soft-RoCE (rxe) names the netdev it rides on in this file, which no hardware RDMA driver has
# (drivers/infiniband/sw/rxe/rxe_verbs.c parent_show). Its `device` link points at that netdev's
# parent: a plain Ethernet function is then not an RDMA NIC.
SOFT_ROCE_PARENT = "parent"


def is_software_rdma(host: Host, ibdev: str) -> bool:
    """True for an RDMA device a software provider created on top of a netdev (rxe)."""
    return host.exists(f"/sys/class/infiniband/{ibdev}/{SOFT_ROCE_PARENT}")


def parse_device_path(real: str) -> tuple[str | None, tuple[str, ...]]:
    """Host bridge and the chain of bridges above a device, from its canonical sysfs path.

    /sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/0000:18:00.0 has host
    bridge pci0000:15 and upstream bridges 15:01.0 (root port), 16:00.0, 17:00.0.
    """
    parts = [p for p in real.split("/") if p]
    host_bridge = next((p for p in parts if HOST_BRIDGE_RE.match(p)), None)
    bdfs = [p for p in parts if BDF_RE.match(p)]
    return host_bridge, tuple(bdfs[:-1])


class PciInventory:
    """The PCI devices a GPU node's health depends on: GPUs, RDMA NICs, NVSwitches, and the
    bridges above them. Other devices are listed by class only."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.devices: dict[str, PciDevice] = {}
        self.rdma_pci: dict[str, list[str]] = {}  # bdf -> RDMA device names (mlx5_0 …)
        self._quirk_log: dict[str, str] | None = None
        self._quirk_log_read = False
        self._scan()

    # -- gathering ---------------------------------------------------------------------------
    def _scan(self) -> None:
        host = self.host
        for ib in host.listdir("/sys/class/infiniband"):
            bdf = pci_function(host.realpath(f"/sys/class/infiniband/{ib}/device"))
            if bdf and not is_software_rdma(host, ib):
                self.rdma_pci.setdefault(bdf, []).append(ib)
        relevant: dict[str, PciDevice] = {}
        for bdf in host.listdir(PCI_DEVICES):
            if not BDF_RE.match(bdf):
                continue
            dev = PciDevice(bdf=bdf, path=host.realpath(f"{PCI_DEVICES}/{bdf}") or "")
            base = f"{PCI_DEVICES}/{bdf}"
            dev.vendor = self._attr(dev, base, "vendor", parse_int)
            dev.device = self._attr(dev, base, "device", parse_int)
            dev.class_code = self._attr(dev, base, "class", parse_int)
            dev.host_bridge, dev.upstream = parse_device_path(dev.path)
            if dev.is_gpu or dev.is_nvswitch or self._is_rdma_nic(dev):
                relevant[bdf] = dev
            self.devices[bdf] = dev
        wanted = set(relevant)
        for dev in relevant.values():
            wanted.update(dev.upstream)
        for bdf in sorted(wanted):
            if bdf in self.devices:
                self._read_details(self.devices[bdf])
        self.relevant = sorted(wanted & set(self.devices))

    def _is_rdma_nic(self, dev: PciDevice) -> bool:
        if dev.bdf in self.rdma_pci:
            return True
        # An InfiniBand controller, or a Mellanox Ethernet function (RoCE) even before its RDMA
        # driver bound: a NIC without /sys/class/infiniband is itself a finding for later checks.
        return dev.base_class == CLASS_INFINIBAND or (
            dev.vendor == VENDOR_MELLANOX and dev.base_class == CLASS_ETHERNET
        )

    def _attr(self, dev: PciDevice, base: str, name: str, parse: Callable[[str], T]) -> T | None:
        return read_attr(self.host, f"{base}/{name}", parse, dev.errors, name)

    def _read_details(self, dev: PciDevice) -> None:
        host, base = self.host, f"{PCI_DEVICES}/{dev.bdf}"
        dev.subsystem_vendor = self._attr(dev, base, "subsystem_vendor", parse_int)
        dev.subsystem_device = self._attr(dev, base, "subsystem_device", parse_int)
        dev.numa_node = self._attr(dev, base, "numa_node", parse_int)
        dev.max_link_speed = self._attr(dev, base, "max_link_speed", parse_link_speed)
        dev.max_link_width = self._attr(dev, base, "max_link_width", parse_int)
        dev.current_link_speed = self._attr(dev, base, "current_link_speed", parse_link_speed)
        dev.current_link_width = self._attr(dev, base, "current_link_width", parse_int)
        dev.bars = self._attr(dev, base, "resource", parse_resource)
        for kind in AER_KINDS:
            counters = self._attr(dev, base, f"aer_dev_{kind}", parse_aer_counters)
            if counters is not None:
                dev.aer[kind] = counters
            total = self._attr(dev, base, f"aer_rootport_total_err_{kind[:3]}", parse_int)
            if total is not None:
                dev.aer_rootport[kind] = total
        try:
            data = host.read_bytes(f"{base}/config")
        except HostReadError as exc:
            dev.errors["config"] = exc.reason
            data = None
        if data is not None:
            dev.config_size = len(data)
            try:
                dev.config = parse_config_space(data)
            except ParseError as exc:
                dev.errors["config"] = str(exc)
        group = host.readlink(f"{base}/iommu_group")
        if group:
            dev.iommu_group = group.rstrip("/").rsplit("/", 1)[-1]
            try:
                dev.iommu_type = host.read_line(f"/sys/kernel/iommu_groups/{dev.iommu_group}/type")
            except HostReadError as exc:
                dev.errors["iommu_group/type"] = exc.reason
        driver = host.readlink(f"{base}/driver")
        dev.driver = driver.rstrip("/").rsplit("/", 1)[-1] if driver else None
        dev.is_virtfn = host.readlink(f"{base}/physfn") is not None
        port_type = dev.config.pcie.port_type if dev.config and dev.config.pcie else None
        quirk = acs_quirk_kind(dev.vendor, dev.device, port_type)
        if quirk is not None:
            dev.acs_quirk = quirk_acs(
                quirk, dev.bdf, dev.config, data, self._acs_quirk_log(), dev.iommu_group is not None
            )

    def _acs_quirk_log(self) -> dict[str, str] | None:
        """The kernel's ACS-quirk messages, read once and only for a quirked port."""
        if not self._quirk_log_read:
            self._quirk_log_read = True
            lines = self.host.kernel_log(QUIRK_LOG_WORDS)
            self._quirk_log = quirk_log(lines) if lines is not None else None
        return self._quirk_log

    # -- views -------------------------------------------------------------------------------
    def gpus(self) -> list[PciDevice]:
        """NVIDIA GPUs in bus order (NVML's order)."""
        return [d for d in self._sorted() if d.is_gpu]

    def nics(self) -> list[PciDevice]:
        """RDMA-capable NIC physical functions in bus order."""
        return [
            d
            for d in self._sorted()
            if d.bdf in self.relevant and not d.is_virtfn and self._is_rdma_nic(d)
        ]

    def nvswitches(self) -> list[PciDevice]:
        """NVSwitch devices."""
        return [d for d in self._sorted() if d.is_nvswitch]

    def bridges_above(self, dev: PciDevice) -> list[PciDevice]:
        """The bridges between the root complex and a device, root port first."""
        return [self.devices[b] for b in dev.upstream if b in self.devices]

    def _sorted(self) -> list[PciDevice]:
        return [self.devices[b] for b in sorted(self.devices)]

    def label(self, dev: PciDevice) -> str:
        """Subject label used in findings: GPU3 0000:5d:00.0, mlx5_2 0000:3b:00.0, bridge …"""
        if dev.is_gpu:
            return f"GPU{self.gpus().index(dev)} {dev.bdf}"
        if dev.bdf in self.rdma_pci:
            return f"{','.join(self.rdma_pci[dev.bdf])} {dev.bdf}"
        if self._is_rdma_nic(dev):
            return f"NIC {dev.bdf}"
        if dev.is_bridge and dev.config and dev.config.pcie:
            return f"{dev.config.pcie.port_type_name.lower()} {dev.bdf}"
        return f"bridge {dev.bdf}" if dev.is_bridge else dev.bdf
