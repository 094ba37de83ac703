"""`preflight run --bench-rdma`: perftest loopback on this node's HCA ports before the checks.

The same runs as `preflight bench rdma` (loopback, host memory then GPUDirect from the nearest
GPU), bounded per run; the outcome is attached to the Inventory for bench.rdma_loopback to judge.
The HCAs are those the Host describes: on a profile that is the profile's, as `bench rdma
--profile` does (useful with the test stand-in only; a stand-in's replay is never a pass).
"""

from __future__ import annotations

import os
from typing import Protocol

from preflight.bench.measurement import MEASURED, SKIPPED, RdmaMeasurement
from preflight.bench.rdma_bench import loopback_plans, run_loopback
from preflight.bench.rdma_perftest import PerftestMissing, PerftestSpec, find_binary
from preflight.bench.rdma_targets import hca_ports
from preflight.errors import ConfigError, PreflightError
from preflight.inventory import Inventory

TESTS = ("write_bw", "read_bw", "send_bw")


class RdmaSettings(Protocol):
    """The parameters of bench.rdma_loopback that shape the runs."""

    test: str
    size_bytes: int
    duration_s: int
    gpudirect: str
    min_efficiency: float
    listen_timeout_s: float
    run_timeout_s: float
    hca: str


def measure_rdma(inv: Inventory, params: RdmaSettings) -> RdmaMeasurement:
    """Loopback on every active HCA port, or the reason nothing was run."""
    if params.test not in TESTS or params.gpudirect not in ("auto", "off", "only"):
        raise ConfigError(
            f"RDMA loopback parameters: test must be one of {', '.join(TESTS)} and gpudirect "
            "auto, off or only"
        )
    if not 1 <= params.duration_s <= 3600 or not 0 < params.min_efficiency <= 1:
        raise ConfigError("RDMA loopback parameters: duration_s 1..3600, min_efficiency in (0, 1]")
    try:
        ports = [p for p in hca_ports(inv.host) if p.active]
    except PreflightError as exc:
        return RdmaMeasurement(SKIPPED, f"cannot read the RDMA ports: {exc}")
    wanted = {h.strip() for h in params.hca.split(",") if h.strip()}
    if wanted:
        ports = [p for p in ports if p.hca in wanted]
    if not ports:
        which = f" among {', '.join(sorted(wanted))}" if wanted else ""
        return RdmaMeasurement(
            SKIPPED, f"no active RDMA port{which} on this node: nothing to measure"
        )
    try:
        binary = find_binary(params.test, os.environ.get("PATH"))
    except PerftestMissing as exc:
        return RdmaMeasurement(SKIPPED, f"perftest is not installed: {exc}")
    spec = PerftestSpec(params.test, params.size_bytes, params.duration_s)
    results = tuple(
        run_loopback(
            plan,
            spec,
            binary,
            params.min_efficiency,
            params.run_timeout_s,
            params.listen_timeout_s,
            os.environ,
        )
        for plan in loopback_plans(ports, None, params.gpudirect)
    )
    return RdmaMeasurement(MEASURED, "", results)
