"""What each GPU runs: driver, VBIOS, persistence mode, MIG mode."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.checks.gpu.common import NVML, each_gpu, no_answer, subject, version_tuple
from preflight.inventory import Inventory
from preflight.inventory.gpu import (
    NvmlError,
    TwoStates,
)
from preflight.model import Evidence, Finding, Status, Verdict, passed
from preflight.registry import check

# -- driver ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriverParams:
    """Minimum driver version ("550.54.15") and CUDA driver API version ("12.4"); "" = any."""

    min_version: str = ""
    min_cuda: str = ""


def judge_driver(
    nvml_version: str | None,
    module_version: str | None,
    cuda: int | None,
    firmware: dict[str, str],
    params: DriverParams,
) -> list[Finding]:
    """NVML's driver version against the kernel module, the minimums, each GPU's GSP firmware."""
    findings: list[Finding] = []
    src = NVML + "nvmlSystemGetDriverVersion"
    if nvml_version is None:
        return [Finding("node", Status.SKIP, "NVML gave no driver version")]
    if module_version and module_version != nvml_version:
        findings.append(
            Finding(
                "node",
                Status.FAIL,
                f"NVML library {nvml_version} but kernel module {module_version}: reload or reboot",
                (
                    Evidence(
                        "procfs:/proc/driver/nvidia/version", module_version, f"== {nvml_version}"
                    ),
                ),
            )
        )
    if params.min_version and version_tuple(nvml_version) < version_tuple(params.min_version):
        findings.append(
            Finding(
                "node",
                Status.FAIL,
                f"driver {nvml_version} is older than {params.min_version}",
                (Evidence(src, nvml_version, f">= {params.min_version}"),),
            )
        )
    cuda_text = f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda is not None else None
    too_old = cuda_text is not None and version_tuple(cuda_text) < version_tuple(params.min_cuda)
    if params.min_cuda and too_old:
        findings.append(
            Finding(
                "node",
                Status.FAIL,
                f"driver supports CUDA {cuda_text}, older than {params.min_cuda}",
                (
                    Evidence(
                        NVML + "nvmlSystemGetCudaDriverVersion_v2",
                        cuda_text,
                        f">= {params.min_cuda}",
                    ),
                ),
            )
        )
    for label, fw in firmware.items():
        # GSP firmware ships with the driver: a GPU running another build missed a reload.
        if fw != nvml_version:
            findings.append(
                Finding(
                    label,
                    Status.FAIL,
                    f"GSP firmware {fw}, driver {nvml_version}",
                    (Evidence(NVML + "nvmlDeviceGetGspFirmwareVersion", fw, f"== {nvml_version}"),),
                )
            )
    if not findings:
        cuda_note = f" (CUDA {cuda_text})" if cuda_text else ""
        pinned = f", >= {params.min_version}" if params.min_version else ""
        findings.append(
            Finding(
                "node",
                Status.PASS,
                f"driver {nvml_version}{cuda_note}{pinned}",
                (Evidence(src, nvml_version),),
            )
        )
    return findings


@check(
    "gpu.driver",
    title="One NVIDIA driver version everywhere, new enough",
    tags=("gpu", "nvml", "driver"),
    needs=("nvml",),
    params=DriverParams,
)
def driver(inv: Inventory, params: DriverParams) -> Verdict:
    """The NVIDIA driver is one version in library, kernel module and every GPU's firmware.

    ## Why
    Nodes of one job should run one driver: collectives and CUDA behaviour change between
    releases, and a driver older than the CUDA toolkit of the job fails at init. A GPU whose
    GSP firmware differs from the driver was not re-initialised after an upgrade.

    ## Reads
    `nvmlSystemGetDriverVersion`, `nvmlSystemGetCudaDriverVersion_v2`, per GPU
    `nvmlDeviceGetGspFirmwareVersion`, and `/proc/driver/nvidia/version` (the loaded module).

    ## Verdicts
    - pass: library and module agree, every GPU's GSP firmware is the driver's, and the
      versions reach `min_version` / `min_cuda` when the baseline pins them.
    - fail: a mismatch, or a version below the pinned minimum.
    - skip: no GPU, or NVML unavailable.

    ## Fix
    Install the fleet's driver version and reboot (or unload and reload the nvidia modules with
    no GPU process running).
    """
    state = inv.gpu
    firmware = {}
    for gpu in state.gpus:
        if isinstance(gpu.gsp_firmware, str):
            firmware[subject(inv, gpu)] = gpu.gsp_firmware
    cuda = state.cuda_driver_version if isinstance(state.cuda_driver_version, int) else None
    version = state.driver_version if isinstance(state.driver_version, str) else None
    findings = judge_driver(version, inv.kernel.nvidia_driver, cuda, firmware, params)
    return Verdict.from_findings(findings, ok=findings[0].message)


# -- VBIOS -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VbiosParams:
    """versions: VBIOS versions allowed ("96.00.74.00.01"); any when empty."""

    versions: tuple[str, ...] = ()


def judge_vbios(vbios: dict[str, str], params: VbiosParams) -> list[Finding]:
    """Pinned versions FAIL when not met; a mix of versions across GPUs WARNs."""
    counts: dict[str, int] = {}
    for v in vbios.values():
        counts[v] = counts.get(v, 0) + 1
    majority = max(counts, key=lambda v: counts[v]) if counts else None
    findings = []
    for label, v in vbios.items():
        ev = (
            Evidence(
                NVML + "nvmlDeviceGetVbiosVersion", v, " or ".join(params.versions) or majority
            ),
        )
        if params.versions and v not in params.versions:
            findings.append(
                Finding(
                    label, Status.FAIL, f"VBIOS {v}, expected {' or '.join(params.versions)}", ev
                )
            )
        elif len(counts) > 1 and v != majority:
            findings.append(
                Finding(
                    label, Status.WARN, f"VBIOS {v} differs from the other GPUs' {majority}", ev
                )
            )
        else:
            findings.append(Finding(label, Status.PASS, f"VBIOS {v}", ev))
    return findings


@check(
    "gpu.vbios",
    title="Every GPU runs the same (pinned) VBIOS",
    tags=("gpu", "nvml", "firmware"),
    needs=("nvml",),
    params=VbiosParams,
)
def vbios(inv: Inventory, params: VbiosParams) -> Verdict:
    """Every GPU runs the same VBIOS, one of the pinned versions when the baseline pins them.

    ## Why
    A replaced GPU often arrives with another VBIOS; VBIOS releases change power and clock
    behaviour and fix NVLink and ECC issues, so a mixed node behaves unlike its peers.

    ## Reads
    `nvmlDeviceGetVbiosVersion` per GPU.

    ## Verdicts
    - pass: one VBIOS on every GPU (and in `versions` when pinned).
    - fail: a GPU's VBIOS is not in `versions`.
    - warn: the GPUs do not all run the same VBIOS.
    - skip: no GPU, or NVML unavailable.

    ## Fix
    Flash the fleet's VBIOS with the vendor's firmware update tool (nvfwupd on DGX).
    """
    values = {}
    findings: list[Finding] = []
    for gpu in inv.gpu.gpus:
        name = subject(inv, gpu)
        if isinstance(gpu.vbios, str):
            values[name] = gpu.vbios
        else:
            skip = no_answer(
                name,
                gpu.vbios if gpu.handle_error is None else gpu.handle_error,
                "nvmlDeviceGetVbiosVersion",
            )
            if skip:
                findings.append(skip)
    findings = judge_vbios(values, params) + findings
    versions = sorted(set(values.values()))
    return Verdict.from_findings(findings, ok=f"VBIOS {', '.join(versions)} on {len(values)} GPUs")


# -- persistence mode ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PersistenceParams:
    """required: persistence mode must be on (nvidia-persistenced running)."""

    required: bool = True


def judge_persistence(name: str, mode: object, required: bool) -> Finding:
    skip = no_answer(name, mode, "nvmlDeviceGetPersistenceMode")
    if skip:
        return skip
    ev = (Evidence(NVML + "nvmlDeviceGetPersistenceMode", "on" if mode == 1 else "off", "on"),)
    if mode == 1:
        return Finding(name, Status.PASS, "persistence mode on", ev)
    status = Status.FAIL if required else Status.PASS
    return Finding(name, status, "persistence mode off", ev)


@check(
    "gpu.persistence",
    title="GPU persistence mode is on",
    tags=("gpu", "nvml"),
    needs=("nvml",),
    params=PersistenceParams,
)
def persistence(inv: Inventory, params: PersistenceParams) -> Verdict:
    """Persistence mode is on for every GPU.

    ## Why
    Without persistence the driver tears the GPU state down when the last client exits and
    rebuilds it for the next one: every job start pays seconds of initialisation per GPU, NVML
    calls become slow, and ECC/remap state is re-read on each start.

    ## Reads
    `nvmlDeviceGetPersistenceMode` per GPU.

    ## Verdicts
    - pass: on for every GPU (or `required` is false).
    - fail: off on a GPU while `required`.
    - skip: no GPU, NVML unavailable, or not supported.

    ## Fix
    Enable `nvidia-persistenced` (`systemctl enable --now nvidia-persistenced`); `nvidia-smi
    -pm 1` is the legacy, non-persistent way.
    """
    findings = each_gpu(
        inv, lambda g, n: [judge_persistence(n, g.persistence_mode, params.required)]
    )
    return Verdict.from_findings(findings, ok=f"persistence mode on, {passed(findings)} GPUs")


# -- MIG ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigParams:
    """enabled: whether MIG should be on (off for training)."""

    enabled: bool = False


def judge_mig(name: str, mode: object, enabled: bool) -> Finding:
    want = "enabled" if enabled else "disabled"
    src = NVML + "nvmlDeviceGetMigMode"
    if isinstance(mode, NvmlError) and mode.not_available:
        status = Status.FAIL if enabled else Status.PASS
        return Finding(
            name, status, "MIG not supported on this GPU", (Evidence(src, "not supported", want),)
        )
    skip = no_answer(name, mode, "nvmlDeviceGetMigMode")
    if skip:
        return skip
    assert isinstance(mode, TwoStates)
    current = "enabled" if mode.current == 1 else "disabled"
    pending = "enabled" if mode.pending == 1 else "disabled"
    ev = (Evidence(src + " current", current, want), Evidence(src + " pending", pending, want))
    if current != want:
        return Finding(name, Status.FAIL, f"MIG {current}, expected {want}", ev)
    if pending != current:
        return Finding(name, Status.WARN, f"MIG change to {pending} pending (GPU reset)", ev)
    return Finding(name, Status.PASS, f"MIG {current}", ev)


@check(
    "gpu.mig",
    title="MIG mode as the baseline says (off for training)",
    tags=("gpu", "nvml"),
    needs=("nvml",),
    params=MigParams,
)
def mig(inv: Inventory, params: MigParams) -> Verdict:
    """MIG mode is as the baseline says on every GPU: disabled on training nodes.

    ## Why
    A GPU left in MIG mode exposes slices instead of the whole GPU: NCCL cannot use NVLink P2P
    between MIG instances and a training job sees the wrong device count or memory size.

    ## Reads
    `nvmlDeviceGetMigMode` (current, pending) per GPU.

    ## Verdicts
    - pass: current mode equals `enabled`, nothing pending.
    - fail: the current mode differs (or MIG is unsupported while `enabled`).
    - warn: a mode change is pending until the GPU is reset.
    - skip: no GPU, or NVML unavailable.

    ## Fix
    `nvidia-smi -i N -mig 0` (or `1`) and reset the GPU.
    """
    findings = each_gpu(inv, lambda g, n: [judge_mig(n, g.mig_mode, params.enabled)])
    state = "enabled" if params.enabled else "disabled"
    return Verdict.from_findings(findings, ok=f"MIG {state} on {passed(findings)} GPUs")
