"""GPU checks: the healthy profile, NVML failures and the judge functions. The per-check fault
cases (overlays of the first GPU's NVML record) are in tests/data/cases/gpu.toml, run by
tests/test_check_cases.py through the real path: profile -> child process -> fake NVML ->
collector -> record -> inventory -> check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from preflight.baseline import load
from preflight.capabilities import Capabilities
from preflight.checks.gpu import availability, identity, links, memory, thermal
from preflight.execute import RunOptions, execute, providers
from preflight.inventory import Inventory
from preflight.inventory.gpu import (
    EccCounts,
    Fabric,
    Memory,
    NvLink,
    NvmlError,
    PcieNvml,
    Power,
    RemappedRows,
    RetiredPages,
    Temperature,
    TwoStates,
)
from preflight.model import Finding, Status
from preflight.profile import host_from_profile
from preflight.registry import discover
from preflight.runner import gate

GPU0 = "0000:18:00.0"
NVML_CHECKS = sorted(s.id for s in discover(include_plugins=False) if "nvml" in s.needs)


REGISTRY = discover(include_plugins=False)
BASELINE = load("dgx-h100", REGISTRY)


@dataclass(frozen=True)
class Result:
    status: Status
    summary: str
    findings: tuple[Finding, ...]


def run_overlay(
    tmp_path: Path, check_id: str, gpu0: dict[str, Any] | None = None, **top: Any
) -> Result:
    """Gate and run one check (dgx-h100 baseline) on dgx-h100 with its first GPU's NVML fields
    (and top-level ones) replaced: profile -> child -> fake NVML -> record -> inventory."""
    nvml: dict[str, Any] = dict(top)
    if gpu0:
        nvml["gpus"] = {GPU0: gpu0}
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"extends": "dgx-h100", "nvml": nvml}))
    inv = Inventory(host_from_profile(str(path)))
    spec = REGISTRY.get(check_id)
    reason = gate(spec, Capabilities(inv, providers(BASELINE, REGISTRY, {})))
    if reason is not None:
        return Result(Status.SKIP, reason, ())
    verdict = spec.func(inv, BASELINE.params_for(spec))
    return Result(verdict.status, verdict.summary, verdict.findings)


def test_all_pass_on_the_healthy_node() -> None:
    report = execute(RunOptions(profile="dgx-h100", only=("gpu.*", "xid.*")))
    assert {r.id for r in report.results} == {*NVML_CHECKS, "xid.events"}
    assert {r.id: r.status for r in report.results} == dict.fromkeys(
        (r.id for r in report.results), Status.PASS
    ), [r.summary for r in report.results if r.status is not Status.PASS]
    assert report.facts["gpu.0000:18:00.0.vbios"] == "96.00.74.00.01"
    assert report.facts["nvml.driver_version"] == "565.57.01"
    assert report.facts["gpu.0000:db:00.0.nvlinks_active"] == 18


def test_other_checks_skip_when_nvml_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"extends": "dgx-h100", "nvml": {"init": {"error": "Unknown"}}}))
    report = execute(RunOptions(profile=str(path), only=("gpu.*",)))
    status = {r.id: (r.status, r.summary) for r in report.results}
    assert status.pop("gpu.nvml_available")[0] is Status.FAIL
    for check_id, (st, summary) in status.items():
        assert st is Status.SKIP and "see gpu.nvml_available" in summary, check_id
    assert report.facts["nvml.status"] == "error"


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ("DriverNotLoaded", "kernel driver is not loaded"),
        ("LibRmVersionMismatch", "driver upgraded without a reboot"),
        ("LibraryNotFound", "libnvidia-ml.so.1"),
        ("NoPermission", "no permission"),
    ],
)
def test_nvml_init_errors_fail_with_their_cause(tmp_path: Path, error: str, words: str) -> None:
    result = run_overlay(tmp_path, "gpu.nvml_available", None, init={"error": error})
    assert result.status is Status.FAIL
    assert error in result.summary and words in result.summary


def test_reset_required_on_one_gpu_fails_naming_it(tmp_path: Path) -> None:
    result = run_overlay(
        tmp_path, "gpu.nvml_available", {"temperature": {"error": "ResetRequired"}}
    )
    assert result.status is Status.FAIL
    assert "GPU0 0000:18:00.0: nvmlDeviceGetTemperature: ResetRequired" in result.summary


def test_not_supported_calls_are_listed_not_failed(tmp_path: Path) -> None:
    result = run_overlay(tmp_path, "gpu.nvml_available", {"serial": {"error": "NotSupported"}})
    assert result.status is Status.PASS
    gpu0 = next(f for f in result.findings if f.subject.startswith("GPU0 "))
    assert "nvmlDeviceGetSerial" in gpu0.message and "nvmlDeviceGetRetiredPages" in gpu0.message


def test_profile_without_nvml_section_skips_quietly(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"extends": "dgx-h100", "nvml": None}))
    report = execute(RunOptions(profile=str(path), only=("gpu.*",)))
    assert {r.status for r in report.results} == {Status.SKIP}
    assert all("no nvml section" in r.summary for r in report.results)


def test_profile_with_a_malformed_nvml_section_is_a_config_error(tmp_path: Path) -> None:
    from preflight.errors import ProfileError

    path = tmp_path / "p.json"
    path.write_text(json.dumps({"extends": "dgx-h100", "nvml": {"gpus": {GPU0: {"name": 3}}}}))
    with pytest.raises(ProfileError, match=r"nvml\.gpus\.0000:18:00\.0\.name: expected a string"):
        execute(RunOptions(profile=str(path), only=("gpu.*",)))


# -- judges, with plain values -------------------------------------------------------------------


def test_judge_devices_missing_extra_and_count() -> None:
    pci = ["0000:18:00.0", "0000:2a:00.0"]
    ok = availability.judge_devices(
        pci,
        [("GPU0", pci[0], "H"), ("GPU1", pci[1], "H")],
        2,
        availability.DevicesParams(2, ("H",)),
    )
    assert {f.status for f in ok} == {Status.PASS}
    missing = availability.judge_devices(
        pci, [("GPU0", pci[0], "H")], 1, availability.DevicesParams(2)
    )
    assert [f.status for f in missing][:2] == [Status.FAIL, Status.FAIL]
    assert "0000:2a:00.0 not initialised" in missing[0].message
    extra = availability.judge_devices(
        pci[:1], [("a", pci[0], "H"), ("b", "0000:99:00.0", "H")], 2, availability.DevicesParams()
    )
    assert Status.WARN in {f.status for f in extra}


def test_judge_driver_versions() -> None:
    p = identity.DriverParams(min_version="550.54.15", min_cuda="12.4")
    ok = identity.judge_driver("565.57.01", "565.57.01", 12070, {"GPU0": "565.57.01"}, p)
    assert [f.status for f in ok] == [Status.PASS]
    old = identity.judge_driver("535.161.08", "535.161.08", 12020, {}, p)
    assert [f.status for f in old] == [Status.FAIL, Status.FAIL]
    mismatch = identity.judge_driver("565.57.01", "560.35.03", 12070, {}, identity.DriverParams())
    assert mismatch[0].status is Status.FAIL and "kernel module 560.35.03" in mismatch[0].message


def test_judge_vbios_pinned_and_mixed() -> None:
    pinned = identity.judge_vbios(
        {"GPU0": "96.00.74.00.01"}, identity.VbiosParams(("96.00.89.00.01",))
    )
    assert pinned[0].status is Status.FAIL
    mixed = identity.judge_vbios({"a": "1", "b": "1", "c": "2"}, identity.VbiosParams())
    assert [f.status for f in mixed] == [Status.PASS, Status.PASS, Status.WARN]


def test_judge_persistence() -> None:
    assert identity.judge_persistence("GPU0", 1, True).status is Status.PASS
    assert identity.judge_persistence("GPU0", 0, True).status is Status.FAIL
    assert identity.judge_persistence("GPU0", 0, False).status is Status.PASS
    assert identity.judge_persistence("GPU0", NvmlError("NotSupported"), True).status is Status.SKIP


def test_judge_ecc_counts_and_pending_mode() -> None:
    on = TwoStates(1, 1)
    clean = EccCounts(0, 0, 0, 0)
    assert [f.status for f in memory.judge_ecc("g", on, clean, memory.EccParams())] == [Status.PASS]
    dbe = memory.judge_ecc("g", on, EccCounts(0, 2, 0, 2), memory.EccParams())
    assert dbe[0].status is Status.FAIL and "2 uncorrectable" in dbe[0].message
    sbe = memory.judge_ecc("g", on, EccCounts(177, 0, 177, 0), memory.EccParams())
    assert sbe[0].status is Status.WARN and "177 corrected" in sbe[0].message
    pending = memory.judge_ecc("g", TwoStates(1, 0), clean, memory.EccParams())
    assert pending[0].status is Status.WARN and "pending" in pending[0].message
    assert (
        memory.judge_ecc("g", NvmlError("NotSupported"), None, memory.EccParams())[0].status
        is Status.SKIP
    )


def test_judge_row_remap_and_retired_pages() -> None:
    p = memory.RowRemapParams()
    assert memory.judge_row_remap("g", RemappedRows(0, 0, 0, 0), None, p)[0].status is Status.PASS
    pending = memory.judge_row_remap("g", RemappedRows(1, 0, 1, 0), None, p)
    assert pending[0].status is Status.FAIL and "reset" in pending[0].message
    many = memory.judge_row_remap("g", RemappedRows(0, 3, 0, 0), None, p)
    assert many[0].status is Status.WARN
    assert (
        memory.judge_row_remap("g", RemappedRows(0, 3, 0, 0), None, memory.RowRemapParams(5))[
            0
        ].status
        is Status.PASS
    )
    old_gpu = memory.judge_row_remap("g", NvmlError("NotSupported"), RetiredPages(2, 0, 1), p)
    assert old_gpu[0].status is Status.FAIL and "page retirement pending" in old_gpu[0].message
    assert (
        memory.judge_row_remap("g", NvmlError("NotSupported"), RetiredPages(2, 0, 0), p)[0].status
        is Status.PASS
    )


@pytest.mark.parametrize(
    ("mask", "status"),
    [
        (0x1, Status.PASS),
        (0x0, Status.PASS),
        (0x4, Status.PASS),
        (0x20, Status.WARN),
        (0x8, Status.FAIL),
        (0x80, Status.FAIL),
        (0x41, Status.FAIL),
    ],
)
def test_judge_clocks(mask: int, status: Status) -> None:
    assert thermal.judge_clocks("g", mask, thermal.ClocksParams()).status is status


def test_clocks_reason_names_and_unknown_param() -> None:
    assert thermal.reason_names(0x201) == ["gpu_idle", "0x200"]


def test_judge_temperature() -> None:
    p = thermal.TemperatureParams()
    assert thermal.judge_temperature("g", Temperature(30, 95, 89, 87), p).status is Status.PASS
    assert thermal.judge_temperature("g", Temperature(82, 95, 89, 87), p).status is Status.WARN
    assert thermal.judge_temperature("g", Temperature(89, 95, 89, 87), p).status is Status.FAIL
    no_slowdown = Temperature(80, NvmlError("NotSupported"), NvmlError("NotSupported"), 87)
    assert (
        thermal.judge_temperature("g", no_slowdown, p).status is Status.WARN
    )  # max operating used
    assert (
        thermal.judge_temperature(
            "g", Temperature(50, 95, 89, 87), thermal.TemperatureParams(max_c=45)
        ).status
        is Status.FAIL
    )


def test_judge_power() -> None:
    assert (
        thermal.judge_power("g", Power(90000, 700000), thermal.PowerParams(700), 700000).status
        is Status.PASS
    )
    assert (
        thermal.judge_power("g", Power(90000, 500000), thermal.PowerParams(700), 700000).status
        is Status.FAIL
    )
    assert (
        thermal.judge_power("g", Power(90000, 650000), thermal.PowerParams(), 700000).status
        is Status.WARN
    )


def test_judge_nvlinks() -> None:
    p = links.NvlinkParams(links=18)
    healthy = [
        NvLink(i, 1, dict.fromkeys(("replay", "recovery", "crc_flit", "crc_data"), 0))
        for i in range(18)
    ]
    assert [f.status for f in links.judge_nvlinks("g", healthy, p)] == [Status.PASS]
    assert links.judge_nvlinks("g", healthy[:16], p)[0].status is Status.FAIL
    replay = [
        *healthy[:17],
        NvLink(17, 1, {"replay": 9, "recovery": 0, "crc_flit": 0, "crc_data": 0}),
    ]
    found = links.judge_nvlinks("g", replay, p)
    assert found[0].status is Status.WARN and "most on link 17" in found[0].message
    recovery = [
        *healthy[:17],
        NvLink(17, 1, {"replay": 0, "recovery": 1, "crc_flit": 0, "crc_data": 0}),
    ]
    assert links.judge_nvlinks("g", recovery, p)[0].status is Status.FAIL
    pcie_gpu = NvmlError("NotSupported")
    assert links.judge_nvlinks("g", pcie_gpu, links.NvlinkParams())[0].status is Status.SKIP
    assert links.judge_nvlinks("g", pcie_gpu, p)[0].status is Status.FAIL


def test_judge_gpu_pcie_agreement_and_replays() -> None:
    p = links.GpuPcieParams(gen=5, width=16)
    ok = PcieNvml(5, 16, 5, 16, 7)
    assert links.judge_gpu_pcie("g", ok, (5, 16), 16, p)[0].status is Status.PASS
    disagree = links.judge_gpu_pcie("g", ok, (4, 16), 16, links.GpuPcieParams())
    assert disagree[0].status is Status.WARN and "disagree" in disagree[0].message
    replays = links.judge_gpu_pcie("g", PcieNvml(5, 16, 5, 16, 500), (5, 16), 16, p)
    assert replays[0].status is Status.WARN


def test_judge_fabric() -> None:
    done = Fabric(3, 0, 0, "0" * 32, 0)
    assert links.judge_fabric("g", done, True).status is Status.PASS
    assert links.judge_fabric("g", Fabric(2, 0, 0, "", 0), True).status is Status.FAIL
    bad_status = links.judge_fabric("g", Fabric(3, 999, 0, "", 0), True)
    assert bad_status.status is Status.FAIL and "Unknown" in bad_status.message
    degraded = links.judge_fabric("g", Fabric(3, 0, 0, "", 0x1), True)
    assert degraded.status is Status.WARN and "degraded bandwidth" in degraded.message
    miscfg = links.judge_fabric("g", Fabric(3, 0, 0, "", 0x500), True)  # incorrect config = 5
    assert miscfg.status is Status.FAIL
    assert links.judge_fabric("g", NvmlError("NotSupported"), False).status is Status.SKIP
    assert links.judge_fabric("g", NvmlError("NotSupported"), True).status is Status.FAIL


def test_judge_mig() -> None:
    assert identity.judge_mig("g", TwoStates(0, 0), False).status is Status.PASS
    assert identity.judge_mig("g", TwoStates(0, 1), False).status is Status.WARN
    assert identity.judge_mig("g", TwoStates(1, 1), False).status is Status.FAIL
    assert identity.judge_mig("g", NvmlError("NotSupported"), False).status is Status.PASS
    assert identity.judge_mig("g", NvmlError("NotSupported"), True).status is Status.FAIL


def test_judge_processes() -> None:
    from preflight.inventory.gpu import GpuProcess

    p = availability.ProcessesParams()
    idle = Memory(81559 << 20, 1 << 20, 81104 << 20, 454 << 20)
    assert availability.judge_processes("g", [], idle, p).status is Status.PASS
    busy = Memory(81559 << 20, 40000 << 20, 41104 << 20, 454 << 20)
    assert availability.judge_processes("g", [], busy, p).status is Status.FAIL
    mps = [GpuProcess(10, 30 << 20, "/usr/bin/nvidia-cuda-mps-server")]
    assert availability.judge_processes("g", mps, idle, p).status is Status.FAIL
    allowed = availability.ProcessesParams(allow=("nvidia-cuda-mps-server",))
    assert availability.judge_processes("g", mps, idle, allowed).status is Status.PASS
