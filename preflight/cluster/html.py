"""`preflight compare --format html`: one self-contained page for people to look at a fleet
(inline CSS and JS, and a Content-Security-Policy that forbids any fetch).

The page holds one JSON model in a `<script type="application/json">` element; its script draws
the node × check heatmap lazily (only the rows in view exist in the DOM), so 12,500 nodes × 50
checks open quickly. Node-provided text is hostile: the JSON is written with every `<`, `>`, `&`
and non-ASCII character (U+2028 included) as a \\u escape, so nothing in it can close the element,
and the script only ever puts data into the page as text (textContent), never as markup.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any, TextIO

from preflight.cluster.compare import Comparison
from preflight.cluster.drift import ABSENT
from preflight.cluster.figures import MetricStats
from preflight.cluster.record import NodeRecord
from preflight.cluster.render import show, show_change
from preflight.model import ACTIONS as model_actions

DRIFT_ROWS = 500
"""Drift rows the page holds (rarest first); JSON has them all."""
DRIFT_NODES = 200
"""Node names per drift value the page holds."""

STATUS_CODE = {"pass": "p", "warn": "w", "fail": "f", "error": "e", "skip": "s"}
ABSENT_CODE = "x"
OTHER_CODE = "o"

ACTIONS = tuple(a.value for a in model_actions)
"""Remediation classes, weakest first: a node's action is the strongest of its findings'."""


def _strongest(actions: Sequence[str]) -> str:
    known = [a for a in actions if a in ACTIONS]
    if known:
        return max(known, key=ACTIONS.index)
    return sorted(actions)[0]


def _node_actions(record: NodeRecord) -> list[str]:
    found = []
    for d in record.details:
        if d.status in ("fail", "error") or d.action:
            if d.action:
                found.append(d.action)
            found.extend(f["action"] for f in d.findings if "action" in f)
    return found


def model(comparison: Comparison) -> dict[str, Any]:
    """The page's JSON model: checks, nodes by group and name (one status letter per check),
    the non-passing findings, failures by check and action, drift, figures, unreadable reports."""
    fleet = comparison.fleet
    groups = sorted(fleet.groups)
    group_index = {g: i for i, g in enumerate(groups)}
    checks_seen: dict[str, None] = {}
    for record in fleet.nodes.values():
        for check, _ in record.results:
            checks_seen.setdefault(check, None)
    checks = sorted(checks_seen)
    check_index = {c: i for i, c in enumerate(checks)}
    order = sorted(
        ((group_index[g], fleet.nodes[i].name, i) for g, ids in fleet.groups.items() for i in ids)
    )
    position = {node_id: k for k, (_, _, node_id) in enumerate(order)}
    at = {name: k for k, (_, name, _) in enumerate(order)}
    nodes = []
    sources = []
    details: list[list[list[Any]] | None] = []
    by_action: dict[str, list[int]] = {}
    for k, (g, name, node_id) in enumerate(order):
        record = fleet.nodes[node_id]
        codes = [ABSENT_CODE] * len(checks)
        for check, status in record.results:
            codes[check_index[check]] = STATUS_CODE.get(status, OTHER_CODE)
        if not record.results:  # a report without detail: its failing checks are all we know
            for check, status, _ in record.failing:
                if check in check_index:
                    codes[check_index[check]] = STATUS_CODE.get(status, OTHER_CODE)
        nodes.append([name, g, "".join(codes)])
        sources.append(record.source)
        kept = [
            [check_index[d.check], d.status, d.summary, d.action, list(d.findings)]
            for d in record.details
            if d.check in check_index
        ]
        details.append(kept or None)
        actions = [record.action] if record.action else _node_actions(record)
        if actions:
            by_action.setdefault(_strongest(actions), []).append(k)
    failures = [
        {
            "check": c.check,
            "summary": c.common_summary[0],
            "nodes": sorted(at[n] for n, _, _ in c.nodes if n in at),
        }
        for c in comparison.failures
    ]
    return {
        "status": comparison.status,
        "reports": fleet.reports,
        "group_by": comparison.group_by,
        "golden": comparison.golden.record.name if comparison.golden else None,
        "failing": len(comparison.failing),
        "drift_facts": len(comparison.drift),
        "drifting_nodes": comparison.drifting_nodes,
        "checks": checks,
        "groups": groups,
        "group_sizes": [len(fleet.groups[g]) for g in groups],
        "nodes": nodes,
        "sources": sources,
        "details": details,
        "failures": failures,
        "by_action": [
            {"action": a, "nodes": ids}
            for a, ids in sorted(
                by_action.items(),
                key=lambda kv: -ACTIONS.index(kv[0]) if kv[0] in ACTIONS else 1,
            )
        ],
        "drift": [_drift_row(comparison, d, position) for d in comparison.drift[:DRIFT_ROWS]],
        "figures": [_figure(f, position) for f in comparison.figures],
        "unreadable": [[s, e] for s, e in fleet.unreadable[:DRIFT_ROWS]],
    }


def _drift_row(comparison: Comparison, d: Any, position: dict[int, int]) -> dict[str, Any]:
    return {
        "group": d.group,
        "fact": d.key,
        "expected": show(d.expected),
        "expected_nodes": d.expected_nodes,
        "differs": [
            {
                "value": show(v) if v is ABSENT else show_change(v, d.expected),
                "count": len(ids),
                "nodes": sorted(position[i] for i in ids)[:DRIFT_NODES],
            }
            for v, ids in d.differs
        ],
    }


def _figure(f: MetricStats, position: dict[int, int]) -> dict[str, Any]:
    return {
        "group": f.group,
        "metric": f.metric,
        "count": f.count,
        "median": f.median,
        "mad": f.mad,
        "min": f.low,
        "max": f.high,
        "sample": list(f.sample),
        "outliers": [[position[i], v] for i, v, _ in f.outliers[:DRIFT_NODES]],
    }


def embed(doc: Any) -> str:
    """JSON that is inert inside a script element: no `<`, `>`, `&` or non-ASCII character
    (U+2028/2029 included) appears literally, so node text cannot close the element."""
    text = json.dumps(doc, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def template() -> str:
    """The page around the model (fleet.html in this package)."""
    return resources.files("preflight.cluster").joinpath("fleet.html").read_text("utf-8")


def render_html(comparison: Comparison, out: TextIO) -> None:
    """Write the self-contained page."""
    page = template()
    head, tail = page.split("@@DATA@@", 1)
    out.write(head)
    out.write(embed(model(comparison)))
    out.write(tail)
