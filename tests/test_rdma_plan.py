"""The fleet schedule of `bench rdma` (real scheduler code, at 12,500 nodes × 8 rails) and the
per-rail verdicts it shares with `bench locate`."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from preflight.bench.rdma_plan import (
    RailRun,
    bad_rails,
    judge_rails,
    plan_summary,
    rail_schedule,
    schedule,
)
from tests.bench_procs import preflight


def test_12500_nodes_8_rails_on_paper() -> None:
    s = plan_summary(12_500, 8, 2, 30.0)
    assert s["pairs_per_round_per_rail"] == 12_500
    assert s["tests_per_round"] == 100_000  # every HCA of every node, all rails at once
    assert s["tests_total"] == 200_000
    assert s["partners_per_node"] == 4  # i±1, i±2
    assert s["wall_time_s"] == 60.0  # two rounds of one 30 s test, whatever the node count


@pytest.mark.parametrize(("n", "rounds"), [(2, 1), (5, 4), (8, 4), (12_500, 3)])
def test_each_round_sends_and_receives_once_per_node(n: int, rounds: int) -> None:
    nodes = [f"n{i}" for i in range(n)]
    partners: dict[str, set[str]] = {x: set() for x in nodes}
    for pairs in schedule(nodes, rounds):
        clients = Counter(c for c, _ in pairs)
        servers = Counter(s for _, s in pairs)
        assert set(clients.values()) == {1} and set(servers.values()) == {1}
        assert len(clients) == len(servers) == n
        assert all(c != s for c, s in pairs)
        for c, s in pairs:
            partners[c].add(s)
            partners[s].add(c)
    # i+r and i-r each round: 2 new partners a round until they wrap around
    assert {len(p) for p in partners.values()} == {min(2 * rounds, n - 1)}


def test_rails_repeat_the_round_rail_by_rail() -> None:
    runs = list(rail_schedule(["a", "b", "c"], 2, 1))
    assert runs == [
        (1, 0, "a", "b"), (1, 0, "b", "c"), (1, 0, "c", "a"),
        (1, 1, "a", "b"), (1, 1, "b", "c"), (1, 1, "c", "a"),
    ]  # fmt: skip


def test_the_node_slow_on_one_rail_is_named_on_that_rail_only() -> None:
    nodes = [f"n{i}" for i in range(6)]
    bad_node, bad_rail = "n4", 1
    runs = []
    for r, rail, client, server in rail_schedule(nodes, 2, 2):
        # 98.03 Gb/s: the HPE RoCE 100G capture; 3.06 MB/s ≈ 0.026 Gb/s: the soft-RoCE capture
        slow = rail == bad_rail and bad_node in (client, server)
        runs.append(RailRun(r, rail, client, server, 0.0257 if slow else 98.03))
    verdicts = judge_rails(nodes, runs)
    assert bad_rails(verdicts) == {bad_node: [bad_rail]}
    assert "Gb/s" in verdicts[bad_rail].nodes[4].evidence
    assert verdicts[0].passed


def test_rdma_plan_command() -> None:
    res = preflight("bench", "rdma-plan", "--nodes", "12500", "--rails", "8", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["wall_time_s"] == 60.0
    res = preflight("bench", "rdma-plan", "--nodes", "1")
    assert res.returncode == 2 and res.stderr.startswith("preflight: error:")
