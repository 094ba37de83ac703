"""Naming the slow node from pair tests: which pairs to test next, and what the results say.

In a blocking collective the late rank often looks fastest (it waits least), so per-rank times
do not point at the culprit; pairs do. Every node is tested in pairs; a pair well below the
typical pair is slow. A node whose every pair is slow, with partners that are fast elsewhere,
is slow itself; a slow pair of two nodes that are each fast elsewhere is a bad pair (the path
between them). Suspects are re-tested against nodes already known to be good until each is
told apart or no untested good partner is left.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from preflight.bench.metrics import format_size

Pair = tuple[str, str]

OK, SLOW, SUSPECT, UNTESTED, BELOW_FLOOR = "ok", "slow", "suspect", "untested", "below_floor"
SCHEMA = "preflight-bench-locate/1"


@dataclass(frozen=True)
class PairResult:
    """One pair test: all ranks of nodes a and b in one all_reduce."""

    a: str
    b: str
    round: int
    time_us: float
    busbw_gbps: float

    def other(self, node: str) -> str:
        """The partner of node in this pair."""
        return self.b if node == self.a else self.a

    def has(self, node: str) -> bool:
        """Whether node is in the pair."""
        return node in (self.a, self.b)


@dataclass(frozen=True)
class NodeVerdict:
    """What the pairs say about one node."""

    node: str
    verdict: str
    pairs: tuple[PairResult, ...]
    evidence: str

    @property
    def median_gbps(self) -> float | None:
        """Median busbw of its pairs."""
        return statistics.median(p.busbw_gbps for p in self.pairs) if self.pairs else None

    @property
    def min_gbps(self) -> float | None:
        """Lowest busbw of its pairs."""
        return min(p.busbw_gbps for p in self.pairs) if self.pairs else None


@dataclass(frozen=True)
class Judgement:
    """Every node's verdict, the bad pairs, and the yardstick used."""

    reference_gbps: float | None
    threshold_gbps: float | None
    nodes: tuple[NodeVerdict, ...]
    bad_pairs: tuple[PairResult, ...]

    def verdict(self, node: str) -> str:
        """The verdict of one node."""
        return next(v.verdict for v in self.nodes if v.node == node)

    @property
    def slow_nodes(self) -> list[str]:
        """Nodes judged slow (or below the floor)."""
        return [v.node for v in self.nodes if v.verdict in (SLOW, BELOW_FLOOR)]

    @property
    def passed(self) -> bool:
        """No slow node, no bad pair, nothing left unresolved."""
        return all(v.verdict == OK for v in self.nodes) and not self.bad_pairs


def circle_rounds(nodes: Sequence[str]) -> list[list[Pair]]:
    """Round-robin schedule (circle method): every pair once, disjoint pairs within a round.

    With an odd count one node sits out each round.
    """
    items: list[str | None] = list(nodes)
    if len(items) % 2:
        items.append(None)
    n = len(items)
    rounds = []
    for _ in range(n - 1):
        pairs = []
        for i in range(n // 2):
            a, b = items[i], items[n - 1 - i]
            if a is not None and b is not None:
                pairs.append((a, b))
        rounds.append(pairs)
        items = [items[0], items[-1], *items[1:-1]]
    return rounds


def full_rounds_for(node_count: int) -> int:
    """Default: every pair up to 8 nodes; beyond, one round of disjoint pairs, then re-tests."""
    if node_count <= 8:
        return len(circle_rounds([str(i) for i in range(node_count)]))
    return 1


def reference(results: Sequence[PairResult]) -> float | None:
    """The typical good pair: median of the upper half of pair bandwidths.

    The upper half, because with few nodes a slow node is in up to half of all pairs.
    """
    values = sorted(r.busbw_gbps for r in results)
    if not values:
        return None
    return statistics.median(values[len(values) // 2 :])


def judge(
    nodes: Sequence[str],
    results: Sequence[PairResult],
    slow_ratio: float = 0.75,
    min_busbw_gbps: float | None = None,
    confirm: int = 2,
    unit: str = "GB/s",
) -> Judgement:
    """Verdicts from pair results alone.

    A pair is slow below slow_ratio × the reference (or below min_busbw_gbps). A node is ok
    when one of its pairs is not slow; slow when every pair is slow and `confirm` of its
    partners are ok (fewer when no untested ok partner is left); otherwise a suspect.
    The figures may be any bandwidth (`bench rdma` passes Gb/s); unit only names them.
    """
    ref = reference(results)
    threshold = None if ref is None else slow_ratio * ref
    if min_busbw_gbps is not None:
        threshold = max(threshold or 0.0, min_busbw_gbps)

    def slow(p: PairResult) -> bool:
        return threshold is not None and p.busbw_gbps < threshold

    pairs_of = {n: tuple(p for p in results if p.has(n)) for n in nodes}
    good = {n for n in nodes if any(not slow(p) for p in pairs_of[n])}
    verdicts = []
    for n in nodes:
        mine = pairs_of[n]
        if not mine:
            verdicts.append(NodeVerdict(n, UNTESTED, mine, "not paired yet"))
            continue
        listing = ", ".join(f"{p.other(n)} {p.busbw_gbps:.2f}" for p in mine)
        if n in good:
            verdicts.append(NodeVerdict(n, OK, mine, f"fast with at least one partner: {listing}"))
            continue
        ok_partners = sorted({p.other(n) for p in mine} & good)
        untried = sorted(good - {p.other(n) for p in mine} - {n})
        limit = f"< {threshold:.2f} {unit}" if threshold is not None else ""
        if not good:
            verdict = BELOW_FLOOR
            why = f"every pair in the job is slow ({limit}); no good node to compare with"
        elif len(ok_partners) >= confirm or (ok_partners and not untried):
            verdict = SLOW
            why = f"slow with {len(ok_partners)} partner(s) that are fast elsewhere"
        else:
            verdict = SUSPECT
            why = "slow so far, not yet paired with enough good nodes"
        verdicts.append(NodeVerdict(n, verdict, mine, f"{why}: {listing} {unit} ({limit})"))
    bad = tuple(p for p in results if slow(p) and p.a in good and p.b in good)
    return Judgement(ref, threshold, tuple(verdicts), bad)


def next_round(
    nodes: Sequence[str],
    results: Sequence[PairResult],
    round_index: int,
    full_rounds: int,
    slow_ratio: float = 0.75,
    min_busbw_gbps: float | None = None,
    confirm: int = 2,
) -> list[Pair]:
    """The disjoint pairs to test next; empty when there is nothing left to learn."""
    if round_index < full_rounds:
        rounds = circle_rounds(nodes)
        if round_index < len(rounds):
            return rounds[round_index]
    j = judge(nodes, results, slow_ratio, min_busbw_gbps, confirm)
    state = {v.node: v.verdict for v in j.nodes}
    tested = {frozenset((p.a, p.b)) for p in results}
    goods = [n for n in nodes if state[n] == OK]
    busy: set[str] = set()
    pairs: list[Pair] = []
    for n in nodes:
        if state[n] not in (SUSPECT, UNTESTED) or n in busy:
            continue
        candidates = [g for g in goods if g not in busy and frozenset((n, g)) not in tested]
        if not candidates and state[n] == UNTESTED:
            candidates = [
                m for m in nodes if m != n and m not in busy and frozenset((n, m)) not in tested
            ]
        if candidates:
            pairs.append((n, candidates[0]))
            busy |= {n, candidates[0]}
    return pairs


@dataclass(frozen=True)
class LocateRun:
    """A whole `bench locate` run, as the leader reports it."""

    nodes: dict[str, list[int]]  # node id → its ranks
    hosts: dict[str, list[str]]
    results: tuple[PairResult, ...]
    judgement: Judgement
    nbytes: int
    dtype: str
    backend: str
    rounds: int

    def headline(self) -> str:
        """One line: what was measured and the outcome."""
        j = self.judgement
        slow = j.slow_nodes
        parts = []
        if slow:
            parts.append(f"slow node(s): {', '.join(slow)}")
        if j.bad_pairs:
            parts.append("bad pair(s): " + ", ".join(f"{p.a}–{p.b}" for p in j.bad_pairs))
        open_ = [v.node for v in j.nodes if v.verdict in (SUSPECT, UNTESTED)]
        if open_:
            parts.append(f"unresolved: {', '.join(open_)}")
        return ("FAIL: " + "; ".join(parts)) if parts else "PASS: no slow node, no bad pair"

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of `bench locate --format json`."""
        j = self.judgement

        def pair(p: PairResult) -> dict[str, Any]:
            return {
                "nodes": [p.a, p.b],
                "round": p.round,
                "time_us": round(p.time_us, 3),
                "busbw_gbps": round(p.busbw_gbps, 4),
            }

        return {
            "schema": SCHEMA,
            "backend": self.backend,
            "bytes": self.nbytes,
            "dtype": self.dtype,
            "rounds": self.rounds,
            "reference_gbps": j.reference_gbps,
            "threshold_gbps": j.threshold_gbps,
            "nodes": [
                {
                    "node": v.node,
                    "ranks": self.nodes.get(v.node, []),
                    "hosts": self.hosts.get(v.node, []),
                    "verdict": v.verdict,
                    "median_gbps": v.median_gbps,
                    "min_gbps": v.min_gbps,
                    "pairs": [
                        {"with": p.other(v.node), "busbw_gbps": round(p.busbw_gbps, 4)}
                        for p in v.pairs
                    ],
                    "evidence": v.evidence,
                }
                for v in j.nodes
            ],
            "pairs": [pair(p) for p in self.results],
            "bad_pairs": [pair(p) for p in j.bad_pairs],
            "status": "pass" if j.passed else "fail",
            "summary": self.headline(),
        }

    def table(self) -> str:
        """Per node: pairs, median and min busbw, verdict and evidence; then the bad pairs."""
        j = self.judgement
        ref = f"{j.reference_gbps:.2f}" if j.reference_gbps is not None else "-"
        thr = f"{j.threshold_gbps:.2f}" if j.threshold_gbps is not None else "-"
        lines = [
            f"# preflight bench locate: {len(self.nodes)} nodes, "
            f"{sum(len(r) for r in self.nodes.values())} ranks, backend {self.backend}, "
            f"{format_size(self.nbytes)} {self.dtype}, {self.rounds} rounds, "
            f"{len(self.results)} pair tests",
            f"# typical pair busbw {ref} GB/s; a pair below {thr} GB/s is slow",
            f"{'node':<16} {'ranks':>5} {'pairs':>5} {'median':>8} {'min':>8}  verdict",
        ]
        for v in j.nodes:
            med = f"{v.median_gbps:8.2f}" if v.median_gbps is not None else f"{'-':>8}"
            low = f"{v.min_gbps:8.2f}" if v.min_gbps is not None else f"{'-':>8}"
            lines.append(
                f"{v.node:<16} {len(self.nodes.get(v.node, [])):5d} {len(v.pairs):5d} "
                f"{med} {low}  {v.verdict}: {v.evidence}"
            )
        for p in j.bad_pairs:
            lines.append(
                f"bad pair {p.a}–{p.b}: {p.busbw_gbps:.2f} GB/s although both nodes are fast "
                "with other partners: suspect the path between them (cables, switch ports, routes)"
            )
        lines.append(self.headline())
        return "\n".join(lines) + "\n"
