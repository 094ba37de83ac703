"""`bench locate --per-rail`'s report: node × rail from each rail's locate document."""

from __future__ import annotations

from typing import Any

from preflight.bench.rails import RailOutcome
from preflight.bench.rails_locate import bad_rails, report, table


def locate_doc(verdicts: dict[str, str], bad_pairs: int = 0) -> dict[str, Any]:
    return {
        "nodes": [
            {"node": n, "verdict": v, "median_gbps": 0.01 if v == "slow" else 1.0}
            for n, v in verdicts.items()
        ],
        "bad_pairs": [{"nodes": ["n0", "n1"]}] * bad_pairs,
    }


OK4 = {"n0": "ok", "n1": "ok", "n2": "ok", "n3": "ok"}


def test_a_node_slow_on_one_rail_has_a_bad_rail() -> None:
    outs = [
        RailOutcome("r0", 0, locate_doc(OK4)),
        RailOutcome("r1", 1, locate_doc({**OK4, "n3": "slow"})),
    ]
    doc = report(outs, "gloo")
    assert doc["bad"] == [{"node": "n3", "rails": ["r1"]}]
    assert doc["summary"] == "FAIL: n3 slow on rail r1"
    assert "0.010 slow" in table(doc)


def test_a_node_slow_on_every_rail_is_a_slow_node() -> None:
    slow = {**OK4, "n2": "slow"}
    outs = [RailOutcome("r0", 1, locate_doc(slow)), RailOutcome("r1", 1, locate_doc(slow))]
    assert report(outs, "nccl")["summary"] == "FAIL: n2 slow on every rail"


def test_a_rail_without_result_and_bad_pairs_and_suspects_are_named() -> None:
    outs = [
        RailOutcome("r0", 1, locate_doc({**OK4, "n1": "suspect"}, bad_pairs=1)),
        RailOutcome("r1", 137, None),
    ]
    doc = report(outs, "gloo")
    assert doc["summary"] == (
        "FAIL: bad pair(s) on rail r0: n0–n1; unresolved: n1 on r0; rail(s) without a result: r1"
    )
    assert bad_rails(outs) == {}


def test_every_node_fine_passes() -> None:
    outs = [RailOutcome(r, 0, locate_doc(OK4)) for r in ("r0", "r1")]
    assert report(outs, "gloo")["status"] == "pass"
