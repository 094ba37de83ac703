"""Inventory: every fact about the node, parsed once per run on first use."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TypeVar

from preflight.host import Host
from preflight.inventory.gpu import NvmlState, ProcGpu, gpu_facts, read_proc_gpus
from preflight.inventory.kernel_events import KernelLog
from preflight.inventory.kernel_modules import KernelModules
from preflight.inventory.mounts import MountProbe, MountTable, probe_mounts
from preflight.inventory.nccl_env import NcclEnv
from preflight.inventory.net import NetInventory
from preflight.inventory.pci import PciDevice, PciInventory
from preflight.inventory.rdma import GpuDirectInfo, RdmaInventory, network_facts
from preflight.inventory.sysfs_text import format_link_speed
from preflight.inventory.system import CpuInfo, DmiInfo, KernelInfo, ProcessLimits
from preflight.inventory.xid import XidLog
from preflight.model import Scalar

T = TypeVar("T")


class PartHung(RuntimeError):
    """An inventory part whose build was abandoned (a read that never returned)."""


class Inventory:
    """Typed facts about one node, read through its Host.

    Each part is read the first time a check asks for it (under that part's lock, since checks
    run in their own threads), so a run that selects only host checks never walks the PCI tree.
    A part whose build the runner abandoned (`abandon`) fails every later access at once with
    `PartHung`, naming the path the abandoned thread is blocked on.
    """

    POLL_S = 0.05
    """How often a thread waiting for another thread's build looks whether it was abandoned."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.window_opened_at: float | None = None
        self._parts: dict[str, object] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._building: dict[int, list[str]] = {}
        self._hung: dict[str, str] = {}
        self._collected: dict[str, object] = {}

    def store(self, name: str, value: object) -> None:
        """Keep what a collector measured before the checks (preflight.runner.Collector), under
        the name its readers ask for (`collected`)."""
        self._collected[name] = value

    def collected(self, name: str) -> object | None:
        """What was stored under `name` in this run, or None when nothing collected it."""
        return self._collected.get(name)

    def _once(self, name: str, build: Callable[[Host], T]) -> T:
        if name in self._parts:
            return self._parts[name]  # type: ignore[return-value]
        self._raise_if_hung(name)
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        while not lock.acquire(timeout=self.POLL_S):
            self._raise_if_hung(name)
        try:
            if name in self._parts:
                return self._parts[name]  # type: ignore[return-value]
            self._raise_if_hung(name)
            ident = threading.get_ident()
            self._building.setdefault(ident, []).append(name)
            try:
                value = build(self.host)
            finally:
                self._building[ident].remove(name)
            self._parts[name] = value
            return value
        finally:
            lock.release()

    def _raise_if_hung(self, name: str) -> None:
        if name in self._hung:
            raise PartHung(
                f"the {name} inventory was abandoned: an earlier reader {self._hung[name]}"
            )

    def abandon(self, thread_id: int) -> None:
        """The runner gave up on this thread: the parts it is building stay unbuilt for good."""
        path = self.host.blocked_in(thread_id)
        where = f"is blocked reading {path}" if path else "hung building it"
        for name in self._building.get(thread_id, []):
            self._hung[name] = where

    @property
    def pci(self) -> PciInventory:
        """GPUs, RDMA NICs, NVSwitches and the bridges above them."""
        return self._once("pci", PciInventory)

    @property
    def dmi(self) -> DmiInfo:
        """Platform and BIOS identity."""
        return self._once("dmi", DmiInfo.read)

    @property
    def kernel(self) -> KernelInfo:
        """Kernel release, command line, IOMMU and NVIDIA kernel module."""
        return self._once("kernel", KernelInfo.read)

    @property
    def cpu(self) -> CpuInfo:
        """Governors, SMT, NUMA."""
        return self._once("cpu", CpuInfo.read)

    @property
    def limits(self) -> ProcessLimits:
        """Resource limits and /dev/shm."""
        return self._once("limits", ProcessLimits.read)

    @cached_property
    def gpu(self) -> NvmlState:
        """What NVML reports per GPU, collected in a child process with a deadline.

        Not built under an inventory lock: waiting for NVML must not hold up other parts.
        """
        return NvmlState.from_result(self.host.nvml())

    @property
    def nvidia_procfs(self) -> dict[str, ProcGpu]:
        """/proc/driver/nvidia/gpus/*/information, by BDF (model, UUID, VBIOS; no NVML)."""
        return self._once("nvidia_procfs", read_proc_gpus)

    @property
    def xid(self) -> XidLog:
        """GPU Xid errors in the kernel log of the current boot."""
        return self._once("xid", XidLog.read)

    @property
    def kernel_events(self) -> KernelLog:
        """Catalogued kernel log events beyond Xids (SXid, NIC, PCIe, memory, disks)."""
        return self._once("kernel_events", KernelLog.read)

    @property
    def rdma(self) -> RdmaInventory:
        """RDMA devices and ports (/sys/class/infiniband); building it samples the counters."""
        return self._once("rdma", RdmaInventory)

    @property
    def net(self) -> NetInventory:
        """Network interfaces (/sys/class/net)."""
        return self._once("net", NetInventory)

    @property
    def nccl(self) -> NcclEnv:
        """NCCL settings from the environment the checks see and the NCCL config files."""
        return self._once("nccl", NcclEnv.read)

    @property
    def gdr(self) -> GpuDirectInfo:
        """GPUDirect RDMA prerequisites: peer-memory module, verbs device nodes."""
        return self._once("gdr", GpuDirectInfo.read)

    @property
    def mounts(self) -> MountTable:
        """Mounted filesystems (/proc/self/mounts)."""
        return self._once("mounts", MountTable.read)

    def probe_mounts(self, points: Sequence[str], timeout_s: float) -> dict[str, MountProbe]:
        """Whether statvfs on each mount point answers within timeout_s (not cached: a
        mount that hangs now may answer later)."""
        return probe_mounts(self.host, points, timeout_s)

    @property
    def kernel_modules(self) -> KernelModules:
        """Loaded kernel modules and their versions (/proc/modules, /sys/module)."""
        return self._once("kernel_modules", KernelModules.read)

    WINDOWED = ("rdma",)
    """Parts whose construction is a first sample that final checks compare against."""

    def open_window(self) -> None:
        """Take the first sample of every windowed part now (the runner calls this before the
        first check when a selected check is `final`), so that a final check compares the start
        of the run with its end rather than two reads a millisecond apart."""
        self.window_opened_at = time.monotonic()
        for name in self.WINDOWED:
            getattr(self, name)

    @property
    def privileged(self) -> bool:
        """Whether the full PCI config space is readable (root / CAP_SYS_ADMIN)."""
        return self.host.privileged

    def facts(
        self, into: dict[str, Scalar] | None = None, missing: list[str] | None = None
    ) -> dict[str, Scalar]:
        """The node's settings as flat dotted keys, for reports and fleet comparison.

        Gathered group by group into `into`: a group whose part was abandoned (PartHung) is
        left out and named in `missing`, and every other group is kept.
        """
        facts: dict[str, Scalar] = {} if into is None else into
        for name, group in self._fact_groups():
            try:
                facts.update(group())
            except PartHung as exc:
                if missing is not None:
                    missing.append(f"{name}: {exc}")
        return facts

    def _fact_groups(self) -> list[tuple[str, Callable[[], dict[str, Scalar]]]]:
        return [
            ("dmi", lambda: {f"dmi.{k}": v for k, v in self.dmi.values.items()}),
            ("kernel", self._kernel_facts),
            ("cpu", self._cpu_facts),
            ("limits", self._limit_facts),
            ("pci", self._pci_facts),
            # NVML facts only when NVML was collected in this run: facts never start the child.
            (
                "gpu",
                lambda: gpu_facts(self.nvidia_procfs, self.gpu if self.host.nvml_started else None),
            ),
            (
                "network",
                lambda: network_facts(self.pci, self.rdma, self.net, self.nccl, self.gdr),
            ),
        ]

    def _kernel_facts(self) -> dict[str, Scalar]:
        k = self.kernel
        facts: dict[str, Scalar] = {}
        facts["kernel.release"] = k.release
        facts["kernel.cmdline"] = k.cmdline
        facts["iommu.cmdline_mode"] = k.iommu_cmdline.mode()
        facts["iommu.units"] = len(k.iommu_units)
        facts["nvidia.driver_version"] = k.nvidia_driver
        facts["nvidia.open_kernel_module"] = k.nvidia_open_module
        return facts

    def _cpu_facts(self) -> dict[str, Scalar]:
        c = self.cpu
        facts: dict[str, Scalar] = {}
        facts["cpu.count"] = len(c.cpus)
        governors = sorted(set(c.governors.values()))
        facts["cpu.governor"] = ",".join(governors) if governors else None
        facts["cpu.smt_active"] = c.smt_active
        facts["cpu.smt_control"] = c.smt_control
        facts["numa.nodes"] = len(c.numa_nodes)
        facts["kernel.numa_balancing"] = c.numa_balancing
        return facts

    def _limit_facts(self) -> dict[str, Scalar]:
        lim = self.limits
        facts: dict[str, Scalar] = {}
        for name, limit in sorted(lim.limits.items()):
            facts[f"limits.{name}.soft"] = limit.soft
            facts[f"limits.{name}.hard"] = limit.hard
        facts["shm.size_bytes"] = lim.shm.size_bytes if lim.shm else None
        return facts

    def _pci_facts(self) -> dict[str, Scalar]:
        pci = self.pci
        facts: dict[str, Scalar] = {}
        facts["pci.gpu_count"] = len(pci.gpus())
        facts["pci.nic_count"] = len(pci.nics())
        facts["pci.nvswitch_count"] = len(pci.nvswitches())
        for bdf in pci.relevant:
            facts.update(device_facts(pci.devices[bdf]))
        return facts


def device_facts(dev: PciDevice) -> dict[str, Scalar]:
    """Flat facts of one PCI device, keyed pci.<bdf>.<name>."""
    p = f"pci.{dev.bdf}."
    out: dict[str, Scalar] = {
        p + "ids": dev.ids,
        p + "numa_node": dev.numa_node,
        p + "driver": dev.driver,
        p + "iommu_group_type": dev.iommu_type,
    }
    for name in ("max_link_speed", "current_link_speed"):
        speed = getattr(dev, name)
        out[p + name] = format_link_speed(speed) if speed is not None else None
    out[p + "max_link_width"] = dev.max_link_width
    out[p + "current_link_width"] = dev.current_link_width
    cfg = dev.config
    if cfg is not None and cfg.capabilities_readable:
        if cfg.pcie is not None:
            out[p + "max_payload"] = cfg.pcie.max_payload
            out[p + "max_read_request"] = cfg.pcie.max_read_request
            out[p + "relaxed_ordering"] = cfg.pcie.relaxed_ordering
        if cfg.extended_readable:
            out[p + "acs_ctl"] = f"0x{cfg.acs.control:04x}" if cfg.acs else None
    if dev.is_gpu and dev.bars is not None and len(dev.bars) > 1:
        out[p + "bar1_bytes"] = dev.bars[1].size
    return out
