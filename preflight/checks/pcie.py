"""PCIe: link speed and width, ACS redirect, Device Control, AER counters, GPU BAR1."""

from __future__ import annotations

from dataclasses import dataclass, replace

from preflight.inventory import Inventory
from preflight.inventory.memory import PreviousCounters
from preflight.inventory.pci import PciDevice, PciInventory
from preflight.inventory.pci_config import acs_control_names
from preflight.inventory.sysfs_text import format_link_speed
from preflight.model import Action, Evidence, Finding, Status, Verdict, passed
from preflight.registry import check, param
from preflight.remediation import bdf_of

SYSFS = "sysfs:/sys/bus/pci/devices/"
GIB = 1 << 30
MIB = 1 << 20


def endpoints(pci: PciInventory) -> list[PciDevice]:
    """GPUs and RDMA NICs: the devices whose traffic training depends on."""
    return pci.gpus() + pci.nics()


def path_devices(pci: PciInventory) -> list[PciDevice]:
    """GPUs, NICs and every bridge above them, each once, in bus order."""
    seen: dict[str, PciDevice] = {}
    for dev in endpoints(pci):
        for bridge in pci.bridges_above(dev):
            seen.setdefault(bridge.bdf, bridge)
        seen.setdefault(dev.bdf, dev)
    return [seen[b] for b in sorted(seen)]


def unreadable(pci: PciInventory, dev: PciDevice, attrs: tuple[str, ...]) -> Finding | None:
    """An ERROR finding when one of the device's sysfs attributes could not be read or parsed."""
    bad = {a: dev.errors[a] for a in attrs if a in dev.errors}
    if not bad:
        return None
    attr, why = next(iter(bad.items()))
    return Finding(
        pci.label(dev),
        Status.ERROR,
        f"cannot use {attr}: {why}",
        tuple(Evidence(SYSFS + f"{dev.bdf}/{a}", None, "readable") for a in bad),
    )


# -- link speed and width -------------------------------------------------------------------


@dataclass(frozen=True)
class LinkParams:
    """Expected link per device kind; None = the device's own capability must be reached."""

    gpu_speed_gts: float | None = param(
        None, "Expected GPU link speed, GT/s; unset: the device's own maximum."
    )
    gpu_width: int | None = param(
        None, "Expected GPU link width (lanes); unset: the device's own maximum."
    )
    nic_speed_gts: float | None = param(
        None, "Expected NIC link speed, GT/s; unset: the device's own maximum."
    )
    nic_width: int | None = param(
        None, "Expected NIC link width (lanes); unset: the device's own maximum."
    )


def judge_link(
    subject: str,
    dev_max: tuple[float | None, int | None],
    upstream_max: tuple[float | None, int | None] | None,
    current: tuple[float | None, int | None],
    expected: tuple[float | None, int | None],
    judge_current_speed: bool,
    source: str,
) -> Finding:
    """One device's link: effective max (min of both ends), current width, current speed."""
    (max_speed, max_width), (cur_speed, cur_width) = dev_max, current
    if max_speed is None or max_width is None:
        return Finding(
            subject, Status.SKIP, "the kernel exposes no link attributes for this device"
        )
    eff_speed, eff_width = max_speed, max_width
    if upstream_max is not None:
        up_speed, up_width = upstream_max
        if up_speed is not None:
            eff_speed = min(eff_speed, up_speed)
        if up_width is not None:
            eff_width = min(eff_width, up_width)
    want_speed = expected[0] if expected[0] is not None else max_speed
    want_width = expected[1] if expected[1] is not None else max_width
    problems: list[str] = []
    evidence = [
        Evidence(
            source + "max_link_speed",
            format_link_speed(eff_speed),
            f">= {format_link_speed(want_speed)}",
        ),
        Evidence(source + "max_link_width", eff_width, f">= x{want_width}"),
    ]
    if eff_speed < want_speed:
        problems.append(
            f"link capable of {format_link_speed(eff_speed)} only, "
            f"expected {format_link_speed(want_speed)}"
        )
    if eff_width < want_width:
        problems.append(f"link capable of x{eff_width} only, expected x{want_width}")
    if cur_width is not None:
        evidence.append(
            Evidence(source + "current_link_width", cur_width, f">= x{min(want_width, eff_width)}")
        )
        if cur_width < min(want_width, eff_width):
            problems.append(f"trained at x{cur_width}, expected x{min(want_width, eff_width)}")
    if judge_current_speed and cur_speed is not None:
        evidence.append(
            Evidence(
                source + "current_link_speed",
                format_link_speed(cur_speed),
                f">= {format_link_speed(min(want_speed, eff_speed))}",
            )
        )
        if cur_speed < min(want_speed, eff_speed):
            problems.append(
                f"running at {format_link_speed(cur_speed)}, "
                f"expected {format_link_speed(min(want_speed, eff_speed))}"
            )
    if problems:
        return Finding(subject, Status.FAIL, "; ".join(problems), tuple(evidence))
    cur = f", running x{cur_width}" if cur_width is not None else ""
    return Finding(
        subject, Status.PASS, f"{format_link_speed(eff_speed)} x{eff_width}{cur}", tuple(evidence)
    )


def link_action_text(pci: PciInventory, dev: PciDevice) -> str:
    """What to reseat for a bad link, port first: a bridge's link is the one to the devices
    below it, a device's the one to the port above it."""
    below = sorted(pci.label(d) for d in pci.devices.values() if d.parent == dev.bdf)
    parent = pci.devices.get(dev.parent) if dev.parent else None
    if below:
        upper, lower = pci.label(dev), " and ".join(below[:2]) + (" …" if len(below) > 2 else "")
    elif parent is not None:
        upper, lower = pci.label(parent), pci.label(dev)
    else:
        return (
            f"reseat or replace {pci.label(dev)} and its riser; check the slot's bifurcation "
            "in the BIOS and pcie.aer for errors on the link"
        )
    return (
        f"on the link from {upper} to {lower} it feeds: reseat the riser or cable, then the "
        "device; check the slot's bifurcation in the BIOS and pcie.aer for errors on the link"
    )


@check(
    "pcie.link",
    title="GPU, NIC and switch links train at full speed and width",
    tags=("pcie", "gpu", "rdma"),
    params=LinkParams,
    action=Action.REPLACE,
)
def link(inv: Inventory, params: LinkParams) -> Verdict:
    """GPU, NIC and switch-port links train at full speed and width.

    ## Why
    A GPU or NIC that trained at x8 or Gen4 halves host↔device and GPUDirect RDMA bandwidth;
    all-reduce then runs at the pace of that one device. A slot or riser fault often shows
    only as a narrower link.

    ## Reads
    `/sys/bus/pci/devices/<bdf>/{max,current}_link_{speed,width}` of every GPU, RDMA NIC and
    bridge above them. The effective maximum is the smaller of the device's and its upstream
    port's (as NCCL computes it).

    ## Verdicts
    - pass: effective max speed and width at least the expected ones (the baseline's, or the
      device's own capability), current width equal to it, NIC current speed at full rate.
    - fail: a lower effective max speed or width, or a link trained narrower.
    - GPU current speed is not judged: GPUs drop to 2.5 GT/s when idle and retrain under load.

    ## Fix
    Reseat the device or riser, check the slot's bifurcation setting in the BIOS, and look for
    AER errors on the same link (`pcie.aer`).
    """
    pci = inv.pci
    gpus = {d.bdf for d in pci.gpus()}
    nics = {d.bdf for d in pci.nics()}
    findings: list[Finding] = []
    for dev in path_devices(pci):
        bad = unreadable(
            pci,
            dev,
            ("max_link_speed", "max_link_width", "current_link_speed", "current_link_width"),
        )
        if bad:
            findings.append(bad)
            continue
        parent = pci.devices.get(dev.parent) if dev.parent else None
        upstream = (parent.max_link_speed, parent.max_link_width) if parent else None
        if dev.bdf in gpus:
            expected = (params.gpu_speed_gts, params.gpu_width)
        elif dev.bdf in nics:
            expected = (params.nic_speed_gts, params.nic_width)
        else:
            expected = (None, None)
        # A bridge's current speed follows its link partner's power state; only NICs hold full
        # speed at idle, so only their current speed is judged.
        finding = judge_link(
            pci.label(dev),
            (dev.max_link_speed, dev.max_link_width),
            upstream,
            (dev.current_link_speed, dev.current_link_width),
            expected,
            dev.bdf in nics,
            SYSFS + f"{dev.bdf}/",
        )
        if finding.status is Status.FAIL:
            finding = replace(finding, action_text=link_action_text(pci, dev))
        findings.append(finding)
    return Verdict.from_findings(
        findings,
        ok=f"{passed(findings)} links at full speed and width",
        empty="no GPU or RDMA NIC on this node",
    )


# -- ACS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcsParams:
    """allow_redirect: a virtual machine needs ACS redirect; set true there."""

    allow_redirect: bool = param(
        False, "Accept ACS redirect (a virtual machine needs it); set true there."
    )


ACS_REDIRECT_NAMES = ("ReqRedir", "CmpltRedir", "EgressCtrl")


ACS_TODO = (
    'disable "PCIe ACS control" (or VT-d) in the BIOS, or boot with `iommu=pt '
    'pci=disable_acs_redir={bdf}` (";"-separated with the other bridges named)'
)


def judge_acs(
    subject: str,
    readable: bool,
    acs_control: int | None,
    enabled: list[str],
    allow_redirect: bool,
    source: str,
) -> Finding:
    """One bridge's ACS Control register: P2P request/completion redirect or egress control set?"""
    if not readable:
        return Finding(
            subject,
            Status.WARN,
            "extended config space not readable (256-byte config): ACS state unknown",
            (Evidence(source, "256 bytes", "4096 bytes"),),
            action_text="run preflight as root on the host (not in a VM) to read ACS",
        )
    if acs_control is None:
        return Finding(subject, Status.PASS, "no ACS capability (nothing can redirect P2P)")
    redirect = [n for n in enabled if n in ACS_REDIRECT_NAMES]
    observed = f"0x{acs_control:04x} ({' '.join(enabled) or 'all off'})"
    evidence = (Evidence(source + " ACSCtl", observed, "ReqRedir- CmpltRedir- EgressCtrl-"),)
    if redirect and not allow_redirect:
        return Finding(
            subject,
            Status.FAIL,
            f"ACS {'+ '.join(redirect)}+ set: P2P traffic is redirected to the root complex",
            evidence,
            action_text=ACS_TODO.format(bdf=bdf_of(subject)),
        )
    if redirect:
        return Finding(
            subject,
            Status.PASS,
            f"ACS {'+ '.join(redirect)}+ set (allowed: virtualized node)",
            evidence,
        )
    return Finding(subject, Status.PASS, f"ACSCtl {observed}", evidence)


def judge_quirk_acs(
    subject: str,
    kind: str,
    control: int | None,
    how: str,
    allow_redirect: bool,
    source: str,
) -> Finding:
    """A root port whose ACS the kernel provides by quirk: judged by what the quirk sets."""
    if control is None:
        return Finding(
            subject,
            Status.WARN,
            f"ACS by {kind}, state unknown: {how}; when enabled it redirects P2P upstream",
            (Evidence(source, None, "ReqRedir- CmpltRedir- EgressCtrl-"),),
        )
    enabled = acs_control_names(control)
    redirect = [n for n in enabled if n in ACS_REDIRECT_NAMES]
    observed = f"0x{control:04x} ({' '.join(enabled) or 'all off'})"
    evidence = (Evidence(f"{source} ({how})", observed, "ReqRedir- CmpltRedir- EgressCtrl-"),)
    if redirect and not allow_redirect:
        return Finding(
            subject,
            Status.FAIL,
            f"{kind} sets the equivalent of {'+ '.join(redirect)}+ ({how}): P2P traffic is "
            "redirected to the root complex",
            evidence,
            action_text=ACS_TODO.format(bdf=bdf_of(subject)),
        )
    if redirect:
        return Finding(
            subject,
            Status.PASS,
            f"{kind}: {'+ '.join(redirect)}+ (allowed: virtualized node)",
            evidence,
        )
    return Finding(subject, Status.PASS, f"{kind}: ACSCtl {observed} ({how})", evidence)


@check(
    "pcie.acs",
    title="No ACS redirect on the bridges between GPUs and NICs",
    tags=("pcie", "bios", "gpu", "rdma"),
    needs=("root",),
    params=AcsParams,
    action=Action.FIX_CONFIG,
)
def acs(inv: Inventory, params: AcsParams) -> Verdict:
    """No PCIe bridge between GPUs and NICs redirects peer-to-peer traffic (ACS off on bare metal).

    ## Why
    With ACS P2P Request/Completion Redirect set, every GPU↔GPU and GPU↔NIC transfer through a
    PCIe switch is sent up to the CPU root complex: GPUDirect RDMA slows to a crawl or NCCL
    hangs. The kernel sets these bits on every ACS-capable port when the IOMMU is on; some
    BIOS versions set them regardless.

    ## Reads
    The ACS extended capability (id 0x0D, Control register at +6) in
    `/sys/bus/pci/devices/<bdf>/config` of every root port and switch port above a GPU or NIC.
    Needs root: unprivileged reads stop at 64 bytes. Root ports whose ACS the kernel provides
    by quirk (drivers/pci/quirks.c) are judged by what the quirk sets: Intel PCH root ports
    (no ACS capability; the kernel logs "Intel PCH root port ACS workaround enabled" and then
    blocks peer decode, the equivalent of SrcValid ReqRedir CmpltRedir UpstreamFwd) and Intel
    Sunrise/Union Point root ports (ACS Control is the dword at +8, which lspci misreads).

    ## Verdicts
    - pass: no bridge has ReqRedir, CmpltRedir or EgressCtrl set (or `allow_redirect`).
    - fail: a bridge has one of them set.
    - warn: a bridge's extended config space is not readable, so its ACS state is unknown; an
      Intel PCH root port with the IOMMU on and no kernel log line saying whether the quirk ran.
    - skip: not root.

    ## Fix
    Disable "ACS" / "PCIe ACS control" or VT-d/IOMMU in the BIOS, or boot with `iommu=pt`
    plus `pci=disable_acs_redir=...`; NCCL documents `setpci -s <bdf> ECAP_ACS+0x6.w=0000`
    as a runtime fix (lost at reboot) for each such bridge.
    """
    pci = inv.pci
    findings = []
    for dev in path_devices(pci):
        if not dev.is_bridge:
            continue
        bad = unreadable(pci, dev, ("config",))
        if bad:
            findings.append(bad)
            continue
        quirk = dev.acs_quirk
        if quirk is not None:
            findings.append(
                judge_quirk_acs(
                    pci.label(dev),
                    quirk.kind,
                    quirk.control,
                    quirk.source,
                    params.allow_redirect,
                    SYSFS + f"{dev.bdf}/config",
                )
            )
            continue
        cfg = dev.config
        if cfg is None:
            findings.append(Finding(pci.label(dev), Status.ERROR, "config space missing"))
            continue
        findings.append(
            judge_acs(
                pci.label(dev),
                cfg.extended_readable,
                cfg.acs.control if cfg.acs else None,
                cfg.acs.enabled() if cfg.acs else [],
                params.allow_redirect,
                SYSFS + f"{dev.bdf}/config",
            )
        )
    return Verdict.from_findings(
        findings,
        ok=f"{passed(findings)} bridges, no ACS redirect",
        empty="no bridge above a GPU or RDMA NIC",
    )


# -- Device Control -------------------------------------------------------------------------


@dataclass(frozen=True)
class DevCtlParams:
    """Exact expectations are optional; min_max_read_request is a floor for every device."""

    min_max_read_request: int = param(512, "Smallest MaxReadReq for every GPU and NIC, bytes.")
    gpu_max_read_request: int | None = param(
        None, "Exact MaxReadReq every GPU must have, bytes; unset: the floor only."
    )
    nic_max_read_request: int | None = param(
        None, "Exact MaxReadReq every NIC must have, bytes; unset: the floor only."
    )
    max_payload: int | None = param(
        None, "Exact MaxPayload every device must have, bytes; unset: not judged."
    )
    nic_relaxed_ordering: bool | None = param(
        None, "Relaxed Ordering on (true) or off (false) on every NIC; unset: not judged."
    )


def judge_devctl(
    subject: str,
    mrrs: int,
    mps: int,
    relaxed: bool,
    want_mrrs: int | None,
    min_mrrs: int,
    want_mps: int | None,
    want_relaxed: bool | None,
    source: str,
) -> Finding:
    """One device's MaxReadReq, MaxPayload and Relaxed Ordering against expectations."""
    evidence = (
        Evidence(
            source + " DevCtl.MaxReadReq",
            mrrs,
            f"== {want_mrrs}" if want_mrrs else f">= {min_mrrs}",
        ),
        Evidence(source + " DevCtl.MaxPayload", mps, f"== {want_mps}" if want_mps else None),
        Evidence(
            source + " DevCtl.RlxdOrd", relaxed, None if want_relaxed is None else str(want_relaxed)
        ),
    )
    fails, warns = [], []
    if want_mrrs is not None and mrrs != want_mrrs:
        fails.append(f"MaxReadReq {mrrs} bytes, expected {want_mrrs}")
    elif mrrs < min_mrrs:
        warns.append(f"MaxReadReq {mrrs} bytes, below {min_mrrs}")
    if want_mps is not None and mps != want_mps:
        fails.append(f"MaxPayload {mps} bytes, expected {want_mps}")
    if want_relaxed is not None and relaxed != want_relaxed:
        fails.append(
            f"Relaxed Ordering {'on' if relaxed else 'off'}, "
            f"expected {'on' if want_relaxed else 'off'}"
        )
    if fails:
        return Finding(subject, Status.FAIL, "; ".join(fails + warns), evidence)
    if warns:
        return Finding(subject, Status.WARN, "; ".join(warns), evidence)
    ro = "RlxdOrd+" if relaxed else "RlxdOrd-"
    return Finding(subject, Status.PASS, f"MaxReadReq {mrrs}, MaxPayload {mps}, {ro}", evidence)


@check(
    "pcie.devctl",
    title="GPU and NIC MaxReadReq, MaxPayload and Relaxed Ordering as expected",
    tags=("pcie", "bios", "gpu", "rdma"),
    needs=("root",),
    params=DevCtlParams,
    action=Action.FIX_CONFIG,
)
def devctl(inv: Inventory, params: DevCtlParams) -> Verdict:
    """GPU and NIC PCIe Device Control: MaxReadReq, MaxPayload and Relaxed Ordering as expected.

    ## Why
    A small Max Read Request (128/256 bytes) caps the DMA read bandwidth of a NIC, which is how
    GPUDirect RDMA sends; Relaxed Ordering off on the NIC costs InfiniBand bandwidth when NCCL
    would use it (`NCCL_IB_PCI_RELAXED_ORDERING`). BIOS updates and vendor tools change these.

    ## Reads
    Device Control (PCIe capability + 0x08: bits 14:12 MaxReadReq, 7:5 MaxPayload, bit 4
    Relaxed Ordering) in `/sys/bus/pci/devices/<bdf>/config` of every GPU and RDMA NIC. Needs root.

    ## Verdicts
    - pass: every value as the baseline pins it, and MaxReadReq at least `min_max_read_request`.
    - fail: a value differs from the baseline's pinned one.
    - warn: MaxReadReq below the floor.

    ## Fix
    Set MaxReadReq in the BIOS or with `mlxconfig`/`setpci` (CAP_EXP+8), and enable Relaxed
    Ordering on ConnectX NICs (`mlxconfig -d <dev> set PCI_WR_ORDERING=1`, reboot).
    """
    pci = inv.pci
    nics = {d.bdf for d in pci.nics()}
    findings = []
    for dev in endpoints(pci):
        bad = unreadable(pci, dev, ("config",))
        if bad:
            findings.append(bad)
            continue
        pcie = dev.config.pcie if dev.config else None
        if pcie is None:
            findings.append(
                Finding(
                    pci.label(dev), Status.WARN, "no PCI Express capability found in config space"
                )
            )
            continue
        is_nic = dev.bdf in nics
        findings.append(
            judge_devctl(
                pci.label(dev),
                pcie.max_read_request,
                pcie.max_payload,
                pcie.relaxed_ordering,
                params.nic_max_read_request if is_nic else params.gpu_max_read_request,
                params.min_max_read_request,
                params.max_payload,
                params.nic_relaxed_ordering if is_nic else None,
                SYSFS + f"{dev.bdf}/config",
            )
        )
    return Verdict.from_findings(
        findings,
        ok=f"{passed(findings)} devices as expected",
        empty="no GPU or RDMA NIC on this node",
    )


# -- AER ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AerParams:
    """Correctable errors are normal in small numbers; uncorrectable ones are not."""

    max_correctable: int = param(100, "Correctable AER errors per device above which it warns.")
    # With `run --state`: correctable errors per hour since the previous run of this boot.
    max_correctable_per_hour: float = param(
        100.0,
        "With --state: correctable AER errors per hour since the last run above which it warns.",
    )


def judge_aer_rate(
    subject: str,
    before: int,
    now: int,
    previous: PreviousCounters,
    max_per_hour: float,
    source: str,
) -> Finding | None:
    """Correctable errors per hour since the previous run: a lane that keeps replaying TLPs
    warns even when the since-boot total is still small. A lower count was reset: no rate."""
    if now < before or previous.elapsed_s <= 0:
        return None
    per_hour = (now - before) * 3600 / previous.elapsed_s
    if per_hour <= max_per_hour:
        return None
    return Finding(
        f"{subject} correctable rate",
        Status.WARN,
        f"{now - before} correctable PCIe errors since the last run ({previous.at}, "
        f"{previous.elapsed_s:.0f} s ago): {per_hour:.3g}/h (threshold {max_per_hour:g}/h)",
        (Evidence(source, f"{before} → {now}", f"<= {max_per_hour:g}/h"),),
    )


def aer_total(counters: dict[str, int], kind: str) -> int:
    """TOTAL_ERR_* when the kernel prints it, else the sum of the named counters."""
    key = {
        "correctable": "TOTAL_ERR_COR",
        "nonfatal": "TOTAL_ERR_NONFATAL",
        "fatal": "TOTAL_ERR_FATAL",
    }[kind]
    if key in counters:
        return counters[key]
    return sum(v for k, v in counters.items() if not k.startswith("TOTAL_"))


def judge_aer(subject: str, totals: dict[str, int], max_correctable: int, source: str) -> Finding:
    """Fatal or non-fatal errors fail; correctable ones above the threshold warn."""
    evidence = tuple(
        Evidence(
            source + (f"aer_dev_{k}" if not k.startswith("rootport") else f"aer_{k}"),
            v,
            f"<= {max_correctable}" if k.endswith("correctable") else "== 0",
        )
        for k, v in totals.items()
    )
    uncorrectable = {k: v for k, v in totals.items() if not k.endswith("correctable") and v > 0}
    if uncorrectable:
        text = ", ".join(
            f"{v} {k.replace('rootport_', 'root-port ')}" for k, v in uncorrectable.items()
        )
        return Finding(
            subject, Status.FAIL, f"{text} PCIe errors since boot (expected 0)", evidence
        )
    cor = max((v for k, v in totals.items() if k.endswith("correctable")), default=0)
    if cor > max_correctable:
        return Finding(
            subject,
            Status.WARN,
            f"{cor} correctable PCIe errors since boot (threshold {max_correctable})",
            evidence,
        )
    return Finding(subject, Status.PASS, f"{cor} correctable, 0 uncorrectable", evidence)


@check(
    "pcie.aer",
    title="No uncorrectable PCIe errors on GPUs, NICs and their ports",
    tags=("pcie", "gpu", "rdma"),
    params=AerParams,
    action=Action.REPLACE,
    warn_action=Action.MONITOR,
)
def aer(inv: Inventory, params: AerParams) -> Verdict:
    """No uncorrectable PCIe errors on GPUs, NICs and the ports above them since boot.

    ## Why
    Non-fatal and fatal AER errors mean corrupted or lost TLPs: a failing riser, cable or
    retimer. They precede "GPU has fallen off the bus" and NIC resets. A rising correctable
    count (bad lane, replays) costs bandwidth before it costs the job.

    ## Reads
    `/sys/bus/pci/devices/<bdf>/aer_dev_{correctable,nonfatal,fatal}` (TOTAL_ERR_* lines) of
    every GPU, RDMA NIC and bridge above them, and `aer_rootport_total_err_*` on root ports.
    Errors are often counted at the link partner, so both ends are read.

    ## Verdicts
    - pass: no uncorrectable errors, correctable ones within `max_correctable`.
    - fail: any non-fatal or fatal error since boot.
    - warn: more correctable errors than `max_correctable`; with `run --state`, more than
      `max_correctable_per_hour` correctable errors per hour since the previous run of this
      boot.
    - skip: the kernel exposes no AER counters (AER off or handled by firmware).

    ## Fix
    Reseat or replace the device, riser or cable on the affected link; compare with
    `pcie.link` (a degraded link often shows here first). Counters reset at reboot.
    """
    pci = inv.pci
    findings = []
    for dev in path_devices(pci):
        bad = unreadable(pci, dev, ("aer_dev_correctable", "aer_dev_nonfatal", "aer_dev_fatal"))
        if bad:
            findings.append(bad)
            continue
        if not dev.aer and not dev.aer_rootport:
            continue
        totals = {k: aer_total(c, k) for k, c in dev.aer.items()}
        totals.update({f"rootport_{k}": v for k, v in dev.aer_rootport.items()})
        findings.append(
            judge_aer(pci.label(dev), totals, params.max_correctable, SYSFS + f"{dev.bdf}/")
        )
        previous = inv.memory.previous
        before = previous.aer_correctable.get(dev.bdf) if previous else None
        if previous is not None and before is not None and "correctable" in totals:
            rate = judge_aer_rate(
                pci.label(dev),
                before,
                totals["correctable"],
                previous,
                params.max_correctable_per_hour,
                SYSFS + f"{dev.bdf}/aer_dev_correctable",
            )
            if rate is not None:
                findings.append(rate)
    return Verdict.from_findings(
        findings,
        ok=f"{passed(findings)} devices without uncorrectable errors",
        empty="the kernel exposes no AER counters for these devices",
    )


# -- BAR1 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar1Params:
    """min_bar1_gib pins BAR1 (H100 80GB: 128 GiB); small_bar1_mib is the floor without a pin."""

    min_bar1_gib: float | None = param(
        None, "Smallest BAR1 per GPU, GiB (H100 80GB: 128); unset: only small_bar1_mib judges."
    )
    small_bar1_mib: int = param(
        256, "Without min_bar1_gib, a BAR1 at most this many MiB warns (above-4G decoding off)."
    )


def judge_bar1(
    subject: str, size: int, min_gib: float | None, small_mib: int, source: str
) -> Finding:
    """A BAR1 smaller than expected means above-4G decoding or resizable BAR is off."""
    human = f"{size / GIB:g} GiB" if size >= GIB else f"{size / MIB:g} MiB"
    if min_gib is not None:
        evidence = (Evidence(source, size, f">= {int(min_gib * GIB)} ({min_gib:g} GiB)"),)
        if size < min_gib * GIB:
            return Finding(
                subject, Status.FAIL, f"BAR1 {human}, expected at least {min_gib:g} GiB", evidence
            )
        return Finding(subject, Status.PASS, f"BAR1 {human}", evidence)
    evidence = (Evidence(source, size, f"> {small_mib} MiB"),)
    if size <= small_mib * MIB:
        return Finding(
            subject,
            Status.WARN,
            f"BAR1 only {human}: above-4G decoding or resizable BAR likely off",
            evidence,
        )
    return Finding(subject, Status.PASS, f"BAR1 {human}", evidence)


@check(
    "pcie.bar1",
    title="GPU BAR1 spans the GPU memory (large BAR enabled)",
    tags=("pcie", "bios", "gpu"),
    needs=("gpu",),
    params=Bar1Params,
    action=Action.FIX_CONFIG,
)
def bar1(inv: Inventory, params: Bar1Params) -> Verdict:
    """Every GPU's BAR1 is as large as the platform should map (above-4G decoding on).

    ## Why
    GPUDirect RDMA and peer mappings go through BAR1. When the BIOS has "Above 4G decoding" or
    "Resizable BAR" off, BAR1 shrinks to 256 MiB and registrations of GPU memory with the NIC
    fail or thrash.

    ## Reads
    Line 2 (BAR1) of `/sys/bus/pci/devices/<bdf>/resource` of every GPU: start, end, flags.

    ## Verdicts
    - pass: BAR1 at least `min_bar1_gib` (or larger than `small_bar1_mib` without a pin).
    - fail: BAR1 below the baseline's `min_bar1_gib`.
    - warn: no pin, and BAR1 at most `small_bar1_mib`.

    ## Fix
    Enable "Above 4G Decoding" and "Re-Size BAR Support" (or the vendor's MMIO-high setting) in
    the BIOS; H100 SXM maps 128 GiB.
    """
    pci = inv.pci
    findings = []
    for gpu in pci.gpus():
        bad = unreadable(pci, gpu, ("resource",))
        if bad:
            findings.append(bad)
        elif not gpu.bars or len(gpu.bars) < 2:
            findings.append(Finding(pci.label(gpu), Status.ERROR, "resource file lists no BAR1"))
        else:
            findings.append(
                judge_bar1(
                    pci.label(gpu),
                    gpu.bars[1].size,
                    params.min_bar1_gib,
                    params.small_bar1_mib,
                    SYSFS + f"{gpu.bdf}/resource",
                )
            )
    return Verdict.from_findings(findings, ok=f"{passed(findings)} GPUs with full BAR1")
