"""Numeric figures across the fleet: each node's measured numbers, and per node type and metric
the median, the spread, and the nodes far from their peers (outliers).

Where figures come from, in a run report:
- its `figures`: what `preflight run` measured, by metric (see preflight.result_figures: the
  benchmark results' evidence numbers, and the active GPU tests' medians over the GPUs); taken
  as the report says, like everything in it;
- numeric facts under `bench.` (none today; per-size figures when runs record them);
- a report without `figures` (written by an older preflight) has them read from its results:
  those of `bench.*` checks and of the active GPU tests (`gpu.copy_bandwidth`,
  `gpu.p2p_bandwidth`, `gpu.gemm`, `gpu.burn`), found by their id in the raw text and decoded
  alone, the same way `run` derives them.

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
from preflight.result_figures import EACH, GPU_MEDIAN, METRIC_CHARS, merged, of

THRESHOLD = 3.5
SCALE = 1.4826
MIN_RELATIVE = 0.01
MIN_NODES = 5
SAMPLE = 200
"""Values of a metric the HTML page draws (evenly spaced by rank) besides the outliers."""
RESULT_BYTES = 65536
"""A benchmark result longer than this is not read for figures (bounded work per report)."""

_RESULT_HEAD = re.compile(rb'\{\s*"id":\s*\Z')
ACTIVE_RESULTS = ("gpu.copy_bandwidth", "gpu.p2p_bandwidth", "gpu.gemm", "gpu.burn")
_DECODER = json.JSONDecoder()
_BENCH_FACT = b'"' + BENCH.encode()


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


def extract(
    data: bytes, facts: Mapping[str, Any], given: Any = None
) -> tuple[tuple[str, float], ...]:
    """Every figure of one report (raw bytes, its decoded facts, and its `figures` as decoded,
    None when it has none), at most FIGURES."""
    out: list[tuple[str, float]] = []
    end = data.rfind(b'"facts":')
    bench_facts = data.find(_BENCH_FACT, max(end, 0)) >= 0  # one search, not a loop over facts
    for key, value in facts.items() if bench_facts else ():
        if key.startswith(BENCH) and _number(value):
            out.append((key[:METRIC_CHARS], float(value)))
    if isinstance(given, dict):
        out += ((str(k)[:METRIC_CHARS], float(v)) for k, v in given.items() if _number(v))
    else:
        for result in _results(data, end):
            active = isinstance(result, dict) and result.get("id") in ACTIVE_RESULTS
            out += of(GPU_MEDIAN if active else EACH, result)
    return merged(out)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
