"""Node-wide facts: DMI, kernel command line and IOMMU, CPUs and NUMA, limits, /dev/shm."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from preflight.errors import HostReadError, ParseError
from preflight.host import UNLIMITED as UNLIMITED  # the checks compare limits with it
from preflight.host import FsUsage, Host, Limit
from preflight.inventory.sysfs_text import (
    IommuCmdline,
    parse_cmdline,
    parse_cpulist,
    parse_int,
    parse_iommu_cmdline,
    parse_nvidia_version,
)

DMI_FIELDS = (
    "bios_vendor",
    "bios_version",
    "bios_date",
    "product_name",
    "sys_vendor",
    "board_name",
)
CPU_DIR_RE = re.compile(r"^cpu\d+$")
NODE_DIR_RE = re.compile(r"^node\d+$")


def _line(host: Host, path: str, errors: dict[str, str]) -> str | None:
    try:
        return host.read_line(path)
    except HostReadError as exc:
        errors[path] = exc.reason
        return None


@dataclass
class DmiInfo:
    """/sys/class/dmi/id: what the firmware says the machine is."""

    values: dict[str, str | None]

    @classmethod
    def read(cls, host: Host) -> DmiInfo:
        """Read the DMI fields that identify the platform and its BIOS."""
        errors: dict[str, str] = {}
        return cls({k: _line(host, f"/sys/class/dmi/id/{k}", errors) for k in DMI_FIELDS})


@dataclass
class KernelInfo:
    """Kernel release, command line, IOMMU hardware and the NVIDIA driver's kernel module."""

    release: str | None
    cmdline: str | None
    cmdline_tokens: list[str]  # split the way the kernel splits it (quotes honoured)
    iommu_cmdline: IommuCmdline
    iommu_units: list[str]  # /sys/class/iommu entries (dmar0, ivhd0): IOMMU hardware enabled
    nvidia_driver: str | None
    nvidia_open_module: bool | None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, host: Host) -> KernelInfo:
        """Read /proc/cmdline, osrelease, /sys/class/iommu and /proc/driver/nvidia/version."""
        errors: dict[str, str] = {}
        cmdline = _line(host, "/proc/cmdline", errors)
        tokens = parse_cmdline(cmdline) if cmdline else []
        version_text = None
        try:
            version_text = host.read_text("/proc/driver/nvidia/version")
        except HostReadError as exc:
            errors["/proc/driver/nvidia/version"] = exc.reason
        nv = parse_nvidia_version(version_text) if version_text else None
        return cls(
            release=_line(host, "/proc/sys/kernel/osrelease", errors),
            cmdline=cmdline,
            cmdline_tokens=tokens,
            iommu_cmdline=parse_iommu_cmdline(tokens),
            iommu_units=host.listdir("/sys/class/iommu"),
            nvidia_driver=nv[0] if nv else None,
            nvidia_open_module=nv[1] if nv else None,
            errors=errors,
        )


@dataclass
class CpuInfo:
    """CPU frequency governors, SMT, NUMA nodes and automatic NUMA balancing."""

    cpus: list[int]
    governors: dict[int, str]  # cpu -> scaling_governor; empty when no cpufreq driver
    smt_active: bool | None
    smt_control: str | None
    numa_nodes: dict[int, list[int]]  # node -> cpus
    numa_balancing: int | None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, host: Host) -> CpuInfo:
        """Read /sys/devices/system/{cpu,node} and /proc/sys/kernel/numa_balancing."""
        errors: dict[str, str] = {}
        cpus = sorted(
            int(n[3:]) for n in host.listdir("/sys/devices/system/cpu") if CPU_DIR_RE.match(n)
        )
        governors = {}
        for cpu in cpus:
            gov = _line(host, f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", errors)
            if gov:
                governors[cpu] = gov
        nodes: dict[int, list[int]] = {}
        for name in host.listdir("/sys/devices/system/node"):
            if NODE_DIR_RE.match(name):
                text = _line(host, f"/sys/devices/system/node/{name}/cpulist", errors)
                try:
                    nodes[int(name[4:])] = parse_cpulist(text or "")
                except ParseError as exc:
                    errors[f"/sys/devices/system/node/{name}/cpulist"] = str(exc)
                    nodes[int(name[4:])] = []
        smt = _line(host, "/sys/devices/system/cpu/smt/active", errors)
        balancing = _line(host, "/proc/sys/kernel/numa_balancing", errors)
        try:
            numa_balancing = parse_int(balancing) if balancing is not None else None
        except ParseError as exc:
            errors["/proc/sys/kernel/numa_balancing"] = str(exc)
            numa_balancing = None
        return cls(
            cpus=cpus,
            governors=governors,
            smt_active=None if smt is None else smt == "1",
            smt_control=_line(host, "/sys/devices/system/cpu/smt/control", errors),
            numa_nodes=dict(sorted(nodes.items())),
            numa_balancing=numa_balancing,
            errors=errors,
        )


@dataclass
class ProcessLimits:
    """Limits the training processes would inherit, and the size of /dev/shm."""

    limits: dict[str, Limit]
    shm: FsUsage | None

    @classmethod
    def read(cls, host: Host) -> ProcessLimits:
        """Read getrlimit (or the profile's limits) and statvfs("/dev/shm")."""
        return cls(limits=host.limits(), shm=host.statvfs("/dev/shm"))
