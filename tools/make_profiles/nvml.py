"""The `nvml` sections and GPU-fault kernel log lines of the built-in profiles.

Called by assembly.py; kept apart so the NVML side of a profile is read in one place. The
section's format is preflight/nvml/schema.py's (the same record the NVML collector returns).
Values come from CAP_SMI_H100 (tests/data/captures/nvidia-smi-q_8xH100-SXM5-80GB_drv565_thamada.txt)
where it has them; the comments say which values are derived or synthetic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MiB = 1 << 20

# Faults a variant can inject (devices.Faults.gpu_fault).
ROW_REMAP_PENDING = "row-remap-pending"
XID_79 = "xid-79"
NVLINK_DOWN = "nvlink-down"
ECC_UNCORRECTED = "ecc-uncorrected"
GPU_MISSING = "gpu-missing"
NVML_HANG = "nvml-hang"
GPU_LOST_NO_XID = "gpu-lost-no-xid"
GPU_FAULTS = (
    *(ROW_REMAP_PENDING, XID_79, NVLINK_DOWN, ECC_UNCORRECTED, GPU_MISSING, NVML_HANG),
    GPU_LOST_NO_XID,
)


@dataclass(frozen=True)
class GpuReadings:
    """What one GPU's sensors and counters read at capture time."""

    serial: str
    temp_c: int
    power_mw: int
    pcie_replays: int


@dataclass(frozen=True)
class NvmlModel:
    """What NVML reports for a GPU model, the same on every unit."""

    name: str
    device_id: int  # pciDeviceId = device << 16 | vendor
    subsystem_id: int
    vbios: str  # as NVML / nvidia-smi print it (upper-case hex digits)
    memory_total: int
    memory_reserved: int
    power_limit_mw: int
    # Absolute thresholds in degrees C: shutdown, slowdown, GPU max operating.
    thresholds: tuple[int, int, int]


# CAP_SMI_H100: "Product Name: NVIDIA H100 80GB HBM3", "Device Id: 0x233010DE", "Sub System Id:
# 0x16C110DE", "VBIOS Version: 96.00.74.00.01", FB "Total: 81559 MiB", "Reserved: 454 MiB",
# "Current Power Limit: 700.00 W". Driver 565 prints temperature limits relative to T.Limit
# ("GPU T.Limit Temp: 57 C" at "GPU Current Temp: 30 C", "Slowdown T.Limit Temp: -2 C",
# "Shutdown T.Limit Temp: -8 C"): T.Limit = 30 + 57 = 87 C, slowdown 87 + 2, shutdown 87 + 8.
# (Derived: the absolute values NVML returns for these thresholds were not captured.)
H100_NVML = NvmlModel(
    name="NVIDIA H100 80GB HBM3",
    device_id=0x233010DE,
    subsystem_id=0x16C110DE,
    vbios="96.00.74.00.01",
    memory_total=81559 * MiB,
    memory_reserved=454 * MiB,
    power_limit_mw=700_000,
    thresholds=(95, 89, 87),
)
# CAP_SMI_H100 per GPU, in bus order (18, 2a, 3a, 5d, 9a, ab, ba, db): "Serial Number", "GPU
# Current Temp", "Power Draw" (W), "Replays Since Reset" (non-zero on three healthy GPUs).
H100_READINGS = (
    GpuReadings("1654423001593", 30, 100_890, 7),
    GpuReadings("1654223054577", 30, 82_810, 0),
    GpuReadings("1654423003947", 31, 85_980, 0),
    GpuReadings("1654223056472", 29, 85_480, 0),
    GpuReadings("1654423003267", 28, 84_940, 0),
    GpuReadings("1654323021387", 30, 85_270, 4),
    GpuReadings("1654423003872", 29, 86_050, 15),
    GpuReadings("1654223055370", 29, 75_090, 0),
)
# H200 SXM: device 0x2335, subsystem 0x18BE, VBIOS 96.00.A5.00.03 (the H200 capture cited in
# nodes.py), 700 W TGP; 143771 MiB total as nvidia-smi reports the 141 GB part. The
# reservation and thresholds are assumed equal to the H100's (synthetic).
H200_NVML = NvmlModel(
    name="NVIDIA H200",
    device_id=0x233510DE,
    subsystem_id=0x18BE10DE,
    vbios="96.00.A5.00.03",
    memory_total=143771 * MiB,
    memory_reserved=454 * MiB,
    power_limit_mw=700_000,
    thresholds=(95, 89, 87),
)
MODELS = {"NVIDIA H100 80GB HBM3": H100_NVML, "NVIDIA H200": H200_NVML}
# nvidia-smi "CUDA Version" of each driver: 565.57.01 -> 12.7 (CAP_SMI_H100), 570 -> 12.8.
CUDA_VERSION = {"565": 12070, "570": 12080}

NVLINKS = 18  # NVLink4: 18 links per H100/H200 SXM ("NV18" in nvidia-smi topo -m)
NVLINK_COUNTERS = ("replay", "recovery", "crc_flit", "crc_data", "ecc_data")
IDLE = 0x1  # nvmlClocksEventReasonGpuIdle: CAP_SMI_H100 "Clocks Event Reasons: Idle: Active"
FABRIC_COMPLETED, NVML_SUCCESS = 3, 0  # "Fabric State: Completed", "Status: Success"
NARROW_WIDTH = 8

# Which GPU (bus order) each fault hits.
FAULT_GPU = {
    ROW_REMAP_PENDING: 1,
    XID_79: 3,
    NVLINK_DOWN: 6,
    ECC_UNCORRECTED: 2,
    GPU_MISSING: 6,
    NVML_HANG: 4,
    GPU_LOST_NO_XID: 5,
}
DOWN_LINKS = ("4", "5")


def _synthetic_digits(seed: str, digits: int) -> str:
    value = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    return str(value % 10**digits).rjust(digits, "0")


def readings(node: str, model: NvmlModel, count: int) -> list[GpuReadings]:
    if model is H100_NVML:
        return list(H100_READINGS[:count])
    # Synthetic for the H200 node: serials in the H100's 13-digit format, idle sensors.
    return [
        GpuReadings(_synthetic_digits(f"{node} serial {i}", 13), 29 + i % 3, 78_000 + 1_500 * i, 0)
        for i in range(count)
    ]


def nvml_bus_id(bdf: str) -> str:
    """sysfs 0000:18:00.0 as NVML's busId prints it: 00000000:18:00.0 (upper-case hex)."""
    domain, rest = bdf.split(":", 1)
    return f"{int(domain, 16):08X}:{rest.upper()}"


def gpu_entry(
    index: int,
    bdf: str,
    uuid: str,
    model: NvmlModel,
    reading: GpuReadings,
    driver: str,
    narrow: bool,
) -> dict[str, Any]:
    used = 1 * MiB  # CAP_SMI_H100 "Used: 1 MiB" on idle GPUs
    return {
        "index": index,
        "pci": {
            "bus_id": nvml_bus_id(bdf),
            "device_id": model.device_id,
            "subsystem_id": model.subsystem_id,
        },
        "name": model.name,
        "uuid": uuid,
        "serial": reading.serial,
        "vbios": model.vbios,
        "gsp_firmware": driver,  # "GSP Firmware Version: 565.57.01"
        "persistence_mode": 1,  # "Persistence Mode: Enabled"
        "ecc_mode": {"current": 1, "pending": 1},
        "ecc_errors": {
            "volatile": {"corrected": 0, "uncorrected": 0},
            "aggregate": {"corrected": 0, "uncorrected": 0},
        },
        "remapped_rows": {"corrected": 0, "uncorrected": 0, "pending": 0, "failure": 0},
        # "Retired Pages: N/A": Hopper repairs memory by row remapping instead.
        "retired_pages": {"error": "NotSupported"},
        "clock_event_reasons": IDLE,
        "temperature": {
            "gpu": reading.temp_c,
            "shutdown": model.thresholds[0],
            "slowdown": model.thresholds[1],
            "gpu_max": model.thresholds[2],
        },
        "power": {"usage_mw": reading.power_mw, "limit_mw": model.power_limit_mw},
        # "PCIe Generation Max 5 / Current 5", "Link Width Max 16x / Current 16x".
        "pcie": {
            "max_gen": 5,
            "max_width": 16,
            "current_gen": 5,
            "current_width": NARROW_WIDTH if narrow else 16,
            "replay_counter": reading.pcie_replays,
        },
        "nvlink": {
            str(link): {"state": 1, "errors": dict.fromkeys(NVLINK_COUNTERS, 0)}
            for link in range(NVLINKS)
        },
        "mig_mode": {"current": 0, "pending": 0},  # "MIG Mode: Disabled / Disabled"
        "fabric": {
            "state": FABRIC_COMPLETED,
            "status": NVML_SUCCESS,
            "clique_id": 0,  # "CliqueId: 0"
            "cluster_uuid": "00000000-0000-0000-0000-000000000000",
            "health_mask": 0,  # "Health / Bandwidth: N/A"
        },
        "memory": {
            "total": model.memory_total,
            "reserved": model.memory_reserved,
            "used": used,
            "free": model.memory_total - model.memory_reserved - used,
        },
        "processes": [],  # "Processes: None"
    }


def nvml_section(spec: Any, gpu_bdfs: Sequence[str]) -> dict[str, Any]:
    """The node's `nvml` section, with the variant's GPU fault (spec.faults) applied."""
    model = MODELS[spec.gpu.name]
    faults = spec.faults
    fault = getattr(faults, "gpu_fault", None)
    units = readings(spec.name, model, len(gpu_bdfs))
    gpus = {
        bdf: gpu_entry(
            i,
            bdf,
            spec.gpus[i].uuid,
            model,
            units[i],
            spec.driver,
            faults.narrow_gpu == i,
        )
        for i, bdf in enumerate(gpu_bdfs)
    }
    section: dict[str, Any] = {
        "driver_version": spec.driver,
        "cuda_driver_version": CUDA_VERSION[spec.driver.split(".")[0]],
        "device_count": len(gpu_bdfs),
        "gpus": gpus,
    }
    if fault is not None:
        apply_fault(section, fault, list(gpu_bdfs))
    return section


def apply_fault(section: dict[str, Any], fault: str, bdfs: list[str]) -> None:
    bdf = bdfs[FAULT_GPU[fault]]
    gpu = section["gpus"][bdf]
    if fault == ROW_REMAP_PENDING:
        # The ml-engineering excerpt (A100): DRAM correctable 177 volatile and aggregate,
        # "Remapped Rows: Correctable Error 1, Pending: Yes".
        gpu["ecc_errors"]["volatile"]["corrected"] = 177
        gpu["ecc_errors"]["aggregate"]["corrected"] = 177
        gpu["remapped_rows"].update(corrected=1, pending=1)
    elif fault == ECC_UNCORRECTED:
        # Two uncorrectable DRAM errors since the driver loaded; each queued a row remap.
        gpu["ecc_errors"]["volatile"]["uncorrected"] = 2
        gpu["ecc_errors"]["aggregate"]["uncorrected"] = 2
        gpu["remapped_rows"].update(uncorrected=2, pending=1)
    elif fault == NVLINK_DOWN:
        for link in DOWN_LINKS:
            gpu["nvlink"][link]["state"] = 0
    elif fault == XID_79:
        # A GPU that fell off the bus: NVML cannot even get its handle (nvidia-smi prints
        # "Unable to determine the device handle for GPU...: GPU is lost").
        # With no handle there is no PCI address either: the collector keys it by index.
        del section["gpus"][bdf]
        section["gpus"][f"#{FAULT_GPU[fault]}"] = {
            "index": FAULT_GPU[fault],
            "handle": {"error": "GpuIsLost"},
        }
    elif fault in (GPU_MISSING, GPU_LOST_NO_XID):
        # The GPU enumerates on PCI but the driver failed to initialise it (RmInitAdapter, or
        # a probe that found it off the bus), so NVML sees 7 GPUs, renumbered in bus order.
        del section["gpus"][bdf]
        section["device_count"] = len(bdfs) - 1
        for i, key in enumerate(sorted(section["gpus"])):
            section["gpus"][key]["index"] = i
    elif fault == NVML_HANG:
        # The call blocks forever in the driver (GSP RPC timeouts precede such hangs).
        gpu["remapped_rows"] = {"hang": True}


def _log(ts: float, text: str) -> str:
    return f"[{ts:12.6f}] {text}"


def kernel_log_lines(spec: Any, gpu_bdfs: Sequence[str]) -> list[str]:
    """Kernel messages of the variant's GPU fault, after boot (dmesg format)."""
    fault = getattr(spec.faults, "gpu_fault", None)
    if fault is None:
        return []
    bdf = gpu_bdfs[FAULT_GPU[fault]]
    xid_pci = bdf[: -len(".0")]  # "PCI:0000:5d:00": NVRM prints the address without function
    if fault == ROW_REMAP_PENDING:
        # Line shape of the ml-engineering capture.
        return [
            _log(
                51234.880155,
                f"NVRM: Xid (PCI:{xid_pci}): 63, pid=1896, Row Remapper: New row marked for "
                "remapping, reset gpu to activate.",
            )
        ]
    if fault == XID_79:
        return [
            _log(
                86412.301177,
                f"NVRM: GPU at PCI:{xid_pci}: {spec.gpus[FAULT_GPU[fault]].uuid}",
            ),
            _log(86412.301181, f"NVRM: GPU Board Serial Number: {H100_READINGS[3].serial}"),
            _log(
                86412.301184,
                f"NVRM: Xid (PCI:{xid_pci}): 79, pid='<unknown>', name=<unknown>, "
                "GPU has fallen off the bus.",
            ),
            _log(86412.301190, f"NVRM: GPU {bdf}: GPU has fallen off the bus."),
            _log(
                86412.301214,
                "NVRM: A GPU crash dump has been created. If possible, please run",
            ),
        ]
    if fault == GPU_MISSING:
        return [
            _log(17.004512, f"NVRM: GPU {bdf}: RmInitAdapter failed! (0x25:0x65:1457)"),
            _log(17.004577, f"NVRM: GPU {bdf}: rm_init_adapter failed, device minor number 6"),
        ]
    if fault == GPU_LOST_NO_XID:
        # The probe's message of NVIDIA/NVSentinel#155 (driver 570.158.01), as /dev/kmsg keeps
        # it: one record, its three printed lines joined by escaped newlines; no Xid.
        return [
            _log(
                1843.308145,
                f"NVRM: The NVIDIA GPU {bdf}\\x0aNVRM: (PCI ID: 10de:2330) installed in this "
                "system has\\x0aNVRM: fallen off the bus and is not responding to commands.",
            ),
            _log(1843.439662, "NVRM: The NVIDIA probe routine failed for 1 device(s)."),
        ]
    if fault == NVML_HANG:
        return [
            _log(
                72015.551029,
                f"NVRM: Xid (PCI:{xid_pci}): 119, pid=2980, name=python3, Timeout after 6s of "
                "waiting for RPC response from GPU4 GSP! Expected function 76 (GSP_RM_CONTROL) "
                "(0x20800a4c 0x4).",
            )
        ]
    return []


def with_fault_log(lines: list[str], spec: Any, gpu_bdfs: Sequence[str]) -> list[str]:
    """The boot log with the fault's messages merged in by timestamp (dmesg is in time order)."""
    merged = lines + kernel_log_lines(spec, gpu_bdfs)
    return sorted(merged, key=lambda line: float(line[1:13]))  # "[%12.6f] ", stable for ties


def diff(base: Any, new: Any) -> Any:
    """The `extends` overlay that turns base into new: objects recurse, null deletes a key."""
    if not isinstance(base, dict) or not isinstance(new, dict):
        return new
    out: dict[str, Any] = {}
    for key in sorted(base.keys() | new.keys()):
        if key not in new:
            out[key] = None
        elif key not in base:
            out[key] = new[key]
        elif base[key] != new[key]:
            if isinstance(base[key], dict) and isinstance(new[key], dict) and new[key]:
                out[key] = diff(base[key], new[key])
            else:
                out[key] = new[key]
    return out
