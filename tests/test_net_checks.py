"""/sys/class/net inventory and the net.netdev check: up, expected MTU, RoCE needs a netdev."""

from __future__ import annotations

from pathlib import Path

from preflight.checks.net import judge_netdev
from preflight.inventory.net import NetDev
from preflight.inventory.rdma import IbPort
from preflight.inventory.rdma_sysfs_text import PortState
from preflight.model import Status
from tests.rdma_sysroot import Device, Netdev, Port, build, inventory
from tests.test_rdma_checks import eight, run


def test_net_inventory(tmp_path: Path) -> None:
    root = eight(tmp_path)
    build(tmp_path, [], {"lo": Netdev(mtu="65536", type="772", speed=None, operstate="unknown")})
    net = inventory(root).net
    ib0 = net.devices["ib0"]
    assert (ib0.operstate, ib0.mtu, ib0.type, ib0.speed_mbps) == ("up", 4092, 32, 400000)
    assert ib0.pci_bdf == "0000:20:00.0" and ib0.link_type == "InfiniBand"
    lo = net.devices["lo"]
    assert lo.speed_mbps is None and lo.pci_bdf is None and lo.errors == {}
    assert list(net.devices)[:3] == ["ib0", "ib1", "ib2"]


def test_net_inventory_reads_ecn(tmp_path: Path) -> None:
    ecn = {"roce_np": dict.fromkeys(range(8), "1"), "roce_rp": {3: "0"}}
    build(tmp_path, [], {"eth0": Netdev(mtu="9000", type="1", ecn=ecn)})
    dev = inventory(tmp_path).net.devices["eth0"]
    assert dev.ecn is not None and dev.ecn["roce_np"][7] == 1 and dev.ecn["roce_rp"] == {3: 0}


def test_netdev_pass(tmp_path: Path) -> None:
    v = run("net.netdev", eight(tmp_path), ib_mtu=4092)
    assert v.status is Status.PASS and v.summary == "8 interfaces up"
    assert v.findings[0].message == "InfiniBand up, MTU 4092, 400 Gb/s"


def test_netdev_down_or_wrong_mtu_fails(tmp_path: Path) -> None:
    devices = [
        Device("mlx5_0", 0x20, netdevs={"ib0": Netdev(operstate="down", speed="-1")}),
        Device("mlx5_1", 0x21, netdevs={"ib1": Netdev(mtu="2044")}),
    ]
    v = run("net.netdev", build(tmp_path, devices), ib_mtu=4092)
    found = {f.subject: f for f in v.findings}
    assert v.status is Status.FAIL
    assert found["mlx5_0/1 ib0"].message == "operstate down, expected up"
    assert found["mlx5_1/1 ib1"].message == "MTU 2044, expected 4092"
    assert run("net.netdev", tmp_path).findings[1].status is Status.PASS  # MTU not pinned


def test_netdev_roce_without_interface_fails_ib_skips(tmp_path: Path) -> None:
    devices = [
        Device("mlx5_0", 0x20, ports=[Port(link_layer="Ethernet", lid="0x0", sm_lid="0x0")]),
        Device("mlx5_1", 0x21),
    ]
    v = run("net.netdev", build(tmp_path, devices))
    found = {f.subject: f.status for f in v.findings}
    assert found == {"mlx5_0/1": Status.FAIL, "mlx5_1/1": Status.SKIP}


def test_judge_netdev_plain_values() -> None:
    port = IbPort("mlx5_0", 1, PortState(4, "ACTIVE"), netdevs=["ib0", "ib0.8001"])
    assert port.netdev == "ib0"
    up = NetDev("ib0", operstate="up", mtu=4092, type=32)
    assert judge_netdev(port, up, 4092, 0).status is Status.PASS
    assert judge_netdev(port, up, 2044, 0).status is Status.FAIL
    eth = NetDev("ib0", operstate="up", mtu=1500, type=1)
    assert judge_netdev(port, eth, 4092, 9000).status is Status.FAIL
    assert judge_netdev(port, eth, 4092, 0).status is Status.PASS
