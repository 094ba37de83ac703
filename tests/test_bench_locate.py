"""Naming the slow node: the pair schedule and the judgement, with plain values."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

import pytest

from preflight.bench.locate import (
    BELOW_FLOOR,
    OK,
    SLOW,
    SUSPECT,
    UNTESTED,
    LocateRun,
    PairResult,
    circle_rounds,
    full_rounds_for,
    judge,
    next_round,
    reference,
)

Speed = Callable[[str, str], float]


def nodes(k: int) -> list[str]:
    return [f"n{i}" for i in range(k)]


def slow_node(bad: str, fast: float = 40.0, slow: float = 8.0) -> Speed:
    return lambda a, b: slow if bad in (a, b) else fast


def bad_pair(x: str, y: str, fast: float = 40.0, slow: float = 8.0) -> Speed:
    return lambda a, b: slow if {a, b} == {x, y} else fast


def simulate(names: list[str], speed: Speed, full: int | None = None) -> list[PairResult]:
    """Run the planner against a speed model, as every rank does."""
    results: list[PairResult] = []
    full = full_rounds_for(len(names)) if full is None else full
    for index in range(full + 16):
        pairs = next_round(names, results, index, full)
        if not pairs:
            break
        used = [n for p in pairs for n in p]
        assert len(used) == len(set(used)), "pairs within a round are disjoint"
        results += [PairResult(a, b, index, 1.0, speed(a, b)) for a, b in pairs]
    return results


@pytest.mark.parametrize("k", range(2, 12))
def test_circle_rounds_cover_every_pair_once(k: int) -> None:
    rounds = circle_rounds(nodes(k))
    assert len(rounds) == (k - 1 if k % 2 == 0 else k)
    seen = [frozenset(p) for r in rounds for p in r]
    assert len(seen) == len(set(seen)) == k * (k - 1) // 2
    for r in rounds:
        used = [n for p in r for n in p]
        assert len(used) == len(set(used))


def test_reference_is_the_median_of_the_upper_half() -> None:
    rs = [PairResult("a", "b", 0, 1, v) for v in (1, 2, 10, 11, 12, 30)]
    assert reference(rs) == 12
    assert reference([]) is None


def test_slow_node_among_four_is_named() -> None:
    names = nodes(4)
    results = simulate(names, slow_node("n2"))
    j = judge(names, results)
    assert j.slow_nodes == ["n2"]
    assert {v.node: v.verdict for v in j.nodes} == {"n0": OK, "n1": OK, "n2": SLOW, "n3": OK}
    assert not j.bad_pairs and not j.passed
    v = next(v for v in j.nodes if v.node == "n2")
    assert v.median_gbps == 8.0 and "3 partner(s)" in v.evidence


def test_bad_pair_is_told_apart_from_a_bad_node() -> None:
    names = nodes(4)
    j = judge(names, simulate(names, bad_pair("n1", "n2")))
    assert j.slow_nodes == []
    assert [(p.a, p.b) for p in j.bad_pairs] in ([("n1", "n2")], [("n2", "n1")])
    assert all(v.verdict == OK for v in j.nodes)


def test_healthy_noisy_cluster_passes() -> None:
    names = nodes(6)
    jitter = dict(zip(itertools.combinations(names, 2), itertools.cycle([0.9, 1.0, 1.1])))
    j = judge(names, simulate(names, lambda a, b: 40 * jitter[tuple(sorted((a, b)))]))  # type: ignore[index]
    assert j.passed


@pytest.mark.parametrize("bad", ["n0", "n5", "n9", "n10"])
def test_large_cluster_adaptive_retests_confirm_the_slow_node(bad: str) -> None:
    """11 nodes: one round of disjoint pairs, then suspects meet known-good nodes."""
    names = nodes(11)
    results = simulate(names, slow_node(bad))
    assert len(results) < 11 * 10 // 2  # far fewer than every pair
    j = judge(names, results)
    assert j.slow_nodes == [bad]
    assert all(v.verdict == OK for v in j.nodes if v.node != bad)
    partners = {p.other(bad) for p in results if p.has(bad)}
    assert len(partners) >= 2  # confirmed with two good partners


def test_every_pair_below_the_floor() -> None:
    names = nodes(4)
    j = judge(names, simulate(names, lambda a, b: 5.0), min_busbw_gbps=20.0)
    assert {v.verdict for v in j.nodes} == {BELOW_FLOOR}
    assert j.threshold_gbps == 20.0


def test_suspect_until_paired_with_good_nodes() -> None:
    names = nodes(4)
    first = [PairResult("n0", "n1", 0, 1, 40.0), PairResult("n2", "n3", 0, 1, 8.0)]
    j = judge(names, first)
    assert j.verdict("n2") == SUSPECT and j.verdict("n3") == SUSPECT
    # adaptive: each suspect meets a good node it has not met
    assert sorted(next_round(names, first, 1, 1)) == [("n2", "n0"), ("n3", "n1")]


def test_untested_node() -> None:
    j = judge(nodes(3), [PairResult("n0", "n1", 0, 1, 40.0)])
    assert j.verdict("n2") == UNTESTED and not j.passed


def test_locate_run_json_and_table() -> None:
    names = nodes(4)
    results = simulate(names, slow_node("n2"))
    run = LocateRun(
        nodes={n: [i] for i, n in enumerate(names)},
        hosts={n: ["h"] for n in names},
        results=tuple(results),
        judgement=judge(names, results),
        nbytes=1 << 20,
        dtype="float32",
        backend="gloo",
        rounds=3,
    )
    doc = run.to_dict()
    assert doc["status"] == "fail" and doc["summary"] == "FAIL: slow node(s): n2"
    n2 = next(n for n in doc["nodes"] if n["node"] == "n2")
    assert n2["verdict"] == "slow" and n2["median_gbps"] == 8.0 and len(n2["pairs"]) == 3
    table = run.table()
    assert "n2" in table and "slow:" in table and table.endswith("FAIL: slow node(s): n2\n")


# -- for real: 4 local ranks as 4 simulated nodes ----------------------------------------------

LOCATE = ["bench", "locate", "--nproc", "4", "--backend", "gloo", "--node-id", "n{local_rank}"]
# 256 KiB pairs take about 1 ms on loopback; the hook adds 300 s/GB = 79 ms per collective on
# the chosen node, so a slow pair is ~50× slower. A busy shared 2-core machine makes fast pairs
# up to 5× slower than usual, hence the low slow ratio.
LOCATE += ["--bytes", "256K", "--iters", "3", "--warmup", "1", "--slow-ratio", "0.3"]
LOCATE += ["--format", "json"]


def test_locate_names_the_slow_node_and_tells_a_bad_pair_apart() -> None:
    """Test hooks: every collective that involves node n2 sleeps in proportion to its size, and
    so does every collective between n0 and n1 (each fast with n3). Four of the six pairs are
    slow; the pairs alone say that n2 is slow and that n0 and n1 are not, only their pair."""
    pytest.importorskip("torch")
    from tests.bench_procs import preflight

    proc = preflight(*LOCATE, env={"PREFLIGHT_BENCH_TEST_SLOW": "n2:300;n0+n1:300"}, timeout=90)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    verdicts = {n["node"]: n["verdict"] for n in doc["nodes"]}
    assert verdicts == {"n0": "ok", "n1": "ok", "n2": "slow", "n3": "ok"}, doc["summary"]
    [bad] = doc["bad_pairs"]
    assert sorted(bad["nodes"]) == ["n0", "n1"]
    assert doc["summary"] == "FAIL: slow node(s): n2; bad pair(s): n0–n1"
    assert len(doc["pairs"]) == 6
    n2 = next(n for n in doc["nodes"] if n["node"] == "n2")
    assert sorted(p["with"] for p in n2["pairs"]) == ["n0", "n1", "n3"]
