"""GPU health through NVML: availability, identity, driver, memory errors, clocks, NVLink, fabric.

Every check here reads `inv.gpu`, the record the NVML collector returned from its child process;
none of them touches NVML. The runner skips them when the node has no GPU, and when NVML did not
answer (hung, crashed, failed to initialise) all but `gpu.nvml_available` skip and point at it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from preflight.active.collect import outcome as active_outcome
from preflight.active.judge import judge_burn, judge_copy, judge_gemm, judge_p2p, not_measured
from preflight.inventory import Inventory
from preflight.inventory.gpu import (
    NVML_CHECK,
    EccCounts,
    Fabric,
    Memory,
    NvLink,
    NvmlError,
    NvmlGpu,
    PcieNvml,
    Power,
    RemappedRows,
    RetiredPages,
    Temperature,
    TwoStates,
)
from preflight.inventory.sysfs_text import link_speed_generation
from preflight.model import Evidence, Finding, Status, Verdict, passed
from preflight.nvml.schema import ERROR_CODES, NODE_FAILURES, SYSTEM_FIELD_CALLS
from preflight.registry import NoParams, check

NVML = "nvml:"
MIB = 1 << 20


def subject(inv: Inventory, gpu: NvmlGpu) -> str:
    """The GPU as other checks name it (PCI order), or NVML's index when it gave no address."""
    dev = inv.pci.devices.get(gpu.bdf) if gpu.bdf else None
    if dev is not None and dev.is_gpu:
        return inv.pci.label(dev)
    pci = inv.pci.gpus()
    if gpu.bdf is None and inv.gpu.device_count == len(pci) and 0 <= gpu.index < len(pci):
        # NVML numbers GPUs in PCI bus order: with every GPU counted, index i is PCI GPU i.
        return f"{inv.pci.label(pci[gpu.index])} (by NVML index)"
    return f"NVML GPU{gpu.index} {gpu.bdf or '(no PCI address)'}"


def no_answer(name: str, value: object, call: str) -> Finding | None:
    """A SKIP finding when a field has no value: not supported, or an error judged elsewhere."""
    if isinstance(value, NvmlError):
        if value.not_available:
            return Finding(name, Status.SKIP, f"{call}: {value} on this GPU")
        return Finding(name, Status.SKIP, f"{call}: {value} (see {NVML_CHECK})")
    if value is None:
        return Finding(name, Status.SKIP, f"{call}: not collected")
    return None


def each_gpu(inv: Inventory, judge: Callable[[NvmlGpu, str], Iterable[Finding]]) -> list[Finding]:
    """Findings of judge() for every GPU NVML answered for; GPUs without a handle skip."""
    findings: list[Finding] = []
    for gpu in inv.gpu.gpus:
        name = subject(inv, gpu)
        if gpu.handle_error is not None:
            findings.append(
                Finding(name, Status.SKIP, f"no NVML handle: {gpu.handle_error} (see {NVML_CHECK})")
            )
            continue
        findings.extend(judge(gpu, name))
    return findings


def version_tuple(text: str) -> tuple[int, ...]:
    """ "565.57.01" -> (565, 57, 1); non-numeric parts end the tuple."""
    out = []
    for part in text.strip().split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


# -- NVML available ---------------------------------------------------------------------------


def judge_nvml_failure(kind: str, message: str, call: str | None, timeout_s: float) -> Finding:
    """The collector gave no record: it hung in a call, or it died."""
    if kind == "timeout":
        return Finding(
            "node",
            Status.FAIL,
            f"{message}: the driver is hung; drain the node",
            (
                Evidence(
                    NVML + (call or "nvmlInit"), "no answer", f"an answer within {timeout_s:g} s"
                ),
            ),
        )
    return Finding(
        "node",
        Status.FAIL,
        message,
        (Evidence(NVML + (call or "collector"), "no record", "a record"),),
    )


def judge_nvml_error(where: str, call: str, error: str) -> Finding:
    """One failed call: node failures (GpuIsLost, ResetRequired, ...) FAIL with their meaning,
    NotSupported/FunctionNotFound pass, anything else warns."""
    evidence = (Evidence(NVML + call, error, "success"),)
    if error in NODE_FAILURES:
        return Finding(where, Status.FAIL, f"{call}: {error}: {NODE_FAILURES[error]}", evidence)
    if error in ("NotSupported", "FunctionNotFound"):
        return Finding(where, Status.PASS, f"{call}: {error} (not available here)", evidence)
    return Finding(where, Status.WARN, f"{call}: {error}", evidence)


@check(
    "gpu.nvml_available",
    title="NVML answers for every GPU without hanging",
    tags=("gpu", "nvml"),
    needs=("nvml",),
)
def nvml_available(inv: Inventory, params: NoParams) -> Verdict:
    """NVML initialises and answers every call for every GPU within the NVML timeout.

    ## Why
    A GPU that is lost, needs a reset, or a driver whose kernel module and library differ
    after an upgrade makes every CUDA job on the node fail at start. NVML itself can block
    forever on a sick GPU (the caller sits in `D` state), which is exactly when the node must be
    drained. The other GPU checks skip and point here when NVML gives no answer.

    ## Reads
    Every NVML call of the collector (`nvmlInit`, `nvmlDeviceGetCount`, per GPU
    `nvmlDeviceGetHandleByIndex` and each property), run in a child process
    (`python -m preflight.nvml.child`) that is killed at `--nvml-timeout` (default 5 s); on a
    profile, the `nvml` section answers through the fake NVML.

    ## Verdicts
    - pass: NVML answered for every GPU; calls the GPU does not support (NotSupported,
      FunctionNotFound) are listed, not judged.
    - fail: a call did not return before the timeout (the call and GPU are named); the collector
      died; nvmlInit or a call failed with GpuIsLost, ResetRequired, LibRmVersionMismatch,
      DriverNotLoaded, LibraryNotFound, NoPermission, CorruptedInforom, Timeout or Unknown.
    - warn: another NVML error on one call.
    - skip: the node has no NVIDIA GPU, or the profile has no `nvml` section.

    ## Fix
    A hang or GpuIsLost: drain, reset the GPU (`nvidia-smi -r -i N`) or reboot; look for Xid 79,
    119 or 154 in `dmesg`. LibRmVersionMismatch: reboot after a driver upgrade. DriverNotLoaded:
    `modprobe nvidia` and read `dmesg`.
    """
    state = inv.gpu
    if state.failure is not None:
        f = state.failure
        finding = judge_nvml_failure(f.kind, f.message, f.call, f.timeout_s or 0.0)
        return Verdict(Status.FAIL, finding.message, (finding,))
    if state.init_error is not None:
        finding = judge_nvml_error("node", SYSTEM_FIELD_CALLS["init"], state.init_error.name)
        if finding.status is not Status.FAIL:
            finding = Finding("node", Status.FAIL, finding.message, finding.evidence)
        return Verdict.from_findings([finding], ok="")
    findings: list[Finding] = []
    for key in ("driver_version", "device_count"):
        value = getattr(state, key)
        if isinstance(value, NvmlError):
            findings.append(judge_nvml_error("node", SYSTEM_FIELD_CALLS[key], value.name))
    if isinstance(state.device_count, NvmlError):
        return Verdict.from_findings(
            [Finding("node", Status.FAIL, f.message, f.evidence) for f in findings], ok=""
        )
    for gpu in state.gpus:
        name = subject(inv, gpu)
        errors = gpu.call_errors()
        judged = [judge_nvml_error(name, call, err.name) for call, err in errors]
        bad = [f for f in judged if f.status is not Status.PASS]
        if bad:
            findings.extend(bad)
        else:
            unsupported = sorted({call for call, _ in errors})
            note = f"; not supported: {', '.join(unsupported)}" if unsupported else ""
            findings.append(Finding(name, Status.PASS, f"answered{note}"))
    driver = state.driver_version if isinstance(state.driver_version, str) else "?"
    return Verdict.from_findings(
        findings,
        ok=f"NVML {driver} answered for {len(state.gpus)} GPUs in {state.elapsed_s:.2f} s",
        empty="NVML reports no GPU",
        empty_status=Status.FAIL,
    )


# -- devices: count, names, PCI ---------------------------------------------------------------


@dataclass(frozen=True)
class DevicesParams:
    """expected = 0: as many as on the PCI bus; names: NVML product names allowed (any if empty)."""

    expected: int = 0
    names: tuple[str, ...] = ()


def judge_devices(
    pci_bdfs: list[str],
    nvml: Sequence[tuple[str, str | None, object]],
    count: int,
    params: DevicesParams,
) -> list[Finding]:
    """pci_bdfs: GPUs on the PCI bus; nvml: (subject, bdf, name) per NVML device."""
    findings: list[Finding] = []
    seen = {bdf for _, bdf, _ in nvml if bdf}
    missing = [b for b in pci_bdfs if b not in seen]
    unaddressed = sum(1 for _, bdf, _ in nvml if not bdf)
    evidence = (Evidence(NVML + "nvmlDeviceGetCount", count, f"== {len(pci_bdfs)} (PCI bus)"),)
    if count < len(pci_bdfs) and len(missing) > unaddressed:
        findings.append(
            Finding(
                "node",
                Status.FAIL,
                f"NVML sees {count} GPUs, {len(pci_bdfs)} on the PCI bus: "
                f"{', '.join(missing)} not initialised by the driver",
                evidence,
            )
        )
    elif count > len(pci_bdfs):
        findings.append(
            Finding(
                "node",
                Status.WARN,
                f"NVML sees {count} GPUs, {len(pci_bdfs)} on the PCI bus",
                evidence,
            )
        )
    if params.expected and count != params.expected:
        findings.append(
            Finding(
                "node",
                Status.FAIL,
                f"NVML sees {count} GPUs, expected {params.expected}",
                (Evidence(NVML + "nvmlDeviceGetCount", count, f"== {params.expected}"),),
            )
        )
    for label, bdf, name in nvml:
        if not bdf:
            findings.append(Finding(label, Status.SKIP, f"no PCI address (see {NVML_CHECK})"))
            continue
        if bdf not in pci_bdfs:
            findings.append(
                Finding(label, Status.WARN, "NVML device has no GPU at this address on the PCI bus")
            )
        if not isinstance(name, str):
            continue
        ev = (Evidence(NVML + "nvmlDeviceGetName", name, " or ".join(params.names) or None),)
        if params.names and name not in params.names:
            findings.append(
                Finding(label, Status.FAIL, f"{name}, expected {' or '.join(params.names)}", ev)
            )
        else:
            findings.append(Finding(label, Status.PASS, name, ev))
    return findings


@check(
    "gpu.nvml_devices",
    title="NVML sees every GPU on the PCI bus, of the expected model",
    tags=("gpu", "nvml"),
    needs=("nvml",),
    params=DevicesParams,
)
def nvml_devices(inv: Inventory, params: DevicesParams) -> Verdict:
    """NVML sees every GPU that is on the PCI bus, as many as the baseline expects, of its model.

    ## Why
    A GPU can enumerate on PCI yet fail to initialise in the driver (`RmInitAdapter failed`):
    `node.gpu_count` then passes, but CUDA sees one GPU fewer and an 8-rank job cannot start or
    silently runs 7 ranks. A wrong product (an H100 PCIe among SXM parts) changes NVLink and
    power.

    ## Reads
    `nvmlDeviceGetCount`, per GPU `nvmlDeviceGetPciInfo` (bus id) and `nvmlDeviceGetName`,
    compared with the NVIDIA GPUs in `/sys/bus/pci/devices`.

    ## Verdicts
    - pass: every PCI GPU is an NVML device, the count is as expected, each name allowed.
    - fail: NVML sees fewer GPUs than the PCI bus (named), not `expected`, or a name not in
      `names`.
    - warn: NVML reports a device at an address with no GPU in sysfs.
    - skip: no GPU on the node, or NVML unavailable (see gpu.nvml_available).

    ## Fix
    Read `dmesg | grep NVRM` for the GPU's address (RmInitAdapter, Xid 79); reset the GPU or
    reboot; reseat or replace a GPU that keeps failing to initialise.
    """
    state = inv.gpu
    pci = [g.bdf for g in inv.pci.gpus()]
    count = state.device_count if isinstance(state.device_count, int) else len(state.gpus)
    nvml = [(subject(inv, g), g.bdf, g.name) for g in state.gpus]
    findings = judge_devices(pci, nvml, count, params)
    names = sorted({n for _, _, n in nvml if isinstance(n, str)})
    return Verdict.from_findings(
        findings,
        ok=f"{count} GPUs in NVML, all on the PCI bus: {', '.join(names) or 'names unknown'}",
    )


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


# -- ECC ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EccParams:
    """required: ECC enabled; corrected errors since the driver loaded above the max warn."""

    required: bool = True
    max_volatile_corrected: int = 100


def judge_ecc(name: str, mode: object, counts: object, params: EccParams) -> list[Finding]:
    """ECC mode (current and pending) and the volatile/aggregate counts of one GPU."""
    skip = no_answer(name, mode, "nvmlDeviceGetEccMode")
    if skip:
        return [skip]
    assert isinstance(mode, TwoStates)
    findings: list[Finding] = []
    src = NVML + "nvmlDeviceGetEccMode"
    if mode.current != 1:
        status = Status.FAIL if params.required else Status.PASS
        findings.append(
            Finding(
                name, status, "ECC disabled", (Evidence(src + " current", "disabled", "enabled"),)
            )
        )
    if isinstance(mode.pending, int) and mode.pending != mode.current:
        want = "enabled" if mode.pending == 1 else "disabled"
        findings.append(
            Finding(
                name,
                Status.WARN,
                f"ECC change to {want} pending: takes effect after a GPU reset",
                (Evidence(src + " pending", want, "== current"),),
            )
        )
    if mode.current != 1:
        return findings
    skip = no_answer(name, counts, "nvmlDeviceGetTotalEccErrors")
    if skip:
        return [*findings, skip]
    assert isinstance(counts, EccCounts)
    src = NVML + "nvmlDeviceGetTotalEccErrors"
    vu, vc, au = (
        counts.volatile_uncorrected,
        counts.volatile_corrected,
        counts.aggregate_uncorrected,
    )
    evidence = (
        Evidence(src + " volatile uncorrected", _scalar(vu), "0"),
        Evidence(src + " volatile corrected", _scalar(vc), f"<= {params.max_volatile_corrected}"),
        Evidence(src + " aggregate uncorrected", _scalar(au)),
    )
    if isinstance(vu, int) and vu > 0:
        findings.append(
            Finding(
                name,
                Status.FAIL,
                f"{vu} uncorrectable ECC errors since the driver loaded: data was corrupted",
                evidence,
            )
        )
    if isinstance(vc, int) and vc > params.max_volatile_corrected:
        findings.append(
            Finding(
                name,
                Status.WARN,
                f"{vc} corrected ECC errors since the driver loaded "
                f"(> {params.max_volatile_corrected})",
                evidence,
            )
        )
    if not findings:
        findings.append(
            Finding(
                name,
                Status.PASS,
                f"ECC on, {_scalar(vu)} uncorrected, {_scalar(vc)} corrected",
                evidence,
            )
        )
    return findings


def _scalar(value: object) -> str | int | None:
    if isinstance(value, NvmlError):
        return str(value)
    return value if isinstance(value, (int, str)) else None


@check(
    "gpu.ecc",
    title="ECC is on and memory shows no uncorrectable errors",
    tags=("gpu", "nvml", "memory"),
    needs=("nvml",),
    params=EccParams,
)
def ecc(inv: Inventory, params: EccParams) -> Verdict:
    """ECC is enabled on every GPU, with no uncorrectable errors since the driver loaded.

    ## Why
    Without ECC a flipped HBM bit silently corrupts weights or gradients. An uncorrectable
    error since the driver loaded means some job already read bad data and the affected row
    awaits a remap; many corrected errors announce a failing memory stack.

    ## Reads
    `nvmlDeviceGetEccMode` (current, pending) and `nvmlDeviceGetTotalEccErrors` (corrected and
    uncorrected, volatile = since the driver loaded, aggregate = lifetime) per GPU.

    ## Verdicts
    - pass: ECC on, no volatile uncorrected error, corrected ones at most
      `max_volatile_corrected`.
    - fail: ECC off while `required`, or volatile uncorrected errors > 0.
    - warn: corrected errors above `max_volatile_corrected`; an ECC mode change pending.
    - skip: no GPU, NVML unavailable, or ECC not supported on the GPU.

    ## Fix
    `nvidia-smi -e 1` and reset the GPU to enable ECC. After uncorrectable errors: drain, reset
    the GPU (pending row remaps take effect), then check `gpu.row_remap`; replace the GPU when
    they come back.
    """
    findings = each_gpu(inv, lambda g, n: judge_ecc(n, g.ecc_mode, g.ecc_errors, params))
    return Verdict.from_findings(
        findings, ok=f"ECC on, no uncorrectable errors, {passed(findings)} GPUs"
    )


# -- row remapping -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowRemapParams:
    """Rows remapped for uncorrectable errors above the max warn."""

    max_uncorrectable_rows: int = 0


def judge_row_remap(
    name: str, rows: object, pages: object, params: RowRemapParams
) -> list[Finding]:
    """Remapped rows (Ampere and newer) and, on older GPUs, retired pages."""
    findings: list[Finding] = []
    if isinstance(rows, RemappedRows):
        src = NVML + "nvmlDeviceGetRemappedRows"
        evidence = (
            Evidence(src + " pending", _scalar(rows.pending), "0"),
            Evidence(src + " failure", _scalar(rows.failure), "0"),
            Evidence(
                src + " uncorrectable",
                _scalar(rows.uncorrected),
                f"<= {params.max_uncorrectable_rows}",
            ),
            Evidence(src + " correctable", _scalar(rows.corrected)),
        )
        if rows.failure == 1:
            findings.append(
                Finding(
                    name,
                    Status.FAIL,
                    "row remapping failed: a bank has no spare row left; the GPU needs an RMA",
                    evidence,
                )
            )
        if rows.pending == 1:
            findings.append(
                Finding(
                    name,
                    Status.FAIL,
                    "row remap pending: reset the GPU to activate it before the next job",
                    evidence,
                )
            )
        if isinstance(rows.uncorrected, int) and rows.uncorrected > params.max_uncorrectable_rows:
            findings.append(
                Finding(
                    name,
                    Status.WARN,
                    f"{rows.uncorrected} rows remapped for uncorrectable errors "
                    f"(> {params.max_uncorrectable_rows})",
                    evidence,
                )
            )
        if not findings:
            findings.append(
                Finding(
                    name,
                    Status.PASS,
                    f"no remap pending, {_scalar(rows.corrected)} correctable / "
                    f"{_scalar(rows.uncorrected)} uncorrectable rows remapped",
                    evidence,
                )
            )
        return findings
    if isinstance(pages, RetiredPages):
        src = NVML + "nvmlDeviceGetRetiredPagesPendingStatus"
        ev = (
            Evidence(src, _scalar(pages.pending), "0"),
            Evidence(NVML + "nvmlDeviceGetRetiredPages single-bit", _scalar(pages.single_bit_ecc)),
            Evidence(NVML + "nvmlDeviceGetRetiredPages double-bit", _scalar(pages.double_bit_ecc)),
        )
        if pages.pending == 1:
            return [Finding(name, Status.FAIL, "page retirement pending: reset the GPU", ev)]
        return [Finding(name, Status.PASS, "no page retirement pending", ev)]
    return [
        no_answer(name, rows, "nvmlDeviceGetRemappedRows")
        or Finding(name, Status.SKIP, "no answer")
    ]


@check(
    "gpu.row_remap",
    title="No GPU memory row remap pending or failed",
    tags=("gpu", "nvml", "memory"),
    needs=("nvml",),
    params=RowRemapParams,
)
def row_remap(inv: Inventory, params: RowRemapParams) -> Verdict:
    """No row remap is pending or has failed on any GPU (page retirement on older GPUs).

    ## Why
    Since Ampere a GPU repairs a failing HBM row by remapping it to a spare; the remap takes
    effect only after a GPU reset, and until then the bad row is still in use. A remapping
    failure means a bank ran out of spare rows: the GPU must be replaced.

    ## Reads
    `nvmlDeviceGetRemappedRows` per GPU (correctable, uncorrectable, pending, failure); where it
    is not supported (before Ampere), `nvmlDeviceGetRetiredPagesPendingStatus` and
    `nvmlDeviceGetRetiredPages`.

    ## Verdicts
    - pass: nothing pending, no failure.
    - fail: a remap (or page retirement) pending: reset needed; a remapping failure: RMA.
    - warn: more rows remapped for uncorrectable errors than `max_uncorrectable_rows`.
    - skip: no GPU, NVML unavailable, or neither mechanism supported.

    ## Fix
    Pending: drain the node and reset the GPU (`nvidia-smi -r -i N`) or reboot. Failure: open
    an RMA with the GPU's serial number and the `nvidia-smi -q` output.
    """
    findings = each_gpu(
        inv, lambda g, n: judge_row_remap(n, g.remapped_rows, g.retired_pages, params)
    )
    return Verdict.from_findings(
        findings, ok=f"no row remap pending or failed, {passed(findings)} GPUs"
    )


# -- clock event reasons -----------------------------------------------------------------------

# nvmlClocksEventReason* bits (nvml.h; the same bits as the older ClocksThrottleReason*).
CLOCK_REASONS = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}


@dataclass(frozen=True)
class ClocksParams:
    """Reason names (CLOCK_REASONS) that fail or warn; the others are informational."""

    fail_reasons: tuple[str, ...] = (
        "hw_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
    )
    warn_reasons: tuple[str, ...] = ("sw_thermal_slowdown",)


def reason_names(mask: int) -> list[str]:
    """The named bits set in a clock event reason mask, plus unknown bits in hex."""
    names = [n for n, bit in CLOCK_REASONS.items() if mask & bit]
    unknown = mask & ~sum(CLOCK_REASONS.values())
    if unknown:
        names.append(f"0x{unknown:x}")
    return names


def judge_clocks(name: str, mask: object, params: ClocksParams) -> Finding:
    skip = no_answer(name, mask, "nvmlDeviceGetCurrentClocksEventReasons")
    if skip:
        return skip
    assert isinstance(mask, int)
    active = reason_names(mask)
    ev = (
        Evidence(
            NVML + "nvmlDeviceGetCurrentClocksEventReasons",
            f"0x{mask:x} ({' '.join(active) or 'none'})",
        ),
    )
    failing = [r for r in active if r in params.fail_reasons]
    warning = [r for r in active if r in params.warn_reasons]
    if failing:
        return Finding(name, Status.FAIL, f"clocks held down by {', '.join(failing)}", ev)
    if warning:
        return Finding(name, Status.WARN, f"clocks held down by {', '.join(warning)}", ev)
    return Finding(name, Status.PASS, ", ".join(active) or "no clock event", ev)


@check(
    "gpu.clocks",
    title="No GPU clocks held down by hardware slowdown, thermal or power brake",
    tags=("gpu", "nvml", "thermal"),
    needs=("nvml",),
    params=ClocksParams,
)
def clocks(inv: Inventory, params: ClocksParams) -> Verdict:
    """No GPU's clocks are held down by hardware slowdown, thermal slowdown or power brake.

    ## Why
    A GPU in HW slowdown runs at a fraction of its clock: in a synchronous job every rank waits
    for it. HW slowdown and power brake are asserted by the board (PSU or cooling fault, external
    power brake signal); SW thermal slowdown means the GPU is running hot.

    ## Reads
    `nvmlDeviceGetCurrentClocksEventReasons` per GPU (`nvmlDeviceGetCurrentClocksThrottleReasons`
    on drivers before 535: the same bitmask).

    ## Verdicts
    - pass: none of `fail_reasons` / `warn_reasons` active; idle (0x1) is the healthy state of a
      GPU without work.
    - fail: a reason in `fail_reasons` (default HW slowdown 0x8, HW thermal 0x40, power brake
      0x80).
    - warn: a reason in `warn_reasons` (default SW thermal slowdown 0x20).
    - skip: no GPU, or NVML unavailable.

    ## Fix
    Check the chassis: fans, inlet temperature, PSU redundancy and BMC event log (`ipmitool sel
    list`); power brake is asserted by the platform, not the GPU.
    """
    unknown = [r for r in (*params.fail_reasons, *params.warn_reasons) if r not in CLOCK_REASONS]
    if unknown:
        return Verdict(
            Status.ERROR,
            f"unknown clock reason {unknown[0]!r} (known: {', '.join(CLOCK_REASONS)})",
        )
    findings = each_gpu(inv, lambda g, n: [judge_clocks(n, g.clock_event_reasons, params)])
    return Verdict.from_findings(findings, ok=f"no clock slowdown, {passed(findings)} GPUs")


# -- temperature and power ---------------------------------------------------------------------


@dataclass(frozen=True)
class TemperatureParams:
    """WARN within margin_c of the slowdown threshold; max_c > 0 adds an absolute limit."""

    margin_c: int = 10
    max_c: int = 0


def judge_temperature(name: str, temp: object, params: TemperatureParams) -> Finding:
    skip = no_answer(name, temp, "nvmlDeviceGetTemperature")
    if skip:
        return skip
    assert isinstance(temp, Temperature)
    current = temp.gpu
    if not isinstance(current, int):
        return no_answer(name, current, "nvmlDeviceGetTemperature") or Finding(
            name, Status.SKIP, "no temperature"
        )
    slowdown = temp.slowdown if isinstance(temp.slowdown, int) else None
    limit = (
        slowdown
        if slowdown is not None
        else (temp.gpu_max if isinstance(temp.gpu_max, int) else None)
    )
    src = NVML + "nvmlDeviceGetTemperature"
    expected = f"< {limit - params.margin_c} °C" if limit is not None else None
    ev = [Evidence(src, f"{current} °C", expected)]
    if limit is not None:
        ev.append(Evidence(NVML + "nvmlDeviceGetTemperatureThreshold", f"{limit} °C"))
    if params.max_c and current > params.max_c:
        return Finding(
            name, Status.FAIL, f"{current} °C, above the {params.max_c} °C limit", tuple(ev)
        )
    if limit is not None and current >= limit:
        return Finding(
            name,
            Status.FAIL,
            f"{current} °C, at or above the slowdown threshold {limit} °C",
            tuple(ev),
        )
    if limit is not None and current >= limit - params.margin_c:
        return Finding(
            name,
            Status.WARN,
            f"{current} °C, within {params.margin_c} °C of slowdown at {limit} °C",
            tuple(ev),
        )
    where = f" (slowdown at {limit} °C)" if limit is not None else ""
    return Finding(name, Status.PASS, f"{current} °C{where}", tuple(ev))


@check(
    "gpu.temperature",
    title="GPUs run well below their slowdown temperature",
    tags=("gpu", "nvml", "thermal"),
    needs=("nvml",),
    params=TemperatureParams,
)
def temperature(inv: Inventory, params: TemperatureParams) -> Verdict:
    """Every GPU runs well below its slowdown temperature.

    ## Why
    A GPU that is already hot before a job starts reaches its slowdown threshold under load and
    throttles, making the whole job wait for it; at idle it points at a cooling fault.

    ## Reads
    `nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)` and
    `nvmlDeviceGetTemperatureThreshold` (slowdown; max operating when slowdown is not
    reported) per GPU.

    ## Verdicts
    - pass: below the slowdown threshold minus `margin_c`.
    - fail: at or above the slowdown threshold, or above `max_c` when set.
    - warn: within `margin_c` of the slowdown threshold.
    - skip: no GPU, or NVML unavailable.

    ## Fix
    Check fans, airflow, inlet temperature and the BMC's thermal events; reseat the heatsink of
    a GPU that runs hotter than its neighbours.
    """
    findings = each_gpu(inv, lambda g, n: [judge_temperature(n, g.temperature, params)])
    return Verdict.from_findings(findings, ok=f"{passed(findings)} GPUs below slowdown temperature")


@dataclass(frozen=True)
class PowerParams:
    """min_limit_w: enforced power limit at least this (the board's TGP); 0 = not pinned."""

    min_limit_w: float = 0.0


def judge_power(name: str, power: object, params: PowerParams, majority_mw: int | None) -> Finding:
    skip = no_answer(name, power, "nvmlDeviceGetEnforcedPowerLimit")
    if skip:
        return skip
    assert isinstance(power, Power)
    limit = power.limit_mw
    if not isinstance(limit, int):
        return no_answer(name, limit, "nvmlDeviceGetEnforcedPowerLimit") or Finding(
            name, Status.SKIP, "no limit"
        )
    src = NVML + "nvmlDeviceGetEnforcedPowerLimit"
    want = (
        f">= {params.min_limit_w:g} W"
        if params.min_limit_w
        else (f"== {majority_mw / 1000:g} W" if majority_mw else None)
    )
    ev = [Evidence(src, f"{limit / 1000:g} W", want)]
    if isinstance(power.usage_mw, int):
        ev.append(Evidence(NVML + "nvmlDeviceGetPowerUsage", f"{power.usage_mw / 1000:.2f} W"))
    if params.min_limit_w and limit < params.min_limit_w * 1000:
        return Finding(
            name,
            Status.FAIL,
            f"power limit {limit / 1000:g} W, expected {params.min_limit_w:g} W",
            tuple(ev),
        )
    if majority_mw is not None and limit != majority_mw:
        return Finding(
            name,
            Status.WARN,
            f"power limit {limit / 1000:g} W, other GPUs {majority_mw / 1000:g} W",
            tuple(ev),
        )
    return Finding(name, Status.PASS, f"power limit {limit / 1000:g} W", tuple(ev))


@check(
    "gpu.power",
    title="No GPU power-capped below the node's limit",
    tags=("gpu", "nvml", "power"),
    needs=("nvml",),
    params=PowerParams,
)
def power(inv: Inventory, params: PowerParams) -> Verdict:
    """Every GPU's enforced power limit is the full limit, the same on all GPUs.

    ## Why
    A power cap left behind (`nvidia-smi -pl`, a datacenter power policy) makes one GPU slower
    than its peers under load; the whole synchronous job runs at its pace.

    ## Reads
    `nvmlDeviceGetEnforcedPowerLimit` and `nvmlDeviceGetPowerUsage` (milliwatts) per GPU.

    ## Verdicts
    - pass: limit at least `min_limit_w` (when pinned) and equal on every GPU.
    - fail: a limit below `min_limit_w`.
    - warn: a GPU's limit differs from the others'.
    - skip: no GPU, or NVML unavailable.

    ## Fix
    `nvidia-smi -pl <watts> -i N` back to the default limit (`nvidia-smi -q -d POWER` shows
    it), and find what set the cap (DCGM policy, a prolog script).
    """
    limits = [
        g.power.limit_mw
        for g in inv.gpu.gpus
        if isinstance(g.power, Power) and isinstance(g.power.limit_mw, int)
    ]
    majority = max(set(limits), key=limits.count) if limits else None
    findings = each_gpu(inv, lambda g, n: [judge_power(n, g.power, params, majority)])
    return Verdict.from_findings(
        findings,
        ok=f"power limit {majority / 1000 if majority else 0:g} W on {passed(findings)} GPUs",
    )


# -- NVLink --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NvlinkParams:
    """links: active links expected per GPU (0 = every link NVML reports); error counter maxima."""

    links: int = 0
    max_replay: int = 0
    max_recovery: int = 0
    max_crc: int = 0


def link_errors(link: NvLink, counters: tuple[str, ...]) -> int:
    """The sum of some error counters of one link (unanswered counters count 0)."""
    return sum(v for k, v in link.errors.items() if k in counters and isinstance(v, int))


def judge_nvlinks(name: str, links: object, params: NvlinkParams) -> list[Finding]:
    """Link states and error counters of one GPU."""
    if isinstance(links, NvmlError) and links.not_available:
        if params.links:
            return [
                Finding(
                    name,
                    Status.FAIL,
                    f"NVLink {links}, expected {params.links} active links",
                    (
                        Evidence(
                            NVML + "nvmlDeviceGetNvLinkState", str(links), f"{params.links} active"
                        ),
                    ),
                )
            ]
        return [Finding(name, Status.SKIP, "no NVLink on this GPU")]
    skip = no_answer(name, links, "nvmlDeviceGetNvLinkState")
    if skip:
        return [skip]
    assert isinstance(links, list)
    findings: list[Finding] = []
    active = [link.link for link in links if link.state == 1]
    down = [link.link for link in links if link.state == 0]
    unknown = [link.link for link in links if not isinstance(link.state, int)]
    want = params.links or len(links)
    src = NVML + "nvmlDeviceGetNvLinkState"
    if len(active) < want or down:
        listed = f" (down: {', '.join(map(str, down))})" if down else ""
        findings.append(
            Finding(
                name,
                Status.FAIL,
                f"{len(active)} of {want} NVLinks active{listed}",
                (Evidence(src, len(active), f">= {want} active"),),
            )
        )
    if unknown:
        findings.append(
            Finding(
                name,
                Status.WARN,
                f"NVLink state unreadable on links {', '.join(map(str, unknown))}",
            )
        )
    totals: dict[str, int] = {}
    for link in links:
        for counter, value in link.errors.items():
            if isinstance(value, int):
                totals[counter] = totals.get(counter, 0) + value
    csrc = NVML + "nvmlDeviceGetNvLinkErrorCounter"
    for label, counters, limit, status in (
        ("recovery", ("recovery",), params.max_recovery, Status.FAIL),
        ("replay", ("replay",), params.max_replay, Status.WARN),
        ("CRC", ("crc_flit", "crc_data"), params.max_crc, Status.WARN),
    ):
        value = sum(totals.get(c, 0) for c in counters)
        if value > limit:
            worst = max(links, key=functools.partial(link_errors, counters=counters))
            findings.append(
                Finding(
                    name,
                    status,
                    f"{value} NVLink {label} errors (> {limit}), most on link {worst.link}",
                    (Evidence(f"{csrc} {label}", value, f"<= {limit}"),),
                )
            )
    if not findings:
        findings.append(
            Finding(
                name,
                Status.PASS,
                f"{len(active)} NVLinks active, no errors",
                (Evidence(src, len(active), f">= {want} active"),),
            )
        )
    return findings


@check(
    "gpu.nvlink",
    title="Every NVLink is up and error-free",
    tags=("gpu", "nvml", "nvlink"),
    needs=("nvml",),
    params=NvlinkParams,
)
def nvlink(inv: Inventory, params: NvlinkParams) -> Verdict:
    """Every NVLink the GPU should have is active, with no recovery, replay or CRC errors.

    ## Why
    NCCL spreads intra-node traffic over all NVLinks; a GPU with links down moves its share over
    fewer links (or PCIe) and the whole all-reduce slows to its pace. Recovery events mean a link
    went down and retrained; replay and CRC errors announce a marginal link.

    ## Reads
    `nvmlDeviceGetNvLinkState` for every link number, and `nvmlDeviceGetNvLinkErrorCounter`
    (replay, recovery, CRC flit, CRC data) of each link that answers.

    ## Verdicts
    - pass: `links` links active per GPU (every reported link when 0), counters within limits.
    - fail: a link inactive or fewer active than `links`; recovery errors above `max_recovery`.
    - warn: replay errors above `max_replay` or CRC errors above `max_crc`.
    - skip: no GPU, NVML unavailable, or a GPU without NVLink when `links` is 0.

    ## Fix
    Reset the GPU; if links stay down, check Fabric Manager (`gpu.fabric`) and the baseboard
    (NVSwitch tray, HGX board); growing error counters call for a service ticket.
    """
    findings = each_gpu(inv, lambda g, n: judge_nvlinks(n, g.nvlinks, params))
    return Verdict.from_findings(findings, ok=f"NVLinks up and clean on {passed(findings)} GPUs")


# -- PCIe via NVML -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuPcieParams:
    """Expected NVML max generation and width (0 = not pinned); replays above max warn."""

    gen: int = 0
    width: int = 0
    max_replays: int = 100


def judge_gpu_pcie(
    name: str,
    nvml: object,
    sysfs_max: tuple[int | None, int | None],
    sysfs_width: int | None,
    params: GpuPcieParams,
) -> list[Finding]:
    """NVML's view of the GPU link against sysfs and the baseline, and its replay counter."""
    skip = no_answer(name, nvml, "nvmlDeviceGetMaxPcieLinkGeneration")
    if skip:
        return [skip]
    assert isinstance(nvml, PcieNvml)
    findings: list[Finding] = []
    src = NVML + "nvmlDeviceGet"
    sys_gen, sys_width = sysfs_max
    pairs = (
        ("max generation", nvml.max_gen, sys_gen, "MaxPcieLinkGeneration", "max_link_speed"),
        ("max width", nvml.max_width, sys_width, "MaxPcieLinkWidth", "max_link_width"),
        ("width", nvml.current_width, sysfs_width, "CurrPcieLinkWidth", "current_link_width"),
    )
    for what, got, sysfs, call, attr in pairs:
        if isinstance(got, int) and sysfs is not None and got != sysfs:
            findings.append(
                Finding(
                    name,
                    Status.WARN,
                    f"NVML and sysfs disagree on the link {what}: {got} vs {sysfs}",
                    (
                        Evidence(src + call, got, f"== {sysfs}"),
                        Evidence(f"sysfs:{attr}", sysfs),
                    ),
                )
            )
    for what, got, want, call in (
        ("generation", nvml.max_gen, params.gen, "MaxPcieLinkGeneration"),
        ("width", nvml.max_width, params.width, "MaxPcieLinkWidth"),
    ):
        if want and isinstance(got, int) and got < want:
            findings.append(
                Finding(
                    name,
                    Status.FAIL,
                    f"link max {what} {got}, expected {want}",
                    (Evidence(src + call, got, f">= {want}"),),
                )
            )
    replays = nvml.replay_counter
    if isinstance(replays, int) and replays > params.max_replays:
        findings.append(
            Finding(
                name,
                Status.WARN,
                f"{replays} PCIe replays since reset (> {params.max_replays}): a marginal link",
                (Evidence(src + "PcieReplayCounter", replays, f"<= {params.max_replays}"),),
            )
        )
    if not findings:
        findings.append(
            Finding(
                name,
                Status.PASS,
                f"Gen{_scalar(nvml.max_gen)} x{_scalar(nvml.max_width)}, "
                f"{_scalar(replays)} replays, agrees with sysfs",
                (
                    Evidence(
                        src + "PcieReplayCounter", _scalar(replays), f"<= {params.max_replays}"
                    ),
                ),
            )
        )
    return findings


@check(
    "gpu.pcie",
    title="NVML's view of the GPU links agrees with sysfs; few PCIe replays",
    tags=("gpu", "nvml", "pcie"),
    needs=("nvml",),
    params=GpuPcieParams,
)
def pcie(inv: Inventory, params: GpuPcieParams) -> Verdict:
    """NVML's maximum PCIe generation and width of each GPU agree with sysfs, replays are few.

    ## Why
    NVML reports the link the GPU and the platform can reach; when it disagrees with what the
    kernel enumerated, one of them is misconfigured (a riser, a BIOS link setting, a virtualised
    topology). The PCIe replay counter grows on a link with signal-integrity problems long
    before it fails.

    ## Reads
    `nvmlDeviceGetMaxPcieLinkGeneration`, `...MaxPcieLinkWidth`, `...CurrPcieLinkWidth`,
    `nvmlDeviceGetPcieReplayCounter` per GPU, and `/sys/bus/pci/devices/<bdf>/max_link_speed`,
    `max_link_width`, `current_link_width` of the GPU and the port above it. Current speed is not
    compared: idle GPUs train down.

    ## Verdicts
    - pass: NVML and sysfs agree, max generation/width reach `gen`/`width` when pinned, replays
      at most `max_replays`.
    - fail: NVML max generation or width below the pinned value.
    - warn: NVML and sysfs disagree; replays above `max_replays`.
    - skip: no GPU, or NVML unavailable.

    ## Fix
    See `pcie.link` for a narrow or slow link; many replays: reseat the GPU or its riser and
    check AER errors on the same link (`pcie.aer`).
    """

    def judge(gpu: NvmlGpu, name: str) -> list[Finding]:
        dev = inv.pci.devices.get(gpu.bdf) if gpu.bdf else None
        sys_gen = sys_width = cur_width = None
        if dev is not None:
            parent = inv.pci.devices.get(dev.parent) if dev.parent else None
            speeds = [
                s for s in (dev.max_link_speed, parent.max_link_speed if parent else None) if s
            ]
            widths = [
                w for w in (dev.max_link_width, parent.max_link_width if parent else None) if w
            ]
            try:
                sys_gen = link_speed_generation(min(speeds)) if speeds else None
            except ValueError:
                sys_gen = None
            sys_width = min(widths) if widths else None
            cur_width = dev.current_link_width
        return judge_gpu_pcie(name, gpu.pcie, (sys_gen, sys_width), cur_width, params)

    findings = each_gpu(inv, judge)
    return Verdict.from_findings(findings, ok=f"{passed(findings)} GPU links agree with sysfs")


# -- fabric ------------------------------------------------------------------------------------

FABRIC_STATES = {0: "not supported", 1: "not started", 2: "in progress", 3: "completed"}
# healthMask fields (nvml.h NVML_GPU_FABRIC_HEALTH_MASK_*): (name, shift, width, bad values, status)
FABRIC_HEALTH = (
    ("degraded bandwidth", 0, 0x3, {1}, Status.WARN),
    ("route recovery in progress", 2, 0x3, {1}, Status.WARN),
    ("route unhealthy", 4, 0x3, {1}, Status.FAIL),
    ("access timeout recovery", 6, 0x3, {1}, Status.WARN),
    ("incorrect configuration", 8, 0xF, set(range(2, 16)), Status.FAIL),
)
RETURN_NAMES = {code: name for name, code in ERROR_CODES.items()}


@dataclass(frozen=True)
class FabricParams:
    """required: the node has NVSwitches, so every GPU must have joined the fabric."""

    required: bool = False


def judge_fabric(name: str, fabric: object, required: bool) -> Finding:
    src = NVML + "nvmlDeviceGetGpuFabricInfoV"
    if (isinstance(fabric, NvmlError) and fabric.not_available) or (
        isinstance(fabric, Fabric) and fabric.state == 0
    ):
        if required:
            return Finding(
                name,
                Status.FAIL,
                "no fabric state (NotSupported), but the baseline expects an NVSwitch fabric",
                (Evidence(src, "not supported", "completed"),),
            )
        return Finding(name, Status.SKIP, "not an NVSwitch system (fabric state not supported)")
    skip = no_answer(name, fabric, "nvmlDeviceGetGpuFabricInfoV")
    if skip:
        return skip
    assert isinstance(fabric, Fabric)
    state = (
        FABRIC_STATES.get(fabric.state, str(fabric.state))
        if isinstance(fabric.state, int)
        else str(fabric.state)
    )
    if fabric.state != 3:
        return Finding(
            name,
            Status.FAIL,
            f"fabric {state}: the GPU has not joined the NVLink fabric (is nvidia-fabricmanager "
            "running?); CUDA fails with 'system not yet initialized'",
            (Evidence(src + " state", state, "completed"),),
        )
    # "status ... must be checked only if state returns complete" (NVML docs).
    if fabric.status != 0:
        status_name = (
            RETURN_NAMES.get(fabric.status, str(fabric.status))
            if isinstance(fabric.status, int)
            else str(fabric.status)
        )
        return Finding(
            name,
            Status.FAIL,
            f"fabric registration completed with error {status_name}",
            (Evidence(src + " status", status_name, "Success"),),
        )
    ev = (Evidence(src, "completed, success", "completed, success"),)
    mask = fabric.health_mask if isinstance(fabric.health_mask, int) else 0
    problems = [
        (label, status)
        for label, shift, width, bad, status in FABRIC_HEALTH
        if (mask >> shift) & width in bad
    ]
    if problems:
        worst = Status.FAIL if any(s is Status.FAIL for _, s in problems) else Status.WARN
        return Finding(
            name,
            worst,
            "fabric health: " + ", ".join(label for label, _ in problems),
            (*ev, Evidence(src + " healthMask", f"0x{mask:x}")),
        )
    return Finding(name, Status.PASS, f"fabric completed, clique {_scalar(fabric.clique_id)}", ev)


@check(
    "gpu.fabric",
    title="Every GPU joined the NVSwitch fabric",
    tags=("gpu", "nvml", "nvlink"),
    needs=("nvml",),
    params=FabricParams,
)
def fabric(inv: Inventory, params: FabricParams) -> Verdict:
    """On NVSwitch systems every GPU's fabric state is Completed with status Success.

    ## Why
    On HGX/DGX H100 and H200 the GPUs reach each other through NVSwitches that Fabric Manager
    configures at boot. Until a GPU has joined the fabric, CUDA initialisation fails with error
    802 "system not yet initialized"; a degraded fabric routes traffic over fewer links.

    ## Reads
    `nvmlDeviceGetGpuFabricInfoV` per GPU (state, status, health mask), or
    `nvmlDeviceGetGpuFabricInfo` on drivers without the versioned call.

    ## Verdicts
    - pass: state Completed, status Success, no unhealthy bit in the health mask.
    - fail: state Not Started or In Progress, a non-success status, an unhealthy route or
      incorrect configuration, or no fabric support while `required`.
    - warn: degraded bandwidth or a recovery in progress in the health mask.
    - skip: no GPU, NVML unavailable, or no fabric (PCIe GPUs, pre-Hopper) when not `required`.

    ## Fix
    `systemctl status nvidia-fabricmanager` (its version must equal the driver's), read
    `/var/log/fabricmanager.log`, restart it; on DGX also check the NVSwitch trays.
    """
    findings = each_gpu(inv, lambda g, n: [judge_fabric(n, g.fabric, params.required)])
    return Verdict.from_findings(findings, ok=f"fabric completed on {passed(findings)} GPUs")


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


# -- processes and memory in use ---------------------------------------------------------------


@dataclass(frozen=True)
class ProcessesParams:
    """Compute processes allowed (names in `allow` never count) and memory in use, in MiB."""

    max_processes: int = 0
    max_used_mib: int = 1024
    allow: tuple[str, ...] = ()


def judge_processes(name: str, procs: object, memory: object, params: ProcessesParams) -> Finding:
    skip = no_answer(name, procs, "nvmlDeviceGetComputeRunningProcesses")
    if skip:
        return skip
    assert isinstance(procs, list)
    foreign = [p for p in procs if not (p.name and p.name.rsplit("/", 1)[-1] in params.allow)]
    ev = [
        Evidence(
            NVML + "nvmlDeviceGetComputeRunningProcesses",
            ", ".join(f"{p.pid} {p.name or '?'}" for p in foreign) or "none",
            f"<= {params.max_processes} processes",
        )
    ]
    problems = []
    if len(foreign) > params.max_processes:
        listed = ", ".join(
            f"pid {p.pid} ({p.name or 'unknown'}"
            + (f", {p.used_memory // MIB} MiB" if p.used_memory is not None else "")
            + ")"
            for p in foreign[:3]
        )
        problems.append(f"{len(foreign)} compute processes: {listed}")
    if isinstance(memory, Memory) and isinstance(memory.used, int):
        # The v2 call reports the driver's reservation apart; v1 counts it as used.
        used = memory.used
        ev.append(
            Evidence(
                NVML + "nvmlDeviceGetMemoryInfo used",
                f"{used // MIB} MiB",
                f"<= {params.max_used_mib} MiB",
            )
        )
        if used > params.max_used_mib * MIB:
            problems.append(f"{used // MIB} MiB of GPU memory in use")
    if problems:
        return Finding(name, Status.FAIL, "; ".join(problems), tuple(ev))
    return Finding(name, Status.PASS, "idle: no foreign process, memory free", tuple(ev))


@check(
    "gpu.processes",
    title="No leftover process holds a GPU or its memory",
    tags=("gpu", "nvml"),
    needs=("nvml",),
    params=ProcessesParams,
)
def processes(inv: Inventory, params: ProcessesParams) -> Verdict:
    """No compute process from an earlier job runs on a GPU, and its memory is free.

    ## Why
    A process left over from a previous job (a hung rank, a zombie dataloader holding a CUDA
    context) keeps GPU memory and time: the next job runs out of memory or runs slowly on that
    GPU only.

    ## Reads
    `nvmlDeviceGetComputeRunningProcesses` (with `nvmlSystemGetProcessName`) and
    `nvmlDeviceGetMemoryInfo` (v2: used memory without the driver's reservation) per GPU.

    ## Verdicts
    - pass: at most `max_processes` compute processes not in `allow`, at most `max_used_mib`
      MiB in use.
    - fail: more processes, or more memory in use.
    - skip: no GPU, or NVML unavailable (processes of other PID namespaces have no name).

    ## Fix
    Find the process (`nvidia-smi --query-compute-apps=pid,name,used_memory --format=csv`) and
    end it; a process that cannot be killed (D state) needs a GPU reset or a reboot.
    """
    findings = each_gpu(inv, lambda g, n: [judge_processes(n, g.processes, g.memory, params)])
    return Verdict.from_findings(findings, ok=f"{passed(findings)} GPUs idle and free")


# -- active tests (tier 2+): measured in worker processes before the checks, judged here --------

ACTIVE_HOW = "run `preflight run --level 2` (or --only naming this check)"
CPU_SIZES = {"bytes": 1 << 20, "iters": 3, "n": 64}
"""The test-only CPU device (PREFLIGHT_ACTIVE_TEST_DEVICE=cpu) uses tiny sizes."""


@dataclass(frozen=True)
class CopyParams:
    """link_efficiency: H2D/D2H floor as a fraction of the PCIe link (aznhc requires >= 48 GB/s
    on H100 = 0.76 of Gen5 x16's 63 GB/s); min_d2d_gbps: device-local floor from the HBM spec;
    peer_tolerance: how far below the node's median a GPU may be."""

    TEST: ClassVar[str] = "copy"
    link_efficiency: float = 0.76
    min_d2d_gbps: float = 0.0
    peer_tolerance: float = 0.15
    bytes: int = 1 << 28
    iters: int = 10
    timeout_s: float = 30.0

    def worker_params(self, kind: str) -> dict[str, Any]:
        if kind == "cpu":
            return {"bytes": CPU_SIZES["bytes"], "iters": CPU_SIZES["iters"]}
        return {"bytes": self.bytes, "iters": self.iters}


@check(
    "gpu.copy_bandwidth",
    title="Every GPU copies host↔device and device-local at its link's and HBM's speed",
    tags=("gpu", "active"),
    params=CopyParams,
    tier=2,
)
def copy_bandwidth(inv: Inventory, params: CopyParams) -> Verdict:
    """Each GPU's pinned host↔device and device-local copies reach the speed of its link and HBM.

    ## Why
    A GPU behind a marginal riser or retimer, or with degraded HBM, still enumerates with the
    right link registers but moves data slowly: every data-loader copy and every NCCL step that
    stages through the host waits for it. Measuring is the only direct proof.

    ## Reads
    A worker process per GPU (torch, all GPUs at once): pinned host→device, device→host and
    device-local copies of `bytes` bytes, `iters` times (GB = 1e9 bytes; the device-local copy
    counts each byte read and written). The GPU's current PCIe link (sysfs) gives the floor.

    ## Verdicts
    - pass: H2D and D2H at or above `link_efficiency` × the link's raw bandwidth, device-local at
      or above `min_d2d_gbps` (0 = no floor), and none more than `peer_tolerance` below the
      node's median.
    - fail: a figure below its floor or below its peers, or a worker that hung past `timeout_s`
      (a wedged GPU, named).
    - error: torch is not installed, or a worker ended without a record.
    - skip: level 1 (not measured), a mocked profile, or no GPU on this node.

    ## Fix
    Slow H2D/D2H on one GPU: reseat or replace its riser/retimer/cable (`pcie.link`,
    `pcie.aer` for errors); slow device-local copies: run `dcgmi diag -r 3` (memory bandwidth)
    and RMA the GPU if it fails; all GPUs slow: check clocks and `cpu.governor`.
    """
    o = active_outcome(inv, "copy")
    early = not_measured(o, ACTIVE_HOW)
    if early is not None or o is None:
        return early or Verdict.skip("not measured")
    gpus = inv.pci.gpus()
    links = {i: (g.current_link_speed, g.current_link_width) for i, g in enumerate(gpus)}
    return judge_copy(o, links, params.link_efficiency, params.min_d2d_gbps, params.peer_tolerance)


@dataclass(frozen=True)
class P2pParams:
    """min_gbps: floor per ordered GPU pair (aznhc: >= 335 GB/s on H100 NVLink); peer_tolerance:
    how far below the median of all pairs a pair may be."""

    TEST: ClassVar[str] = "p2p"
    min_gbps: float = 0.0
    peer_tolerance: float = 0.15
    bytes: int = 1 << 28
    iters: int = 10
    timeout_s: float = 60.0

    def worker_params(self, kind: str) -> dict[str, Any]:
        if kind == "cpu":
            return {"bytes": CPU_SIZES["bytes"], "iters": CPU_SIZES["iters"]}
        return {"bytes": self.bytes, "iters": self.iters}


@check(
    "gpu.p2p_bandwidth",
    title="Every GPU pair copies peer-to-peer at NVLink (or PCIe) speed",
    tags=("gpu", "active"),
    params=P2pParams,
    tier=2,
)
def p2p_bandwidth(inv: Inventory, params: P2pParams) -> Verdict:
    """Every ordered pair of GPUs copies peer-to-peer at the node's NVLink or PCIe speed.

    ## Why
    One degraded NVLink or NVSwitch port slows only the pairs that cross it; every collective
    that uses that pair runs at its speed. The link counters may show nothing.

    ## Reads
    One worker process that sees every GPU (torch): a `bytes`-byte copy from each GPU to each
    other GPU, `iters` times (GB = 1e9 bytes), and whether CUDA reports peer access.

    ## Verdicts
    - pass: every pair at or above `min_gbps` (0 = no floor) and within `peer_tolerance` of the
      median of all pairs.
    - fail: a pair below the floor or below its peers (named), or the worker hung past
      `timeout_s`.
    - error: torch is not installed, or the worker ended without a record.
    - skip: level 1, a mocked profile, or fewer than 2 GPUs.

    ## Fix
    `nvidia-smi nvlink -s` and `nvidia-smi nvlink -e` for down or erroring links on the named
    GPUs, `nvidia-smi topo -m`; on NVSwitch systems check the fabric manager (`gpu.fabric`);
    reseat or RMA the baseboard when a link stays down.
    """
    o = active_outcome(inv, "p2p")
    early = not_measured(o, ACTIVE_HOW)
    if early is not None or o is None:
        return early or Verdict.skip("not measured")
    return judge_p2p(o, params.min_gbps, params.peer_tolerance)


@dataclass(frozen=True)
class GemmParams:
    """min_tflops: BF16 dense floor (spec sheet: H100/H200 SXM 989 TFLOPS dense; a healthy GPU
    reaches about 60-75% of it on n=8192); peer_tolerance: fraction below the median."""

    TEST: ClassVar[str] = "gemm"
    min_tflops: float = 0.0
    peer_tolerance: float = 0.10
    n: int = 8192
    iters: int = 20
    timeout_s: float = 60.0

    def worker_params(self, kind: str) -> dict[str, Any]:
        if kind == "cpu":
            return {"n": CPU_SIZES["n"], "iters": CPU_SIZES["iters"]}
        return {"n": self.n, "iters": self.iters}


@check(
    "gpu.gemm",
    title="Every GPU multiplies BF16 matrices at speed and gets the same bits as its peers",
    tags=("gpu", "active"),
    params=GemmParams,
    tier=2,
)
def gemm(inv: Inventory, params: GemmParams) -> Verdict:
    """Every GPU computes a BF16 matrix product at speed, bit for bit the same as its peers.

    ## Why
    A GPU that computes wrong values (a faulty SM, HBM or SRAM; Meta's Llama 3 report counts
    faulty GPUs and HBM as the largest share of interruptions) corrupts training silently;
    one that computes slowly stalls every synchronous step.

    ## Reads
    A worker process per GPU (torch, all GPUs at once): the same `n`×`n` BF16 inputs (fixed
    seed) multiplied `iters` times, TFLOPS = 2n³ per product, and the SHA-256 of the output.

    ## Verdicts
    - pass: every GPU at or above `min_tflops` (0 = no floor), within `peer_tolerance` of the
      node's median, and every output hash equal.
    - fail: a GPU whose output differs from its peers' (silent data corruption, named), below
      the floor or its peers, or hung past `timeout_s`.
    - error: torch is not installed, or a worker ended without a record.
    - skip: level 1, a mocked profile, or no GPU on this node.

    ## Fix
    A differing output: drain the node, run `dcgmi diag -r 3` and RMA the GPU. Slow: look at
    `gpu.clocks`, `gpu.power` and `gpu.burn` for throttling.
    """
    o = active_outcome(inv, "gemm")
    early = not_measured(o, ACTIVE_HOW)
    if early is not None or o is None:
        return early or Verdict.skip("not measured")
    return judge_gemm(o, params.min_tflops, params.peer_tolerance)


@dataclass(frozen=True)
class BurnParams:
    """duration_s: how long each GPU runs GEMM (30 s for a prolog; 300 s or more with
    --set gpu.burn.duration_s at bring-up); sample_s: how often NVML is sampled."""

    TEST: ClassVar[str] = "burn"
    duration_s: float = 30.0
    window_s: float = 2.0
    sample_s: float = 5.0
    min_tflops: float = 0.0
    peer_tolerance: float = 0.10
    n: int = 8192
    timeout_s: float = 90.0

    def worker_params(self, kind: str) -> dict[str, Any]:
        if kind == "cpu":
            return {"n": CPU_SIZES["n"], "duration_s": min(self.duration_s, 1.0), "window_s": 0.2}
        return {"n": self.n, "duration_s": self.duration_s, "window_s": self.window_s}


@check(
    "gpu.burn",
    title="Every GPU holds its GEMM rate under sustained load without slowing down",
    tags=("gpu", "active"),
    params=BurnParams,
    tier=2,
)
def burn(inv: Inventory, params: BurnParams) -> Verdict:
    """Every GPU sustains its matrix-multiply rate for the burn, with no thermal or power slowdown.

    ## Why
    A GPU with a failing fan, a dried thermal interface or a weak power supply passes short
    tests and slows down after tens of seconds of load; the whole job then runs at its pace.

    ## Reads
    A worker process per GPU running BF16 GEMM for `duration_s` (TFLOPS per `window_s`), and
    NVML records every `sample_s` meanwhile (the NVML collector child):
    `nvmlDeviceGetCurrentClocksEventReasons` per GPU.

    ## Verdicts
    - pass: sustained TFLOPS (median of the second half) at or above `min_tflops` (0 = no floor)
      and within `peer_tolerance` of the node's median; no slowdown reason while burning.
    - warn: held at the software power cap, or an NVML sample failed.
    - fail: HW slowdown, thermal slowdown or power brake during the burn, a GPU below its peers
      (it holds a lower clock), or a worker hung past `timeout_s`.
    - error: torch is not installed, or a worker ended without a record.
    - skip: level 1, a mocked profile, or no GPU on this node.

    ## Fix
    Thermal slowdown: check fans, airflow and the inlet temperature (`nvidia-smi -q -d
    TEMPERATURE`); power brake: the PSUs and the BMC's power policy; a GPU slower than its
    peers with no reason: `nvidia-smi -q -d CLOCK`, then `dcgmi diag -r 3`.
    """
    o = active_outcome(inv, "burn")
    early = not_measured(o, ACTIVE_HOW)
    if early is not None or o is None:
        return early or Verdict.skip("not measured")
    return judge_burn(o, params.min_tflops, params.peer_tolerance)
