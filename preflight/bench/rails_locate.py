"""`bench locate --per-rail`: the fleet's pair tests once per rail, naming the node and the rail.

Each rank runs `bench locate` as a child per rail (preflight.bench.rails.run_rails: one rail
after another, each on its own rendezvous port), confined to that rail's interface or HCA. Each
child judges its pairs with `bench locate`'s reasoning (preflight.bench.locate.judge); this
module puts the rails side by side: a node slow on rail 1 and fine on rail 0 has a bad rail 1
(its NIC, cable or leaf port), a node slow on every rail is a slow node. No torch here.

All-reduce needs each node in one pair at a time, so the rounds are locate's disjoint pairs
(round-robin), not `bench rdma`'s shifted rounds where every HCA sends and receives at once.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from preflight.bench.rails import RailOutcome, run_rails
from preflight.outfile import write_output

SCHEMA = "preflight-bench-locate-rails/1"
FLAGGED = ("slow", "below_floor")
RETEST_ROUNDS = 16
"""pairtest.MAX_EXTRA_ROUNDS (that module imports torch): bounds a rail child's run time."""


def rail_verdicts(result: Mapping[str, Any] | None) -> dict[str, str]:
    """Node → verdict in one rail's `bench locate` document (empty when it has none)."""
    nodes = (result or {}).get("nodes")
    if not isinstance(nodes, list):
        return {}
    return {
        str(n["node"]): str(n["verdict"])
        for n in nodes
        if isinstance(n, dict) and "node" in n and "verdict" in n
    }


def bad_rails(outcomes: Sequence[RailOutcome]) -> dict[str, list[str]]:
    """Node → the rails it is slow on, in rail order."""
    out: dict[str, list[str]] = {}
    for o in outcomes:
        for node, verdict in rail_verdicts(o.result).items():
            if verdict in FLAGGED:
                out.setdefault(node, []).append(o.rail)
    return out


def report(outcomes: Sequence[RailOutcome], backend: str) -> dict[str, Any]:
    """The JSON document of `bench locate --per-rail --format json`."""
    bad = bad_rails(outcomes)
    missing = [o.rail for o in outcomes if o.result is None or o.code not in (0, 1)]
    unresolved = sorted(
        {
            f"{node} on {o.rail}"
            for o in outcomes
            for node, v in rail_verdicts(o.result).items()
            if v in ("suspect", "untested")
        }
    )
    rails = [o.rail for o in outcomes]
    parts = []
    for node, slow in bad.items():
        what = "every rail" if len(slow) == len(rails) > 1 else "rail " + ", ".join(slow)
        parts.append(f"{node} slow on {what}")
    for o in outcomes:
        pairs = (o.result or {}).get("bad_pairs") or []
        if pairs and o.rail not in missing:
            names = [
                "–".join(str(n) for n in p["nodes"])
                for p in pairs
                if isinstance(p, dict) and isinstance(p.get("nodes"), list)
            ]
            parts.append(
                f"bad pair(s) on rail {o.rail}" + (f": {', '.join(names)}" if names else "")
            )
    if unresolved:
        parts.append("unresolved: " + ", ".join(unresolved))
    if missing:
        parts.append("rail(s) without a result: " + ", ".join(missing))
    return {
        "schema": SCHEMA,
        "backend": backend,
        "rails": [
            {
                "rail": o.rail,
                "exit_code": o.code,
                "summary": (o.result or {}).get("summary"),
                "verdicts": rail_verdicts(o.result),
                "locate": o.result,
            }
            for o in outcomes
        ],
        "bad": [{"node": node, "rails": slow} for node, slow in bad.items()],
        "status": "fail" if parts else "pass",
        "summary": ("FAIL: " + "; ".join(parts))
        if parts
        else "PASS: every node fine on every rail",
    }


def table(doc: Mapping[str, Any]) -> str:
    """Node × rail: each node's median pair busbw per rail and its verdict there."""
    rails = [r["rail"] for r in doc["rails"]]
    medians: dict[str, dict[str, str]] = {}
    for r in doc["rails"]:
        for n in (r["locate"] or {}).get("nodes") or []:
            med = n.get("median_gbps")
            shown = "-" if not isinstance(med, (int, float)) else f"{med:.3f}"
            medians.setdefault(str(n.get("node")), {})[r["rail"]] = f"{shown} {n.get('verdict')}"
    lines = [
        f"# preflight bench locate --per-rail ({doc['backend']}): median pair busbw (GB/s) "
        "and verdict, per node and rail",
        f"{'node':<16} " + " ".join(f"{rail:>18}" for rail in rails),
    ]
    for node, by_rail in medians.items():
        lines.append(f"{node:<16} " + " ".join(f"{by_rail.get(r, '-'):>18}" for r in rails))
    lines.append(doc["summary"])
    return "\n".join(lines) + "\n"


def per_rail_locate_command(
    argv: Sequence[str],
    rails_csv: str,
    backend: str,
    fmt: str,
    output: str | None,
    timeout_s: float,
) -> int:
    """This rank's part of `bench locate --per-rail`: a locate child per rail, then (rank 0)
    the node × rail report. Exit code."""
    from preflight.bench.env import rank_env
    from preflight.errors import PreflightError

    rails = [r.strip() for r in rails_csv.split(",") if r.strip()]
    if backend not in ("nccl", "gloo") or not rails or len(set(rails)) != len(rails):
        sys.stderr.write(
            "preflight: error: --per-rail needs --backend nccl (HCA names) or gloo (interface "
            "names) and distinct comma-separated rails\n"
        )
        return 2
    try:
        me = rank_env(os.environ)
    except PreflightError as exc:
        sys.stderr.write(f"preflight: error: {exc}\n")
        return exc.exit_code
    leader = me.rank == 0
    outcomes = run_rails(argv, rails, backend, os.environ, me.master_port, leader, timeout_s)
    if not leader:
        return 0 if all(o.code in (0, 1) for o in outcomes) else 1
    doc = report(outcomes, backend)
    text = json.dumps(doc, indent=1) + "\n" if fmt == "json" else table(doc)
    # Replaced atomically; a write that fails is an OutputError: one line, exit 2.
    write_output(output, text)
    return 0 if doc["status"] == "pass" else 1
