"""The benchmark's result handed to the `bench.allreduce` check of `preflight run --bench`.

A check never starts processes: the run's collection stage measures before the checks
(preflight.bench.run_bench) and stores the outcome in the run's Inventory; the check only judges it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a run without --bench judges no sweep: bench.result is not imported
    from preflight.bench.result import SweepResult
    from preflight.inventory import Inventory

BENCH_TAG = "bench"
"""Checks with this tag run only with `preflight run --bench`."""
RDMA_TAG = "bench-rdma"
"""Checks with this tag run only with `preflight run --bench-rdma` (perftest loopback)."""

MEASURED, SKIPPED, FAILED, UNAVAILABLE = "measured", "skipped", "failed", "unavailable"


@dataclass(frozen=True)
class Measurement:
    """What happened when the node was measured."""

    outcome: str  # measured, skipped (nothing to measure), failed (ranks failed), unavailable
    reason: str = ""
    result: SweepResult | None = None
    backend: str | None = None
    nproc: int | None = None
    duration_s: float = 0.0


@dataclass(frozen=True)
class RdmaMeasurement:
    """What happened when this node's HCA ports were measured with perftest loopback."""

    outcome: str  # measured or skipped (no perftest, no RDMA port)
    reason: str = ""
    results: tuple[Any, ...] = ()  # preflight.bench.rdma_bench.RdmaResult, one per run


MEASUREMENT = "allreduce"
"""The name the all-reduce measurement is stored under in the run's Inventory."""
RDMA_MEASUREMENT = "rdma-loopback"
"""The name the perftest loopback measurement is stored under."""


def attach(inv: Inventory, measurement: Measurement) -> None:
    """Hand the measurement to the checks of this run."""
    inv.store(MEASUREMENT, measurement)


def measurement(inv: Inventory) -> Measurement | None:
    """The measurement of this run, or None when the benchmark was not asked for."""
    found = inv.collected(MEASUREMENT)
    return found if isinstance(found, Measurement) else None


def attach_rdma(inv: Inventory, measurement: RdmaMeasurement) -> None:
    """Hand the RDMA loopback measurement to the checks of this run."""
    inv.store(RDMA_MEASUREMENT, measurement)


def rdma_measurement(inv: Inventory) -> RdmaMeasurement | None:
    """The RDMA loopback measurement of this run, or None when it was not asked for."""
    found = inv.collected(RDMA_MEASUREMENT)
    return found if isinstance(found, RdmaMeasurement) else None


def check_bench_options(enabled: bool, backend: str | None, nproc: int | None) -> None:
    """--bench-backend and --bench-nproc make sense only with --bench, and only as documented."""
    from preflight.errors import UsageError

    if not enabled and (backend is not None or nproc is not None):
        raise UsageError("--bench-backend and --bench-nproc need --bench")
    if backend is not None and backend not in ("nccl", "gloo"):
        raise UsageError(f"unknown --bench-backend {backend!r} (choose from nccl, gloo)")
    if nproc is not None and nproc < 1:
        raise UsageError("--bench-nproc must be at least 1")
