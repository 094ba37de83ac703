"""`bench allreduce --per-rail`: the variables that pin a run to one rail, the verdict across
rails, and the command's refusals. The real per-rail run is tests/test_bench_rails_netns.py."""

from __future__ import annotations

import pytest

from preflight.bench.rails import RAIL_ENV, RailOutcome, judge_rails, rail_environment, report
from tests.bench_procs import preflight


def test_nccl_rail_is_one_exact_hca_and_network_only() -> None:
    assert rail_environment("nccl", "mlx5_1") == {
        "NCCL_IB_HCA": "=mlx5_1",
        "NCCL_P2P_DISABLE": "1",
        "NCCL_SHM_DISABLE": "1",
        "NCCL_NVLS_ENABLE": "0",
        RAIL_ENV: "mlx5_1",
    }
    assert rail_environment("gloo", "ens1f0") == {
        "GLOO_SOCKET_IFNAME": "ens1f0",
        RAIL_ENV: "ens1f0",
    }


def outcome(rail: str, busbw: float | None, code: int = 0) -> RailOutcome:
    rows = [] if busbw is None else [{"bytes": 1 << 20, "busbw_gbps": busbw}]
    return RailOutcome(rail, code, {"rows": rows} if busbw is not None else None)


def test_the_rail_below_its_peers_is_named() -> None:
    rails = [outcome(f"mlx5_{i}", 46.0) for i in range(8)]
    rails[5] = outcome("mlx5_5", 21.0)  # below 0.75 × 46
    rails[7] = outcome("mlx5_7", None, code=1)
    ref = judge_rails(rails)
    assert ref == pytest.approx(46.0)
    doc = report(rails, ref, "nccl")
    assert doc["summary"] == (
        "FAIL: rail(s) below their peers: mlx5_5; rail(s) without a result: mlx5_7"
    )
    assert [r["verdict"] for r in doc["rails"]].count("ok") == 6


def test_per_rail_needs_an_explicit_backend() -> None:
    res = preflight("bench", "allreduce", "--per-rail", "mlx5_0,mlx5_1", "--sizes", "1K")
    assert res.returncode == 2 and "--per-rail needs --backend" in res.stderr
