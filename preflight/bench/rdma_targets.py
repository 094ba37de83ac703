"""The HCA ports `bench rdma` tests, and what each should reach, from what the node says.

Everything comes from the inventory preflight already reads (sysfs through Host): the port's
state, rate and link layer, its RoCE v2 GID index (gid_attrs/types), and the GPU nearest the HCA
in the PCI tree (the same distance classes as `nvidia-smi topo -m`).
"""

from __future__ import annotations

from dataclasses import dataclass

from preflight.host import Host
from preflight.inventory.pci import PciDevice, PciInventory
from preflight.inventory.rdma import ROCE_V2, IbPort, LinkRate, RdmaInventory
from preflight.inventory.sortkeys import natural_key
from preflight.inventory.topology import PathType, pci_distance

# Share of the line rate a large-message bandwidth test should reach. Azure's aznhc expects
# ib_write_bw with GPUDirect ≥ 380 Gb/s per NDR (400 Gb/s) HCA, 95% of line rate; NCCL's
# troubleshooting guide has ib_write_bw near line rate. 90% keeps a margin for host-memory runs
# and PCIe Gen4 hosts; a baseline can raise it (--min-efficiency).
EFFICIENCY_FLOOR = {"write_bw": 0.90, "read_bw": 0.90, "send_bw": 0.90}


@dataclass(frozen=True)
class HcaPort:
    """One RDMA port to test, with its GPU for GPUDirect."""

    hca: str
    port: int
    link_layer: str | None
    rate: LinkRate | None
    active: bool
    gid_index: int | None  # RoCE v2 GID index (RoCE ports only)
    netdev: str | None
    pci_bdf: str | None
    gpu_bdf: str | None  # the nearest GPU, None without GPUs
    gpu_path: str | None  # its distance class: PIX, PXB, PHB, NODE, SYS

    @property
    def name(self) -> str:
        return f"{self.hca}/{self.port}"

    @property
    def rate_text(self) -> str:
        """``400 Gb/s (4X NDR)`` or ``rate unknown``."""
        if self.rate is None:
            return "rate unknown"
        speed = f" {self.rate.speed}" if self.rate.speed else ""
        return f"{self.rate.gbps:g} Gb/s ({self.rate.width}X{speed})"


def roce_v2_gid_index(port: IbPort) -> int | None:
    """The GID index perftest needs on a RoCE port: a RoCE v2 entry, IPv4-mapped first.

    perftest's default (index 0) is the RoCE v1 link-local GID on mlx5, which most RoCE fabrics
    do not route.
    """
    v2 = [g for g in port.gids if g.type == ROCE_V2]
    with_ip = [g for g in v2 if g.ipv4 is not None]
    chosen = (with_ip or v2)[:1]
    return chosen[0].index if chosen else None


def nearest_gpu(nic: PciDevice, gpus: list[PciDevice]) -> tuple[PciDevice, PathType] | None:
    """The GPU closest to a NIC in the PCI tree (ties: lowest bus address)."""
    ranked = sorted(((g, pci_distance(g, nic)) for g in gpus), key=lambda p: (p[1], p[0].bdf))
    return ranked[0] if ranked else None


def hca_ports(host: Host) -> list[HcaPort]:
    """Every port of every RDMA device, in natural order, with its nearest GPU."""
    rdma = RdmaInventory(host)
    pci = PciInventory(host)
    gpus = pci.gpus()
    nics = {n.bdf: n for n in pci.nics()}
    out = []
    for dev in sorted(rdma.devices.values(), key=lambda d: natural_key(d.name)):
        nic = nics.get(dev.pci_bdf or "")
        near = nearest_gpu(nic, gpus) if nic is not None else None
        for _, port in sorted(dev.ports.items()):
            out.append(
                HcaPort(
                    hca=dev.name,
                    port=port.num,
                    link_layer=port.link_layer,
                    rate=port.rate,
                    active=port.active,
                    gid_index=roce_v2_gid_index(port) if port.is_roce else None,
                    netdev=port.netdev,
                    pci_bdf=dev.pci_bdf,
                    gpu_bdf=near[0].bdf if near else None,
                    gpu_path=near[1].name if near else None,
                )
            )
    return out


def line_rate_gbps(port: HcaPort, bidirectional: bool) -> float | None:
    """What the port carries at most: its rate, twice that for -b (perftest sums both ways)."""
    if port.rate is None:
        return None
    return port.rate.gbps * (2 if bidirectional else 1)


@dataclass(frozen=True)
class BwJudgement:
    """A bandwidth figure against the port's line rate."""

    ok: bool | None  # None: nothing to compare with
    share: float | None
    message: str


def judge_bandwidth(
    port: HcaPort, average_gbps: float, floor: float, bidirectional: bool = False
) -> BwJudgement:
    """``mlx5_3: 311 Gb/s average = 78% of 400 Gb/s (4X NDR), expected ≥ 90%``."""
    line = line_rate_gbps(port, bidirectional)
    if line is None or line <= 0:
        return BwJudgement(
            None, None, f"{port.hca}: {average_gbps:.0f} Gb/s average ({port.rate_text})"
        )
    share = average_gbps / line
    both = " both ways" if bidirectional else ""
    return BwJudgement(
        share >= floor,
        share,
        f"{port.hca}: {average_gbps:.0f} Gb/s average{both} = {share:.0%} of {line:g} Gb/s "
        f"({port.rate_text.split(' (', 1)[-1].rstrip(')')}{' ×2' if bidirectional else ''}), "
        f"expected ≥ {floor:.0%}",
    )
