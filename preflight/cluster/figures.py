"""Numeric figures across the fleet: each node's measured numbers, and per node type and metric
the median, the spread, and the nodes far from their peers (outliers).

Where figures come from (a run report as `preflight run` writes it):
- the findings of benchmark results (`bench.*`): an evidence item whose observed value is a
  number and a unit (`12.34 GB/s`), as `bench.allreduce` writes the bus bandwidth at its gate
  size; the metric is `<check> <finding subject> (<unit>)`;
- numeric facts under `bench.` (none today; per-size figures when runs record them);
- the active GPU tests (`gpu.copy_bandwidth`, `gpu.p2p_bandwidth`, `gpu.gemm`, `gpu.burn`, run
  with --level 2): their findings name one GPU (or GPU pair) each, so a node's figure is the
  median over its GPUs of one kind of finding: `gpu.gemm BF16 GEMM (TFLOPS)`, `gpu.burn clocks
  (MHz)`, `gpu.copy_bandwidth host→device (GB/s)`, `gpu.p2p_bandwidth copy (GB/s)`.
Only these results are decoded (found by their id in the raw text), so reports without any cost
a few substring searches.

Outliers use robust statistics, within one group (node type) and metric: the median and the
median absolute deviation (MAD); a node is an outlier when its modified z-score
|x − median| / (1.4826 · MAD) exceeds THRESHOLD (3.5, Iglewicz and Hoaglin's cut-off: for
normally distributed values 1.4826 · MAD estimates the standard deviation). When over half the
nodes agree exactly (MAD 0), a node counts when it is more than MIN_RELATIVE of the median away.
Groups smaller than MIN_NODES are not judged.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from preflight.inventory.facts import BENCH

THRESHOLD = 3.5
SCALE = 1.4826
MIN_RELATIVE = 0.01
MIN_NODES = 5
SAMPLE = 200
"""Values of a metric the HTML page draws (evenly spaced by rank) besides the outliers."""
RESULT_BYTES = 65536
"""A benchmark result longer than this is not read for figures (bounded work per report)."""
FIGURES = 64
"""Figures kept per node (hostile reports could carry thousands)."""

_RESULT_HEAD = re.compile(rb'\{\s*"id":\s*\Z')
ACTIVE_RESULTS = ("gpu.copy_bandwidth", "gpu.p2p_bandwidth", "gpu.gemm", "gpu.burn")
_DEVICE = re.compile(  # "GPU3 0000:9a:00.0 ", "GPU0→GPU2 " (a pair), "cpu:1 " (the test device)
    r"^(?:GPU\d{1,3}(?:→GPU\d{1,3})?|cpu:\d{1,3})"
    r"(?: [0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])? "
)
_NUMBER_UNIT = re.compile(r"^\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([A-Za-zµ/%]{1,12})\s*$")
_DECODER = json.JSONDecoder()
_BENCH_FACT = b'"' + BENCH.encode()


def from_result(result: Any) -> list[tuple[str, float]]:
    """The figures of one decoded benchmark result."""
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
    """The node's figures in one active GPU test result: per kind of finding (its subject
    without the GPU) and unit, the median over the GPUs."""
    by_metric: dict[str, list[float]] = {}
    for metric, value in from_result(result):
        check, _, rest = metric.partition(" ")
        device = _DEVICE.match(rest)
        if device is not None:
            by_metric.setdefault(f"{check} {rest[device.end() :]}", []).append(value)
    return [(m, statistics.median(vs)) for m, vs in by_metric.items()]


_ID_KEY = b'"id":'
_FIGURE_IDS = (b'"bench.', *(f'"{check}"'.encode() for check in ACTIVE_RESULTS))


def _results(data: bytes, end: int) -> Iterable[Any]:
    """The decoded results whose id is a bench.* check or an active GPU test: one pass over the
    report's `"id":` keys (a search per wanted id would read the report once for each)."""
    at = data.find(_ID_KEY, 0, end)
    while at >= 0:
        value = at + len(_ID_KEY)
        if data.startswith(b" ", value):  # `"id": "…"` as run writes it; other spacing below
            value += 1
        while value < end and data[value] in b" \t\r\n":
            value += 1
        # a result's first key is its id: `{ "id": "bench.…"`; anything else is some other text
        wanted = data.startswith(_FIGURE_IDS, value)
        head = _RESULT_HEAD.search(data, max(0, at - 32), value) if wanted else None
        if head is not None:
            try:
                stop = min(end, head.start() + RESULT_BYTES)
                text = data[head.start() : stop].decode("utf-8", "replace")
                result, _ = _DECODER.raw_decode(text)
            except (ValueError, RecursionError):
                result = None
            yield result
        at = data.find(_ID_KEY, value, end)


def extract(data: bytes, facts: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    """Every figure of one report (raw bytes and its decoded facts), at most FIGURES."""
    out: dict[str, float] = {}
    end = data.rfind(b'"facts":')
    bench_facts = data.find(_BENCH_FACT, max(end, 0)) >= 0  # one search, not a loop over facts
    for key, value in facts.items() if bench_facts else ():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and key.startswith(BENCH) and math.isfinite(value):
            out[key[:160]] = float(value)
    for result in _results(data, end):
        active = isinstance(result, dict) and result.get("id") in ACTIVE_RESULTS
        for metric, value in from_active_result(result) if active else from_result(result):
            out.setdefault(metric, value)
    return tuple(sorted(out.items())[:FIGURES])


@dataclass(frozen=True)
class MetricStats:
    """One metric within one group: its distribution and its outliers."""

    group: str
    metric: str
    count: int
    median: float
    mad: float
    low: float
    high: float
    sample: tuple[float, ...]
    outliers: tuple[tuple[int, float, float], ...]
    """(node id, value, modified z-score; inf when MAD is 0), farthest first."""

    def to_dict(self, name: Any) -> dict[str, Any]:
        """The JSON form, node ids as hostnames via name()."""
        return {
            "group": self.group,
            "metric": self.metric,
            "nodes": self.count,
            "median": self.median,
            "mad": self.mad,
            "min": self.low,
            "max": self.high,
            "outliers": [
                {"hostname": name(i), "value": v, "z": None if z == float("inf") else round(z, 2)}
                for i, v, z in self.outliers
            ],
        }


def outliers(
    values: Iterable[tuple[int, float]],
) -> tuple[float, float, list[tuple[int, float, float]]]:
    """(median, MAD, outliers) of (node id, value) pairs, by the rule in the module docstring."""
    pairs = list(values)
    xs = [v for _, v in pairs]
    med = statistics.median(xs)
    mad = statistics.median(abs(v - med) for v in xs)
    found = []
    for node, v in pairs:
        dev = abs(v - med)
        if mad > 0:
            z = dev / (SCALE * mad)
            if z > THRESHOLD:
                found.append((node, v, z))
        elif dev > MIN_RELATIVE * abs(med):
            found.append((node, v, float("inf")))
    found.sort(key=lambda t: (-t[2], -abs(t[1] - med), t[0]))
    return med, mad, found


def judge(
    per_node: Mapping[int, tuple[tuple[str, float], ...]], groups: Mapping[str, Iterable[int]]
) -> list[MetricStats]:
    """Every metric of every group with at least MIN_NODES nodes holding it."""
    out = []
    for group in sorted(groups):
        by_metric: dict[str, tuple[array[int], array[float]]] = {}
        for node in groups[group]:
            for metric, value in per_node.get(node, ()):
                ids, vals = by_metric.setdefault(metric, (array("I"), array("d")))
                ids.append(node)
                vals.append(value)
        for metric in sorted(by_metric):
            ids, vals = by_metric[metric]
            if len(ids) < MIN_NODES:
                continue
            med, mad, found = outliers(zip(ids, vals, strict=True))
            ordered = sorted(vals)
            step = max(1, len(ordered) // SAMPLE)
            out.append(
                MetricStats(
                    group,
                    metric,
                    len(ids),
                    med,
                    mad,
                    ordered[0],
                    ordered[-1],
                    tuple(ordered[::step]),
                    tuple(found),
                )
            )
    return out


def inliers_median(
    stats: MetricStats,
    per_node: Mapping[int, tuple[tuple[str, float], ...]],
    members: Iterable[int],
) -> float:
    """The median of the group's values with its outliers removed (what a baseline pins)."""
    out = {i for i, _, _ in stats.outliers}
    xs = [
        v
        for node in members
        if node not in out
        for m, v in per_node.get(node, ())
        if m == stats.metric
    ]
    return statistics.median(xs)
