"""A fleet's comparison: failing nodes, drift per group (or against a golden node), exit rule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from preflight.cluster.aggregate import Fleet
from preflight.cluster.drift import ABSENT, Drift, Value, find_drift
from preflight.cluster.failures import CheckFailures, by_action, by_check, failing_nodes
from preflight.cluster.figures import MetricStats, judge
from preflight.cluster.record import NodeRecord
from preflight.cluster.rules import FactRule, mask
from preflight.exitcodes import ExitCode
from preflight.model import Scalar

FAIL_ON = ("drift", "fail", "none")
"""--fail-on: drift = exit 1 on failing or unreadable nodes or any drift; fail = only on failing
or unreadable nodes; none = exit 0 whatever was found."""

COMPARE_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Golden:
    """The known-good node everyone is compared with, its facts filtered like everyone's."""

    record: NodeRecord
    facts: Mapping[str, Scalar]


def golden_from(record: NodeRecord, facts: Mapping[str, Scalar], rule: FactRule) -> Golden:
    """Apply the unique-key rule and UUID masking to the golden report's facts."""
    kept = {k: mask(v) for k, v in facts.items() if not rule.left_out(k)}
    return Golden(record, kept)


@dataclass(frozen=True)
class Comparison:
    """Everything `preflight compare` reports."""

    fleet: Fleet
    group_by: str
    golden: Golden | None
    drift: list[Drift]
    failures: list[CheckFailures]
    failing: list[NodeRecord]
    figures: list[MetricStats] = field(default_factory=list)
    """Per group and numeric metric: distribution and outliers (robust statistics)."""

    @property
    def drifting_nodes(self) -> int:
        """Nodes that differ on at least one fact."""
        ids: set[int] = set()
        for d in self.drift:
            for _, members in d.differs:
                ids.update(members)
        return len(ids)

    @property
    def warning_nodes(self) -> list[NodeRecord]:
        """Nodes whose report's worst result is a warning (4,387 symbol errors is one): not
        failing, and not healthy either."""
        return sorted((r for r in self.fleet.nodes.values() if r.status == "warn"), key=_name)

    @property
    def status(self) -> str:
        """fail (a node fails or a report is unreadable), drift, or ok."""
        if self.failing or self.fleet.unreadable:
            return "fail"
        return "drift" if self.drift else "ok"

    def exit_code(self, fail_on: str) -> ExitCode:
        """1 when what --fail-on names was found, else 0."""
        if fail_on == "none" or self.status == "ok":
            return ExitCode.OK
        if fail_on == "fail" and self.status == "drift":
            return ExitCode.OK
        return ExitCode.FAILED

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of `preflight compare --format json`."""
        fleet = self.fleet
        name = fleet.name
        return {
            "schema_version": COMPARE_SCHEMA_VERSION,
            "status": self.status,
            "reports": fleet.reports,
            "nodes": len(fleet.nodes),
            "group_by": self.group_by,
            "groups": {g: len(m) for g, m in sorted(fleet.groups.items())},
            "golden": None
            if self.golden is None
            else {"hostname": self.golden.record.name, "source": self.golden.record.source},
            "unreadable": [{"source": s, "error": e} for s, e in fleet.unreadable],
            "duplicates": [
                {"hostname": h, "kept": k, "dropped": d} for h, k, d in fleet.duplicates
            ],
            "failures": {
                "nodes": len(self.failing),
                "by_check": [
                    {
                        "check": c.check,
                        "nodes": [
                            {"hostname": h, "status": st, "summary": su} for h, st, su in c.nodes
                        ],
                    }
                    for c in self.failures
                ],
                "by_node": [
                    {
                        "hostname": r.name,
                        "source": r.source,
                        "action": r.action,
                        "checks": [{"check": c, "status": s} for c, s, _ in r.failing],
                    }
                    for r in self.failing
                ],
                "by_action": [
                    {"action": action, "nodes": [r.name for r in records]}
                    for action, records in by_action(self.failing)
                ],
            },
            "warnings": {
                "nodes": [{"hostname": r.name, "source": r.source} for r in self.warning_nodes]
            },
            "drift": {
                "facts": len(self.drift),
                "nodes": self.drifting_nodes,
                "items": [
                    {
                        "group": d.group,
                        "fact": d.key,
                        "expected": {**_value(d.expected), "nodes": d.expected_nodes},
                        "differs": [
                            {**_value(v), "nodes": [name(i) for i in ids]} for v, ids in d.differs
                        ],
                    }
                    for d in self.drift
                ],
            },
            "left_out": {
                reason: sorted(k for k, r in fleet.left_out.items() if r == reason)
                for reason in ("unique", "ignored")
            },
            "figures": [f.to_dict(name) for f in self.figures],
        }


def _name(record: NodeRecord) -> str:
    return record.name


def _value(value: Value) -> dict[str, Any]:
    if value is ABSENT:
        return {"value": None, "absent": True}
    return {"value": value, "absent": False}


def compare(fleet: Fleet, group_by: str, golden: Golden | None = None) -> Comparison:
    """Judge the fleet: failures from the records, drift from the facts."""
    records = fleet.nodes.values()
    drift = find_drift(fleet.facts, fleet.groups, golden.facts if golden else None)
    measured = {i: r.figures for i, r in fleet.nodes.items() if r.figures}
    stats = judge(measured, fleet.groups) if measured else []
    return Comparison(
        fleet, group_by, golden, drift, by_check(records), failing_nodes(records), stats
    )
