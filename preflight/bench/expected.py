"""What the hardware can do: the theoretical all-reduce bus bandwidth from topology facts.

Lower bounds on the bytes that must cross each link, whatever the algorithm (ring, tree, NVLS):
an all-reduce over n ranks, g per node on k nodes, needs each GPU to move 2(g−1)/g·S through its
intra-node link and each node 2(k−1)/k·S through its NICs. With busbw = 2(n−1)/n·S/t that gives

- intra-node: busbw ≤ B_gpu · g(n−1) / (n(g−1))   (= B_gpu on one node)
- inter-node: busbw ≤ B_node · k(n−1) / (n(k−1))  (= per-GPU NIC bandwidth × (n−1)/(k−1))

where B_gpu is one GPU's unidirectional NVLink (or PCIe) bandwidth and B_node the sum of the
node's NIC rates. NVLink SHARP (NVLS) reduces inside the switch and can beat the NVLink bound
(8×H100: 476 GB/s measured against 450 GB/s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from preflight.bench.metrics import GB
from preflight.host import Host
from preflight.inventory import Inventory

NVLINK_GBPS_PER_LINK = 25.0
"""NVLink 3 and 4 carry 25 GB/s per link and direction (18 links = H100's "900 GB/s" both ways)."""


@dataclass(frozen=True)
class NvlinkModel:
    """A GPU whose every NVLink reaches the NVSwitch fabric (SXM boards)."""

    name: str
    links: int


NVLINK_MODELS = {
    "10de:20b0": NvlinkModel("A100-SXM4-40GB", 12),  # NV12 in `nvidia-smi topo -m`
    "10de:20b2": NvlinkModel("A100-SXM4-80GB", 12),
    "10de:2330": NvlinkModel("H100-SXM5-80GB", 18),  # NV18
    "10de:2335": NvlinkModel("H200-SXM-141GB", 18),
}


def pcie_gbps(gts: float, width: int) -> float:
    """One direction of a PCIe link in GB/s after line encoding (TLP headers not deducted)."""
    if gts <= 5.0:
        efficiency = 8 / 10  # Gen1/2: 8b/10b
    elif gts < 64.0:
        efficiency = 128 / 130  # Gen3-5: 128b/130b
    else:
        efficiency = 242 / 256  # Gen6 FLIT mode: 236 data bytes + CRC/FEC in 256
    return gts * width * efficiency / 8


@dataclass(frozen=True)
class Topology:
    """The facts a bound is computed from; None where the node does not tell."""

    device: str  # "cuda" or "cpu"
    ranks_per_node: int
    nodes: int
    gpu_model: str | None = None
    nvlink_links: int | None = None
    nvlink_gbps_per_link: float = NVLINK_GBPS_PER_LINK
    pcie_gts: float | None = None
    pcie_width: int | None = None
    nic_count: int | None = None
    nic_gbit: float | None = None  # line rate of each NIC in Gb/s, as sysfs `rate` says

    @property
    def ranks(self) -> int:
        """World size."""
        return self.ranks_per_node * self.nodes


@dataclass(frozen=True)
class Theoretical:
    """A bound on busbw and how it was derived."""

    busbw_gbps: float
    basis: str

    def percent(self, busbw: float) -> float:
        """Measured busbw as a share of the bound."""
        return 100.0 * busbw / self.busbw_gbps if self.busbw_gbps > 0 else 0.0


def theoretical_busbw(topo: Topology) -> tuple[Theoretical | None, str]:
    """The bound, or None with the reason it cannot be stated."""
    n, g, k = topo.ranks, topo.ranks_per_node, topo.nodes
    if topo.device != "cuda":
        return None, (
            "no theoretical figure on CPU: gloo is bound by memory copies and the TCP stack, "
            "not by a device link"
        )
    if n < 2:
        return None, "one rank: an all-reduce moves no data (busbw factor 2(n-1)/n = 0)"
    bounds: list[tuple[float, str]] = []
    if g > 1:
        if topo.nvlink_links:
            per_gpu = topo.nvlink_links * topo.nvlink_gbps_per_link
            link = f"NVLink {topo.nvlink_links} links × {topo.nvlink_gbps_per_link:g} GB/s" + (
                f" ({topo.gpu_model})" if topo.gpu_model else ""
            )
        elif topo.pcie_gts and topo.pcie_width:
            per_gpu = pcie_gbps(topo.pcie_gts, topo.pcie_width)
            link = f"PCIe {topo.pcie_gts:g} GT/s x{topo.pcie_width} = {per_gpu:.1f} GB/s"
        else:
            return None, "the GPUs' NVLink and PCIe links are unknown"
        bound = per_gpu * g * (n - 1) / (n * (g - 1))
        scale = "" if k == 1 else f" × {g}·{n - 1}/({n}·{g - 1})"
        bounds.append((bound, f"{link} per GPU{scale}"))
    if k > 1:
        if not topo.nic_count or not topo.nic_gbit:
            return None, f"{k} nodes but the NICs' rate is unknown (give --theoretical-gbps)"
        per_node = topo.nic_count * topo.nic_gbit * 1e9 / 8 / GB
        bound = per_node * k * (n - 1) / (n * (k - 1))
        bounds.append(
            (
                bound,
                f"{topo.nic_count} NICs × {topo.nic_gbit:g} Gb/s = {per_node:g} GB/s per node"
                f" × {k}·{n - 1}/({n}·{k - 1})",
            )
        )
    value, basis = min(bounds)
    return Theoretical(round(value, 2), basis), ""


# -- facts from this node -------------------------------------------------------------------

IB_CLASS = "/sys/class/infiniband"
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*Gb/sec")


def parse_ib_rate(text: str) -> float | None:
    """'400 Gb/sec (4X NDR)' → 400.0 (the sysfs `rate` attribute of an IB or RoCE port)."""
    m = _RATE_RE.match(text)
    return float(m.group(1)) if m else None


def active_nic_rates(host: Host) -> list[float]:
    """Rates in Gb/s of the ACTIVE ports under /sys/class/infiniband, one per port."""
    rates = []
    for dev in host.listdir(IB_CLASS):
        for port in host.listdir(f"{IB_CLASS}/{dev}/ports"):
            base = f"{IB_CLASS}/{dev}/ports/{port}"
            state = host.read_line(f"{base}/state") or ""
            rate = parse_ib_rate(host.read_line(f"{base}/rate") or "")
            # state "4: ACTIVE" is IB_PORT_ACTIVE
            if state.startswith("4") and rate:
                rates.append(rate)
    return rates


def node_topology(inv: Inventory, device: str, ranks_per_node: int, nodes: int) -> Topology:
    """This node's facts, taken as every node's (a job's nodes are assumed to be alike).

    GPUs: the slowest PCIe link among them and, for SXM models, their NVLink count. NICs: the
    active ports at the highest rate (the compute rails; slower ports serve storage or
    management).
    """
    gpus = inv.pci.gpus()
    model = NVLINK_MODELS.get(gpus[0].ids) if gpus else None
    if model and any(NVLINK_MODELS.get(g.ids) != model for g in gpus):
        model = None
    speeds = [g.max_link_speed for g in gpus if g.max_link_speed]
    widths = [g.max_link_width for g in gpus if g.max_link_width]
    rates = active_nic_rates(inv.host)
    top = max(rates) if rates else None
    return Topology(
        device=device,
        ranks_per_node=ranks_per_node,
        nodes=nodes,
        gpu_model=model.name if model else None,
        nvlink_links=model.links if model else None,
        pcie_gts=min(speeds) if speeds else None,
        pcie_width=min(widths) if widths else None,
        nic_count=sum(1 for r in rates if r == top) if top else None,
        nic_gbit=top,
    )
