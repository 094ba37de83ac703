"""The NVML collector: walks every GPU through pynvml (or the fake) and returns a plain record.

This is the only module that imports pynvml, and it only ever runs in the child process
(`preflight.nvml.child`): a call that blocks in the driver then blocks the child, which the
parent kills at its deadline. Every call is announced through `report` before it is made, so
the parent can name the call that hung.

The record's shape is documented in preflight.nvml.schema. NotSupported and FunctionNotFound
are recorded like any other error, as `{"error": "NotSupported"}`; judging them is the checks'
business, not the collector's.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable
from typing import Any

import pynvml

from preflight.nvml.schema import ERROR_CODES, MAX_NVLINKS, NVLINK_COUNTERS, normalize_bus_id

Report = Callable[[str, str], None]
Record = dict[str, Any]

_NAMES_BY_CODE = {code: name for name, code in ERROR_CODES.items()}
# Link numbers beyond the GPU's last link answer one of these: "no such link", not an error.
_NO_SUCH_LINK = frozenset({"InvalidArgument", "NotSupported"})
# The versioned call is absent (old library) or refuses the struct version (old driver).
_USE_OLDER_CALL = frozenset({"FunctionNotFound", "ArgumentVersionMismatch"})
# pynvml raises this (not an NVMLError) when an unversioned wrapper finds its _vN symbol missing.
_LIBRARY_MISMATCH: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(pynvml, "NVMLLibraryMismatchError", None),) if isinstance(t, type)
)


def live_api() -> Any:
    """The real pynvml module (nvmlInit() loads libnvidia-ml.so.1)."""
    return pynvml


def error_name(exc: pynvml.NVMLError) -> str:
    """`NVMLError_GpuIsLost` -> "GpuIsLost"; codes pynvml has no class for by their code."""
    cls = type(exc).__name__
    if cls.startswith("NVMLError_"):
        return cls[len("NVMLError_") :]
    value = getattr(exc, "value", None)
    return _NAMES_BY_CODE.get(value, "Unknown") if isinstance(value, int) else "Unknown"


def _text(value: Any) -> str:
    """Old pynvml returned bytes for strings; 11.5+ decodes most, not all (GSP firmware)."""
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("utf-8", errors="replace")
    return str(value)


def _uuid(raw: Any) -> str:
    data = bytes(raw)
    h = data.hex().ljust(32, "0")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def collapse(value: Any) -> Any:
    """A group whose every member answered the same error is that error: {"error": ...}."""
    if not isinstance(value, dict) or not value or "error" in value:
        return value
    value = {k: collapse(v) for k, v in value.items()}
    first = next(iter(value.values()))
    if (
        isinstance(first, dict)
        and set(first) == {"error"}
        and all(v == first for v in value.values())
    ):
        return dict(first)
    return value


class Collector:
    """One pass over NVML through `api` (pynvml, or FakeNvml)."""

    def __init__(self, api: Any, report: Report | None = None) -> None:
        self.api = api
        self.report = report or (lambda call, where: None)

    def call(self, name: str, *args: Any, where: str = "", **kwargs: Any) -> Any:
        """Announce, then make one NVML call. A function the bindings lack is FunctionNotFound."""
        self.report(name, where)
        fn = getattr(self.api, name, None)
        if fn is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        try:
            return fn(*args, **kwargs)
        except _LIBRARY_MISMATCH:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND) from None

    def field(
        self,
        name: str,
        *args: Any,
        where: str = "",
        convert: Callable[[Any], Any] = lambda v: v,
        **kwargs: Any,
    ) -> Any:
        """The call's converted answer, or {"error": NAME} when it raised an NVML error."""
        try:
            return convert(self.call(name, *args, where=where, **kwargs))
        except pynvml.NVMLError as exc:
            return {"error": error_name(exc)}

    # -- the walk ------------------------------------------------------------------------------
    def collect(self) -> Record:
        """Initialise, read the system and every GPU, shut down."""
        try:
            self.call("nvmlInit")
        except pynvml.NVMLError as exc:
            return {"init": {"error": error_name(exc)}}
        try:
            record: Record = {
                "driver_version": self.field("nvmlSystemGetDriverVersion", convert=_text),
                "cuda_driver_version": self._cuda_version(),
                "device_count": self.field("nvmlDeviceGetCount", convert=int),
            }
            gpus: dict[str, Any] = {}
            count = record["device_count"]
            for index in range(count if isinstance(count, int) else 0):
                key, gpu = self._gpu(index)
                gpus[key] = gpu
            record["gpus"] = gpus
            return record
        finally:
            with contextlib.suppress(pynvml.NVMLError):
                self.call("nvmlShutdown")

    def _cuda_version(self) -> Any:
        value = self.field("nvmlSystemGetCudaDriverVersion_v2", convert=int)
        if isinstance(value, dict) and value.get("error") == "FunctionNotFound":
            value = self.field("nvmlSystemGetCudaDriverVersion", convert=int)
        return value

    def _gpu(self, index: int) -> tuple[str, Record]:
        where = f"GPU{index}"
        try:
            handle = self.call("nvmlDeviceGetHandleByIndex", index, where=where)
        except pynvml.NVMLError as exc:
            return f"#{index}", {"index": index, "handle": {"error": error_name(exc)}}
        gpu: Record = {"index": index}
        pci = self.field("nvmlDeviceGetPciInfo", handle, where=where, convert=_pci)
        gpu["pci"] = pci
        bdf = normalize_bus_id(pci["bus_id"]) if "bus_id" in pci else None
        key = bdf or f"#{index}"
        where = f"GPU{index} {bdf}" if bdf else where

        def f(name: str, *args: Any, convert: Callable[[Any], Any] = int, **kw: Any) -> Any:
            return self.field(name, handle, *args, where=where, convert=convert, **kw)

        gpu["name"] = f("nvmlDeviceGetName", convert=_text)
        gpu["uuid"] = f("nvmlDeviceGetUUID", convert=_text)
        gpu["serial"] = f("nvmlDeviceGetSerial", convert=_text)
        gpu["vbios"] = f("nvmlDeviceGetVbiosVersion", convert=_text)
        gpu["gsp_firmware"] = f("nvmlDeviceGetGspFirmwareVersion", convert=_text)
        gpu["persistence_mode"] = f("nvmlDeviceGetPersistenceMode")
        gpu["ecc_mode"] = f("nvmlDeviceGetEccMode", convert=_two_states)
        gpu["ecc_errors"] = collapse(
            {
                counter_name: {
                    type_name: f("nvmlDeviceGetTotalEccErrors", error_type, counter)
                    for type_name, error_type in (
                        ("corrected", pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                        ("uncorrected", pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
                    )
                }
                for counter_name, counter in (
                    ("volatile", pynvml.NVML_VOLATILE_ECC),
                    ("aggregate", pynvml.NVML_AGGREGATE_ECC),
                )
            }
        )
        gpu["remapped_rows"] = f("nvmlDeviceGetRemappedRows", convert=_remapped_rows)
        gpu["retired_pages"] = collapse(
            {
                "single_bit_ecc": f(
                    "nvmlDeviceGetRetiredPages",
                    pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
                    convert=len,
                ),
                "double_bit_ecc": f(
                    "nvmlDeviceGetRetiredPages",
                    pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
                    convert=len,
                ),
                "pending": f("nvmlDeviceGetRetiredPagesPendingStatus"),
            }
        )
        reasons = f("nvmlDeviceGetCurrentClocksEventReasons")
        if isinstance(reasons, dict) and reasons.get("error") == "FunctionNotFound":
            # Drivers before 535 only have the older name of the same bitmask.
            reasons = f("nvmlDeviceGetCurrentClocksThrottleReasons")
        gpu["clock_event_reasons"] = reasons
        gpu["temperature"] = collapse(
            {
                "gpu": f("nvmlDeviceGetTemperature", pynvml.NVML_TEMPERATURE_GPU),
                **{
                    name: f("nvmlDeviceGetTemperatureThreshold", threshold)
                    for name, threshold in (
                        ("shutdown", pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN),
                        ("slowdown", pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN),
                        ("gpu_max", pynvml.NVML_TEMPERATURE_THRESHOLD_GPU_MAX),
                    )
                },
            }
        )
        gpu["power"] = collapse(
            {
                "usage_mw": f("nvmlDeviceGetPowerUsage"),
                "limit_mw": f("nvmlDeviceGetEnforcedPowerLimit"),
            }
        )
        gpu["pcie"] = collapse(
            {
                "max_gen": f("nvmlDeviceGetMaxPcieLinkGeneration"),
                "max_width": f("nvmlDeviceGetMaxPcieLinkWidth"),
                "current_gen": f("nvmlDeviceGetCurrPcieLinkGeneration"),
                "current_width": f("nvmlDeviceGetCurrPcieLinkWidth"),
                "replay_counter": f("nvmlDeviceGetPcieReplayCounter"),
            }
        )
        gpu["nvlink"] = self._nvlinks(handle, where)
        gpu["mig_mode"] = f("nvmlDeviceGetMigMode", convert=_two_states)
        gpu["fabric"] = self._fabric(handle, where)
        gpu["memory"] = self._memory(handle, where)
        gpu["processes"] = self._processes(handle, where)
        return key, gpu

    def _nvlinks(self, handle: Any, where: str) -> Any:
        links: dict[str, Any] = {}
        first_error: dict[str, str] | None = None
        top = max(MAX_NVLINKS, int(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", MAX_NVLINKS)))
        for link in range(top):
            state = self.field("nvmlDeviceGetNvLinkState", handle, link, where=where, convert=int)
            if isinstance(state, dict):
                first_error = first_error or state
                if state["error"] not in _NO_SUCH_LINK:
                    links[str(link)] = {"state": state}
                continue
            counters = {
                name: self.field(
                    "nvmlDeviceGetNvLinkErrorCounter", handle, link, code, where=where, convert=int
                )
                for code, name in enumerate(NVLINK_COUNTERS)
            }
            links[str(link)] = {"state": state, "errors": collapse(counters)}
        if not links:
            return first_error or {"error": "NotSupported"}
        return collapse(links)

    def _fabric(self, handle: Any, where: str) -> Any:
        v2 = getattr(pynvml, "c_nvmlGpuFabricInfoV_t", None)
        attempts = [("nvmlDeviceGetGpuFabricInfoV", v2, True)] if v2 is not None else []
        attempts.append(("nvmlDeviceGetGpuFabricInfo", pynvml.c_nvmlGpuFabricInfo_t, False))
        answer: Any = {"error": "FunctionNotFound"}
        for name, struct_type, has_health in attempts:
            info = struct_type()
            answer = self.field(name, handle, ctypes.byref(info), where=where)
            if isinstance(answer, dict) and answer["error"] in _USE_OLDER_CALL:
                continue
            if isinstance(answer, dict):
                return answer
            out = {
                "state": int(info.state),
                "status": int(info.status),
                "clique_id": int(info.cliqueId),
                "cluster_uuid": _uuid(info.clusterUuid),
            }
            if has_health:
                out["health_mask"] = int(info.healthMask)
            return out
        return answer

    def _memory(self, handle: Any, where: str) -> Any:
        version = getattr(pynvml, "nvmlMemory_v2", None)
        if version is not None:
            mem = self.field(
                "nvmlDeviceGetMemoryInfo", handle, where=where, convert=_memory, version=version
            )
            if not (isinstance(mem, dict) and mem.get("error") in _USE_OLDER_CALL):
                return mem
        return self.field("nvmlDeviceGetMemoryInfo", handle, where=where, convert=_memory)

    def _processes(self, handle: Any, where: str) -> Any:
        try:
            procs = self.call("nvmlDeviceGetComputeRunningProcesses", handle, where=where)
        except pynvml.NVMLError as exc:
            if error_name(exc) != "FunctionNotFound":
                return {"error": error_name(exc)}
            # A driver older than the bindings' default (v3) struct: the v2 call.
            try:
                procs = self.call("nvmlDeviceGetComputeRunningProcesses_v2", handle, where=where)
            except pynvml.NVMLError as exc2:
                return {"error": error_name(exc2)}
        out = []
        for proc in procs:
            pid = int(proc.pid)
            used = getattr(proc, "usedGpuMemory", None)
            try:
                name: str | None = _text(self.call("nvmlSystemGetProcessName", pid, where=where))
            except pynvml.NVMLError:
                name = None  # a process of another PID namespace, or already gone
            out.append(
                {"pid": pid, "used_memory": None if used is None else int(used), "name": name}
            )
        return out


def _pci(info: Any) -> Record:
    return {
        "bus_id": _text(info.busId),
        "device_id": int(info.pciDeviceId),
        "subsystem_id": int(info.pciSubSystemId),
    }


def _two_states(pair: Any) -> Record:
    current, pending = pair
    return {"current": int(current), "pending": int(pending)}


def _remapped_rows(rows: Any) -> Record:
    corrected, uncorrected, pending, failure = rows
    return {
        "corrected": int(corrected),
        "uncorrected": int(uncorrected),
        "pending": int(pending),
        "failure": int(failure),
    }


def _memory(info: Any) -> Record:
    out = {"total": int(info.total), "free": int(info.free), "used": int(info.used)}
    reserved = getattr(info, "reserved", None)
    if reserved is not None:
        out["reserved"] = int(reserved)
    return out


def collect(api: Any, report: Report | None = None) -> Record:
    """One NVML record through api (the pynvml module, or a FakeNvml)."""
    return Collector(api, report).collect()
