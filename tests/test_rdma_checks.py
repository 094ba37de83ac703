"""RDMA inventory and checks (rdma.*) on hand-made sysroots and capture-derived trees: a passing
and a failing case for each check, the counter sampling window, and the judges with plain values."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from preflight.checks import rdma as R
from preflight.inventory.rdma import CounterSample, IbDevice, IbPort
from preflight.inventory.rdma_sysfs_text import PortState
from preflight.inventory.rdma_text import parse_ibstat
from preflight.model import Status, Verdict
from preflight.registry import discover
from preflight.runner import Planned, run_checks
from tests.paths import CAPTURES
from tests.rdma_sysroot import (
    ZERO_COUNTERS,
    ZERO_HW,
    Device,
    Netdev,
    Port,
    build,
    from_ibstat,
    inventory,
)
from tests.test_rdma_text import IBSTAT_CX6

REGISTRY = discover(include_plugins=False)


def run(check_id: str, root: Path, env: dict[str, str] | None = None, **params: Any) -> Verdict:
    spec = REGISTRY.get(check_id)
    return spec.func(inventory(root, env), spec.params(**params))


def statuses(v: Verdict) -> dict[str, Status]:
    return {f.subject: f.status for f in v.findings}


def eight(root: Path, **changes: Any) -> Path:
    """Eight healthy NDR ports mlx5_0..7 (ib0..7); `changes` maps an index to a Port override."""
    devices = []
    for i in range(8):
        port = Port(counters=dict(ZERO_COUNTERS), hw_counters=dict(ZERO_HW))
        for field, value in changes.get(f"p{i}", {}).items():
            setattr(port, field, value)
        dev = Device(f"mlx5_{i}", 0x20 + i, ports=[port], netdevs={f"ib{i}": Netdev()})
        for field, value in changes.get(f"d{i}", {}).items():
            setattr(dev, field, value)
        devices.append(dev)
    return build(root, devices)


# -- inventory ---------------------------------------------------------------------------------


def test_inventory_reads_devices_ports_counters_and_netdevs(tmp_path: Path) -> None:
    root = eight(tmp_path, p3={"counters": {"symbol_error": "7", "port_rcv_data": "N/A (no PMA)"}})
    inv = inventory(root)
    rdma = inv.rdma
    assert list(rdma.devices) == [f"mlx5_{i}" for i in range(8)]
    dev = rdma.devices["mlx5_3"]
    assert dev.pci_bdf == "0000:23:00.0" and dev.fw_ver == "28.41.1000" and dev.model == "MT4129"
    port = dev.ports[1]
    assert port.name == "mlx5_3/1" and port.active and port.link_up and port.is_ib
    assert port.rate is not None and port.rate.gbps == 400.0
    assert (port.lid, port.sm_lid) == (0x11F, 0x400)
    assert port.counters["counters/symbol_error"] == 7
    assert port.counters["counters/port_rcv_data"] is None  # N/A (no PMA)
    assert port.netdev == "ib3"
    assert rdma.first_sample.values[("mlx5_3/1", "counters/symbol_error")] == 7
    assert inv.pci.rdma_pci["0000:23:00.0"] == ["mlx5_3"]


def test_inventory_natural_order_and_garbage(tmp_path: Path) -> None:
    devices = [Device(n, 0x20 + i) for i, n in enumerate(["mlx5_10", "mlx5_2", "mlx5_1"])]
    devices[1].ports[0].rate = "fast"
    inv = inventory(build(tmp_path, devices))
    assert list(inv.rdma.devices) == ["mlx5_1", "mlx5_2", "mlx5_10"]
    port = inv.rdma.port("mlx5_2/1")
    assert port is not None and port.rate is None and "rate" in port.errors
    v = R.port_rate.func(inv, R.RateParams(min_gbps=400))
    assert v.status is Status.ERROR and "mlx5_2/1" in v.summary


def test_inventory_from_the_cx6_ibstat_capture(tmp_path: Path) -> None:
    inv = inventory(build(tmp_path, from_ibstat(parse_ibstat(IBSTAT_CX6))))
    down = inv.rdma.port("mlx5_1/1")
    assert down is not None
    assert down.state == PortState(1, "DOWN") and down.phys_state == PortState(3, "Disabled")
    assert down.rate is not None and str(down.rate) == "10 Gb/sec (4X SDR)"
    assert down.lid == 0xFFFF
    v = R.port_state.func(inv, R.PortStateParams())
    assert statuses(v) == {"mlx5_0/1": Status.PASS, "mlx5_1/1": Status.FAIL}
    assert "1: DOWN" in v.summary and "3: Disabled" in v.summary


def test_mooncake_node_from_its_ibstat(tmp_path: Path) -> None:
    """12 CAs (8 CX-7 IB NDR, 4 CX-6 Dx Ethernet, 2 of them Down/Disabled)."""
    text = next(CAPTURES.glob("nvidia-smi-topo-m_and_ibstat_8xH100*Mooncake*")).read_text()
    out = parse_ibstat(text[text.index("CA 'mlx5_0'") :])
    assert len(out.cas) == 12 and out.cas[2].name == "mlx5_10"  # ibstat's lexical order
    inv = inventory(build(tmp_path, from_ibstat(out)))
    assert list(inv.rdma.devices)[-2:] == ["mlx5_10", "mlx5_11"]
    state = R.port_state.func(inv, R.PortStateParams())
    failing = {s for s, st in statuses(state).items() if st is Status.FAIL}
    assert failing == {"mlx5_1/1", "mlx5_2/1"}
    assert (
        R.port_state.func(inv, R.PortStateParams(ignore=("mlx5_1/*", "mlx5_2/*"))).status
        is Status.PASS
    )
    # Two models, each on its own firmware and link layer: consistent.
    assert R.fw_version.func(inv, R.FwParams()).status is Status.PASS
    assert R.link_layer.func(inv, R.LinkLayerParams()).status is Status.PASS
    assert R.port_rate.func(inv, R.RateParams()).status is Status.PASS
    assert R.link_layer.func(inv, R.LinkLayerParams(expected="InfiniBand")).status is Status.FAIL
    # RoCE ports have no subnet manager; the IB ones do (SM lid 1024).
    sm = statuses(R.subnet_manager.func(inv, R.SubnetManagerParams()))
    assert sm["mlx5_0/1"] is Status.PASS and sm["mlx5_7/1"] is Status.SKIP


# -- rdma.devices ------------------------------------------------------------------------------


def test_devices_pass_and_count(tmp_path: Path) -> None:
    root = eight(tmp_path)
    assert run("rdma.devices", root, expected=8).status is Status.PASS
    v = run("rdma.devices", root, expected=9)
    assert v.status is Status.FAIL and "8 RDMA devices, expected 9" in v.summary


def test_devices_nic_without_rdma_device(tmp_path: Path) -> None:
    root = eight(tmp_path)
    nic = root / "sys/devices/pci0000:00/0000:40:00.0"
    nic.mkdir(parents=True)
    (nic / "vendor").write_text("0x15b3\n")
    (nic / "device").write_text("0x1021\n")
    (nic / "class").write_text("0x020700\n")
    (root / "sys/bus/pci/devices/0000:40:00.0").symlink_to(
        "../../../devices/pci0000:00/0000:40:00.0"
    )
    v = run("rdma.devices", root)
    assert v.status is Status.FAIL and "0000:40:00.0" in v.summary and "mlx5_ib" in v.summary


# -- rdma.port_state ---------------------------------------------------------------------------


def test_port_state_pass(tmp_path: Path) -> None:
    v = run("rdma.port_state", eight(tmp_path))
    assert v.status is Status.PASS and v.summary == "8 ports ACTIVE, LinkUp"


@pytest.mark.parametrize(
    ("state", "phys", "why"),
    [
        ("1: DOWN", "3: Disabled", "disabled"),
        ("1: DOWN", "2: Polling", "no link partner"),
        ("2: INIT", "5: LinkUp", "no subnet manager"),
        ("3: ARMED", "5: LinkUp", "no subnet manager"),
    ],
)
def test_port_state_fail(tmp_path: Path, state: str, phys: str, why: str) -> None:
    v = run("rdma.port_state", eight(tmp_path, p2={"state": state, "phys_state": phys}))
    assert v.status is Status.FAIL
    assert v.summary.startswith("mlx5_2/1: ") and state in v.summary and why in v.summary
    assert run("rdma.port_state", tmp_path, ignore=("mlx5_2/*",)).status is Status.PASS


def test_port_state_without_devices_skips(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    v = run("rdma.port_state", tmp_path)
    assert v.status is Status.SKIP and "rdma.devices" in v.summary


# -- rdma.port_rate ----------------------------------------------------------------------------


def test_port_rate_pinned(tmp_path: Path) -> None:
    root = eight(tmp_path, p5={"rate": "200 Gb/sec (4X HDR)"})
    assert run("rdma.port_rate", root, min_gbps=200.0).status is Status.PASS
    v = run("rdma.port_rate", root, min_gbps=400.0)
    assert v.status is Status.FAIL
    assert v.summary == "mlx5_5/1: 200 Gb/sec (4X HDR), expected at least 400 Gb/sec"


def test_port_rate_against_peers_and_down_ports(tmp_path: Path) -> None:
    root = eight(
        tmp_path,
        p5={"rate": "200 Gb/sec (4X HDR)"},
        p6={"state": "1: DOWN", "phys_state": "3: Disabled", "rate": "10 Gb/sec (4X SDR)"},
    )
    v = run("rdma.port_rate", root)
    s = statuses(v)
    assert v.status is Status.WARN and s["mlx5_5/1"] is Status.WARN and s["mlx5_6/1"] is Status.SKIP
    assert "slower than the 400 Gb/sec" in v.summary


def test_judge_rate_plain_values() -> None:
    port = IbPort("mlx5_0", 1, PortState(4, "ACTIVE"), PortState(5, "LinkUp"))
    from preflight.inventory.rdma_sysfs_text import parse_rate

    port.rate = parse_rate("400 Gb/sec (4X NDR)")
    assert R.judge_rate(port, 400.0, None).status is Status.PASS
    assert R.judge_rate(port, 800.0, None).status is Status.FAIL
    assert R.judge_rate(port, 0.0, 400.0).status is Status.PASS


# -- rdma.link_layer ---------------------------------------------------------------------------


def test_link_layer(tmp_path: Path) -> None:
    root = eight(tmp_path)
    assert run("rdma.link_layer", root, expected="InfiniBand").status is Status.PASS
    v = run("rdma.link_layer", root, expected="Ethernet")
    assert v.status is Status.FAIL and "link layer InfiniBand, expected Ethernet" in v.summary
    assert run("rdma.link_layer", root, expected="IB").status is Status.ERROR


def test_link_layer_odd_one_out_warns(tmp_path: Path) -> None:
    root = eight(tmp_path, p4={"link_layer": "Ethernet"})
    v = run("rdma.link_layer", root)
    assert v.status is Status.WARN and v.summary.startswith("mlx5_4/1: link layer Ethernet")


# -- rdma.subnet_manager -----------------------------------------------------------------------


def test_subnet_manager(tmp_path: Path) -> None:
    assert run("rdma.subnet_manager", eight(tmp_path)).status is Status.PASS


def test_subnet_manager_missing(tmp_path: Path) -> None:
    root = eight(tmp_path, p1={"state": "2: INIT", "lid": "0x0", "sm_lid": "0x0"})
    v = run("rdma.subnet_manager", root)
    assert v.status is Status.FAIL
    assert "mlx5_1/1: no LID assigned and no subnet manager LID" in v.summary


# -- rdma.fw_version ---------------------------------------------------------------------------


def test_fw_version_consistent_and_pinned(tmp_path: Path) -> None:
    root = eight(tmp_path)
    assert run("rdma.fw_version", root).status is Status.PASS
    assert run("rdma.fw_version", root, pinned=("MT4129=28.41.1000",)).status is Status.PASS
    v = run("rdma.fw_version", root, pinned=("28.43.2026",))
    assert v.status is Status.FAIL and "pinned 28.43.2026" in v.summary
    assert run("rdma.fw_version", root, pinned=("MT4125=1.2.3",)).status is Status.PASS


def test_fw_version_mismatch(tmp_path: Path) -> None:
    root = eight(tmp_path, d6={"fw_ver": "28.39.2048"})
    v = run("rdma.fw_version", root)
    assert v.status is Status.FAIL
    assert v.summary.startswith("mlx5_6: firmware 28.39.2048 differs from 28.41.1000")


def test_judge_fw_tie_prefers_the_newer_version() -> None:
    devs = [
        IbDevice("a", "0000:20:00.0", fw_ver="28.39.2048", hca_type="MT4129"),
        IbDevice("b", "0000:21:00.0", fw_ver="28.41.1000", hca_type="MT4129"),
    ]
    found = {f.subject: f.status for f in R.judge_fw(devs, ())}
    assert found == {"a": Status.FAIL, "b": Status.PASS}


def test_judge_fw_unknown_firmware_and_non_nics() -> None:
    """ib_qib has no fw_ver (SKIP, not ERROR); an unreadable one WARNs; rxe and a device without
    a PCI function are not NICs: neither counted nor compared."""
    devs = [
        IbDevice("mlx5_0", "0000:20:00.0", fw_ver="28.41.1000", hca_type="MT4129"),
        IbDevice("qib0", "0000:21:00.0", hca_type="InfiniPath_QLE7340"),
        IbDevice("mlx5_1", "0000:22:00.0", hca_type="MT4129", errors={"fw_ver": "EIO"}),
        IbDevice("rxe0", "0000:23:00.0", software=True),
        IbDevice("scif0", None),
    ]
    found = {f.subject: (f.status, f.message) for f in R.judge_fw(devs, ())}
    assert found["mlx5_0"][0] is Status.PASS
    assert found["qib0"] == (
        Status.SKIP,
        "the driver exposes no firmware version (no fw_ver): not compared",
    )
    assert found["mlx5_1"][0] is Status.WARN and "EIO" in found["mlx5_1"][1]
    assert found["rxe0"][0] is Status.SKIP and "Soft-RoCE" in found["rxe0"][1]
    assert found["scif0"][0] is Status.SKIP and "no PCI function" in found["scif0"][1]
    verdict = Verdict.from_findings(R.judge_fw(devs[:2], ()), ok="1 NICs")
    assert verdict.status is Status.PASS
    assert verdict.summary == (
        "1 NICs; 1 of 2 not checked: qib0: the driver exposes no firmware version (no fw_ver): "
        "not compared"
    )


def test_rdma_devices_do_not_count_software_or_non_pci_devices(tmp_path: Path) -> None:
    root = build(tmp_path, [Device("mlx5_0", 0x20)])
    # Soft-RoCE on the same host: its device link is the netdev's PCI parent, plus `parent`.
    rxe = root / "sys/devices/virtual/infiniband/rxe0"
    (rxe / "ports/1").mkdir(parents=True)
    (rxe / "parent").write_text("eth0\n")
    (rxe / "device").symlink_to("../../../pci0000:00/0000:20:00.0")
    (root / "sys/class/infiniband/rxe0").symlink_to("../../devices/virtual/infiniband/rxe0")
    # A SCIF RDMA device: not a PCI function.
    scif = root / "sys/devices/virtual/scif/scif0/infiniband/scif0"
    scif.mkdir(parents=True)
    (scif / "device").symlink_to("../..")
    (root / "sys/class/infiniband/scif0").symlink_to(
        "../../devices/virtual/scif/scif0/infiniband/scif0"
    )
    inv = inventory(root)
    assert [n.bdf for n in inv.pci.nics()] == ["0000:20:00.0"]
    assert inv.pci.rdma_pci == {"0000:20:00.0": ["mlx5_0"]}
    v = R.devices.func(inv, R.DevicesParams(expected=1))
    assert v.status is Status.PASS, v.summary
    assert v.summary.startswith("1 RDMA devices for 1 NIC functions; 2 of 3 not checked")
    fw = R.fw_version.func(inv, R.FwParams())
    assert fw.status is Status.PASS and fw.summary.startswith("1 NICs on firmware 28.41.1000")


# -- rdma.counters -----------------------------------------------------------------------------


def test_counters_clean(tmp_path: Path) -> None:
    v = run("rdma.counters", eight(tmp_path))
    assert v.status is Status.PASS and v.summary.startswith("8 ports: error counters low")


def test_counters_since_boot_and_saturated_warn(tmp_path: Path) -> None:
    counters = dict(ZERO_COUNTERS, symbol_error="12", link_downed="255", port_xmit_discards="65535")
    v = run("rdma.counters", eight(tmp_path, p1={"counters": counters}))
    found = statuses(v)
    assert v.status is Status.WARN
    assert found["mlx5_1/1 symbol_error"] is Status.WARN
    assert found["mlx5_1/1 link_downed"] is Status.WARN
    discards = next(f for f in v.findings if f.subject == "mlx5_1/1 port_xmit_discards")
    assert "saturated" in discards.message  # 65535 = 2^16-1 is "at least", above any threshold
    message = next(f.message for f in v.findings if f.subject == "mlx5_1/1 link_downed")
    assert "≥ 255" in message and "saturated" in message
    relaxed = run(
        "rdma.counters",
        tmp_path,
        max_link_errors=100,
        link_counters=("symbol_error",),
        transport_counters=(),
    )
    assert relaxed.status is Status.PASS


def test_counters_no_pma_skip(tmp_path: Path) -> None:
    na = dict.fromkeys(ZERO_COUNTERS, "N/A (no PMA)")
    v = run("rdma.counters", eight(tmp_path, p0={"counters": na, "hw_counters": {}}))
    assert statuses(v)["mlx5_0/1"] is Status.SKIP
    assert any("N/A (no PMA)" in f.message for f in v.findings)


def test_counters_growing_during_the_run_fail(tmp_path: Path) -> None:
    root = eight(tmp_path)
    inv = inventory(root)
    inv.open_window()  # first sample, as the runner takes it before the first check
    counter = root / "sys/devices/pci0000:00/0000:22:00.0/infiniband/mlx5_2/ports/1/counters"
    (counter / "symbol_error").write_text("3\n")
    (
        root
        / "sys/devices/pci0000:00/0000:22:00.0/infiniband/mlx5_2/ports/1/hw_counters/packet_seq_err"
    ).write_text("40\n")
    v = R.counters.func(inv, R.CountersParams())
    assert v.status is Status.FAIL
    found = statuses(v)
    assert found["mlx5_2/1 symbol_error"] is Status.FAIL
    assert found["mlx5_2/1 packet_seq_err"] is Status.FAIL
    msg = next(f for f in v.findings if f.subject == "mlx5_2/1 symbol_error")
    assert "grew 0 → 3 (+3)" in msg.message and msg.evidence[0].observed == "0 → 3"
    assert R.counters.func(inv, R.CountersParams(fail_on_growth=False)).status is Status.WARN


def test_counters_window_waits(tmp_path: Path) -> None:
    inv = inventory(eight(tmp_path))
    inv.open_window()
    start = time.monotonic()
    v = R.counters.func(inv, R.CountersParams(window_s=0.3))
    assert time.monotonic() - start >= 0.25
    assert v.status is Status.PASS
    window = float(re.search(r"none grew in ([0-9.]+) s", v.summary).group(1))  # type: ignore[union-attr]
    assert window >= 0.3


def test_judge_counter_plain_values() -> None:
    src = "sysfs:x"
    assert R.judge_counter("p", "counters/symbol_error", 0, 0, 0, 1.0, True, src) is None
    grew = R.judge_counter("p", "counters/symbol_error", 1, 5, 10, 1.0, True, src)
    assert grew is not None and grew.status is Status.FAIL
    boot = R.judge_counter("p", "counters/link_downed", 2, 2, 0, 1.0, True, src)
    assert boot is not None and boot.status is Status.WARN
    sat = R.judge_counter(
        "p", "counters/excessive_buffer_overrun_errors", 15, 15, 100, 1.0, True, src
    )
    assert sat is not None and sat.status is Status.WARN and "saturated" in sat.message


def test_judge_port_counters_missing_end_sample_keeps_start() -> None:
    port = IbPort("mlx5_0", 1, counters={"counters/symbol_error": 0})
    first = CounterSample(0.0, {("mlx5_0/1", "counters/symbol_error"): 0})
    last = CounterSample(1.0, {})
    found = R.judge_port_counters(port, first, last, R.CountersParams())
    assert [f.status for f in found] == [Status.PASS]


def test_runner_opens_the_window_first_and_runs_final_checks_last(tmp_path: Path) -> None:
    inv = inventory(eight(tmp_path))
    order: list[str] = []
    counters_spec = REGISTRY.get("rdma.counters")
    state_spec = REGISTRY.get("rdma.port_state")

    def record(spec: Any) -> Any:
        def func(i: Any, p: Any) -> Verdict:
            order.append(spec.id)
            assert i.window_opened_at is not None
            verdict: Verdict = spec.func(i, p)
            return verdict

        from dataclasses import replace

        return replace(spec, func=func)

    plan = [
        Planned(record(counters_spec), counters_spec.params()),
        Planned(record(state_spec), state_spec.params()),
    ]
    results = run_checks(plan, inv)
    assert order == ["rdma.port_state", "rdma.counters"]
    assert [r.id for r in results] == ["rdma.counters", "rdma.port_state"]  # plan order kept


# -- RoCE --------------------------------------------------------------------------------------

LINK_LOCAL = "fe80:0000:0000:0000:5aa2:e1ff:fe1b:2576"
MAPPED = "0000:0000:0000:0000:0000:ffff:0a0a:000b"


def roce(root: Path, gids: dict[int, tuple[str, str | None, str | None]], ecn: Any = None) -> Path:
    port = Port(link_layer="Ethernet", lid="0x0", sm_lid="0x0", gids=gids)
    nd = Netdev(mtu="9000", type="1", ecn=ecn)
    return build(root, [Device("mlx5_0", 0x19, ports=[port], netdevs={"enp25s0np0": nd})])


def test_roce_gid_pass(tmp_path: Path) -> None:
    dev = "enp25s0np0"
    root = roce(
        tmp_path,
        {
            0: (LINK_LOCAL, "IB/RoCE v1", dev),
            1: (LINK_LOCAL, "RoCE v2", dev),
            2: (MAPPED, "IB/RoCE v1", dev),
            3: (MAPPED, "RoCE v2", dev),
        },
    )
    v = run("rdma.roce_gid", root)
    assert v.status is Status.PASS
    assert v.findings[0].message == "RoCE v2 GID 3 (10.10.0.11) on enp25s0np0"


def test_roce_gid_without_v2_fails(tmp_path: Path) -> None:
    root = roce(tmp_path, {0: (LINK_LOCAL, "IB/RoCE v1", "enp25s0np0")})
    v = run("rdma.roce_gid", root)
    assert v.status is Status.FAIL and "no RoCE v2 GID bound to enp25s0np0" in v.summary


def test_roce_gid_without_ipv4_warns(tmp_path: Path) -> None:
    root = roce(tmp_path, {0: (LINK_LOCAL, "RoCE v2", "enp25s0np0")})
    assert run("rdma.roce_gid", root).status is Status.WARN
    v6 = run("rdma.roce_gid", root, env={"NCCL_IB_ADDR_FAMILY": "AF_INET6"})
    assert v6.status is Status.PASS


def test_roce_checks_skip_on_infiniband(tmp_path: Path) -> None:
    root = eight(tmp_path)
    assert run("rdma.roce_gid", root).status is Status.SKIP
    assert run("rdma.roce_ecn", root).status is Status.SKIP


def test_roce_ecn(tmp_path: Path) -> None:
    on = {"roce_np": {3: "1"}, "roce_rp": {3: "1"}}
    root = roce(tmp_path, {1: (MAPPED, "RoCE v2", "enp25s0np0")}, ecn=on)
    assert run("rdma.roce_ecn", root, required=True).status is Status.PASS
    assert run("rdma.roce_ecn", root, priority=8).status is Status.ERROR
    off = run("rdma.roce_ecn", root, priority=5, required=True)
    assert off.status is Status.FAIL and "ECN off on priority 5" in off.summary
    assert run("rdma.roce_ecn", root, priority=5).status is Status.WARN


def test_roce_ecn_not_exposed_skips(tmp_path: Path) -> None:
    root = roce(tmp_path, {1: (MAPPED, "RoCE v2", "enp25s0np0")})
    v = run("rdma.roce_ecn", root, required=True)
    assert v.status is Status.SKIP and "exposes no ECN" in v.findings[0].message


def test_judge_ecn_plain_values() -> None:
    on = {"roce_np": {3: 1}, "roce_rp": {3: 1}}
    assert R.judge_ecn("p", "eth0", on, 3, True).status is Status.PASS
    half = {"roce_np": {3: 1}, "roce_rp": {3: 0}}
    assert R.judge_ecn("p", "eth0", half, 3, True).status is Status.FAIL
    assert R.judge_ecn("p", "eth0", None, 3, True).status is Status.SKIP
