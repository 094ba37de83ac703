"""Failures across the fleet: per check, which nodes fail and why; per node, its failing checks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from preflight.cluster.record import NodeRecord
from preflight.model import ACTIONS


@dataclass(frozen=True)
class CheckFailures:
    """One check that failed or errored on at least one node."""

    check: str
    nodes: tuple[tuple[str, str, str], ...]
    """(hostname, status, summary), by hostname."""

    @property
    def common_summary(self) -> tuple[str, int]:
        """The most frequent summary and how many nodes report it."""
        summary, count = Counter(s for _, _, s in self.nodes).most_common(1)[0]
        return summary, count


def by_check(records: Iterable[NodeRecord]) -> list[CheckFailures]:
    """Failing checks, most failing nodes first, then by id."""
    per: dict[str, list[tuple[str, str, str]]] = {}
    for record in records:
        for check_id, status, summary in record.failing:
            per.setdefault(check_id, []).append((record.name, status, summary))
    out = [CheckFailures(check, tuple(sorted(rows))) for check, rows in per.items()]
    out.sort(key=lambda c: (-len(c.nodes), c.check))
    return out


def failing_nodes(records: Iterable[NodeRecord]) -> list[NodeRecord]:
    """Nodes with at least one failed or errored check, by hostname."""
    return sorted((r for r in records if r.failing), key=lambda r: r.name)


def by_action(failing: Iterable[NodeRecord]) -> list[tuple[str | None, list[NodeRecord]]]:
    """Failing nodes grouped by their remediation class, strongest first; nodes whose failing
    checks carry none (a check that could not run, a report from before classes) last."""
    groups: dict[str | None, list[NodeRecord]] = {}
    for record in failing:
        groups.setdefault(record.action, []).append(record)
    rank = {a.value: a.rank for a in ACTIONS}
    return sorted(groups.items(), key=lambda kv: -rank.get(kv[0], -1) if kv[0] else 1)
