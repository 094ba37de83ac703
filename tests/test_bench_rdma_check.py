"""bench.rdma_loopback: the judge on plain results, and `preflight run --bench-rdma` end to end
(off by default; SKIP without perftest or without RDMA ports; the stand-in never passes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from preflight.bench.measurement import MEASURED, SKIPPED, RdmaMeasurement
from preflight.bench.rdma_bench import RdmaResult
from preflight.checks.bench import judge_loopback
from preflight.model import Status
from tests.bench_procs import preflight

STANDINS = str(Path(__file__).parent / "standins")


def result(status: str, avg: float, message: str) -> RdmaResult:
    return RdmaResult(
        mode="loopback", test="write_bw", hca="mlx5_3", port=1, peer="mlx5_3 (loopback)",
        memory="cuda", gpu="0000:9b:00.0", size=1 << 20, rate="400 Gb/sec (4X NDR)",
        server_cmd=["ib_write_bw"], client_cmd=["ib_write_bw"], status=status, message=message,
        average_gbps=avg, line_rate_gbps=400.0, floor=0.9,
    )  # fmt: skip


def test_a_run_at_its_floor_passes() -> None:
    ok = result("pass", 380.5, "mlx5_3: 380.5 Gb/s average = 95% of 400 Gb/s (4X NDR)")
    v = judge_loopback(RdmaMeasurement(MEASURED, "", (ok,)))
    assert v.status is Status.PASS
    assert v.findings[0].subject == "mlx5_3 port 1 cuda (GPU 0000:9b:00.0)"


def test_below_the_floor_fails_and_names_the_port() -> None:
    slow = result("fail", 311.0, "mlx5_3: 311 Gb/s average = 78% of 400 Gb/s, expected ≥ 90%")
    v = judge_loopback(RdmaMeasurement(MEASURED, "", (slow,)))
    assert v.status is Status.FAIL
    assert "78% of 400" in v.summary and "mlx5_3 port 1" in v.summary


def test_a_standin_replay_warns_even_at_line_rate() -> None:
    replay = result("stand-in", 398.0, "STAND-IN replay, not a measurement: mlx5_3: 398 Gb/s")
    assert judge_loopback(RdmaMeasurement(MEASURED, "", (replay,))).status is Status.WARN


def test_not_asked_or_nothing_to_measure_skips() -> None:
    assert "--bench-rdma" in judge_loopback(None).summary
    v = judge_loopback(RdmaMeasurement(SKIPPED, "perftest is not installed: …"))
    assert v.status is Status.SKIP and "perftest" in v.summary


def run_json(*argv: str, env: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    res = preflight("run", "--format", "json", *argv, env=env, timeout=120)
    assert res.returncode in (0, 1), res.stderr
    return {r["id"]: r for r in json.loads(res.stdout)["results"]}


def test_off_by_default() -> None:
    assert "bench.rdma_loopback" not in run_json("--profile", "dgx-h100")
    named = run_json("--profile", "dgx-h100", "--only", "tag:rdma")["bench.rdma_loopback"]
    assert named["status"] == "skip" and "add --bench-rdma" in named["summary"]


def test_without_perftest_it_skips_with_the_reason() -> None:
    results = run_json(
        "--profile", "dgx-h100", "--bench-rdma", "--only", "bench.rdma_loopback",
        env={"PATH": "/nonexistent"},
    )  # fmt: skip
    r = results["bench.rdma_loopback"]
    assert r["status"] == "skip"
    assert "ib_write_bw is not on PATH: install the package 'perftest'" in r["summary"]


def test_a_node_without_rdma_ports_skips() -> None:
    if Path("/sys/class/infiniband").is_dir() and os.listdir("/sys/class/infiniband"):
        pytest.skip("this machine has RDMA devices")
    env = {"PATH": STANDINS + os.pathsep + os.environ["PATH"]}
    r = run_json("--bench-rdma", "--only", "bench.rdma_loopback", env=env)["bench.rdma_loopback"]
    assert r["status"] == "skip" and "no active RDMA port" in r["summary"]
