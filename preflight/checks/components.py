"""What the node is made of: GPU and RDMA NIC counts and models as PCI enumerates them."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.inventory import Inventory
from preflight.inventory.pci import PciDevice
from preflight.model import Action, Evidence, Finding, Status, Verdict
from preflight.registry import check, param


@dataclass(frozen=True)
class CountParams:
    """expected = 0 means "any number"; models are vendor:device PCI ids."""

    expected: int = param(0, "How many the node must have; unset: any number.", unset=True)
    models: tuple[str, ...] = param(
        (), "PCI ids (vendor:device, 10de:2330) allowed; any when empty."
    )

    def expects(self) -> bool:
        """Whether the baseline expects any such device (what the node's count provides)."""
        return self.expected > 0


def judge_count(
    kind: str, devices: list[PciDevice], labels: list[str], params: CountParams, source: str
) -> Verdict:
    """Count and model of one kind of device against the baseline."""
    found = len(devices)
    findings = []
    if params.expected and found != params.expected:
        findings.append(
            Finding(
                "node",
                Status.FAIL,
                f"{found} {kind}s on the PCI bus, expected {params.expected}",
                (Evidence(source, found, f"== {params.expected}"),),
            )
        )
    for dev, label in zip(devices, labels, strict=True):
        if params.models and dev.ids not in params.models:
            findings.append(
                Finding(
                    label,
                    Status.FAIL,
                    f"model {dev.ids}, expected one of {', '.join(params.models)}",
                    (
                        Evidence(
                            f"sysfs:/sys/bus/pci/devices/{dev.bdf}/device",
                            dev.ids,
                            " or ".join(params.models),
                        ),
                    ),
                )
            )
    if findings:
        return Verdict.from_findings(findings, ok="")
    if not found:
        return Verdict.skip(f"no {kind} on this node and none expected")
    models = sorted({d.ids for d in devices})
    expected = f" (expected {params.expected})" if params.expected else " (no count pinned)"
    return Verdict(
        Status.PASS,
        f"{found} {kind}s, {', '.join(models)}{expected}",
        tuple(
            Finding(label, Status.PASS, dev.ids) for dev, label in zip(devices, labels, strict=True)
        ),
    )


@check(
    "node.gpu_count",
    title="Every GPU the node should have is on the PCI bus",
    tags=("gpu", "pcie"),
    provides=("gpu",),
    params=CountParams,
    action=Action.REPLACE,
)
def gpu_count(inv: Inventory, params: CountParams) -> Verdict:
    """Every GPU the node should have is on the PCI bus, and of the expected model.

    ## Why
    A GPU that fell off the bus (Xid 79), was not enumerated after a reset, or is of the wrong
    model makes a rank fail at start or shrinks the job. When this check fails on a node that
    should have GPUs, the other GPU checks skip and point here.

    ## Reads
    `/sys/bus/pci/devices/*/{vendor,device,class}` (NVIDIA display and 3D controllers).

    ## Verdicts
    - pass: the expected number of GPUs, each of an expected model.
    - fail: fewer or more GPUs than `expected`, or a model not in `models`.
    - skip: no GPU on the node and the baseline expects none.

    ## Fix
    Reseat or replace the missing GPU; check `dmesg` for `Xid 79` and for PCIe training
    errors; a cold power cycle often brings back a GPU that a warm reset lost.
    """
    gpus = inv.pci.gpus()
    return judge_count(
        "GPU", gpus, [inv.pci.label(g) for g in gpus], params, "sysfs:/sys/bus/pci/devices"
    )


@check(
    "node.nic_count",
    title="Every RDMA NIC the node should have is on the PCI bus",
    tags=("rdma", "pcie"),
    provides=("nic",),
    params=CountParams,
    action=Action.REPLACE,
)
def nic_count(inv: Inventory, params: CountParams) -> Verdict:
    """Every RDMA NIC the node should have is on the PCI bus, and of the expected model.

    ## Why
    NCCL uses one NIC per GPU on DGX/HGX nodes; a missing NIC halves the bandwidth of the GPUs
    that share the remaining one, or stops the job when `NCCL_IB_HCA` names it.

    ## Reads
    `/sys/bus/pci/devices/*/{vendor,device,class}` (InfiniBand controllers and Mellanox Ethernet
    functions, virtual functions excluded) and `/sys/class/infiniband/*/device`.

    ## Verdicts
    - pass: the expected number of NICs, each of an expected model.
    - fail: a different count than `expected`, or a model not in `models`.
    - skip: no RDMA NIC and none expected.

    ## Fix
    Reseat the NIC or its cable cage; check that `mlx5_core` is loaded and the firmware is not
    in recovery (`dmesg | grep mlx5`).
    """
    nics = inv.pci.nics()
    return judge_count(
        "RDMA NIC", nics, [inv.pci.label(n) for n in nics], params, "sysfs:/sys/bus/pci/devices"
    )
