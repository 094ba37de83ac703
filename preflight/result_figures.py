"""The numbers a check result measured, by metric: what `run` writes as its report's `figures`,
and what `compare` judges across the fleet (cluster.figures).

A check that measures declares how its results carry figures (`@check(figures=...)`):
- EACH: every evidence item whose observed value is a number and a unit (`12.34 GB/s`) is one
  figure, named `<check> <finding subject> (<unit>)`: bench.allreduce writes its bus bandwidth
  at the gate size as `bench.allreduce all_reduce 1 GiB (GB/s)`;
- GPU_MEDIAN: its findings name one GPU (or GPU pair) each, and the node's figure per kind of
  finding is the median over its GPUs: `gpu.gemm BF16 GEMM (TFLOPS)`, `gpu.burn clocks (MHz)`.
Both read a result in its JSON form, so a report written by an older preflight (no `figures`)
gives the same figures when compare reads them from its results.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

EACH = "each"
GPU_MEDIAN = "gpu-median"
KINDS = (EACH, GPU_MEDIAN)
FIGURES = 64
"""Figures kept per node (hostile reports could carry thousands)."""
METRIC_CHARS = 160
"""Longest metric name kept (a check id, a finding subject and a unit)."""

_DEVICE = re.compile(  # "GPU3 0000:9a:00.0 ", "GPU0→GPU2 " (a pair), "cpu:1 " (the test device)
    r"^(?:GPU\d{1,3}(?:→GPU\d{1,3})?|cpu:\d{1,3})"
    r"(?: [0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])? "
)
_NUMBER_UNIT = re.compile(r"^\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([A-Za-zµ/%]{1,12})\s*$")


def from_result(result: Any) -> list[tuple[str, float]]:
    """The figures of one result in JSON form, each evidence number as it is (EACH)."""
    out: list[tuple[str, float]] = []
    if not isinstance(result, dict) or not isinstance(result.get("findings"), list):
        return out
    check = str(result.get("id", ""))[:64]
    for finding in result["findings"]:
        if not isinstance(finding, dict) or not isinstance(finding.get("evidence"), list):
            continue
        for ev in finding["evidence"]:
            observed = ev.get("observed") if isinstance(ev, dict) else None
            m = _NUMBER_UNIT.match(observed) if isinstance(observed, str) else None
            if m and math.isfinite(float(m.group(1))):
                subject = str(finding.get("subject", ""))[:80]
                out.append((f"{check} {subject} ({m.group(2)})", float(m.group(1))))
    return out


def from_active_result(result: Any) -> list[tuple[str, float]]:
    """The node's figures in one active GPU test result (GPU_MEDIAN): per kind of finding (its
    subject without the GPU) and unit, the median over the GPUs."""
    by_metric: dict[str, list[float]] = {}
    for metric, value in from_result(result):
        check, _, rest = metric.partition(" ")
        device = _DEVICE.match(rest)
        if device is not None:
            by_metric.setdefault(f"{check} {rest[device.end() :]}", []).append(value)
    return [(m, _median(vs)) for m, vs in by_metric.items()]


def _median(values: list[float]) -> float:
    """statistics.median, without importing it on every run (it pulls in fractions, decimal)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def of(kind: str, result: Any) -> list[tuple[str, float]]:
    """The figures of a result of a check that declares `kind`."""
    return from_active_result(result) if kind == GPU_MEDIAN else from_result(result)


def merged(figures: Iterable[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """One node's figures: the first value of each metric, by name, at most FIGURES."""
    out: dict[str, float] = {}
    for metric, value in figures:
        out.setdefault(metric, value)
    return tuple(sorted(out.items())[:FIGURES])
