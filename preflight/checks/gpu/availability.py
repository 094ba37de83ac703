"""Whether NVML answers, and the GPUs it sees: availability, devices, processes using them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from preflight.checks.gpu.common import MIB, NVML, NVML_CHECK, each_gpu, no_answer, subject
from preflight.inventory import Inventory
from preflight.inventory.gpu import (
    NODE_FAILURES,
    SYSTEM_FIELD_CALLS,
    Memory,
    NvmlError,
)
from preflight.model import Action, Evidence, Finding, Status, Verdict, passed
from preflight.registry import NoParams, check, param
from preflight.remediation import gpu_reset_text

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
            action=Action.REBOOT,
            action_text=(
                "drain and reboot the node (a hung driver does not let go of the GPU); "
                "look for Xid 79, 119 or 154 in `dmesg` first"
            ),
        )
    return Finding(
        "node",
        Status.FAIL,
        message,
        (Evidence(NVML + (call or "collector"), "no record", "a record"),),
    )


NVML_ERROR_CLASS = {
    "GpuIsLost": Action.RESET_GPU,
    "ResetRequired": Action.RESET_GPU,
    "Timeout": Action.RESET_GPU,
    "Unknown": Action.RESET_GPU,
    "LibRmVersionMismatch": Action.REBOOT,
    "DriverNotLoaded": Action.FIX_CONFIG,
    "LibraryNotFound": Action.FIX_CONFIG,
    "NoPermission": Action.FIX_CONFIG,
    "CorruptedInforom": Action.REPLACE,
}
"""What each node failure of NVML asks for (its meaning in NODE_FAILURES says how)."""


def judge_nvml_error(where: str, call: str, error: str) -> Finding:
    """One failed call: node failures (GpuIsLost, ResetRequired, ...) FAIL with their meaning,
    NotSupported/FunctionNotFound pass, anything else warns."""
    evidence = (Evidence(NVML + call, error, "success"),)
    if error in NODE_FAILURES:
        action = NVML_ERROR_CLASS.get(error, Action.RESET_GPU)
        return Finding(
            where,
            Status.FAIL,
            f"{call}: {error}: {NODE_FAILURES[error]}",
            evidence,
            action=action,
            action_text=gpu_reset_text(where) if action is Action.RESET_GPU else None,
        )
    if error in ("NotSupported", "FunctionNotFound"):
        return Finding(where, Status.PASS, f"{call}: {error} (not available here)", evidence)
    return Finding(where, Status.WARN, f"{call}: {error}", evidence)


@check(
    "gpu.nvml_available",
    title="NVML answers for every GPU without hanging",
    tags=("gpu", "nvml"),
    needs=("nvml",),
    action=Action.RESET_GPU,
    warn_action=Action.MONITOR,
    actions=(Action.REBOOT, Action.REPLACE, Action.FIX_CONFIG),
    provides=("nvml",),
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
            finding = replace(finding, subject="node", status=Status.FAIL)
        return Verdict.from_findings([finding], ok="")
    findings: list[Finding] = []
    for key in ("driver_version", "device_count"):
        value = getattr(state, key)
        if isinstance(value, NvmlError):
            findings.append(judge_nvml_error("node", SYSTEM_FIELD_CALLS[key], value.name))
    if isinstance(state.device_count, NvmlError):
        return Verdict.from_findings(
            [replace(f, subject="node", status=Status.FAIL) for f in findings], ok=""
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

    expected: int = param(0, "GPUs NVML must see; unset: as many as on the PCI bus.", unset=True)
    names: tuple[str, ...] = param(
        (), "NVML product names allowed (NVIDIA H100 80GB HBM3); any when empty."
    )


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
                action_text=(
                    f"read `dmesg | grep NVRM` for {', '.join(missing)} (RmInitAdapter, Xid 79), "
                    "then drain and reboot the node; reseat or replace a GPU that stays missing"
                ),
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
                Finding(
                    label,
                    Status.FAIL,
                    f"{name}, expected {' or '.join(params.names)}",
                    ev,
                    action=Action.REPLACE,
                    action_text=f"replace {label} with a {' or '.join(params.names)}, or fix the "
                    "baseline's `names` if this model is intended",
                )
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
    action=Action.REBOOT,
    warn_action=Action.MONITOR,
    actions=(Action.REPLACE,),
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


# -- processes and memory in use ---------------------------------------------------------------


@dataclass(frozen=True)
class ProcessesParams:
    """Compute processes allowed (names in `allow` never count) and memory in use, in MiB."""

    max_processes: int = param(0, "Compute processes allowed on a GPU before a job starts.")
    max_used_mib: int = param(1024, "GPU memory in use allowed before a job starts, MiB.")
    allow: tuple[str, ...] = param((), "Process names that never count (a monitoring agent).")


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
        pids = ", ".join(str(p.pid) for p in foreign[:3]) or "the memory's owner"
        todo = (
            f"end the leftover processes on {name} ({pids}; `nvidia-smi "
            "--query-compute-apps=pid,name,used_memory --format=csv`); one in D state needs a "
            "GPU reset or a reboot"
        )
        return Finding(name, Status.FAIL, "; ".join(problems), tuple(ev), action_text=todo)
    return Finding(name, Status.PASS, "idle: no foreign process, memory free", tuple(ev))


@check(
    "gpu.processes",
    title="No leftover process holds a GPU or its memory",
    tags=("gpu", "nvml"),
    needs=("nvml",),
    params=ProcessesParams,
    action=Action.RESTART_JOB,
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
