"""IOMMU: DMA of GPUs and NICs must not be translated on bare metal."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.inventory import Inventory
from preflight.model import Action, Evidence, Finding, Status, Verdict
from preflight.registry import check, param

TRANSLATED = ("DMA", "DMA-FQ")


@dataclass(frozen=True)
class IommuParams:
    """allow_translated: a virtual machine with a vIOMMU may translate; set true there."""

    allow_translated: bool = param(
        False, "Accept translated DMA (a virtual machine with a vIOMMU); set true there."
    )


def judge_iommu_group(
    subject: str, group: str | None, domain: str | None, cmdline_mode: str, allow_translated: bool
) -> Finding:
    """One device's IOMMU domain type: identity (passthrough) or none is healthy on bare metal."""
    if group is None:
        return Finding(
            subject,
            Status.PASS,
            "no IOMMU group (IOMMU off for this device)",
            (Evidence("sysfs:iommu_group", None, "absent or identity"),),
        )
    evidence = (
        Evidence(f"sysfs:/sys/kernel/iommu_groups/{group}/type", domain, "identity"),
        Evidence("procfs:/proc/cmdline", cmdline_mode, "passthrough or off"),
    )
    if domain in TRANSLATED and not allow_translated:
        return Finding(
            subject,
            Status.FAIL,
            f"IOMMU group {group} translates DMA ({domain}), expected identity (iommu=pt)",
            evidence,
        )
    if domain is None:
        return Finding(subject, Status.WARN, f"IOMMU group {group} has no readable type", evidence)
    return Finding(subject, Status.PASS, f"IOMMU group {group}: {domain}", evidence)


@check(
    "iommu.mode",
    title="GPU and NIC DMA is not translated by the IOMMU",
    tags=("iommu", "bios", "kernel"),
    params=IommuParams,
    action=Action.FIX_CONFIG,
)
def mode(inv: Inventory, params: IommuParams) -> Verdict:
    """GPU and NIC DMA is not translated by the IOMMU (passthrough or off on bare metal).

    ## Why
    CUDA does not support IOMMU-translated peer-to-peer on bare metal ("silent device memory
    corruption"); with translation on, the kernel also turns on ACS redirect, and every
    GPUDirect transfer pays for IOTLB misses. NVIDIA recommends `iommu=pt`.

    ## Reads
    `/proc/cmdline` (`intel_iommu=`, `amd_iommu=`, `iommu=`, `iommu.passthrough=`),
    `/sys/class/iommu`, and `/sys/kernel/iommu_groups/<n>/type` of each GPU's and NIC's group.

    ## Verdicts
    - pass: every GPU/NIC group is `identity`, or the device has no IOMMU group.
    - fail: a group is `DMA` or `DMA-FQ` (translated) and `allow_translated` is false.
    - warn: a group's type is unreadable.
    - skip: no GPU or RDMA NIC on the node.

    ## Fix
    Boot with `iommu=pt` (keeps the IOMMU for VFIO but passes host DMA through), or turn off
    VT-d / AMD-Vi in the BIOS when no VM passthrough is needed.
    """
    pci = inv.pci
    cmdline_mode = inv.kernel.iommu_cmdline.mode()
    findings = []
    for dev in pci.gpus() + pci.nics():
        if "iommu_group/type" in dev.errors:
            findings.append(
                Finding(
                    pci.label(dev),
                    Status.ERROR,
                    f"cannot read IOMMU group type: {dev.errors['iommu_group/type']}",
                )
            )
            continue
        findings.append(
            judge_iommu_group(
                pci.label(dev),
                dev.iommu_group,
                dev.iommu_type,
                cmdline_mode,
                params.allow_translated,
            )
        )
    verdict = Verdict.from_findings(
        findings,
        ok=f"no translated DMA (command line: {cmdline_mode})",
        empty="no GPU or RDMA NIC on this node",
    )
    return verdict
