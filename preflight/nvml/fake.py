"""A fake NVML with pynvml's function names, answering from a profile's `nvml` section.

The collector cannot tell it from `pynvml`: it returns what pynvml returns (lists, tuples,
structure-like objects, bytes where pynvml returns bytes) and raises pynvml's own exception
classes, built the way pynvml builds them (`pynvml.NVMLError(3)` is an `NVMLError_NotSupported`).
A value `{"hang": true}` makes the call(s) behind it block forever, like a call stuck in the
driver; `missing_functions` raise FunctionNotFound, like a library older than the function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pynvml  # the fake raises pynvml's real exception classes

from preflight.nvml.schema import ERROR_CODES, NVLINK_COUNTERS, is_marker, normalize_bus_id


def block_forever() -> None:
    """What a hung NVML call does: never return (the process can only be killed)."""
    threading.Event().wait()


def nvml_error(name: str) -> pynvml.NVMLError:
    """The exception pynvml raises for this error name (NVMLError_<name>)."""
    return pynvml.NVMLError(ERROR_CODES[name])


class FakeHandle:
    """What nvmlDeviceGetHandleByIndex returns: an opaque handle, here naming the GPU's entry."""

    def __init__(self, index: int, key: str) -> None:
        self.index = index
        self.key = key

    def __repr__(self) -> str:
        return f"<FakeHandle {self.index} {self.key}>"


_TEMPERATURE_THRESHOLDS = {
    pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: "shutdown",
    pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: "slowdown",
    pynvml.NVML_TEMPERATURE_THRESHOLD_GPU_MAX: "gpu_max",
}
_ECC_TYPES = {
    pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED: "corrected",
    pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED: "uncorrected",
}
_ECC_COUNTERS = {pynvml.NVML_VOLATILE_ECC: "volatile", pynvml.NVML_AGGREGATE_ECC: "aggregate"}
_RETIREMENT_CAUSES = {
    pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS: "single_bit_ecc",
    pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR: "double_bit_ecc",
}


class FakeNvml:
    """pynvml's API over one `nvml` section (see preflight.nvml.schema for its format)."""

    def __init__(self, section: Mapping[str, Any], hang: Callable[[], None] = block_forever):
        self._section = section
        self._hang = hang
        self._initialized = 0
        self._missing = set(section.get("missing_functions", ()))
        gpus: Mapping[str, Any] = section.get("gpus", {})
        # NVML enumerates in PCI bus order; an explicit index wins.
        ordered = sorted(gpus.items(), key=lambda kv: (kv[1].get("index", 1 << 30), kv[0]))
        self._gpus: list[tuple[str, Mapping[str, Any]]] = list(ordered)

    # -- plumbing ----------------------------------------------------------------------------
    def _enter(self, name: str, needs_init: bool = True) -> None:
        if name in self._missing:
            raise nvml_error("FunctionNotFound")
        if needs_init and not self._initialized:
            raise nvml_error("Uninitialized")

    def _resolve(self, node: Any, path: Sequence[str]) -> Any:
        """Walk path; a marker on the way raises its error or hangs; a gap is NotSupported."""
        for key in path:
            self._act(node)
            if not isinstance(node, Mapping) or key not in node:
                raise nvml_error("NotSupported")
            node = node[key]
        self._act(node)
        return node

    def _act(self, node: Any) -> None:
        if is_marker(node):
            if node.get("hang"):
                self._hang()
            raise nvml_error(node["error"])

    def _system(self, name: str, *path: str) -> Any:
        self._enter(name)
        return self._resolve(self._section, path)

    def _device(self, name: str, handle: FakeHandle, *path: str) -> Any:
        self._enter(name)
        if not isinstance(handle, FakeHandle) or handle.index >= len(self._gpus):
            raise nvml_error("InvalidArgument")
        return self._resolve(self._gpus[handle.index][1], path)

    # -- library -----------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self._enter("nvmlInit", needs_init=False)
        self._act(self._section.get("init"))
        self._initialized += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self._initialized -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self._system("nvmlSystemGetDriverVersion", "driver_version"))

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return int(self._system("nvmlSystemGetCudaDriverVersion_v2", "cuda_driver_version"))

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return int(self._system("nvmlSystemGetCudaDriverVersion", "cuda_driver_version"))

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        count = self._section.get("device_count", len(self._gpus))
        self._act(count)
        return int(count)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self._gpus):
            raise nvml_error("InvalidArgument")
        key, gpu = self._gpus[index]
        self._act(gpu.get("handle"))
        return FakeHandle(index, key)

    def nvmlSystemGetProcessName(self, pid: int) -> str:
        self._enter("nvmlSystemGetProcessName")
        for _key, gpu in self._gpus:
            procs = gpu.get("processes")
            if isinstance(procs, list):
                for proc in procs:
                    if proc.get("pid") == pid and proc.get("name") is not None:
                        return str(proc["name"])
        raise nvml_error("NotFound")

    # -- identity ----------------------------------------------------------------------------
    def nvmlDeviceGetPciInfo(self, handle: FakeHandle) -> SimpleNamespace:
        pci = self._device("nvmlDeviceGetPciInfo", handle, "pci")
        bus_id = self._resolve(pci, ("bus_id",))
        legacy = normalize_bus_id(bus_id) or bus_id
        return SimpleNamespace(
            busId=bus_id,
            busIdLegacy=legacy.upper(),
            domain=int(legacy.split(":")[0], 16),
            bus=int(legacy.split(":")[1], 16),
            device=int(legacy.split(":")[2].split(".")[0], 16),
            pciDeviceId=self._resolve(pci, ("device_id",)),
            pciSubSystemId=self._resolve(pci, ("subsystem_id",)),
        )

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        return str(self._device("nvmlDeviceGetName", handle, "name"))

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        return str(self._device("nvmlDeviceGetUUID", handle, "uuid"))

    def nvmlDeviceGetSerial(self, handle: FakeHandle) -> str:
        return str(self._device("nvmlDeviceGetSerial", handle, "serial"))

    def nvmlDeviceGetVbiosVersion(self, handle: FakeHandle) -> str:
        return str(self._device("nvmlDeviceGetVbiosVersion", handle, "vbios"))

    def nvmlDeviceGetGspFirmwareVersion(self, handle: FakeHandle) -> bytes:
        # pynvml returns the raw c_char buffer's value here: bytes, not str.
        value = self._device("nvmlDeviceGetGspFirmwareVersion", handle, "gsp_firmware")
        return str(value).encode()

    # -- state -------------------------------------------------------------------------------
    def nvmlDeviceGetPersistenceMode(self, handle: FakeHandle) -> int:
        return int(self._device("nvmlDeviceGetPersistenceMode", handle, "persistence_mode"))

    def nvmlDeviceGetEccMode(self, handle: FakeHandle) -> list[int]:
        mode = self._device("nvmlDeviceGetEccMode", handle, "ecc_mode")
        return [self._resolve(mode, ("current",)), self._resolve(mode, ("pending",))]

    def nvmlDeviceGetTotalEccErrors(
        self, handle: FakeHandle, error_type: int, counter_type: int
    ) -> int:
        if error_type not in _ECC_TYPES or counter_type not in _ECC_COUNTERS:
            raise nvml_error("InvalidArgument")
        return int(
            self._device(
                "nvmlDeviceGetTotalEccErrors",
                handle,
                "ecc_errors",
                _ECC_COUNTERS[counter_type],
                _ECC_TYPES[error_type],
            )
        )

    def nvmlDeviceGetRemappedRows(self, handle: FakeHandle) -> tuple[int, int, int, int]:
        rows = self._device("nvmlDeviceGetRemappedRows", handle, "remapped_rows")
        corr, unc, pending, failure = (
            self._resolve(rows, (k,)) for k in ("corrected", "uncorrected", "pending", "failure")
        )
        return (corr, unc, pending, failure)

    def nvmlDeviceGetRetiredPages(self, handle: FakeHandle, cause: int) -> list[int]:
        if cause not in _RETIREMENT_CAUSES:
            raise nvml_error("InvalidArgument")
        count = self._device(
            "nvmlDeviceGetRetiredPages", handle, "retired_pages", _RETIREMENT_CAUSES[cause]
        )
        # Page addresses are not kept in a profile, only their number.
        return [0x1000 * (i + 1) for i in range(int(count))]

    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle: FakeHandle) -> int:
        return int(
            self._device(
                "nvmlDeviceGetRetiredPagesPendingStatus", handle, "retired_pages", "pending"
            )
        )

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeHandle) -> int:
        return int(
            self._device("nvmlDeviceGetCurrentClocksEventReasons", handle, "clock_event_reasons")
        )

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeHandle) -> int:
        return int(
            self._device("nvmlDeviceGetCurrentClocksThrottleReasons", handle, "clock_event_reasons")
        )

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise nvml_error("InvalidArgument")
        return int(self._device("nvmlDeviceGetTemperature", handle, "temperature", "gpu"))

    def nvmlDeviceGetTemperatureThreshold(self, handle: FakeHandle, threshold: int) -> int:
        if threshold not in _TEMPERATURE_THRESHOLDS:
            raise nvml_error("NotSupported")
        return int(
            self._device(
                "nvmlDeviceGetTemperatureThreshold",
                handle,
                "temperature",
                _TEMPERATURE_THRESHOLDS[threshold],
            )
        )

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        return int(self._device("nvmlDeviceGetPowerUsage", handle, "power", "usage_mw"))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:
        return int(self._device("nvmlDeviceGetEnforcedPowerLimit", handle, "power", "limit_mw"))

    # -- PCIe and NVLink -----------------------------------------------------------------------
    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle: FakeHandle) -> int:
        return int(self._device("nvmlDeviceGetMaxPcieLinkGeneration", handle, "pcie", "max_gen"))

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle: FakeHandle) -> int:
        return int(self._device("nvmlDeviceGetMaxPcieLinkWidth", handle, "pcie", "max_width"))

    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle: FakeHandle) -> int:
        return int(
            self._device("nvmlDeviceGetCurrPcieLinkGeneration", handle, "pcie", "current_gen")
        )

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle: FakeHandle) -> int:
        return int(self._device("nvmlDeviceGetCurrPcieLinkWidth", handle, "pcie", "current_width"))

    def nvmlDeviceGetPcieReplayCounter(self, handle: FakeHandle) -> int:
        return int(self._device("nvmlDeviceGetPcieReplayCounter", handle, "pcie", "replay_counter"))

    def _link(self, name: str, handle: FakeHandle, link: int) -> Any:
        links = self._device(name, handle, "nvlink")
        if str(link) not in links:
            # A link number the GPU does not have: NVML rejects the argument.
            raise nvml_error("InvalidArgument")
        return links[str(link)]

    def nvmlDeviceGetNvLinkState(self, handle: FakeHandle, link: int) -> int:
        entry = self._link("nvmlDeviceGetNvLinkState", handle, link)
        return int(self._resolve(entry, ("state",)))

    def nvmlDeviceGetNvLinkErrorCounter(self, handle: FakeHandle, link: int, counter: int) -> int:
        entry = self._link("nvmlDeviceGetNvLinkErrorCounter", handle, link)
        if not 0 <= counter < len(NVLINK_COUNTERS):
            raise nvml_error("InvalidArgument")
        return int(self._resolve(entry, ("errors", NVLINK_COUNTERS[counter])))

    # -- partitioning, fabric, memory, processes ---------------------------------------------------
    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        mode = self._device("nvmlDeviceGetMigMode", handle, "mig_mode")
        return [self._resolve(mode, ("current",)), self._resolve(mode, ("pending",))]

    def _fabric(self, name: str, handle: FakeHandle, info: Any, v2: bool) -> int:
        fabric = self._device(name, handle, "fabric")
        struct = getattr(info, "_obj", info)  # byref(struct) or the struct itself
        struct.state = self._resolve(fabric, ("state",))
        struct.status = self._resolve(fabric, ("status",))
        struct.cliqueId = self._resolve(fabric, ("clique_id",))
        raw = bytes.fromhex(str(fabric.get("cluster_uuid", "")).replace("-", "")).ljust(16, b"\0")
        for i, byte in enumerate(raw[:16]):
            struct.clusterUuid[i] = byte
        if v2:
            struct.healthMask = int(fabric.get("health_mask", 0))
        return int(pynvml.NVML_SUCCESS)

    def nvmlDeviceGetGpuFabricInfoV(self, handle: FakeHandle, info: Any) -> int:
        return self._fabric("nvmlDeviceGetGpuFabricInfoV", handle, info, v2=True)

    def nvmlDeviceGetGpuFabricInfo(self, handle: FakeHandle, info: Any) -> int:
        return self._fabric("nvmlDeviceGetGpuFabricInfo", handle, info, v2=False)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle, version: int | None = None) -> Any:
        name = "nvmlDeviceGetMemoryInfo_v2" if version else "nvmlDeviceGetMemoryInfo"
        self._enter(name)
        mem = self._device("nvmlDeviceGetMemoryInfo", handle, "memory")
        out = SimpleNamespace(
            total=self._resolve(mem, ("total",)),
            free=self._resolve(mem, ("free",)),
            used=self._resolve(mem, ("used",)),
        )
        if version:
            out.version = version
            out.reserved = self._resolve(mem, ("reserved",))
        else:
            # v1 counts the driver's reservation as used (total = free + used).
            out.used = out.used + int(mem.get("reserved", 0))
        return out

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: FakeHandle) -> list[SimpleNamespace]:
        return self._processes("nvmlDeviceGetComputeRunningProcesses_v2", handle)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[SimpleNamespace]:
        return self._processes("nvmlDeviceGetComputeRunningProcesses", handle)

    def _processes(self, name: str, handle: FakeHandle) -> list[SimpleNamespace]:
        procs = self._device(name, handle, "processes")
        return [
            SimpleNamespace(pid=p["pid"], usedGpuMemory=p.get("used_memory"))
            for p in procs
            if isinstance(p, Mapping)
        ]
