"""GPUs as NVML and the NVIDIA driver's procfs report them: typed views of the NVML record.

The record comes from the NVML child process (Host.nvml(); format in preflight.nvml.schema).
Each field is its value, an `NvmlError` (what the call raised), or None (not collected). This
module never loads NVML itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from preflight.errors import HostReadError, ParseError
from preflight.host import Host
from preflight.inventory.sysfs_text import parse_kv_lines
from preflight.nvml.probe import NvmlFailure, NvmlRecord
from preflight.nvml.schema import (
    ERROR_CODES,
    GPU_FIELD_CALLS,
    NODE_FAILURES,
    NOT_AVAILABLE,
    NVLINK_COUNTERS,
    SYSTEM_FIELD_CALLS,
    error_name,
    normalize_bus_id,
)

T = TypeVar("T")
__all__ = ["ERROR_CODES", "NODE_FAILURES", "SYSTEM_FIELD_CALLS"]
"""NVML's names the GPU checks quote (the schema's tables), besides the records defined here."""


@dataclass(frozen=True)
class NvmlError:
    """An NVML call that raised: NVMLError_<name>."""

    name: str

    @property
    def not_available(self) -> bool:
        """NotSupported / FunctionNotFound: the GPU or driver lacks it; not a fault."""
        return self.name in NOT_AVAILABLE

    @property
    def node_failure(self) -> bool:
        """GpuIsLost, ResetRequired, LibRmVersionMismatch, DriverNotLoaded, ...: drain."""
        return self.name in NODE_FAILURES

    def __str__(self) -> str:
        return self.name


Num = int | NvmlError | None
Text = str | NvmlError | None


def _err(value: Any) -> NvmlError | None:
    name = error_name(value)
    return NvmlError(name) if name is not None else None


def _int(value: Any) -> Num:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _err(value)


def _str(value: Any) -> Text:
    return value if isinstance(value, str) else _err(value)


def _group(value: Any, build: Callable[[Mapping[str, Any]], T]) -> T | NvmlError | None:
    """A group of values answered by one call (or failed as a whole)."""
    err = _err(value)
    if err is not None:
        return err
    if isinstance(value, Mapping):
        return build(value)
    return None


def _sub(group: Mapping[str, Any], key: str) -> Num:
    return _int(group.get(key))


@dataclass(frozen=True)
class TwoStates:
    """Current and pending mode (ECC, MIG): 1 = enabled."""

    current: Num
    pending: Num


@dataclass(frozen=True)
class EccCounts:
    """nvmlDeviceGetTotalEccErrors: since the driver loaded (volatile) and lifetime (aggregate)."""

    volatile_corrected: Num
    volatile_uncorrected: Num
    aggregate_corrected: Num
    aggregate_uncorrected: Num


@dataclass(frozen=True)
class RemappedRows:
    """nvmlDeviceGetRemappedRows: rows remapped for corrected/uncorrected errors; pending means
    a remap waits for a GPU reset; failure means the bank had no spare row left."""

    corrected: Num
    uncorrected: Num
    pending: Num
    failure: Num


@dataclass(frozen=True)
class RetiredPages:
    """Dynamic page retirement (before Ampere): pages retired per cause, and a pending flag."""

    single_bit_ecc: Num
    double_bit_ecc: Num
    pending: Num


@dataclass(frozen=True)
class Temperature:
    """Degrees C: current, and the shutdown / slowdown / max-operating thresholds."""

    gpu: Num
    shutdown: Num
    slowdown: Num
    gpu_max: Num


@dataclass(frozen=True)
class Power:
    """Milliwatts: draw and the enforced limit."""

    usage_mw: Num
    limit_mw: Num


@dataclass(frozen=True)
class PcieNvml:
    """The GPU's host link as NVML sees it, and its replay counter since reset."""

    max_gen: Num
    max_width: Num
    current_gen: Num
    current_width: Num
    replay_counter: Num


@dataclass(frozen=True)
class NvLink:
    """One NVLink: state (1 active) and error counters (nvmlNvLinkErrorCounter_t)."""

    link: int
    state: Num
    errors: dict[str, Num]


@dataclass(frozen=True)
class Fabric:
    """nvmlDeviceGetGpuFabricInfo(V): registration with the NVSwitch fabric (Hopper+)."""

    state: Num
    status: Num
    clique_id: Num
    cluster_uuid: Text
    health_mask: Num


@dataclass(frozen=True)
class Memory:
    """Framebuffer bytes; `reserved` (driver/firmware) only from the v2 call."""

    total: Num
    used: Num
    free: Num
    reserved: Num


@dataclass(frozen=True)
class GpuProcess:
    """A compute process holding a context on the GPU."""

    pid: int
    used_memory: int | None
    name: str | None


@dataclass(frozen=True)
class NvmlGpu:
    """One GPU as NVML reported it."""

    key: str  # sysfs BDF, or "#<index>" when NVML gave no PCI address
    index: int
    bdf: str | None
    raw: Mapping[str, Any]
    handle_error: NvmlError | None = None
    pci_device_id: Num = None
    name: Text = None
    uuid: Text = None
    serial: Text = None
    vbios: Text = None
    gsp_firmware: Text = None
    persistence_mode: Num = None
    ecc_mode: TwoStates | NvmlError | None = None
    ecc_errors: EccCounts | NvmlError | None = None
    remapped_rows: RemappedRows | NvmlError | None = None
    retired_pages: RetiredPages | NvmlError | None = None
    clock_event_reasons: Num = None
    temperature: Temperature | NvmlError | None = None
    power: Power | NvmlError | None = None
    pcie: PcieNvml | NvmlError | None = None
    nvlinks: list[NvLink] | NvmlError | None = None
    mig_mode: TwoStates | NvmlError | None = None
    fabric: Fabric | NvmlError | None = None
    memory: Memory | NvmlError | None = None
    processes: list[GpuProcess] | NvmlError | None = None

    def call_errors(self) -> list[tuple[str, NvmlError]]:
        """(NVML function, error) for every call that failed, NotSupported ones included."""
        out: list[tuple[str, NvmlError]] = []
        if self.handle_error is not None:
            out.append((GPU_FIELD_CALLS["handle"], self.handle_error))

        def walk(value: Any, call: str) -> None:
            name = error_name(value)
            if name is not None:
                out.append((call, NvmlError(name)))
            elif isinstance(value, Mapping):
                for item in value.values():
                    walk(item, call)

        for key, call in GPU_FIELD_CALLS.items():
            if key != "handle" and key in self.raw:
                walk(self.raw[key], call)
        return out


def parse_gpu(key: str, raw: Mapping[str, Any]) -> NvmlGpu:
    """One GPU entry of the record."""
    index = raw.get("index")
    pci = raw.get("pci")
    bus_id = pci.get("bus_id") if isinstance(pci, Mapping) else None
    bdf = normalize_bus_id(bus_id) if isinstance(bus_id, str) else None
    if bdf is None and not key.startswith("#"):
        bdf = key
    nvlinks: list[NvLink] | NvmlError | None
    links = raw.get("nvlink")
    if isinstance(links, Mapping) and error_name(links) is None:
        nvlinks = []
        for number in sorted(links, key=lambda k: int(k) if k.isdigit() else 1 << 30):
            entry = links[number]
            if not number.isdigit():
                continue
            if error_name(entry) is not None:
                nvlinks.append(NvLink(int(number), _err(entry), {}))
                continue
            errors = entry.get("errors") if isinstance(entry, Mapping) else None
            counters: dict[str, Num]
            if isinstance(errors, Mapping):
                counters = {name: _int(errors.get(name)) for name in NVLINK_COUNTERS}
            else:
                err = _err(errors)
                counters = dict.fromkeys(NVLINK_COUNTERS, err)
            state = _int(entry.get("state")) if isinstance(entry, Mapping) else None
            nvlinks.append(NvLink(int(number), state, counters))
    else:
        nvlinks = _err(links)
    processes: list[GpuProcess] | NvmlError | None
    procs = raw.get("processes")
    if isinstance(procs, list):
        processes = [
            GpuProcess(
                int(p["pid"]),
                p.get("used_memory") if isinstance(p.get("used_memory"), int) else None,
                p.get("name") if isinstance(p.get("name"), str) else None,
            )
            for p in procs
            if isinstance(p, Mapping) and isinstance(p.get("pid"), int)
        ]
    else:
        processes = _err(procs)
    return NvmlGpu(
        key=key,
        index=index if isinstance(index, int) else -1,
        bdf=bdf,
        raw=raw,
        handle_error=_err(raw.get("handle")),
        pci_device_id=_int(pci.get("device_id")) if isinstance(pci, Mapping) else _err(pci),
        name=_str(raw.get("name")),
        uuid=_str(raw.get("uuid")),
        serial=_str(raw.get("serial")),
        vbios=_str(raw.get("vbios")),
        gsp_firmware=_str(raw.get("gsp_firmware")),
        persistence_mode=_int(raw.get("persistence_mode")),
        ecc_mode=_group(raw.get("ecc_mode"), _two_states),
        ecc_errors=_group(raw.get("ecc_errors"), _ecc_counts),
        remapped_rows=_group(
            raw.get("remapped_rows"),
            lambda g: RemappedRows(*(_sub(g, k) for k in RemappedRows.__dataclass_fields__)),
        ),
        retired_pages=_group(
            raw.get("retired_pages"),
            lambda g: RetiredPages(*(_sub(g, k) for k in RetiredPages.__dataclass_fields__)),
        ),
        clock_event_reasons=_int(raw.get("clock_event_reasons")),
        temperature=_group(
            raw.get("temperature"),
            lambda g: Temperature(*(_sub(g, k) for k in Temperature.__dataclass_fields__)),
        ),
        power=_group(
            raw.get("power"), lambda g: Power(*(_sub(g, k) for k in Power.__dataclass_fields__))
        ),
        pcie=_group(
            raw.get("pcie"),
            lambda g: PcieNvml(*(_sub(g, k) for k in PcieNvml.__dataclass_fields__)),
        ),
        nvlinks=nvlinks,
        mig_mode=_group(raw.get("mig_mode"), _two_states),
        fabric=_group(
            raw.get("fabric"),
            lambda g: Fabric(
                _sub(g, "state"),
                _sub(g, "status"),
                _sub(g, "clique_id"),
                _str(g.get("cluster_uuid")),
                _sub(g, "health_mask"),
            ),
        ),
        memory=_group(
            raw.get("memory"),
            lambda g: Memory(*(_sub(g, k) for k in Memory.__dataclass_fields__)),
        ),
        processes=processes,
    )


def _two_states(g: Mapping[str, Any]) -> TwoStates:
    return TwoStates(_sub(g, "current"), _sub(g, "pending"))


def _ecc_counts(g: Mapping[str, Any]) -> EccCounts:
    def part(counter: str, kind: str) -> Num:
        sub = g.get(counter)
        if isinstance(sub, Mapping) and error_name(sub) is None:
            return _int(sub.get(kind))
        return _err(sub)

    return EccCounts(
        part("volatile", "corrected"),
        part("volatile", "uncorrected"),
        part("aggregate", "corrected"),
        part("aggregate", "uncorrected"),
    )


@dataclass
class NvmlState:
    """The whole NVML answer: library/driver level, then each GPU in NVML's order."""

    available: bool
    failure: NvmlFailure | None = None  # hung, crashed, or no nvml section in the profile
    init_error: NvmlError | None = None
    driver_version: Text = None
    cuda_driver_version: Num = None
    device_count: Num = None
    gpus: list[NvmlGpu] = field(default_factory=list)
    elapsed_s: float = 0.0
    source: str = ""

    @classmethod
    def from_result(cls, result: NvmlRecord | NvmlFailure) -> NvmlState:
        """Typed view of what Host.nvml() returned."""
        if isinstance(result, NvmlFailure):
            return cls(False, failure=result, elapsed_s=result.elapsed_s)
        data = result.data
        init = _err(data.get("init"))
        gpus_raw = data.get("gpus")
        gpus = (
            [parse_gpu(k, v) for k, v in gpus_raw.items() if isinstance(v, Mapping)]
            if isinstance(gpus_raw, Mapping)
            else []
        )
        gpus.sort(key=lambda g: (g.index, g.key))
        count = _int(data.get("device_count"))
        return cls(
            available=init is None and not isinstance(count, NvmlError),
            init_error=init,
            driver_version=_str(data.get("driver_version")),
            cuda_driver_version=_int(data.get("cuda_driver_version")),
            device_count=count,
            gpus=gpus,
            elapsed_s=result.elapsed_s,
            source=result.source,
        )

    @property
    def absent(self) -> bool:
        """A profile without an `nvml` section: nothing to judge, nothing failed."""
        return self.failure is not None and self.failure.kind == "absent"

    def unavailable_reason(self) -> str | None:
        """Why NVML gave no usable answer (hang, crash, init or count error), or None."""
        if self.failure is not None:
            return self.failure.message
        if self.init_error is not None:
            return f"{SYSTEM_FIELD_CALLS['init']} failed: {self.init_error}"
        if isinstance(self.device_count, NvmlError):
            return f"{SYSTEM_FIELD_CALLS['device_count']} failed: {self.device_count}"
        return None

    def by_bdf(self) -> dict[str, NvmlGpu]:
        """GPUs that reported a PCI address, by sysfs BDF."""
        return {g.bdf: g for g in self.gpus if g.bdf is not None}


# -- the driver's procfs view (no NVML) ---------------------------------------------------------

PROC_GPUS = "/proc/driver/nvidia/gpus"


@dataclass(frozen=True)
class ProcGpu:
    """/proc/driver/nvidia/gpus/<bdf>/information: world-readable, filled at driver probe."""

    bdf: str
    model: str | None
    uuid: str | None
    vbios: str | None
    firmware: str | None


def read_proc_gpus(host: Host) -> dict[str, ProcGpu]:
    """Every GPU the NVIDIA driver probed, by BDF; unreadable or odd files are left out."""
    out: dict[str, ProcGpu] = {}
    for bdf in host.listdir(PROC_GPUS):
        try:
            text = host.read_text(f"{PROC_GPUS}/{bdf}/information")
            info = parse_kv_lines(text) if text else {}
        except (HostReadError, ParseError):
            continue
        out[bdf] = ProcGpu(
            bdf,
            info.get("Model"),
            info.get("GPU UUID"),
            info.get("Video BIOS"),
            info.get("GPU Firmware"),
        )
    return out
