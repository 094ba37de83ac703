"""NUMA: node count, automatic NUMA balancing, GPU↔NIC locality."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.inventory import Inventory
from preflight.inventory.topology import gpu_nic_paths
from preflight.model import Action, Evidence, Finding, Status, Verdict, passed
from preflight.registry import NoParams, check, param


@dataclass(frozen=True)
class NodesParams:
    """expected = sockets × NPS; 0 = only recorded."""

    expected: int = param(
        0, "NUMA nodes the node type has (sockets x NPS); unset: only recorded.", unset=True
    )


@check(
    "numa.nodes",
    title="NUMA node count as the node type expects",
    tags=("cpu", "numa", "bios"),
    params=NodesParams,
    action=Action.FIX_CONFIG,
)
def nodes(inv: Inventory, params: NodesParams) -> Verdict:
    """The node has as many NUMA nodes as its type (sockets × NPS / SNC setting).

    ## Why
    A BIOS that changed NPS or sub-NUMA clustering changes which CPUs are local to which GPU
    and NIC; rank pinning and NCCL's topology detection then place work on remote memory.

    ## Reads
    `/sys/devices/system/node/node*/cpulist`.

    ## Verdicts
    - pass: `expected` NUMA nodes.
    - fail: a different number.
    - skip: no expectation set (the count is recorded in facts).

    ## Fix
    Restore the NPS / SNC setting in the BIOS to the fleet's value.
    """
    count = len(inv.cpu.numa_nodes)
    if not params.expected:
        return Verdict.skip(f"NUMA nodes: {count}; the baseline pins no count")
    ev = (Evidence("sysfs:/sys/devices/system/node", count, f"== {params.expected}"),)
    status = Status.PASS if count == params.expected else Status.FAIL
    return Verdict.single(
        Finding("node", status, f"NUMA nodes: {count}, expected {params.expected}", ev)
    )


@dataclass(frozen=True)
class BalancingParams:
    """Automatic NUMA balancing should be 0 on GPU nodes."""

    expected: int = param(0, "Expected /proc/sys/kernel/numa_balancing (0: off).")


@check(
    "numa.balancing",
    title="Automatic NUMA balancing is off",
    tags=("cpu", "numa", "kernel"),
    params=BalancingParams,
    action=Action.FIX_CONFIG,
)
def balancing(inv: Inventory, params: BalancingParams) -> Verdict:
    """Automatic NUMA balancing is off.

    ## Why
    CUDA's best-practices guide: automatic NUMA balancing "may degrade the performance of
    applications running on NVIDIA GPUs": the kernel unmaps and migrates pages of pinned
    host buffers used by the GPU and NCCL.

    ## Reads
    `/proc/sys/kernel/numa_balancing` (0 off, 1 on, 2 memory tiering).

    ## Verdicts
    - pass: the value equals `expected` (0).
    - warn: any other value.
    - skip: the kernel has no NUMA balancing.

    ## Fix
    `sysctl kernel.numa_balancing=0` (persist in /etc/sysctl.d) or boot with
    `numa_balancing=disable`.
    """
    value = inv.cpu.numa_balancing
    if value is None:
        return Verdict.skip("/proc/sys/kernel/numa_balancing absent: kernel without NUMA balancing")
    ev = (Evidence("procfs:/proc/sys/kernel/numa_balancing", value, f"== {params.expected}"),)
    if value == params.expected:
        return Verdict.single(Finding("node", Status.PASS, f"numa_balancing = {value}", ev))
    message = f"numa_balancing = {value}, expected {params.expected}"
    return Verdict.single(Finding("node", Status.WARN, message, ev))


def judge_affinity(
    subject: str, gpu_numa: int | None, nic_label: str, nic_numa: int | None, distance: str
) -> Finding:
    """A GPU and its nearest NIC must share a NUMA node."""
    ev = (
        Evidence("sysfs:numa_node", f"GPU {gpu_numa}, NIC {nic_numa}", "same node"),
        Evidence("sysfs:PCI tree", distance, "PIX or PXB"),
    )
    if gpu_numa is None or nic_numa is None or gpu_numa < 0 or nic_numa < 0:
        return Finding(
            subject,
            Status.WARN,
            f"NUMA node unknown (firmware reports -1) for it or {nic_label}",
            ev,
        )
    if gpu_numa != nic_numa:
        return Finding(
            subject,
            Status.WARN,
            f"nearest NIC {nic_label} ({distance}) is on NUMA node {nic_numa}, GPU on {gpu_numa}",
            ev,
        )
    return Finding(
        subject,
        Status.PASS,
        f"nearest NIC {nic_label} ({distance}), both on NUMA node {gpu_numa}",
        ev,
    )


@check(
    "numa.gpu_nic_affinity",
    title="Each GPU and its nearest RDMA NIC share a NUMA node",
    tags=("numa", "gpu", "rdma", "topology"),
    needs=("gpu", "nic"),
    action=Action.FIX_CONFIG,
)
def gpu_nic_affinity(inv: Inventory, params: NoParams) -> Verdict:
    """Each GPU and its nearest RDMA NIC share a NUMA node.

    ## Why
    NCCL pairs each GPU with its closest NIC. When that NIC sits on the other socket, traffic
    crosses the CPU interconnect (UPI/xGMI), GPUDirect RDMA is disabled at the default
    `NCCL_NET_GDR_LEVEL`, and inter-node bandwidth drops.

    ## Reads
    The sysfs PCI tree (`realpath /sys/bus/pci/devices/<bdf>`) to find each GPU's nearest
    NIC, and `/sys/bus/pci/devices/<bdf>/numa_node` of both.

    ## Verdicts
    - pass: every GPU's nearest NIC is on the GPU's NUMA node.
    - warn: a nearest NIC on another NUMA node, or NUMA node unknown (-1).
    - skip: no GPU or no RDMA NIC.

    ## Fix
    Move the NIC to a slot on the GPU's socket (see the platform's slot map), and make sure
    the BIOS reports NUMA locality (ACPI SRAT/_PXM) so the kernel does not print -1.
    """
    pci = inv.pci
    findings = []
    for gpu, paths in gpu_nic_paths(pci.gpus(), pci.nics()):
        nearest, distance = paths[0]
        findings.append(
            judge_affinity(
                pci.label(gpu), gpu.numa_node, pci.label(nearest), nearest.numa_node, distance.name
            )
        )
    return Verdict.from_findings(
        findings, ok=f"{passed(findings)} GPUs with a NIC on their NUMA node"
    )
