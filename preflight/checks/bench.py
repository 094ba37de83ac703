"""Benchmarks: the all-reduce bus bandwidth this node delivers, judged against the baseline, and
each HCA port's RDMA loopback bandwidth against its line rate."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from preflight.bench.measurement import (
    FAILED,
    RDMA_TAG,
    SKIPPED,
    UNAVAILABLE,
    Measurement,
    RdmaMeasurement,
    measurement,
    rdma_measurement,
)
from preflight.bench.metrics import format_size
from preflight.inventory import Inventory
from preflight.model import Action, Evidence, Finding, Status, Verdict
from preflight.registry import check, param
from preflight.result_figures import EACH

if TYPE_CHECKING:
    from preflight.bench.expected import Theoretical

STANDIN_TEXT = "nothing to do on the node: a stand-in's replay is not a measurement"


@dataclass(frozen=True)
class BenchParams:
    """min_busbw_gbps: the floor at gate_bytes (0 = none); the rest shapes the sweep."""

    min_busbw_gbps: float = param(
        0.0,
        "Bus bandwidth floor at gate_bytes, GB/s; unset: the figure is only recorded.",
        unset=True,
    )
    gate_bytes: int = param(
        1 << 30, "Message size, bytes, whose bus bandwidth is judged against min_busbw_gbps."
    )
    min_bytes: int = param(1 << 20, "Smallest message of the sweep, bytes.")
    max_bytes: int = param(
        1 << 30, "Largest message of the sweep, bytes (doubling from min_bytes)."
    )
    iters: int = param(20, "Timed all-reduce iterations per message size.")
    warmup: int = param(5, "Untimed iterations per message size before the timed ones.")
    dtype: str = param(
        "float32", "Element type of the reduced tensors (float32, float16, bfloat16)."
    )
    init_timeout_s: float = param(
        60.0, "Seconds the ranks may take to rendezvous and initialise the process group."
    )
    op_timeout_s: float = param(
        30.0, "Seconds one collective may take before the ranks are stopped."
    )
    timeout_s: float = param(
        600.0, "Seconds the whole benchmark may take; then every rank is killed."
    )


def describe_theoretical(theoretical: Theoretical | None, note: str, busbw: float) -> str:
    """'71% of 450 GB/s theoretical (NVLink …)' or the reason there is no such figure."""
    if theoretical is None:
        return note or "no theoretical figure"
    return (
        f"{theoretical.percent(busbw):.0f}% of {theoretical.busbw_gbps:g} GB/s theoretical "
        f"({theoretical.basis})"
    )


def judge_allreduce(m: Measurement | None, gate_bytes: int, min_busbw_gbps: float) -> Verdict:
    """The measurement against the floor at gate_bytes; wrong elements fail whatever the speed."""
    if m is None:
        return Verdict.skip("not measured: add --bench to `preflight run` to run the benchmark")
    if m.outcome == SKIPPED:
        return Verdict.skip(m.reason)
    if m.outcome == UNAVAILABLE:
        return Verdict(Status.ERROR, f"cannot measure: {m.reason}")
    if m.outcome == FAILED or m.result is None:
        return Verdict(
            Status.FAIL,
            f"the all-reduce benchmark ({m.backend}, {m.nproc} ranks) failed: {m.reason}",
        )
    from preflight.bench.result import judge_gate  # a measured run's only (~15 ms to import)

    r = m.result
    source = f"torch.distributed all_reduce ({r.backend}, {r.world_size} ranks, {r.dtype})"
    floor = min_busbw_gbps or None
    gate = judge_gate(r.rows, gate_bytes, floor, r.theoretical)
    findings = [
        Finding(
            f"all_reduce {format_size(row.bytes)}",
            Status.FAIL,
            f"{row.wrong} wrong elements in the reduced data (ranks: "
            + ", ".join(f"{i}: {w}" for i, w in enumerate(row.rank_wrong) if w)
            + "): silent data corruption",
            (Evidence(source, row.wrong, "0 wrong elements"),),
            action=Action.REPLACE,
            action_text=(
                "drain the node, run `dcgmi diag -r 3` and RMA the GPU of the ranks named"
            ),
        )
        for row in r.rows
        if row.wrong
    ]
    subject = f"all_reduce {format_size(gate_bytes)}"
    expected = f">= {floor:g} GB/s busbw" if floor else None
    if gate.busbw_gbps is None:
        findings.append(Finding(subject, Status.ERROR, "the gate size was not measured", ()))
    else:
        ok = gate.passed
        context = describe_theoretical(r.theoretical, r.theoretical_note, gate.busbw_gbps)
        message = f"busbw {gate.busbw_gbps:.2f} GB/s ({context})"
        if not ok:
            message = f"busbw {gate.busbw_gbps:.2f} GB/s, expected >= {floor:g} GB/s ({context})"
        findings.append(
            Finding(
                subject,
                Status.PASS if ok else Status.FAIL,
                message,
                (Evidence(source, f"{gate.busbw_gbps:.2f} GB/s", expected),),
            )
        )
    ok_summary = (
        f"busbw {gate.busbw_gbps or 0:.2f} GB/s at {format_size(gate_bytes)} on "
        f"{r.world_size} {r.backend} ranks"
        + (f", floor {floor:g} GB/s" if floor else ", no floor set")
        + f"; {describe_theoretical(r.theoretical, r.theoretical_note, gate.busbw_gbps or 0)}"
    )
    return Verdict.from_findings(findings, ok=ok_summary)


@check(
    "bench.allreduce",
    title="All-reduce bus bandwidth across the node's GPUs meets the baseline",
    tags=("bench", "gpu", "nccl"),
    figures=EACH,
    params=BenchParams,
    action=Action.FIX_CONFIG,
    actions=(Action.REPLACE,),
    action_text=(
        "low busbw: look at pcie.link, pcie.acs, gpu.nvlink and gpu.clocks on this node, then "
        "compare with nccl-tests' all_reduce_perf"
    ),
)
def allreduce(inv: Inventory, params: BenchParams) -> Verdict:
    """All-reduce across the node's GPUs reaches the baseline's bus bandwidth, with exact sums.

    Runs only with `preflight run --bench`.

    ## Why
    A node whose GPUs cannot all-reduce at the speed its NVLink or PCIe links promise (a link
    trained narrow, ACS redirect, a GPU throttling) slows every step of a data-parallel job;
    a node that all-reduces to wrong values corrupts the model silently. Measuring it is the
    only direct proof of both.

    ## Reads
    `preflight bench allreduce` over torch.distributed, one rank per GPU (NCCL), or the
    ranks given with `--bench-backend`/`--bench-nproc`: busbw = algbw × 2(n−1)/n per size
    (nccl-tests' definition, GB = 1e9 bytes), every reduced element compared with the exact sum,
    and the theoretical bound from the GPUs' NVLink or PCIe links.

    ## Verdicts
    - pass: busbw at `gate_bytes` at or above `min_busbw_gbps` (0 = no floor), no wrong element.
    - fail: busbw below the floor, any wrong element, or the benchmark did not complete (a rank
      died or a wait timed out: the message names it).
    - skip: `--bench` not given, a mocked profile, or no GPU on this node and no explicit
      `--bench-backend`/`--bench-nproc`.
    - error: torch is not installed (`pip install 'gpu-preflight[bench]'`).

    ## Fix
    Wrong elements: drain the node and run the GPU's diagnostics (`dcgmi diag -r 3`). Low busbw:
    look at the `pcie.*` checks (link width, ACS), `nvidia-smi topo -m` and
    `nvidia-smi nvlink -s` for inactive links, and GPU clocks; then compare with
    `preflight bench allreduce` and nccl-tests' `all_reduce_perf` run by hand.
    """
    return judge_allreduce(measurement(inv), params.gate_bytes, params.min_busbw_gbps)


# RdmaResult.status values (preflight.bench.rdma_bench)
RUN_PASS, RUN_FAIL, RUN_STANDIN = "pass", "fail", "stand-in"


@dataclass(frozen=True)
class RdmaLoopbackParams:
    """min_efficiency: the share of each port's line rate a run must reach (aznhc: 0.95 with
    GPUDirect on NDR); the rest shapes the perftest runs."""

    min_efficiency: float = param(
        0.90, "Share of each port's line rate a run must reach (aznhc: 0.95 with GPUDirect on NDR)."
    )
    test: str = param("write_bw", "perftest bandwidth test: write_bw, read_bw or send_bw.")
    size_bytes: int = param(1 << 20, "Message size of each perftest run, bytes.")
    duration_s: int = param(5, "Seconds each perftest run measures.")
    gpudirect: str = param(
        "auto",
        "GPU memory runs: auto (when GPUDirect RDMA is usable), off (host memory only) or only.",
    )
    listen_timeout_s: float = param(10.0, "Seconds the perftest server may take to listen.")
    run_timeout_s: float = param(35.0, "Seconds one perftest run may take before it is killed.")
    hca: str = param(
        "", "HCAs to test, comma-separated (mlx5_0,mlx5_1); unset: every active port.", unset=True
    )


def judge_loopback(m: RdmaMeasurement | None) -> Verdict:
    """One finding per run (HCA port × memory); a stand-in's replay warns, never passes."""
    if m is None:
        return Verdict.skip("not measured: add --bench-rdma to `preflight run` to run perftest")
    if m.outcome == SKIPPED:
        return Verdict.skip(m.reason)
    findings = []
    for r in m.results:
        subject = f"{r.hca} port {r.port} {r.memory}" + (f" (GPU {r.gpu})" if r.gpu else "")
        if r.status == RUN_STANDIN:
            status, message = Status.WARN, r.message  # "STAND-IN replay, not a measurement: …"
        elif r.status == RUN_PASS:
            status, message = Status.PASS, r.message
        elif r.status == RUN_FAIL:
            status, message = Status.FAIL, r.message
        else:
            status, message = Status.FAIL, f"perftest loopback failed: {r.problem or r.message}"
        got = f"{r.average_gbps:g} Gb/s" if r.average_gbps is not None else "no result"
        expected = (
            f">= {r.floor:.0%} of {r.line_rate_gbps:g} Gb/s"
            if r.floor is not None and r.line_rate_gbps is not None
            else None
        )
        source = f"perftest {r.test} loopback ({' '.join(r.client_cmd[:1])})"
        finding = Finding(subject, status, message, (Evidence(source, got, expected),))
        if r.status == RUN_STANDIN:  # a replay measured nothing: nothing to do on the node
            finding = replace(finding, action=Action.NONE, action_text=STANDIN_TEXT)
        findings.append(finding)
    return Verdict.from_findings(
        findings,
        ok=f"{len(findings)} loopback run(s) at or above their share of line rate",
        empty="no loopback run was planned",
    )


@check(
    "bench.rdma_loopback",
    title="Each HCA port reaches its share of line rate in perftest loopback",
    tags=(RDMA_TAG, "rdma"),
    figures=EACH,
    params=RdmaLoopbackParams,
    action=Action.FIX_CONFIG,
    actions=(Action.NONE,),
    action_text=(
        "below the floor: look at pcie.link and pcie.acs for the HCA, the rdma.* checks of "
        "its port and its GPU's distance"
    ),
)
def rdma_loopback(inv: Inventory, params: RdmaLoopbackParams) -> Verdict:
    """Each active HCA port moves data at its expected share of line rate in perftest loopback.

    Runs only with `preflight run --bench-rdma`.

    ## Why
    A bad NIC, a PCIe path trained narrow, or a broken GPUDirect path (peermem, DMA-BUF) slows
    or breaks every multi-node job; perftest loopback (the HCA to itself, in host memory and
    from the nearest GPU) finds it on one node, without a second node or the fabric.

    ## Reads
    `ib_write_bw` (the `test` parameter) from perftest, started by preflight as server and
    client on each active port, `--report_gbits`, `size_bytes`, `duration_s` seconds, the RoCE v2
    GID index on Ethernet ports, `--use_cuda_bus_id` of the nearest GPU; the port's rate from
    sysfs.

    ## Verdicts
    - pass: every run's average at or above `min_efficiency` × the port's line rate.
    - warn: the output came from the test stand-in (`tests/standins/`): replayed, not measured.
    - fail: a run below its floor, or a run that failed (no device, never listened or
      accepted, hung: killed and named).
    - skip: `--bench-rdma` not given, perftest not installed, or no active RDMA port.

    ## Fix
    Below the floor: look at the `pcie.*` checks for the HCA (link width and speed, ACS),
    `rdma.*` (port state and rate, counters), the GPU's distance to the HCA and
    `nvidia_peermem`/DMA-BUF; then `preflight bench rdma --hca mlx5_N` and
    `tools/rdma_check.sh` by hand. A failed run: the message names perftest's own error.
    """
    del params  # they shaped the runs before the checks (preflight.bench.rdma_node)
    return judge_loopback(rdma_measurement(inv))
