"""Inventory: every fact about the node, parsed once per run on first use."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TypeVar

from preflight.host import Host
from preflight.inventory.gpu import NvmlState, ProcGpu, read_proc_gpus
from preflight.inventory.kernel_events import KernelLog
from preflight.inventory.kernel_modules import KernelModules
from preflight.inventory.memory import RunMemory
from preflight.inventory.mounts import MountProbe, MountTable, probe_mounts
from preflight.inventory.nccl_env import NcclEnv
from preflight.inventory.net import NetInventory
from preflight.inventory.pci import PciInventory
from preflight.inventory.rdma import GpuDirectInfo, RdmaInventory
from preflight.inventory.system import CpuInfo, DmiInfo, KernelInfo, ProcessLimits
from preflight.inventory.xid import XidLog

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
        self.memory = RunMemory()  # earlier runs' counters and Xid acks (run --state), or none
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
