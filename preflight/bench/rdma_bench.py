"""`bench rdma` loopback and pair runs: which tests to run on which HCA, and their results.

Loopback: each HCA port to itself (or to a chosen partner HCA) on this node, in host memory
and, where the node has GPUs, with GPUDirect from the GPU nearest the HCA. It catches a bad
NIC, PCIe path or peer-memory/DMA-BUF path without a second node. Pair: the client side runs
here against `bench rdma --serve` on the peer (rdma_serve).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from preflight.bench.rdma_perftest import (
    Endpoint,
    PerftestOutput,
    PerftestSpec,
    command,
    is_bandwidth,
    parse_perftest,
)
from preflight.bench.rdma_run import PairOutcome, SideOutcome, run_pair
from preflight.bench.rdma_targets import HcaPort, judge_bandwidth, line_rate_gbps
from preflight.errors import ParseError

SCHEMA = "preflight-bench-rdma/1"
PASS, FAIL, ERROR, STANDIN = "pass", "fail", "error", "stand-in"


def free_port() -> int:
    """A TCP port nobody listens on now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


@dataclass
class RdmaResult:
    """One perftest run between two endpoints, judged."""

    mode: str  # loopback | pair
    test: str
    hca: str
    port: int
    peer: str  # "mlx5_0 (loopback)", "node7:mlx5_0"
    memory: str  # host | cuda | cuda-dmabuf
    gpu: str | None
    size: int
    rate: str
    server_cmd: list[str]
    client_cmd: list[str]
    status: str = ERROR
    message: str = ""
    average_gbps: float | None = None
    peak_gbps: float | None = None
    msg_rate_mpps: float | None = None
    line_rate_gbps: float | None = None
    share: float | None = None
    floor: float | None = None
    latency_us: dict[str, float | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    problem: str | None = None
    standin: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def judge(
    result: RdmaResult,
    target: HcaPort,
    spec: PerftestSpec,
    floor: float | None,
    outs: Sequence[PerftestOutput],
    problem: str | None,
) -> RdmaResult:
    """Fill result from the parsed outputs (client first) and the run's problem."""
    for out in outs:
        result.warnings += [w.text for w in out.warnings if w.text not in result.warnings]
        result.errors += [e.text for e in out.errors if e.text not in result.errors]
        result.standin = result.standin or out.standin
    result.problem = problem
    source = next((o for o in outs if o.bw_rows or o.lat_rows), None)
    if source is None:
        result.status = ERROR
        first = result.errors[0] if result.errors else None
        result.message = f"{target.hca}: no result" + (
            f": {first}" if first else f": {problem}" if problem else ""
        )
        return result
    if is_bandwidth(spec.test) and source.bw_rows:
        row = max(source.bw_rows, key=lambda r: r.bytes)
        result.average_gbps = round(row.average_gbps, 4)
        measured = source.peak_measured and row.peak_gbps > 0  # -D runs print 0.00
        result.peak_gbps = round(row.peak_gbps, 4) if measured else None
        result.msg_rate_mpps = row.msg_rate_mpps
        result.line_rate_gbps = line_rate_gbps(target, spec.bidirectional)
        j = judge_bandwidth(target, row.average_gbps, floor or 0.0, spec.bidirectional)
        result.share = None if j.share is None else round(j.share, 4)
        result.floor = floor
        result.message = j.message
        result.status = PASS if j.ok is not False else FAIL
    elif source.lat_rows:
        row_l = max(source.lat_rows, key=lambda r: r.bytes)
        result.latency_us = {
            "typical": row_l.t_typical_us,
            "avg": row_l.t_avg_us,
            "stdev": row_l.t_stdev_us,
            "p99": row_l.p99_us,
            "p99.9": row_l.p999_us,
        }
        typical = row_l.t_typical_us if row_l.t_typical_us is not None else row_l.t_avg_us
        result.message = f"{target.hca}: {typical:.2f} µs typical, p99.9 {row_l.p999_us} µs"
        result.status = PASS
    if problem and result.status == PASS:
        result.status = ERROR
        result.message += f" ({problem})"
    if result.standin:
        result.status = STANDIN
        result.message = "STAND-IN replay, not a measurement: " + result.message
    return result


def _parse(side: SideOutcome) -> PerftestOutput | None:
    try:
        return parse_perftest(side.output)
    except ParseError:
        return None


@dataclass(frozen=True)
class LoopbackPlan:
    """One loopback run: server on target, client on partner, both on this node."""

    target: HcaPort
    partner: HcaPort
    memory: str


def loopback_plans(
    ports: Sequence[HcaPort],
    partner: Mapping[str, str] | None = None,
    gpudirect: str = "auto",  # auto | off | only
    dmabuf: bool = False,
) -> list[LoopbackPlan]:
    """Active ports, each with itself (or its chosen partner HCA), host memory then GPUDirect."""
    by_hca = {p.hca: p for p in ports}
    plans = []
    for p in ports:
        if not p.active:
            continue
        other = by_hca.get((partner or {}).get(p.hca, p.hca), p)
        memories = []
        if gpudirect != "only":
            memories.append("host")
        if gpudirect != "off" and p.gpu_bdf is not None:
            memories.append("cuda-dmabuf" if dmabuf else "cuda")
        plans += [LoopbackPlan(p, other, m) for m in memories]
    return plans


def endpoint(p: HcaPort, memory: str) -> Endpoint:
    gpu = p.gpu_bdf if memory != "host" else None
    return Endpoint(p.hca, p.port, p.gid_index, gpu, memory == "cuda-dmabuf")


def run_loopback(
    plan: LoopbackPlan,
    spec: PerftestSpec,
    binary: str,
    floor: float | None,
    timeout_s: float,
    listen_timeout_s: float,
    env: Mapping[str, str],
) -> RdmaResult:
    """Server on the target HCA, client on the partner HCA, over 127.0.0.1."""
    tcp_port = free_port()
    server_cmd = command(binary, spec, endpoint(plan.target, plan.memory), tcp_port, None)
    client_cmd = command(binary, spec, endpoint(plan.partner, plan.memory), tcp_port, "127.0.0.1")
    outcome: PairOutcome = run_pair(
        server_cmd, client_cmd, tcp_port, timeout_s, listen_timeout_s, env
    )
    peer = (
        f"{plan.partner.hca} (loopback)"
        if plan.partner.hca == plan.target.hca
        else f"{plan.partner.hca} (same node)"
    )
    result = RdmaResult(
        mode="loopback",
        test=spec.test,
        hca=plan.target.hca,
        port=plan.target.port,
        peer=peer,
        memory=plan.memory,
        gpu=plan.target.gpu_bdf if plan.memory != "host" else None,
        size=spec.size,
        rate=plan.target.rate_text,
        server_cmd=server_cmd,
        client_cmd=client_cmd,
    )
    outs = [o for o in (_parse(outcome.client), _parse(outcome.server)) if o is not None]
    return judge(result, plan.target, spec, floor, outs, outcome.problem)


@dataclass
class RdmaRun:
    """Everything one `bench rdma` invocation measured."""

    mode: str
    test: str
    host: str
    results: list[RdmaResult]
    spec: PerftestSpec

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.status == PASS for r in self.results)

    def headline(self) -> str:
        """PASS/FAIL and why; a stand-in's replays are named first: nothing was measured."""
        bad = [r for r in self.results if r.status in (FAIL, ERROR)]
        prefix = (
            "STAND-IN (outputs replayed, nothing measured); "
            if any(r.standin for r in self.results)
            else ""
        )
        if not self.results:
            return prefix + "FAIL: no active RDMA port to test"
        if not bad:
            if prefix:
                return prefix + "no run failed"
            if not is_bandwidth(self.test):
                return f"PASS: {len(self.results)} latency run(s) completed"
            return f"PASS: {len(self.results)} run(s) at or above the expected share of line rate"
        return (
            prefix
            + "FAIL: "
            + "; ".join(
                f"{r.hca} {r.memory}: {r.problem or r.message}" if r.status == ERROR else r.message
                for r in bad
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "mode": self.mode,
            "test": self.test,
            "host": self.host,
            "bytes": self.spec.size,
            "duration_s": self.spec.duration_s,
            "iterations": self.spec.iterations,
            "qps": self.spec.qps,
            "bidirectional": self.spec.bidirectional,
            "results": [r.to_dict() for r in self.results],
            "status": "pass" if self.passed else "fail",
            "summary": self.headline(),
        }
