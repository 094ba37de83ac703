"""Active tests (tier 2+): measured in worker processes before the checks, judged here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from preflight.inventory import Inventory
from preflight.model import Action, Verdict
from preflight.registry import check, param
from preflight.result_figures import GPU_MEDIAN

if TYPE_CHECKING:
    from preflight.active.collect import ActiveOutcome

# -- active tests (tier 2+): measured in worker processes before the checks, judged here --------

ACTIVE_HOW = "run `preflight run --level 2` (or --only naming this check)"
CPU_SIZES = {"bytes": 1 << 20, "iters": 3, "n": 64}
"""The test-only CPU device (PREFLIGHT_ACTIVE_TEST_DEVICE=cpu) uses tiny sizes."""


def _outcome(inv: Inventory, test: str) -> ActiveOutcome | Verdict:
    """The test's outcome to judge, or the verdict that says why there is none. preflight.active
    is imported here, by a check of tier 2+: a level-1 run never imports it."""
    from preflight.active.collect import outcome
    from preflight.active.judge import measured

    return measured(outcome(inv, test), ACTIVE_HOW)


@dataclass(frozen=True)
class CopyParams:
    """link_efficiency: H2D/D2H floor as a fraction of the PCIe link (aznhc requires >= 48 GB/s
    on H100 = 0.76 of Gen5 x16's 63 GB/s); min_h2d_gbps/min_d2h_gbps: absolute floors (0 = none;
    `baselines generate` pins them from a fleet's medians), used where above the link's;
    min_d2d_gbps: device-local floor from the HBM spec; peer_tolerance: how far below the node's
    median a GPU may be."""

    TEST: ClassVar[str] = "copy"
    link_efficiency: float = param(
        0.76,
        "Host-device copy floor as a fraction of the GPU's PCIe link rate "
        "(aznhc: 48 GB/s on H100, 0.76 of Gen5 x16).",
    )
    min_h2d_gbps: float = param(
        0.0,
        "Host-to-device copy floor, GB/s (`baselines generate` pins it from a fleet's median); "
        "unset: the link-efficiency floor and the peer comparison judge.",
        unset=True,
    )
    min_d2h_gbps: float = param(
        0.0,
        "Device-to-host copy floor, GB/s (pinned like min_h2d_gbps); unset: as min_h2d_gbps.",
        unset=True,
    )
    min_d2d_gbps: float = param(
        0.0,
        "Device-local copy floor, GB/s (from the HBM spec); "
        "unset: only the peer comparison judges.",
        unset=True,
    )
    peer_tolerance: float = param(0.15, "Fraction below the node's median GPU a GPU may be.")
    bytes: int = param(1 << 28, "Bytes per copy.")
    iters: int = param(10, "Timed copies per direction.")
    timeout_s: float = param(30.0, "Seconds the test may take; then its workers are killed.")

    def worker_params(self, kind: str) -> dict[str, Any]:
        if kind == "cpu":
            return {"bytes": CPU_SIZES["bytes"], "iters": CPU_SIZES["iters"]}
        return {"bytes": self.bytes, "iters": self.iters}


@check(
    "gpu.copy_bandwidth",
    title="Every GPU copies host↔device and device-local at its link's and HBM's speed",
    tags=("gpu", "active"),
    figures=GPU_MEDIAN,
    params=CopyParams,
    tier=2,
    action=Action.REPLACE,
    warn_action=Action.MONITOR,
)
def copy_bandwidth(inv: Inventory, params: CopyParams) -> Verdict:
    """Each GPU's pinned host↔device and device-local copies reach the speed of its link and HBM.

    ## Why
    A GPU behind a marginal riser or retimer, or with degraded HBM, still enumerates with the
    right link registers but moves data slowly: every data-loader copy and every NCCL step that
    stages through the host waits for it. Measuring is the only direct proof.

    ## Reads
    A worker process per GPU (torch, all GPUs at once): pinned host→device, device→host and
    device-local copies of `bytes` bytes, `iters` times (GB = 1e9 bytes; the device-local copy
    counts each byte read and written). The GPU's current PCIe link (sysfs) gives the floor.

    ## Verdicts
    - pass: H2D and D2H at or above `link_efficiency` × the link's raw bandwidth (or
      `min_h2d_gbps`/`min_d2h_gbps` where higher), device-local at
      or above `min_d2d_gbps` (0 = no floor), and none more than `peer_tolerance` below the
      node's median.
    - fail: a figure below its floor or below its peers, or a worker that hung past `timeout_s`
      (a wedged GPU, named).
    - error: torch is not installed, or a worker ended without a record.
    - skip: level 1 (not measured), a mocked profile, or no GPU on this node.

    ## Fix
    Slow H2D/D2H on one GPU: reseat or replace its riser/retimer/cable (`pcie.link`,
    `pcie.aer` for errors); slow device-local copies: run `dcgmi diag -r 3` (memory bandwidth)
    and RMA the GPU if it fails; all GPUs slow: check clocks and `cpu.governor`.
    """
    from preflight.active.judge import judge_copy

    o = _outcome(inv, "copy")
    if isinstance(o, Verdict):
        return o
    gpus = inv.pci.gpus()
    links = {i: (g.current_link_speed, g.current_link_width) for i, g in enumerate(gpus)}
    return judge_copy(
        o,
        links,
        params.link_efficiency,
        params.min_d2d_gbps,
        params.peer_tolerance,
        params.min_h2d_gbps,
        params.min_d2h_gbps,
    )


@dataclass(frozen=True)
class P2pParams:
    """min_gbps: floor per ordered GPU pair (aznhc: >= 335 GB/s on H100 NVLink); peer_tolerance:
    how far below the median of all pairs a pair may be."""

    TEST: ClassVar[str] = "p2p"
    min_gbps: float = param(
        0.0,
        "Floor per ordered GPU pair, GB/s (aznhc: 335 on H100 NVLink); "
        "unset: only the peer comparison judges.",
        unset=True,
    )
    peer_tolerance: float = param(0.15, "Fraction below the median of all pairs a pair may be.")
    bytes: int = param(1 << 28, "Bytes per copy.")
    iters: int = param(10, "Timed copies per pair.")
    timeout_s: float = param(60.0, "Seconds the test may take; then its workers are killed.")

    def worker_params(self, kind: str) -> dict[str, Any]:
        if kind == "cpu":
            return {"bytes": CPU_SIZES["bytes"], "iters": CPU_SIZES["iters"]}
        return {"bytes": self.bytes, "iters": self.iters}


@check(
    "gpu.p2p_bandwidth",
    title="Every GPU pair copies peer-to-peer at NVLink (or PCIe) speed",
    tags=("gpu", "active"),
    figures=GPU_MEDIAN,
    params=P2pParams,
    tier=2,
    action=Action.REPLACE,
    warn_action=Action.MONITOR,
)
def p2p_bandwidth(inv: Inventory, params: P2pParams) -> Verdict:
    """Every ordered pair of GPUs copies peer-to-peer at the node's NVLink or PCIe speed.

    ## Why
    One degraded NVLink or NVSwitch port slows only the pairs that cross it; every collective
    that uses that pair runs at its speed. The link counters may show nothing.

    ## Reads
    One worker process that sees every GPU (torch): a `bytes`-byte copy from each GPU to each
    other GPU, `iters` times (GB = 1e9 bytes), and whether CUDA reports peer access.

    ## Verdicts
    - pass: every pair at or above `min_gbps` (0 = no floor) and within `peer_tolerance` of the
      median of all pairs.
    - fail: a pair below the floor or below its peers (named), or the worker hung past
      `timeout_s`.
    - error: torch is not installed, or the worker ended without a record.
    - skip: level 1, a mocked profile, or fewer than 2 GPUs.

    ## Fix
    `nvidia-smi nvlink -s` and `nvidia-smi nvlink -e` for down or erroring links on the named
    GPUs, `nvidia-smi topo -m`; on NVSwitch systems check the fabric manager (`gpu.fabric`);
    reseat or RMA the baseboard when a link stays down.
    """
    from preflight.active.judge import judge_p2p

    o = _outcome(inv, "p2p")
    if isinstance(o, Verdict):
        return o
    return judge_p2p(o, params.min_gbps, params.peer_tolerance)


@dataclass(frozen=True)
class GemmParams:
    """min_tflops: BF16 dense floor (spec sheet: H100/H200 SXM 989 TFLOPS dense; a healthy GPU
    reaches about 60-75% of it on n=8192); min_fp8_tflops: the same for FP8 e4m3 (H100/H200
    SXM 1979 TFLOPS dense), judged only where the GPU has FP8 tensor cores (compute capability
    8.9 or later); peer_tolerance: fraction below the median."""

    TEST: ClassVar[str] = "gemm"
    min_tflops: float = param(
        0.0,
        "BF16 dense floor per GPU, TFLOPS (H100/H200 SXM spec 989; healthy GPUs reach "
        "60-75% at n=8192); unset: only the peer comparison judges.",
        unset=True,
    )
    min_fp8_tflops: float = param(
        0.0,
        "FP8 e4m3 dense floor per GPU, TFLOPS (H100/H200 SXM spec 1979), judged only on GPUs "
        "with FP8 tensor cores (compute capability 8.9+); unset: only the peer comparison judges.",
        unset=True,
    )
    peer_tolerance: float = param(0.10, "Fraction below the node's median GPU a GPU may be.")
    n: int = param(8192, "Matrix size of the GEMM (n x n).")
    iters: int = param(20, "Timed GEMMs per GPU.")
    timeout_s: float = param(60.0, "Seconds the test may take; then its workers are killed.")

    def worker_params(self, kind: str) -> dict[str, Any]:
        if kind == "cpu":
            return {"n": CPU_SIZES["n"], "iters": CPU_SIZES["iters"]}
        return {"n": self.n, "iters": self.iters}


@check(
    "gpu.gemm",
    title="Every GPU multiplies BF16 and FP8 matrices at speed and gets the same bits as its peers",
    tags=("gpu", "active"),
    figures=GPU_MEDIAN,
    params=GemmParams,
    tier=2,
    action=Action.REPLACE,
    warn_action=Action.MONITOR,
)
def gemm(inv: Inventory, params: GemmParams) -> Verdict:
    """Every GPU computes BF16 (and FP8) matrix products at speed, bit for bit as its peers do.

    ## Why
    A GPU that computes wrong values (a faulty SM, HBM or SRAM; Meta's Llama 3 report counts
    faulty GPUs and HBM as the largest share of interruptions) corrupts training silently;
    one that computes slowly stalls every synchronous step.

    ## Reads
    A worker process per GPU (torch, all GPUs at once): the same `n`×`n` BF16 inputs (fixed
    seed) multiplied `iters` times, TFLOPS = 2n³ per product, and the SHA-256 of the output.
    Where the GPU has FP8 tensor cores (compute capability 8.9+: Ada, Hopper, Blackwell) the
    same inputs cast to float8_e4m3fn go through `torch._scaled_mm` (scale 1, BF16 output).

    ## Verdicts
    - pass: every GPU at or above `min_tflops` (`min_fp8_tflops` for FP8; 0 = no floor),
      within `peer_tolerance` of the node's median, and every output hash of a dtype equal.
      FP8 on a GPU (or the CPU test device) without FP8 support is noted as not checked.
    - fail: a GPU whose output differs from its peers' (silent data corruption, named), below
      the floor or its peers, or hung past `timeout_s`.
    - error: torch is not installed, or a worker ended without a record.
    - skip: level 1, a mocked profile, or no GPU on this node.

    ## Fix
    A differing output: drain the node, run `dcgmi diag -r 3` and RMA the GPU. Slow: look at
    `gpu.clocks`, `gpu.power` and `gpu.burn` for throttling.
    """
    from preflight.active.judge import judge_gemm

    o = _outcome(inv, "gemm")
    if isinstance(o, Verdict):
        return o
    return judge_gemm(o, params.min_tflops, params.peer_tolerance, params.min_fp8_tflops)


@dataclass(frozen=True)
class BurnParams:
    """duration_s: how long each GPU runs GEMM (30 s for a prolog; 300 s or more with
    --set gpu.burn.duration_s at bring-up); sample_s: how often the NVML collector is sampled
    (the worker itself samples its GPU's clocks once per window_s); clock_tolerance: how far
    below the node's median SM clock a GPU may hold under load (GEMM time scales with the SM
    clock, so 5% lower is 5% slower for every synchronous step; preflight's choice);
    min_sm_mhz: the SM clock every GPU must hold under load (0 = none; `baselines generate`
    pins it from a fleet's median)."""

    TEST: ClassVar[str] = "burn"
    duration_s: float = param(
        30.0, "Seconds each GPU runs GEMM (30 for a prolog; 300 or more at bring-up)."
    )
    window_s: float = param(2.0, "Seconds per throughput sample during the burn.")
    sample_s: float = param(
        5.0, "Seconds between NVML samples (temperature, clocks, throttle reasons)."
    )
    min_tflops: float = param(
        0.0, "Throughput floor per GPU, TFLOPS; unset: only the peer comparison judges.", unset=True
    )
    peer_tolerance: float = param(0.10, "Fraction below the node's median GPU a GPU may be.")
    clock_tolerance: float = param(
        0.05,
        "Fraction below the node's median held SM clock a GPU may be under load (GEMM time "
        "scales with the SM clock: 5% lower is 5% slower per synchronous step).",
    )
    min_sm_mhz: float = param(
        0.0,
        "SM clock every GPU must hold under load, MHz (`baselines generate` pins it from a "
        "fleet's median); unset: only the peer comparison judges.",
        unset=True,
    )
    n: int = param(8192, "Matrix size of the GEMM (n x n).")
    timeout_s: float = param(90.0, "Seconds the test may take; then its workers are killed.")

    def worker_params(self, kind: str) -> dict[str, Any]:
        if kind == "cpu":
            return {"n": CPU_SIZES["n"], "duration_s": min(self.duration_s, 1.0), "window_s": 0.2}
        return {"n": self.n, "duration_s": self.duration_s, "window_s": self.window_s}


@check(
    "gpu.burn",
    title="Every GPU holds its GEMM rate under sustained load without slowing down",
    tags=("gpu", "active"),
    figures=GPU_MEDIAN,
    params=BurnParams,
    tier=2,
    action=Action.REPLACE,
    warn_action=Action.MONITOR,
)
def burn(inv: Inventory, params: BurnParams) -> Verdict:
    """Every GPU sustains its matrix-multiply rate for the burn, with no thermal or power slowdown.

    ## Why
    A GPU with a failing fan, a dried thermal interface or a weak power supply passes short
    tests and slows down after tens of seconds of load; the whole job then runs at its pace.

    ## Reads
    A worker process per GPU running BF16 GEMM for `duration_s` (TFLOPS per `window_s`); after
    each window the worker samples its own GPU through NVML: SM clock
    (`nvmlDeviceGetClockInfo`), temperature, power and `nvmlDeviceGetCurrentClocksEventReasons`.
    The NVML collector child adds a full record every `sample_s`. The test-only CPU device has
    no NVML: its clocks are reported as not sampled.

    ## Verdicts
    - pass: sustained TFLOPS (median of the second half) at or above `min_tflops` (0 = no floor)
      and within `peer_tolerance` of the node's median; no slowdown reason while burning; an SM
      clock (median of the second half of the samples) within `clock_tolerance` of the node's
      and at or above `min_sm_mhz` (0 = no floor).
    - warn: held at the software power cap, or an NVML sample failed.
    - fail: HW slowdown, SW or HW thermal slowdown or power brake during the burn, a GPU whose
      GEMM rate or SM clock is below its peers', or a worker hung past `timeout_s`.
    - error: torch is not installed, or a worker ended without a record.
    - skip: level 1, a mocked profile, or no GPU on this node.

    ## Fix
    Thermal slowdown: check fans, airflow and the inlet temperature (`nvidia-smi -q -d
    TEMPERATURE`); power brake: the PSUs and the BMC's power policy; a GPU slower than its
    peers with no reason: `nvidia-smi -q -d CLOCK`, then `dcgmi diag -r 3`.
    """
    from preflight.active.judge import judge_burn

    o = _outcome(inv, "burn")
    if isinstance(o, Verdict):
        return o
    return judge_burn(
        o, params.min_tflops, params.peer_tolerance, params.clock_tolerance, params.min_sm_mhz
    )
