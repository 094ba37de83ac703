"""`preflight run --bench`: measure this node's all-reduce before the checks judge it.

One rank per GPU with NCCL; on a node without GPUs only when a backend and a rank count are
given (gloo on CPU, as CI does). The ranks run as `preflight bench allreduce` processes started
by the launcher; this process never imports torch.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from preflight.bench import TORCH_MISSING
from preflight.bench.launch import launch_local
from preflight.bench.measurement import (
    BENCH_TAG,
    FAILED,
    MEASURED,
    SKIPPED,
    UNAVAILABLE,
    Measurement,
    attach,
)
from preflight.bench.metrics import dtype, sweep
from preflight.bench.result import SweepResult
from preflight.errors import ConfigError
from preflight.inventory import Inventory


class BenchSettings(Protocol):
    """The parameters of the bench.allreduce check that shape the measurement."""

    min_bytes: int
    max_bytes: int
    gate_bytes: int
    iters: int
    warmup: int
    dtype: str
    init_timeout_s: float
    op_timeout_s: float
    timeout_s: float


def sizes_for(params: BenchSettings) -> list[int]:
    """The sweep, with the gate size in it."""
    return sorted(set(sweep(params.min_bytes, params.max_bytes)) | {params.gate_bytes})


def rank_argv(params: BenchSettings, backend: str, output: str) -> list[str]:
    """The `bench allreduce` command line each rank runs."""
    return [
        "bench",
        "allreduce",
        "--backend",
        backend,
        "--sizes",
        ",".join(str(s) for s in sizes_for(params)),
        "--iters",
        str(params.iters),
        "--warmup",
        str(params.warmup),
        "--dtype",
        params.dtype,
        "--init-timeout",
        str(params.init_timeout_s),
        "--op-timeout",
        str(params.op_timeout_s),
        "--gate-bytes",
        str(params.gate_bytes),
        "--format",
        "json",
        "--output",
        output,
        "--no-progress",
    ]


def plan_measurement(
    gpus: int, live: bool, backend: str | None, nproc: int | None
) -> tuple[str, int] | str:
    """(backend, ranks) to run, or the reason there is nothing to measure."""
    if not live:
        return "a profile describes a mocked node; the benchmark measures only this machine"
    if gpus == 0 and (backend is None or nproc is None):
        return (
            "no NVIDIA GPU on this node: nothing to measure "
            "(--bench-backend gloo --bench-nproc N measures CPU ranks)"
        )
    chosen = backend or "nccl"
    ranks = nproc if nproc is not None else gpus
    if ranks < 1:
        return f"--bench-nproc must be at least 1, got {ranks}"
    return chosen, ranks


def first_error(paths: Sequence[Path]) -> str | None:
    """The first 'preflight: error:' line the ranks wrote, rank order."""
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("preflight: error:"):
                return line.removeprefix("preflight: error:").strip()
    return None


def measure(
    inv: Inventory, params: BenchSettings, backend: str | None, nproc: int | None
) -> Measurement:
    """Run the benchmark on this node as the parameters say, bounded by params.timeout_s.

    A SIGINT, SIGTERM or SIGHUP while the ranks run is not a measurement: the ranks are stopped
    and BenchInterrupted (a SystemExit with status 128 + the signal) propagates to the caller.
    """
    try:  # a bad dtype or size range is a configuration error before anything starts
        dtype(params.dtype)
        sizes_for(params)
    except ValueError as exc:
        raise ConfigError(f"bench.allreduce: {exc}") from None
    planned = plan_measurement(len(inv.pci.gpus()), inv.host.is_live, backend, nproc)
    if isinstance(planned, str):
        return Measurement(SKIPPED, planned)
    chosen, ranks = planned
    if importlib.util.find_spec("torch") is None:
        return Measurement(UNAVAILABLE, TORCH_MISSING, backend=chosen, nproc=ranks)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="preflight-bench-") as tmp:
        out = Path(tmp) / "result.json"
        errs = [Path(tmp) / f"rank{r}.err" for r in range(ranks)]
        files = [p.open("wb") for p in errs]
        log = (Path(tmp) / "launcher.err").open("w")
        try:
            code = launch_local(
                ranks,
                rank_argv(params, chosen, str(out)),
                deadline_s=params.timeout_s,
                stdout=files,  # nothing a rank prints may reach `preflight run`'s report
                stderr=files,
                report=log,
            )
        finally:
            for f in files:
                f.close()
            log.close()
        elapsed = time.monotonic() - start
        result = None
        if out.exists():
            try:
                result = SweepResult.from_dict(json.loads(out.read_text()))
            except (ValueError, KeyError, TypeError) as exc:
                return Measurement(FAILED, f"unreadable result: {exc}", None, chosen, ranks)
        if result is not None:
            return Measurement(MEASURED, "", result, chosen, ranks, elapsed)
        why = first_error(errs) or first_error([Path(tmp) / "launcher.err"])
        return Measurement(
            FAILED,
            why or f"the {ranks} rank processes ended with status {code} and no result",
            None,
            chosen,
            ranks,
            elapsed,
        )


def measure_planned(
    plan: Sequence[Any], inv: Inventory, backend: str | None, nproc: int | None
) -> None:
    """Measure once for the planned bench checks and attach the outcome to the inventory."""
    for item in plan:
        if BENCH_TAG in item.spec.tags:
            attach(inv, measure(inv, item.params, backend, nproc))
            return


def measure_planned_rdma(plan: Sequence[Any], inv: Inventory) -> None:
    """Run perftest loopback for the planned RDMA check and attach the outcome."""
    from preflight.bench.measurement import RDMA_TAG, attach_rdma
    from preflight.bench.rdma_node import measure_rdma

    for item in plan:
        if RDMA_TAG in item.spec.tags:
            attach_rdma(inv, measure_rdma(inv, item.params))
            return
