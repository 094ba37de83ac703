"""The NVML record: what the collector returns and what a profile's `nvml` section holds.

Both have one shape, so that replaying a record through the fake NVML gives the same record
back. Pure data and validation: importable by the parent process, which never loads pynvml.

```
{"driver_version": "565.57.01", "cuda_driver_version": 12070, "device_count": 8,
 "gpus": {"0000:18:00.0": {"index": 0, "name": "NVIDIA H100 80GB HBM3", ...}}}
```

Any value (a leaf, or a group such as `"temperature"`) may instead be an NVML error,
`{"error": "NotSupported"}`, which is what the call(s) behind it answered. A profile may also
put `{"hang": true}` there (the fake then blocks in that call forever), make `nvmlInit` fail
(`"init": {"error": "DriverNotLoaded"}`), and list `missing_functions` (an older driver whose
library lacks them: they raise FunctionNotFound). A GPU whose handle could not be obtained is
keyed `#<index>` with `"handle": {"error": ...}`. A marker wins over any other keys beside
it (those a profile's `extends` merged in from its parent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# nvmlReturn_t codes (nvml.h; pynvml NVML_ERROR_*), by the name pynvml's generated exception
# classes carry after "NVMLError_" (NVML_ERROR_GPU_IS_LOST -> NVMLError_GpuIsLost).
ERROR_CODES: dict[str, int] = {
    "Uninitialized": 1,
    "InvalidArgument": 2,
    "NotSupported": 3,
    "NoPermission": 4,
    "AlreadyInitialized": 5,
    "NotFound": 6,
    "InsufficientSize": 7,
    "InsufficientPower": 8,
    "DriverNotLoaded": 9,
    "Timeout": 10,
    "IrqIssue": 11,
    "LibraryNotFound": 12,
    "FunctionNotFound": 13,
    "CorruptedInforom": 14,
    "GpuIsLost": 15,
    "ResetRequired": 16,
    "OperatingSystem": 17,
    "LibRmVersionMismatch": 18,
    "InUse": 19,
    "Memory": 20,
    "NoData": 21,
    "VgpuEccNotSupported": 22,
    "InsufficientResources": 23,
    "FreqNotSupported": 24,
    "ArgumentVersionMismatch": 25,
    "Deprecated": 26,
    "NotReady": 27,
    "GpuNotFound": 28,
    "InvalidState": 29,
    "ResetTypeNotSupported": 30,
    "Unknown": 999,
}

NOT_AVAILABLE = frozenset({"NotSupported", "FunctionNotFound"})
"""Answers that mean "this GPU or driver does not have it": recorded, never a failure."""

NODE_FAILURES: dict[str, str] = {
    "GpuIsLost": "the GPU is lost (fell off the bus or hung): reset the GPU or reboot the node",
    "ResetRequired": "the GPU requires a reset before it can be used again",
    "LibRmVersionMismatch": "the NVML library and the loaded kernel module differ (driver "
    "upgraded without a reboot): reboot or reload the driver",
    "DriverNotLoaded": "the NVIDIA kernel driver is not loaded: `modprobe nvidia`, check dmesg",
    "LibraryNotFound": "libnvidia-ml.so.1 is not installed or not on the library path",
    "CorruptedInforom": "the GPU's infoROM is corrupted: RMA the GPU",
    "Unknown": "NVML returned an unknown error: the driver is in a bad state",
    "Timeout": "NVML timed out talking to the GPU",
    "NoPermission": "NVML refused the call (no permission): run as root or fix /dev/nvidia*",
}
"""NVML errors that make a node unfit for jobs, with what they mean; §7 of hardware-facts."""

MAX_NVLINKS = 18
"""NVLink4 (H100/H200) has 18 links per GPU; newer pynvml loop to NVML_NVLINK_MAX_LINKS (36)."""

NVLINK_COUNTERS = ("replay", "recovery", "crc_flit", "crc_data", "ecc_data")
"""nvmlNvLinkErrorCounter_t order: DL_REPLAY 0, DL_RECOVERY 1, DL_CRC_FLIT 2, DL_CRC_DATA 3,
DL_ECC_DATA 4."""

# The NVML function behind each per-GPU field, for messages ("nvmlDeviceGetRemappedRows on GPU3").
GPU_FIELD_CALLS: dict[str, str] = {
    "handle": "nvmlDeviceGetHandleByIndex",
    "pci": "nvmlDeviceGetPciInfo",
    "name": "nvmlDeviceGetName",
    "uuid": "nvmlDeviceGetUUID",
    "serial": "nvmlDeviceGetSerial",
    "vbios": "nvmlDeviceGetVbiosVersion",
    "gsp_firmware": "nvmlDeviceGetGspFirmwareVersion",
    "persistence_mode": "nvmlDeviceGetPersistenceMode",
    "ecc_mode": "nvmlDeviceGetEccMode",
    "ecc_errors": "nvmlDeviceGetTotalEccErrors",
    "remapped_rows": "nvmlDeviceGetRemappedRows",
    "retired_pages": "nvmlDeviceGetRetiredPages",
    "clock_event_reasons": "nvmlDeviceGetCurrentClocksEventReasons",
    "temperature": "nvmlDeviceGetTemperature",
    "power": "nvmlDeviceGetPowerUsage",
    "pcie": "nvmlDeviceGetMaxPcieLinkGeneration",
    "nvlink": "nvmlDeviceGetNvLinkState",
    "mig_mode": "nvmlDeviceGetMigMode",
    "fabric": "nvmlDeviceGetGpuFabricInfoV",
    "memory": "nvmlDeviceGetMemoryInfo",
    "processes": "nvmlDeviceGetComputeRunningProcesses",
}
SYSTEM_FIELD_CALLS: dict[str, str] = {
    "init": "nvmlInit",
    "driver_version": "nvmlSystemGetDriverVersion",
    "cuda_driver_version": "nvmlSystemGetCudaDriverVersion_v2",
    "device_count": "nvmlDeviceGetCount",
}

BUS_ID_RE = re.compile(r"^([0-9A-Fa-f]{4,8}):([0-9A-Fa-f]{2}):([0-9A-Fa-f]{2})\.([0-7])$")
GPU_KEY_RE = re.compile(r"^(?:[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]|#\d+)$")


def normalize_bus_id(bus_id: str) -> str | None:
    """NVML's `00000000:18:00.0` in sysfs form `0000:18:00.0`; None when it is not a bus id."""
    m = BUS_ID_RE.match(bus_id.strip())
    if not m:
        return None
    domain, bus, dev, fn = m.groups()
    return f"{int(domain, 16):04x}:{bus.lower()}:{dev.lower()}.{fn}"


def is_marker(value: Any) -> bool:
    """An error or hang marker in place of a value."""
    return isinstance(value, dict) and ("error" in value or "hang" in value)


def error_name(value: Any) -> str | None:
    """The NVML error name when value is `{"error": NAME}`, else None."""
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return str(value["error"])
    return None


# -- validation -------------------------------------------------------------------------------


class SchemaError(ValueError):
    """A `nvml` section or record that does not have the documented shape."""


# Plain classes, not dataclasses: the NVML child imports this module for its tables, and
# `dataclasses` (with `inspect`) would cost it ~8 ms of CPU per run.
class MapOf:
    """An object with free-form keys matching `key`, each value of shape `value`."""

    __slots__ = ("key", "value", "what")

    def __init__(self, key: re.Pattern[str], value: Any, what: str) -> None:
        self.key = key
        self.value = value
        self.what = what


class ListOf:
    """A JSON array of items of one shape."""

    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item


class Nullable:
    """A value that may also be null (NVML's "not available" for a process's memory)."""

    __slots__ = ("inner",)

    def __init__(self, inner: Any) -> None:
        self.inner = inner


INT, STR = int, str
TWO_STATES = {"current": INT, "pending": INT}
NVLINK = {"state": INT, "errors": dict.fromkeys(NVLINK_COUNTERS, INT)}
GPU_SPEC: dict[str, Any] = {
    "index": INT,
    "handle": "marker",
    "pci": {"bus_id": STR, "device_id": INT, "subsystem_id": INT},
    "name": STR,
    "uuid": STR,
    "serial": STR,
    "vbios": STR,
    "gsp_firmware": STR,
    "persistence_mode": INT,
    "ecc_mode": TWO_STATES,
    "ecc_errors": {
        "volatile": {"corrected": INT, "uncorrected": INT},
        "aggregate": {"corrected": INT, "uncorrected": INT},
    },
    "remapped_rows": {"corrected": INT, "uncorrected": INT, "pending": INT, "failure": INT},
    "retired_pages": {"single_bit_ecc": INT, "double_bit_ecc": INT, "pending": INT},
    "clock_event_reasons": INT,
    "temperature": {"gpu": INT, "shutdown": INT, "slowdown": INT, "gpu_max": INT},
    "power": {"usage_mw": INT, "limit_mw": INT},
    "pcie": {
        "max_gen": INT,
        "max_width": INT,
        "current_gen": INT,
        "current_width": INT,
        "replay_counter": INT,
    },
    "nvlink": MapOf(re.compile(r"^\d+$"), NVLINK, "a link number"),
    "mig_mode": TWO_STATES,
    "fabric": {
        "state": INT,
        "status": INT,
        "clique_id": INT,
        "cluster_uuid": STR,
        "health_mask": INT,
    },
    "memory": {"total": INT, "reserved": INT, "free": INT, "used": INT},
    "processes": ListOf({"pid": INT, "used_memory": Nullable(INT), "name": Nullable(STR)}),
}
SECTION_SPEC: dict[str, Any] = {
    "init": "marker",
    "missing_functions": ListOf(STR),
    "driver_version": STR,
    "cuda_driver_version": INT,
    "device_count": INT,
    "gpus": MapOf(GPU_KEY_RE, GPU_SPEC, "a PCI address like 0000:18:00.0"),
}


def validate_section(data: Any) -> None:
    """Raise SchemaError naming the first path that does not have the documented shape."""
    _check(data, SECTION_SPEC, "nvml")


def _check(value: Any, spec: Any, path: str) -> None:
    if is_marker(value):
        _check_marker(value, path)
        return
    if spec == "marker":
        raise SchemaError(f'{path}: expected {{"error": NAME}} or {{"hang": true}}')
    if isinstance(spec, Nullable):
        if value is not None:
            _check(value, spec.inner, path)
        return
    if spec is INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{path}: expected an integer, got {value!r}")
        return
    if spec is STR:
        if not isinstance(value, str):
            raise SchemaError(f"{path}: expected a string, got {value!r}")
        return
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            raise SchemaError(f"{path}: expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            _check(item, spec.item, f"{path}[{i}]")
        return
    if not isinstance(value, dict):
        raise SchemaError(f"{path}: expected an object, got {type(value).__name__}")
    if isinstance(spec, MapOf):
        for key, item in value.items():
            if not spec.key.match(key):
                raise SchemaError(f"{path}: key {key!r} is not {spec.what}")
            _check(item, spec.value, f"{path}.{key}")
        return
    for key, item in value.items():
        if key not in spec:
            import difflib  # only for a bad profile's message

            close = difflib.get_close_matches(key, list(spec), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SchemaError(f"{path}: unknown key {key!r}{hint}")
        _check(item, spec[key], f"{path}.{key}")


def _check_marker(value: Mapping[str, Any], path: str) -> None:
    # Other keys beside a marker are ignored: a profile that `extends` another merges objects key
    # by key, so {"error": ...} laid over a group keeps the parent's values next to it.
    if "hang" in value and value["hang"] is not True:
        raise SchemaError(f"{path}: hang must be true")
    if "error" in value and value["error"] not in ERROR_CODES:
        import difflib  # only for a bad profile's message

        close = difflib.get_close_matches(str(value["error"]), list(ERROR_CODES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SchemaError(f"{path}: unknown NVML error {value['error']!r}{hint}")
