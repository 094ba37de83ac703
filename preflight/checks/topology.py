"""GPU↔NIC topology: every GPU has an RDMA NIC close enough for GPUDirect RDMA."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.inventory import Inventory
from preflight.inventory.pci import PciDevice
from preflight.inventory.rdma import nic_label
from preflight.inventory.topology import PathType, gpu_nic_paths
from preflight.model import Action, Evidence, Finding, Status, Verdict, passed
from preflight.registry import check, param


@dataclass(frozen=True)
class DistanceParams:
    """max_distance = farthest class at which GPUDirect RDMA is used (NCCL's default: PXB)."""

    max_distance: str = param(
        "PXB",
        "Farthest path class at which GPUDirect RDMA is used: PIX, PXB, PHB, NODE or SYS "
        "(NCCL's default: PXB).",
    )


def judge_distance(
    subject: str, row: list[tuple[str, PathType]], max_distance: PathType
) -> Finding:
    """A GPU's nearest NIC must be within max_distance.

    row: (NIC label, distance) for every NIC, nearest first. Whether that NIC shares the GPU's
    NUMA node is numa.gpu_nic_affinity's verdict, not this one's.
    """
    matrix = " ".join(f"{label}:{d.name}" for label, d in row)
    if not row:
        return Finding(subject, Status.SKIP, "no RDMA NIC")
    label, distance = row[0]
    want = f"nearest <= {max_distance.name}"
    ev = (Evidence("sysfs:/sys/bus/pci/devices (PCI tree)", matrix, want),)
    if distance > max_distance:
        return Finding(
            subject,
            Status.FAIL,
            f"nearest NIC {label} is {distance.name}, farther than {max_distance.name}: NCCL "
            "turns GPUDirect RDMA off for this GPU",
            ev,
        )
    return Finding(subject, Status.PASS, f"nearest NIC {label} ({distance.name})", ev)


@check(
    "topology.gpu_nic_distance",
    title="Every GPU has an RDMA NIC within GPUDirect RDMA distance",
    tags=("topology", "gpu", "rdma", "pcie"),
    needs=("gpu", "nic"),
    params=DistanceParams,
    action=Action.FIX_CONFIG,
)
def gpu_nic_distance(inv: Inventory, params: DistanceParams) -> Verdict:
    """Every GPU's nearest RDMA NIC is at most `PXB` away (behind the same PCIe switches).

    ## Why
    NCCL uses GPUDirect RDMA only when the GPU and the NIC are close: by default
    (`NCCL_NET_GDR_LEVEL` = PXB) they must share a PCIe switch. A NIC moved to another root
    complex or socket (a card in the wrong slot, a riser swap) silently turns GPUDirect off for
    that GPU and stages its traffic through host memory.

    ## Reads
    The sysfs PCI tree (`realpath /sys/bus/pci/devices/<bdf>`) of every GPU and RDMA NIC
    (their NUMA locality is `numa.gpu_nic_affinity`'s verdict). Distance classes as
    `nvidia-smi topo -m` names them: PIX (one switch), PXB (several bridges, no host bridge),
    PHB (through the CPU's host bridge), NODE (between host bridges of one NUMA node), SYS
    (across sockets). The full GPU×NIC matrix is in the facts
    (`topology.GPU<n>.<nic>`) and in each finding's evidence (`-v`).

    ## Verdicts
    - pass: every GPU has a NIC within `max_distance`.
    - fail: a GPU whose nearest NIC is farther than `max_distance`.
    - skip: no GPU or no RDMA NIC.

    ## Fix
    Put the NIC back in the slot of the GPU's switch (see the platform's slot map); check that
    the BIOS has not changed PCIe bifurcation or slot routing.
    """
    try:
        limit = PathType[params.max_distance.upper()]
    except KeyError:
        names = ", ".join(p.name for p in PathType)
        return Verdict(
            Status.ERROR, f"parameter max_distance={params.max_distance!r}: use one of {names}"
        )
    pci = inv.pci

    def row(paths: list[tuple[PciDevice, PathType]]) -> list[tuple[str, PathType]]:
        return [(nic_label(pci, n), d) for n, d in paths]

    findings = [
        judge_distance(pci.label(gpu), row(paths), limit)
        for gpu, paths in gpu_nic_paths(pci.gpus(), pci.nics())
    ]
    return Verdict.from_findings(
        findings, ok=f"{passed(findings)} GPUs with a NIC within {limit.name}"
    )
