"""`bench allreduce --split`: the legs' variables, the report, and a real gloo run (2 ranks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preflight.bench.rails import RAIL_ENV, RailOutcome
from preflight.bench.split import GLOO_NOTE, MULTI_NODE_NOTE, legs, report
from tests.bench_procs import preflight


def sweep(busbw: float) -> dict[str, object]:
    return {
        "rows": [{"bytes": 1024, "busbw_gbps": busbw / 2}, {"bytes": 1 << 20, "busbw_gbps": busbw}]
    }


def test_nccl_legs_on_one_node_are_as_is_then_network_only() -> None:
    (intra, a), (network, b) = legs("nccl", True, {})
    assert a == {RAIL_ENV: "split"} and "intra-node" in intra
    assert b == {
        "NCCL_P2P_DISABLE": "1",
        "NCCL_SHM_DISABLE": "1",
        "NCCL_NVLS_ENABLE": "0",
        RAIL_ENV: "split",
    }
    assert network.startswith("network only")


def test_across_nodes_only_the_network_leg_runs_and_the_report_says_why() -> None:
    assert [name for name, _ in legs("nccl", False, {})] == ["network only (P2P, SHM, NVLS off)"]
    doc = report([RailOutcome("network only", 0, sweep(40.0))], "nccl", False)
    assert doc["notes"] == [MULTI_NODE_NOTE] and doc["network_to_intra_ratio"] is None


def test_nccl_ratio_is_network_over_intra_at_the_largest_size() -> None:
    outs = [RailOutcome("intra", 0, sweep(400.0)), RailOutcome("net", 0, sweep(100.0))]
    doc = report(outs, "nccl", True)
    assert doc["network_to_intra_ratio"] == pytest.approx(0.25)
    assert doc["summary"] == "network-only busbw = 25% of intra-node at the largest size"


def test_gloo_gives_no_ratio_and_a_leg_without_result_fails() -> None:
    outs = [RailOutcome("intra-node (lo)", 0, sweep(1.0)), RailOutcome("network", 1, None)]
    doc = report(outs, "gloo", True)
    assert doc["network_to_intra_ratio"] is None and GLOO_NOTE in doc["notes"]
    assert doc["status"] == "fail" and doc["summary"].endswith("network")


def test_gloo_split_for_real_says_it_is_no_nvlink_split() -> None:
    res = preflight(
        "bench", "allreduce", "--nproc", "2", "--backend", "gloo", "--split", "--sizes", "256K",
        "--iters", "2", "--warmup", "1", "--init-timeout", "30", "--op-timeout", "15",
        "--format", "json", env={"GLOO_SOCKET_IFNAME": "lo"}, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["schema"] == "preflight-bench-allreduce-split/1"
    assert [leg["leg"] for leg in doc["legs"]] == ["intra-node (lo)", "network (lo)"]
    assert all(leg["busbw_gbps"] > 0 for leg in doc["legs"])
    assert doc["network_to_intra_ratio"] is None and doc["notes"] == [GLOO_NOTE]
    assert doc["summary"] == "measured; no NVLink vs network ratio (see the notes)"


def test_split_and_per_rail_together_is_a_usage_error() -> None:
    res = preflight("bench", "allreduce", "--split", "--per-rail", "lo", "--backend", "gloo")
    assert res.returncode == 2
    assert res.stderr == "preflight: error: --split and --per-rail are separate runs: choose one\n"


@pytest.mark.parametrize("where", ["report.json", "missing/report.json"])
def test_split_output_is_written_whole_or_one_error_line(tmp_path: Path, where: str) -> None:
    out = tmp_path / where
    res = preflight(
        "bench", "allreduce", "--nproc", "2", "--backend", "gloo", "--split", "--sizes", "256K",
        "--iters", "2", "--warmup", "1", "--init-timeout", "30", "--op-timeout", "15",
        "--format", "json", "--output", str(out), env={"GLOO_SOCKET_IFNAME": "lo"}, timeout=120,
    )  # fmt: skip
    if out.parent.exists():
        assert res.returncode == 0, res.stderr
        assert json.loads(out.read_text())["schema"] == "preflight-bench-allreduce-split/1"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temp file
    else:
        assert res.returncode == 2
        errors = [line for line in res.stderr.splitlines() if line.startswith("preflight: error")]
        assert errors == [f"preflight: error: cannot write {out}: No such file or directory"]
