"""The fleet schedule of `bench rdma`: rounds of pairs per rail, and what the results say.

Round r pairs node i (client) with node i+r mod n (server), on every rail at once (rail k of one
node to rail k of the other: a rail-optimized fabric puts rail k of every node on the same leaf
switches). In a round every HCA sends one stream and receives one, so rounds take one test's
time whatever the node count, and R rounds give every node 2R distinct partners (fewer when
2R ≥ n). A node is bad on a rail when it is slow with partners that are fast elsewhere: the
judging is `bench locate`'s (preflight.bench.locate.judge), per rail.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from preflight.bench.locate import Judgement, PairResult, judge

Pair = tuple[str, str]  # (client, server)


def shift_round(nodes: Sequence[str], offset: int) -> list[Pair]:
    """Round `offset`: node i sends to node i+offset (mod n)."""
    n = len(nodes)
    if not 0 < offset < n:
        raise ValueError(f"a round offset must be in 1..{n - 1}, got {offset}")
    return [(nodes[i], nodes[(i + offset) % n]) for i in range(n)]


def schedule(nodes: Sequence[str], rounds: int) -> list[list[Pair]]:
    """Rounds 1..rounds of shifted pairs (the same on every rail)."""
    if len(set(nodes)) != len(nodes):
        raise ValueError("node names must be distinct")
    return [shift_round(nodes, r) for r in range(1, rounds + 1)]


def rail_schedule(
    nodes: Sequence[str], rails: int, rounds: int
) -> Iterator[tuple[int, int, str, str]]:
    """Every run of the fleet test: (round, rail, client, server), round by round."""
    for r, pairs in enumerate(schedule(nodes, rounds), start=1):
        for rail in range(rails):
            for client, server in pairs:
                yield r, rail, client, server


def partners_per_node(n: int, rounds: int) -> int:
    """Distinct partners each node meets: +r and -r for every round r (mod n)."""
    return len({d % n for r in range(1, rounds + 1) for d in (r, -r)} - {0})


def plan_summary(nodes: int, rails: int, rounds: int, test_seconds: float) -> dict[str, Any]:
    """Counts of the schedule for `nodes` × `rails`, from the scheduler itself."""
    names = [f"node{i}" for i in range(nodes)]
    per_round: dict[int, int] = {}
    for r, _rail, _client, _server in rail_schedule(names, rails, rounds):
        per_round[r] = per_round.get(r, 0) + 1
    return {
        "nodes": nodes,
        "rails": rails,
        "rounds": rounds,
        "pairs_per_round_per_rail": nodes,
        "tests_per_round": per_round[1],
        "tests_total": sum(per_round.values()),
        "partners_per_node": partners_per_node(nodes, rounds),
        "test_seconds": test_seconds,
        "wall_time_s": rounds * test_seconds,
    }


@dataclass(frozen=True)
class RailRun:
    """One fleet run: client → server on one rail, its average Gb/s."""

    round: int
    rail: int
    client: str
    server: str
    gbps: float


def judge_rails(
    nodes: Sequence[str],
    runs: Sequence[RailRun],
    slow_ratio: float = 0.75,
    min_gbps: float | None = None,
) -> dict[int, Judgement]:
    """bench locate's verdicts, one judgement per rail."""
    out: dict[int, Judgement] = {}
    for rail in sorted({r.rail for r in runs}):
        pairs = [
            PairResult(r.client, r.server, r.round, 0.0, r.gbps) for r in runs if r.rail == rail
        ]
        out[rail] = judge(nodes, pairs, slow_ratio, min_gbps, unit="Gb/s")
    return out


def bad_rails(judgements: Mapping[int, Judgement]) -> dict[str, list[int]]:
    """Node → the rails it is slow on."""
    out: dict[str, list[int]] = {}
    for rail, j in judgements.items():
        for node in j.slow_nodes:
            out.setdefault(node, []).append(rail)
    return out
