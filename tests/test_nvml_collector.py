"""The NVML collector against the fake NVML: every field, every error shape, the fallbacks."""

from __future__ import annotations

import copy
import ctypes
from typing import Any

import pynvml
import pytest

from preflight.nvml.collector import collapse, collect, error_name
from preflight.nvml.fake import FakeNvml, nvml_error
from preflight.nvml.schema import (
    ERROR_CODES,
    SchemaError,
    normalize_bus_id,
    validate_section,
)
from preflight.profile import resolve

DGX = resolve("dgx-h100")["nvml"]
BDF0 = "0000:18:00.0"


def section(**gpu0: Any) -> dict[str, Any]:
    """dgx-h100's section with fields of its first GPU replaced."""
    data: dict[str, Any] = copy.deepcopy(DGX)
    data["gpus"][BDF0].update(gpu0)
    return data


class Hang(Exception):
    """Raised by the test's stand-in for a call that would block forever."""


def hang() -> None:
    raise Hang


def test_error_names_match_pynvml() -> None:
    """The schema's error table is pynvml's, and the fake raises pynvml's own classes."""
    for name, code in ERROR_CODES.items():
        cls = pynvml.NVMLError._valClassMapping.get(code)
        if cls is not None:
            assert cls.__name__ == f"NVMLError_{name}"
    exc = nvml_error("NotSupported")
    assert isinstance(exc, pynvml.NVMLError_NotSupported)
    assert isinstance(exc, pynvml.NVMLError)
    assert error_name(exc) == "NotSupported"
    assert error_name(pynvml.NVMLError(12345)) == "Unknown"


@pytest.mark.parametrize(
    "name", ["dgx-h100", "hgx-h200", "dgx-h100-xid-79", "dgx-h100-gpu-missing"]
)
def test_collect_through_fake_returns_the_section(name: str) -> None:
    """A profile's nvml section is a record: collecting through the fake gives it back."""
    data = resolve(name)["nvml"]
    validate_section(data)
    assert collect(FakeNvml(data)) == data


def test_every_field_of_a_healthy_h100() -> None:
    calls: list[tuple[str, str]] = []
    record = collect(FakeNvml(DGX), lambda call, where: calls.append((call, where)))
    gpu = record["gpus"][BDF0]
    assert record["driver_version"] == "565.57.01"
    assert record["cuda_driver_version"] == 12070
    assert record["device_count"] == 8
    assert gpu["pci"] == {
        "bus_id": "00000000:18:00.0",
        "device_id": 0x233010DE,
        "subsystem_id": 0x16C110DE,
    }
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["uuid"] == "GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1"
    assert gpu["serial"] == "1654423001593"
    assert gpu["vbios"] == "96.00.74.00.01"
    assert gpu["gsp_firmware"] == "565.57.01"  # pynvml returns bytes here; decoded
    assert gpu["persistence_mode"] == 1
    assert gpu["ecc_mode"] == {"current": 1, "pending": 1}
    assert gpu["ecc_errors"]["volatile"] == {"corrected": 0, "uncorrected": 0}
    assert gpu["remapped_rows"] == {"corrected": 0, "uncorrected": 0, "pending": 0, "failure": 0}
    assert gpu["retired_pages"] == {"error": "NotSupported"}  # collapsed: 3 calls, one error
    assert gpu["clock_event_reasons"] == 0x1
    assert gpu["temperature"] == {"gpu": 30, "shutdown": 95, "slowdown": 89, "gpu_max": 87}
    assert gpu["power"] == {"usage_mw": 100890, "limit_mw": 700000}
    assert gpu["pcie"]["replay_counter"] == 7
    assert sorted(gpu["nvlink"], key=int) == [str(i) for i in range(18)]
    assert gpu["mig_mode"] == {"current": 0, "pending": 0}
    assert gpu["fabric"]["state"] == 3 and gpu["fabric"]["health_mask"] == 0
    assert gpu["memory"]["reserved"] == 454 << 20
    assert gpu["processes"] == []
    # Every call is announced, with the GPU it is made on, before it is made.
    assert calls[0] == ("nvmlInit", "")
    assert ("nvmlDeviceGetRemappedRows", f"GPU0 {BDF0}") in calls
    assert calls[-1] == ("nvmlShutdown", "")


def test_not_supported_and_function_not_found_are_recorded_not_raised() -> None:
    data = section(
        fabric={"error": "NotSupported"},
        mig_mode={"error": "NotSupported"},
        serial={"error": "NotSupported"},
        nvlink={"error": "NotSupported"},
    )
    data["missing_functions"] = ["nvmlDeviceGetGspFirmwareVersion"]
    gpu = collect(FakeNvml(data))["gpus"][BDF0]
    assert gpu["fabric"] == {"error": "NotSupported"}
    assert gpu["mig_mode"] == {"error": "NotSupported"}
    assert gpu["serial"] == {"error": "NotSupported"}
    assert gpu["nvlink"] == {"error": "NotSupported"}
    assert gpu["gsp_firmware"] == {"error": "FunctionNotFound"}


def test_clock_reasons_fall_back_to_throttle_reasons_on_old_drivers() -> None:
    data = section(clock_event_reasons=0x48)
    data["missing_functions"] = ["nvmlDeviceGetCurrentClocksEventReasons"]
    calls: list[str] = []
    gpu = collect(FakeNvml(data), lambda call, where: calls.append(call))["gpus"][BDF0]
    assert gpu["clock_event_reasons"] == 0x48
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" in calls


def test_fabric_falls_back_to_the_unversioned_call() -> None:
    data = copy.deepcopy(DGX)
    data["missing_functions"] = ["nvmlDeviceGetGpuFabricInfoV"]
    gpu = collect(FakeNvml(data))["gpus"][BDF0]
    assert gpu["fabric"] == {
        "state": 3,
        "status": 0,
        "clique_id": 0,
        "cluster_uuid": "00000000-0000-0000-0000-000000000000",
    }  # no health mask without the versioned struct


def test_memory_falls_back_to_v1_which_counts_the_reservation_as_used() -> None:
    data = copy.deepcopy(DGX)
    data["missing_functions"] = ["nvmlDeviceGetMemoryInfo_v2"]
    mem = collect(FakeNvml(data))["gpus"][BDF0]["memory"]
    assert "reserved" not in mem
    assert mem["used"] == (454 + 1) << 20


def test_cuda_version_falls_back_to_v1() -> None:
    data = copy.deepcopy(DGX)
    data["missing_functions"] = ["nvmlSystemGetCudaDriverVersion_v2"]
    assert collect(FakeNvml(data))["cuda_driver_version"] == 12070


@pytest.mark.parametrize(
    "error", ["DriverNotLoaded", "LibRmVersionMismatch", "LibraryNotFound", "NoPermission"]
)
def test_init_failure_is_the_whole_record(error: str) -> None:
    data = copy.deepcopy(DGX)
    data["init"] = {"error": error}
    assert collect(FakeNvml(data)) == {"init": {"error": error}}


def test_lost_gpu_is_keyed_by_index() -> None:
    data = section(handle={"error": "GpuIsLost"})
    record = collect(FakeNvml(data))
    assert record["gpus"]["#0"] == {"index": 0, "handle": {"error": "GpuIsLost"}}
    assert len(record["gpus"]) == 8


def test_error_on_one_call_leaves_the_others() -> None:
    gpu = collect(
        FakeNvml(
            section(
                temperature={
                    "gpu": 31,
                    "shutdown": {"error": "NotSupported"},
                    "slowdown": 89,
                    "gpu_max": 87,
                }
            )
        )
    )["gpus"][BDF0]
    assert gpu["temperature"] == {
        "gpu": 31,
        "shutdown": {"error": "NotSupported"},
        "slowdown": 89,
        "gpu_max": 87,
    }


def test_a_gap_in_a_profile_answers_not_supported() -> None:
    data = section()
    del data["gpus"][BDF0]["power"]
    assert collect(FakeNvml(data))["gpus"][BDF0]["power"] == {"error": "NotSupported"}


def test_device_count_error_means_no_gpus() -> None:
    data = copy.deepcopy(DGX)
    data["device_count"] = {"error": "Unknown"}
    record = collect(FakeNvml(data))
    assert record["device_count"] == {"error": "Unknown"} and record["gpus"] == {}


def test_processes_with_names_and_unknown_ones() -> None:
    procs = [
        {"pid": 4242, "used_memory": 30 << 30, "name": "python3"},
        {"pid": 77, "used_memory": None, "name": None},  # another PID namespace
    ]
    gpu = collect(FakeNvml(section(processes=procs)))["gpus"][BDF0]
    assert gpu["processes"] == procs


def test_processes_fall_back_to_v2_on_old_drivers() -> None:
    procs = [{"pid": 9, "used_memory": 1 << 30, "name": "python3"}]
    data = section(processes=procs)
    data["missing_functions"] = ["nvmlDeviceGetComputeRunningProcesses"]
    assert collect(FakeNvml(data))["gpus"][BDF0]["processes"] == procs


def test_library_mismatch_of_unversioned_wrappers_is_function_not_found() -> None:
    class Api(FakeNvml):
        def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> Any:
            raise pynvml.NVMLLibraryMismatchError("use a versioned function")

    data = section(processes=[])
    assert collect(Api(data))["gpus"][BDF0]["processes"] == []  # answered by the _v2 call


def test_readme_nvml_example_is_valid() -> None:
    import json
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"```json\n(\"nvml\": \{.*?)\n```", readme, re.S)
    assert block is not None
    data = json.loads("{" + block.group(1) + "}")["nvml"]
    validate_section(data)
    gpu = data["gpus"]["0000:18:00.0"]
    assert normalize_bus_id(gpu["pci"]["bus_id"]) == "0000:18:00.0"
    assert gpu["pci"]["device_id"] == 0x233010DE


def test_nvlink_states_and_counters_per_link() -> None:
    links = copy.deepcopy(DGX["gpus"][BDF0]["nvlink"])
    links["4"]["state"] = 0
    links["5"]["errors"]["replay"] = 12
    links["6"]["errors"] = {"error": "NotSupported"}
    gpu = collect(FakeNvml(section(nvlink=links)))["gpus"][BDF0]
    assert gpu["nvlink"]["4"]["state"] == 0
    assert gpu["nvlink"]["5"]["errors"]["replay"] == 12
    assert gpu["nvlink"]["6"]["errors"] == {"error": "NotSupported"}
    assert "18" not in gpu["nvlink"]  # InvalidArgument past the last link: no such link


def test_hang_marker_blocks_in_the_named_call() -> None:
    calls: list[str] = []
    fake = FakeNvml(section(remapped_rows={"hang": True}), hang=hang)
    with pytest.raises(Hang):
        collect(fake, lambda call, where: calls.append(f"{call} {where}"))
    # The last call announced before the one that blocked (shutdown runs as the test unwinds).
    assert calls[-2:] == [f"nvmlDeviceGetRemappedRows GPU0 {BDF0}", "nvmlShutdown "]


def test_fake_rejects_calls_before_init_and_bad_arguments() -> None:
    fake = FakeNvml(DGX)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()
    fake.nvmlInit()
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetHandleByIndex(8)
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetTotalEccErrors(handle, 7, 0)
    info = pynvml.c_nvmlGpuFabricInfoV_t()
    assert fake.nvmlDeviceGetGpuFabricInfoV(handle, ctypes.byref(info)) == pynvml.NVML_SUCCESS
    assert info.state == pynvml.NVML_GPU_FABRIC_STATE_COMPLETED


def test_collapse_only_merges_identical_errors() -> None:
    same = {"a": {"error": "NotSupported"}, "b": {"error": "NotSupported"}}
    assert collapse(same) == {"error": "NotSupported"}
    mixed = {"a": {"error": "NotSupported"}, "b": 3}
    assert collapse(mixed) == mixed
    assert collapse({"x": same, "y": 1}) == {"x": {"error": "NotSupported"}, "y": 1}


@pytest.mark.parametrize(
    ("bus_id", "bdf"),
    [
        ("00000000:18:00.0", "0000:18:00.0"),
        ("00000000:AB:00.0", "0000:ab:00.0"),
        ("0000:9a:00.0", "0000:9a:00.0"),
        ("00000001:1B:00.0", "0001:1b:00.0"),
        ("garbage", None),
    ],
)
def test_bus_id_normalized_to_sysfs_form(bus_id: str, bdf: str | None) -> None:
    assert normalize_bus_id(bus_id) == bdf


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"gpus": {"0000:18:00.0": {"temperature": {"gpu": "hot"}}}}, "expected an integer"),
        ({"gpus": {"18:00.0": {}}}, "not a PCI address"),
        ({"gpus": {"0000:18:00.0": {"serail": "x"}}}, "did you mean 'serial'"),
        (
            {"gpus": {"0000:18:00.0": {"name": {"error": "NotSupportd"}}}},
            "did you mean 'NotSupported'",
        ),
        ({"init": {"hang": 1}}, "hang must be true"),
        ({"init": "DriverNotLoaded"}, '{"error": NAME}'),
        ({"gpus": {"0000:18:00.0": {"processes": [{"pid": "1"}]}}}, "processes[0].pid"),
    ],
)
def test_schema_names_the_bad_path(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(SchemaError, match=None) as info:
        validate_section(data)
    assert needle in str(info.value)
