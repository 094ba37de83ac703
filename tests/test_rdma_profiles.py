"""The network profiles end to end through the CLI, and what their files hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.harness import by_id, run_json
from tests.harness import cli as run
from tests.test_profiles_data import resolved

NETWORK_CHECKS = ("rdma.", "net.", "gdr.", "nccl.", "topology.")


def bad(doc: dict[str, Any]) -> dict[str, str]:
    return {
        r["id"]: r["status"] for r in doc["results"] if r["status"] in ("fail", "warn", "error")
    }


def failing(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in result["findings"] if f["status"] == "fail"]


def test_healthy_nodes_pass_every_network_check() -> None:
    for profile in ("dgx-h100", "hgx-h200"):
        code, doc = run_json("--profile", profile)
        assert code == 0, bad(doc)
        results = by_id(doc)
        for check in (
            "rdma.port_state",
            "rdma.port_rate",
            "rdma.counters",
            "net.netdev",
            "gdr.peermem",
            "gdr.uverbs",
            "topology.gpu_nic_distance",
            "rdma.fw_version",
            "rdma.subnet_manager",
            "rdma.devices",
            "rdma.link_layer",
            "nccl.env",
        ):
            assert results[check]["status"] == "pass", (profile, check, results[check]["summary"])
        for check in ("rdma.roce_gid", "rdma.roce_ecn", "nccl.ib_hca", "nccl.socket_ifname"):
            assert results[check]["status"] == "skip"


def test_dgx_h100_network_facts() -> None:
    _, doc = run_json("--profile", "dgx-h100", "--only", "rdma.devices")
    facts = doc["facts"]
    assert facts["rdma.mlx5_0.fw_ver"] == "28.41.1000"
    assert facts["rdma.mlx5_0.hca_type"] == "MT4129"
    assert facts["rdma.mlx5_0.port1.state"] == "4: ACTIVE"
    assert facts["rdma.mlx5_0.port1.rate"] == "400 Gb/sec (4X NDR)"
    assert facts["rdma.mlx5_0.port1.lid"] == 287 and facts["rdma.mlx5_0.port1.sm_lid"] == 1024
    assert facts["net.ib0.mtu"] == 4092 and facts["net.ib7.operstate"] == "up"
    assert facts["topology.GPU3.nearest_nic"] == "mlx5_3 PIX"
    assert facts["gdr.peermem"] == "565.57.01" and facts["gdr.uverbs"] == 8


def test_ib_port_down_fails_naming_port_and_state() -> None:
    code, doc = run_json("--profile", "dgx-h100-ib-port-down")
    assert code == 1
    state = by_id(doc)["rdma.port_state"]
    assert state["status"] == "fail"
    (finding,) = failing(state)
    assert finding["subject"] == "mlx5_3/1"
    assert "1: DOWN" in finding["message"] and "3: Disabled" in finding["message"]
    observed = {e["source"].rsplit("/", 1)[-1]: e["observed"] for e in finding["evidence"]}
    assert observed == {"state": "1: DOWN", "phys_state": "3: Disabled"}
    assert bad(doc) == {"rdma.port_state": "fail", "net.netdev": "fail", "rdma.counters": "warn"}
    assert doc["facts"]["rdma.mlx5_3.port1.lid"] == 0xFFFF


def test_ib_port_down_with_nccl_ib_hca_naming_it() -> None:
    code, doc = run_json("--profile", "dgx-h100-ib-port-down", "--env", "NCCL_IB_HCA==mlx5_3:1")
    hca = by_id(doc)["nccl.ib_hca"]
    assert code == 1 and hca["status"] == "fail" and "mlx5_3/1" in hca["summary"]


def test_ib_rate_hdr_fails() -> None:
    code, doc = run_json("--profile", "dgx-h100-ib-rate-hdr")
    assert code == 1 and bad(doc) == {"rdma.port_rate": "fail"}
    assert by_id(doc)["rdma.port_rate"]["summary"] == (
        "mlx5_5/1: 200 Gb/sec (4X HDR), expected at least 400 Gb/sec"
    )


def test_ib_symbol_errors_warn_and_strict_fails() -> None:
    code, doc = run_json("--profile", "dgx-h100-ib-symbol-errors")
    assert code == 0 and bad(doc) == {"rdma.counters": "warn"}
    subjects = {
        f["subject"] for f in by_id(doc)["rdma.counters"]["findings"] if f["status"] == "warn"
    }
    assert {
        "mlx5_1/1 symbol_error",
        "mlx5_1/1 link_downed",
        "mlx5_1/1 port_xmit_discards",
    } <= subjects
    assert run("run", "--profile", "dgx-h100-ib-symbol-errors", "--strict").exit_code == 1


def test_nic_fw_mismatch_fails() -> None:
    code, doc = run_json("--profile", "dgx-h100-nic-fw-mismatch")
    assert code == 1 and bad(doc) == {"rdma.fw_version": "fail"}
    (finding,) = failing(by_id(doc)["rdma.fw_version"])
    assert finding["subject"] == "mlx5_6" and finding["evidence"][0]["observed"] == "28.39.2048"
    assert doc["facts"]["rdma.mlx5_6.fw_ver"] == "28.39.2048"


def test_no_peermem_fails() -> None:
    code, doc = run_json("--profile", "dgx-h100-no-peermem")
    assert code == 1
    assert {k for k, v in bad(doc).items() if k.startswith(NETWORK_CHECKS)} == {"gdr.peermem"}
    summary = by_id(doc)["gdr.peermem"]["summary"]
    assert "nvidia_peermem not loaded" in summary and "proprietary" in summary
    assert doc["facts"]["gdr.peermem"] is None
    assert doc["facts"]["nvidia.open_kernel_module"] is False


def test_cross_socket_nic_fails_topology() -> None:
    code, doc = run_json("--profile", "dgx-h100-gpu-nic-cross-socket")
    assert code == 1
    assert {k for k, v in bad(doc).items() if k.startswith(NETWORK_CHECKS)} == {
        "topology.gpu_nic_distance"
    }
    assert by_id(doc)["numa.gpu_nic_affinity"]["status"] == "pass"  # mlx5_1 is NODE, same NUMA
    facts = doc["facts"]
    assert (
        facts["topology.GPU0.mlx5_0"] == "SYS"
        and facts["topology.GPU0.nearest_nic"] == "mlx5_1 NODE"
    )
    assert facts["rdma.mlx5_0.pci"] == "0000:c8:00.0"
    assert facts["pci.0000:c8:00.0.numa_node"] == 1


def test_roce_node_needs_its_baseline() -> None:
    code, doc = run_json("--profile", "dgx-h100-roce")
    assert code == 1 and doc["baseline"]["name"] == "dgx-h100"
    assert bad(doc) == {"rdma.link_layer": "fail"}
    code, doc = run_json("--profile", "dgx-h100-roce", "--baseline", "dgx-h100-roce")
    assert code == 0, bad(doc)
    results = by_id(doc)
    for check in ("rdma.roce_gid", "rdma.roce_ecn", "rdma.link_layer", "net.netdev"):
        assert results[check]["status"] == "pass", results[check]["summary"]
    assert results["rdma.subnet_manager"]["status"] == "skip"
    gid = results["rdma.roce_gid"]["findings"][0]["message"]
    assert gid == "RoCE v2 GID 3 (10.10.0.11) on enp25s0np0"
    assert doc["facts"]["net.enp25s0np0.mtu"] == 9000


def test_roce_node_gid_index_warns() -> None:
    _, doc = run_json(
        "--profile", "dgx-h100-roce", "--baseline", "dgx-h100-roce", "--env", "NCCL_IB_GID_INDEX=3"
    )
    assert by_id(doc)["nccl.env"]["status"] == "warn"


def test_nccl_ib_hca_typo_fails_naming_the_variable() -> None:
    result = run("run", "--profile", "dgx-h100", "--env", "NCCL_IB_HCA==mlx5_9")
    assert result.exit_code == 1
    assert "NCCL_IB_HCA" in result.stdout and "mlx5_9" in result.stdout
    code, doc = run_json("--profile", "dgx-h100", "--env", "NCCL_IB_HCA==mlx5_9")
    assert code == 1 and bad(doc) == {"nccl.ib_hca": "fail"}
    assert by_id(doc)["nccl.ib_hca"]["summary"].startswith("NCCL_IB_HCA: '=mlx5_9' selects no")


def test_counters_run_last_but_report_in_order() -> None:
    _, doc = run_json("--profile", "dgx-h100", "--only", "rdma.*")
    ids = [r["id"] for r in doc["results"]]
    assert ids == sorted(ids)
    assert "none grew in" in by_id(doc)["rdma.counters"]["summary"]


# -- profile data ------------------------------------------------------------------------------

VARIANT_TOUCHES = {
    "dgx-h100-ib-port-down": ("/infiniband/mlx5_3/ports/1/", "/net/ib3/"),
    "dgx-h100-ib-rate-hdr": ("/infiniband/mlx5_5/ports/1/rate", "/net/ib5/speed"),
    "dgx-h100-ib-symbol-errors": ("/infiniband/mlx5_1/ports/1/counters/",),
    "dgx-h100-nic-fw-mismatch": ("/infiniband/mlx5_6/fw_ver",),
    "dgx-h100-no-peermem": ("/sys/module/nvidia_peermem/", "/proc/driver/nvidia/version"),
}


@pytest.mark.parametrize(("name", "parts"), sorted(VARIANT_TOUCHES.items()))
def test_variant_changes_only_its_device(name: str, parts: tuple[str, ...]) -> None:
    base, variant = resolved("dgx-h100")["files"], resolved(name)["files"]
    changed = {p for p in base.keys() | variant.keys() if base.get(p) != variant.get(p)}
    assert changed and all(any(part in p for part in parts) for p in changed), sorted(changed)


def test_profiles_hold_verbs_devices_and_port_gid_types() -> None:
    files = resolved("dgx-h100")["files"]
    assert [p for p in files if p.startswith("/dev/infiniband/uverbs")] == [
        f"/dev/infiniband/uverbs{i}" for i in range(8)
    ]
    ibdevs = sorted(v for p, v in files.items() if p.endswith("/infiniband_verbs/uverbs0/ibdev"))
    assert ibdevs == ["mlx5_0\n"]
    types = [v for p, v in files.items() if p.endswith("/gid_attrs/types/0")]
    assert types == ["IB/RoCE v1\n"] * 8


def test_roce_profile_has_no_ipoib_and_ecn_everywhere() -> None:
    full = resolved("dgx-h100-roce")
    paths = set(full["files"]) | set(full["symlinks"])
    assert not [p for p in paths if "/net/ib" in p]
    ecn = [p for p in full["files"] if "/ecn/roce_np/enable/" in p or "/ecn/roce_rp/enable/" in p]
    assert len(ecn) == 8 * 2 * 8
    rates = {v for p, v in full["files"].items() if p.endswith("/ports/1/rate")}
    assert rates == {"400 Gb/sec (4X NDR)\n"}


# -- this machine ------------------------------------------------------------------------------


@pytest.mark.skipif(os.path.exists("/sys/class/infiniband"), reason="this machine has RDMA devices")
def test_live_run_skips_rdma_checks_with_the_reason() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "preflight",
            "run",
            "--format",
            "json",
            "--only",
            "rdma.*",
            "--only",
            "gdr.*",
            "--only",
            "net.*",
            "--only",
            "topology.*",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    for r in doc["results"]:
        assert r["status"] == "skip", r
        assert r["summary"].startswith(("no RDMA NIC", "no NVIDIA GPU")), r
