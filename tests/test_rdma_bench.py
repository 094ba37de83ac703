"""`bench rdma`: HCA targets from sysfs (RoCE v2 GID index, nearest GPU), perftest command lines,
the line-rate judgement, and the command end to end with the perftest STAND-IN on PATH (its
replays are real captures, reported as a stand-in and never as a pass)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from preflight.bench.rdma_perftest import Endpoint, PerftestSpec, command
from preflight.bench.rdma_targets import HcaPort, hca_ports, judge_bandwidth
from preflight.host import Host
from preflight.inventory.rdma_sysfs_text import LinkRate
from tests.bench_procs import preflight
from tests.rdma_sysroot import Device, Port, build

STANDINS = str(Path(__file__).parent / "standins")

# RoCE port GID table as mlx5 fills it: v1 and v2 of the link-local, then v1 and v2 of an IPv4.
ROCE_GIDS: dict[int, tuple[str, str | None, str | None]] = {
    0: ("fe80:0000:0000:0000:ba3f:d2ff:fe1c:5a10", "IB/RoCE v1", "eth2"),
    1: ("fe80:0000:0000:0000:ba3f:d2ff:fe1c:5a10", "RoCE v2", "eth2"),
    2: ("0000:0000:0000:0000:0000:ffff:c0a8:0102", "IB/RoCE v1", "eth2"),
    3: ("0000:0000:0000:0000:0000:ffff:c0a8:0102", "RoCE v2", "eth2"),
}


def port(**kw: object) -> HcaPort:
    base: dict[str, object] = {
        "hca": "mlx5_3",
        "port": 1,
        "link_layer": "InfiniBand",
        "rate": LinkRate(400.0, 4, "NDR"),
        "active": True,
        "gid_index": None,
        "netdev": "ib3",
        "pci_bdf": "0000:5c:00.0",
        "gpu_bdf": "0000:5d:00.0",
        "gpu_path": "PIX",
    }
    base.update(kw)
    return HcaPort(**base)  # type: ignore[arg-type]


def test_roce_port_gets_the_ipv4_roce_v2_gid_index(tmp_path: Path) -> None:
    roce = Port(rate="100 Gb/sec (4X EDR)", link_layer="Ethernet", lid="0x0", gids=ROCE_GIDS)
    build(tmp_path, [Device("mlx5_0", 0x20, ports=[roce]), Device("mlx5_1", 0x21)])
    ports = {p.hca: p for p in hca_ports(Host(root=str(tmp_path)))}
    assert ports["mlx5_0"].gid_index == 3 and ports["mlx5_0"].link_layer == "Ethernet"
    assert ports["mlx5_1"].gid_index is None  # InfiniBand: no -x
    assert ports["mlx5_0"].rate_text == "100 Gb/s (4X EDR)"
    assert ports["mlx5_0"].gpu_bdf is None  # no GPU in this tree


def test_profile_pairs_each_hca_with_the_gpu_below_its_switch() -> None:
    from preflight.profile import host_from_profile

    ports = hca_ports(host_from_profile("dgx-h100"))
    assert [(p.hca, p.gpu_bdf, p.gpu_path) for p in ports][:2] == [
        ("mlx5_0", "0000:18:00.0", "PIX"),
        ("mlx5_1", "0000:2a:00.0", "PIX"),
    ]


CASES = [
    (
        PerftestSpec("write_bw", 1 << 20, 5),
        Endpoint("mlx5_0", 1, 3, "0000:18:00.0"),
        None,
        "ib_write_bw -d mlx5_0 -i 1 -p 18515 -x 3 -s 1048576 --report_gbits -q 1 -D 5 "
        "--use_cuda_bus_id=0000:18:00.0",
    ),
    (
        PerftestSpec("read_bw", 65536, None, 2000, qps=4, bidirectional=True),
        Endpoint("mlx5_1", 1, None, "0000:2a:00.0", dmabuf=True),
        "10.0.0.2",
        "ib_read_bw -d mlx5_1 -i 1 -p 18515 -s 65536 --report_gbits -q 4 -b -n 2000 "
        "--use_cuda_bus_id=0000:2a:00.0 --use_cuda_dmabuf 10.0.0.2",
    ),
    (
        PerftestSpec("write_lat", 2, None, 10000),
        Endpoint("mlx5_2", 2, 1, "0000:3a:00.0"),  # latency: perftest has no --use_cuda there
        "127.0.0.1",
        "ib_write_lat -d mlx5_2 -i 2 -p 18515 -x 1 -s 2 -n 10000 127.0.0.1",
    ),
]


@pytest.mark.parametrize(("spec", "end", "server", "line"), CASES)
def test_command_lines(spec: PerftestSpec, end: Endpoint, server: str | None, line: str) -> None:
    binary = "ib_" + spec.test
    assert " ".join(command(binary, spec, end, 18515, server)) == line


def test_judgement_names_hca_rate_and_expectation() -> None:
    j = judge_bandwidth(port(), 311.0, 0.90)
    assert j.ok is False
    assert j.message == "mlx5_3: 311 Gb/s average = 78% of 400 Gb/s (4X NDR), expected ≥ 90%"
    # aznhc's 380 Gb/s per NDR HCA with GPUDirect is 95%: a pass
    assert judge_bandwidth(port(), 380.0, 0.90).ok is True
    both = judge_bandwidth(port(), 700.0, 0.90, bidirectional=True)
    assert both.ok is False and "of 800 Gb/s" in both.message
    assert judge_bandwidth(port(rate=None), 10.0, 0.9).ok is None


def standin_env(**extra: str) -> dict[str, str]:
    return {"PATH": STANDINS + os.pathsep + os.environ["PATH"], **extra}


def test_loopback_end_to_end_with_the_standin_is_never_a_pass() -> None:
    res = preflight(
        "bench",
        "rdma",
        "--profile",
        "dgx-h100",
        "--hca",
        "mlx5_0",
        "--duration",
        "1",
        "--format",
        "json",
        env=standin_env(),
    )
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["schema"] == "preflight-bench-rdma/1"
    assert doc["summary"].startswith("STAND-IN")
    runs = doc["results"]
    assert [(r["hca"], r["memory"], r["gpu"]) for r in runs] == [
        ("mlx5_0", "host", None),
        ("mlx5_0", "cuda", "0000:18:00.0"),
    ]
    for r in runs:
        assert r["status"] == "stand-in" and r["standin"] is True
        assert r["average_gbps"] == pytest.approx(98.03)  # the HPE capture's figure
        assert r["client_cmd"][-1] == "127.0.0.1" and r["server_cmd"][0].endswith("ib_write_bw")
        assert r["server_cmd"][r["server_cmd"].index("-p") + 1] == r["client_cmd"][6]
    assert "--use_cuda_bus_id=0000:18:00.0" in runs[1]["client_cmd"]


def test_loopback_names_the_hca_whose_perftest_fails() -> None:
    res = preflight(
        "bench",
        "rdma",
        "--profile",
        "dgx-h100",
        "--hca",
        "mlx5_0,mlx5_1",
        "--duration",
        "1",
        "--gpudirect",
        "off",
        "--timeout",
        "3",
        "--listen-timeout",
        "2",
        "--no-chart",
        env=standin_env(PREFLIGHT_STANDIN_MODE_mlx5_1="no-accept"),
    )
    assert res.returncode == 1
    assert "mlx5_1 host: server and client still running after 3 s: killed" in res.stdout


def test_missing_perftest_is_one_line_and_exit_3() -> None:
    res = preflight("bench", "rdma", "--profile", "dgx-h100", env={"PATH": "/nonexistent"})
    assert res.returncode == 3
    assert res.stderr.strip().splitlines() == [
        "preflight: error: ib_write_bw is not on PATH: install the package 'perftest' "
        "(apt-get install perftest / dnf install perftest)"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--test", "atomic_bw"], "unknown --test 'atomic_bw'"),
        (["--hca", "mlx5_99"], "no RDMA device mlx5_99"),
        (["--partner", "mlx5_0"], "--partner takes HCA=HCA pairs"),
        (["--bytes", "lots"], "size"),
        (["--min-efficiency", "1.5"], "--min-efficiency"),
    ],
)
def test_bad_command_lines_exit_2(args: list[str], message: str) -> None:
    res = preflight("bench", "rdma", "--profile", "dgx-h100", "--dry-run", *args)
    assert res.returncode == 2 and message in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
