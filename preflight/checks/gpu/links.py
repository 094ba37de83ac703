"""A GPU's links: NVLink state and errors, PCIe as NVML sees it, the NVLink fabric."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from preflight.checks.gpu.common import NVML, each_gpu, no_answer, scalar
from preflight.inventory import Inventory
from preflight.inventory.gpu import (
    ERROR_CODES,
    Fabric,
    NvLink,
    NvmlError,
    NvmlGpu,
    PcieNvml,
)
from preflight.inventory.sysfs_text import link_speed_generation
from preflight.model import Action, Evidence, Finding, Status, Verdict, passed
from preflight.registry import check, param
from preflight.remediation import gpu_reset_text

# -- NVLink --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NvlinkParams:
    """links: active links expected per GPU (0 = every link NVML reports); error counter maxima."""

    links: int = param(
        0, "Active NVLinks expected per GPU; unset: every link NVML reports.", unset=True
    )
    max_replay: int = param(0, "NVLink replay errors per GPU above which it warns.")
    max_recovery: int = param(0, "NVLink recovery errors per GPU above which it fails.")
    max_crc: int = param(0, "NVLink CRC (flit and data) errors per GPU above which it warns.")


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
                action=Action.RESET_GPU,
                action_text=gpu_reset_text(
                    name,
                    "check again; links still down: Fabric Manager (gpu.fabric), then the "
                    "baseboard (NVSwitch tray) for service",
                ),
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
                    action_text=(
                        f"open a service ticket for NVLink {worst.link} of {name} (baseboard or "
                        "NVSwitch tray) if the count grows after a reset"
                        if status is Status.FAIL
                        else None
                    ),
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
    action=Action.REPLACE,
    warn_action=Action.MONITOR,
    actions=(Action.RESET_GPU,),
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

    gen: int = param(
        0, "Expected maximum PCIe generation NVML reports; unset: not pinned.", unset=True
    )
    width: int = param(
        0, "Expected maximum PCIe width NVML reports; unset: not pinned.", unset=True
    )
    max_replays: int = param(100, "PCIe replays since reset above which a GPU warns.")


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
                f"Gen{scalar(nvml.max_gen)} x{scalar(nvml.max_width)}, "
                f"{scalar(replays)} replays, agrees with sysfs",
                (Evidence(src + "PcieReplayCounter", scalar(replays), f"<= {params.max_replays}"),),
            )
        )
    return findings


@check(
    "gpu.pcie",
    title="NVML's view of the GPU links agrees with sysfs; few PCIe replays",
    tags=("gpu", "nvml", "pcie"),
    needs=("nvml",),
    params=GpuPcieParams,
    action=Action.REPLACE,
    warn_action=Action.MONITOR,
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

    required: bool = param(
        False, "The node has NVSwitches: every GPU must have joined the NVLink fabric."
    )


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
    return Finding(name, Status.PASS, f"fabric completed, clique {scalar(fabric.clique_id)}", ev)


@check(
    "gpu.fabric",
    title="Every GPU joined the NVSwitch fabric",
    tags=("gpu", "nvml", "nvlink"),
    needs=("nvml",),
    params=FabricParams,
    action=Action.FIX_CONFIG,
    warn_action=Action.MONITOR,
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
