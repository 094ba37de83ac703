"""Network interfaces of the RDMA ports: up, with the expected MTU."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.checks.rdma import NO_IB_DEVICE, judged_ports
from preflight.inventory import Inventory
from preflight.inventory.net import ARPHRD_ETHER, ARPHRD_INFINIBAND, NetDev
from preflight.inventory.rdma import IbPort
from preflight.model import Action, Evidence, Finding, Status, Verdict
from preflight.registry import check, param


@dataclass(frozen=True)
class NetdevParams:
    """MTU per interface type; 0 = not judged (IPoIB datagram mode: 4092, RoCE: often 9000)."""

    ib_mtu: int = param(
        0, "Expected MTU of IPoIB interfaces (datagram mode: 4092); unset: not judged.", unset=True
    )
    eth_mtu: int = param(
        0, "Expected MTU of RoCE Ethernet interfaces (often 9000); unset: not judged.", unset=True
    )
    ignore: tuple[str, ...] = param(
        (), "Globs of RDMA ports (mlx5_8/1, mlx5_bond_*) whose interfaces are not judged."
    )


def judge_netdev(port: IbPort, dev: NetDev | None, ib_mtu: int, eth_mtu: int) -> Finding:
    """The netdev of one RDMA port: present (RoCE needs one), operstate up, MTU as expected."""
    name = port.netdev
    if name is None or dev is None:
        if port.is_roce:
            return Finding(
                port.name,
                Status.FAIL,
                "RoCE port without a network interface: RoCE traffic is addressed through it",
                (Evidence("sysfs:/sys/class/infiniband/*/device/net", None, "a netdev"),),
            )
        return Finding(port.name, Status.SKIP, "no IPoIB interface (not needed by NCCL over IB)")
    subject = f"{port.name} {name}"
    base = f"sysfs:{dev.path}/"
    problems = []
    evidence = [Evidence(base + "operstate", dev.operstate, "up")]
    todo = []
    if dev.operstate != "up":
        state = dev.operstate or dev.errors.get("operstate", "unknown")
        problems.append(f"operstate {state}, expected up")
        todo.append(f"`ip link set {name} up` and check {port.name} (rdma.port_state)")
    expected_mtu = {ARPHRD_INFINIBAND: ib_mtu, ARPHRD_ETHER: eth_mtu}.get(dev.type or -1, 0)
    if expected_mtu:
        evidence.append(Evidence(base + "mtu", dev.mtu, f"== {expected_mtu}"))
        if dev.mtu != expected_mtu:
            problems.append(f"MTU {dev.mtu}, expected {expected_mtu}")
            todo.append(f"set MTU {expected_mtu} on {name} in its network configuration")
    speed = f", {dev.speed_mbps // 1000} Gb/s" if dev.speed_mbps else ""
    if problems:
        return Finding(
            subject, Status.FAIL, "; ".join(problems), tuple(evidence), action_text="; ".join(todo)
        )
    return Finding(
        subject,
        Status.PASS,
        f"{dev.link_type} up, MTU {dev.mtu}{speed}",
        tuple(evidence),
    )


@check(
    "net.netdev",
    title="RDMA ports' network interfaces are up with the expected MTU",
    tags=("network", "rdma"),
    needs=("nic",),
    params=NetdevParams,
    action=Action.FIX_CONFIG,
)
def netdev(inv: Inventory, params: NetdevParams) -> Verdict:
    """The network interface of every RDMA port is up, with the MTU the node type expects.

    ## Why
    RoCE traffic is addressed through the port's Ethernet interface: down, no RDMA. NCCL also
    bootstraps over IP (often IPoIB): an interface that is down or has a different MTU than its
    peers (4092 in IPoIB datagram mode, 9000 jumbo frames on RoCE fabrics) stalls or fragments
    bootstrap and socket traffic.

    ## Reads
    `/sys/class/infiniband/<dev>/device/net/*`, the RoCE GIDs' `gid_attrs/ndevs`, and
    `/sys/class/net/<if>/{operstate,mtu,type,speed}`.

    ## Verdicts
    - pass: operstate `up`, MTU equal to `ib_mtu` (IPoIB) or `eth_mtu` (Ethernet) when set.
    - fail: an interface not up, a different MTU, or a RoCE port without an interface.
    - skip: InfiniBand ports without IPoIB; no RDMA device.

    ## Fix
    `ip link set <if> up`, set the MTU in the interface's network configuration (netplan,
    NetworkManager), and check the RDMA port itself (`rdma.port_state`).
    """
    net = inv.net
    ports = judged_ports(inv, params.ignore)
    findings = [
        judge_netdev(p, net.devices.get(p.netdev or ""), params.ib_mtu, params.eth_mtu)
        for p in ports
    ]
    up = sum(f.status is Status.PASS for f in findings)
    return Verdict.from_findings(findings, ok=f"{up} interfaces up", empty=NO_IB_DEVICE)
