"""The drain circuit breaker: before draining, count the nodes preflight has already drained.

A bad baseline, a broken driver update or a bug in a check fails every node at once; without a
limit, every node's health check drains its own node and the whole partition is gone within one
HealthCheckInterval. NVSentinel and AWS's node repair cap how much of the fleet automation may
take out; here the cap is `--max-drained N` or `P%` of the nodes in this node's partitions (or in
the whole cluster). Nodes drained by someone else do not count: only those whose reason starts
`preflight:`. One `sinfo` call reads every node's state and reason; when it fails or its output
cannot be read, the node is not drained (fail safe: an unknown count could be the whole fleet).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from preflight.errors import UsageError
from preflight.wording import count as counted_noun

SINFO = "sinfo"
FIELD_SEP = "|"
"""Between sinfo's fields: node and partition names cannot hold it; the reason, which can,
comes last and is split off once."""
MAX_OUTPUT = 32 * 1024 * 1024
"""Bytes of sinfo output read: a 100,000-node cluster in several partitions is a few MiB."""
MAX_LINES = 1_000_000
MAX_LINE = 64 * 1024
"""Characters of one line: far more than a node name, partition, state and reason take."""
SCOPES = ("partition", "cluster")
_LIMIT = re.compile(r"(\d{1,9})(%?)")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


@dataclass(frozen=True)
class DrainLimit:
    """At most `count` nodes, or `percent` of the nodes in scope, drained by preflight."""

    count: int | None = None
    percent: int | None = None

    def nodes(self, total: int) -> int:
        """The most nodes that may be drained by preflight among `total` (rounded down)."""
        if self.percent is not None:
            return math.floor(total * self.percent / 100)
        return self.count or 0

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.count)


def parse_limit(text: str) -> DrainLimit:
    """`--max-drained 5` or `--max-drained 10%`; ConfigError otherwise."""
    m = _LIMIT.fullmatch(text.strip())
    if m is None:
        raise UsageError(
            f"--max-drained {text!r}: expected a number of nodes (5) or a percentage (10%)"
        )
    value = int(m.group(1))
    if m.group(2):
        if value > 100:
            raise UsageError(f"--max-drained {text!r}: a percentage is at most 100%")
        return DrainLimit(percent=value)
    return DrainLimit(count=value)


def parse_scope(text: str) -> str:
    """`partition` or `cluster`; ConfigError otherwise."""
    if text not in SCOPES:
        raise UsageError(f"--max-drained-scope {text!r}: expected partition or cluster")
    return text


def sinfo_argv() -> list[str]:
    """One line per (node, partition): name, partition, extended state, reason.

    `--all` includes hidden partitions; `--Node` lists every node, not ranges.
    """
    return [
        SINFO,
        "--all",
        "--noheader",
        "--Node",
        f"--format=%N{FIELD_SEP}%R{FIELD_SEP}%T{FIELD_SEP}%E",
    ]


@dataclass(frozen=True)
class NodeRow:
    """One line of the sinfo output."""

    name: str
    partition: str
    state: str
    reason: str


class SinfoUnreadable(ValueError):
    """The sinfo output is not what sinfo_argv asks for."""


def parse_sinfo(text: str) -> list[NodeRow]:
    """The rows of `sinfo_argv()` output; SinfoUnreadable for anything else.

    Every line must have the four fields and a valid node name: a line that does not is not
    sinfo's answer to this query, and a count built from part of an answer could let a drain
    through that the limit forbids.
    """
    if len(text) > MAX_OUTPUT:
        raise SinfoUnreadable(f"output is over {MAX_OUTPUT // (1024 * 1024)} MiB")
    if "\x00" in text:
        raise SinfoUnreadable("output holds a NUL byte: not sinfo's text")
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if number > MAX_LINES:
            raise SinfoUnreadable(f"output is over {MAX_LINES} lines")
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            raise SinfoUnreadable(f"line {number} is over {MAX_LINE} characters")
        parts = line.split(FIELD_SEP, 3)
        if len(parts) != 4:
            raise SinfoUnreadable(f"line {number} does not have 4 fields: {line[:80]!r}")
        name, partition, state, reason = (p.strip() for p in parts)
        if not _NAME.fullmatch(name) or not state:
            raise SinfoUnreadable(f"line {number} names no node: {line[:80]!r}")
        rows.append(NodeRow(name, partition, state.lower(), reason))
    if not rows:
        raise SinfoUnreadable("no node listed")
    return rows


def drained(row: NodeRow) -> bool:
    """Drained or draining: sinfo's extended state is `drained`/`draining` (`drained*` when
    the node does not respond), and compound states name `drain` after a `+`."""
    state = row.state.rstrip("*~#!%$@^-")
    return state.startswith("drain") or any(p.startswith("drain") for p in state.split("+")[1:])


def by_preflight(row: NodeRow, prefix: str) -> bool:
    """Drained with a reason this tool wrote (sinfo shows the reason without `[user@time]`)."""
    return drained(row) and row.reason.startswith(prefix)


@dataclass(frozen=True)
class Count:
    """Nodes in scope and how many of them preflight has drained (this node left out)."""

    scope: str
    partitions: tuple[str, ...]
    total: int
    drained: int
    drained_nodes: tuple[str, ...]


def count(rows: Iterable[NodeRow], node: str, scope: str, prefix: str) -> Count:
    """Count over the node's partitions (every partition it is in) or the whole cluster.

    A node in several partitions counts once. This node is left out of the drained count:
    draining it again (a new reason) does not take another node out.
    """
    rows = list(rows)
    mine = tuple(sorted({r.partition for r in rows if r.name == node}))
    if scope == "partition":
        if not mine:
            raise SinfoUnreadable(f"node {node} is in no partition sinfo lists")
        rows = [r for r in rows if r.partition in mine]
    names = {r.name for r in rows}
    out = sorted({r.name for r in rows if r.name != node and by_preflight(r, prefix)})
    return Count(scope, mine if scope == "partition" else (), len(names), len(out), tuple(out))


@dataclass(frozen=True)
class Guard:
    """The breaker's answer: drain or hold, and the line that says why."""

    allow: bool
    message: str
    limit: str
    scope: str
    drained: int | None = None
    allowed: int | None = None
    total: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON form (the report's `slurm.guard`)."""
        return {
            "held": not self.allow,
            "limit": self.limit,
            "scope": self.scope,
            "drained": self.drained,
            "allowed": self.allowed,
            "nodes": self.total,
            "error": self.error,
            "message": self.message,
        }


def judge(limit: DrainLimit, counted: Count) -> Guard:
    """Drain only while this drain keeps preflight's drained nodes within the limit."""
    allowed = limit.nodes(counted.total)
    where = (
        f"partition {','.join(counted.partitions)}"
        if counted.scope == "partition"
        else "the cluster"
    )
    figures = (
        f"{counted.drained} of {counted.total} nodes in {where} already drained by preflight, "
        f"limit {limit} ({counted_noun(allowed, 'node')})"
    )
    allow = counted.drained + 1 <= allowed
    return Guard(
        allow,
        figures if allow else f"not drained: {figures}",
        str(limit),
        counted.scope,
        drained=counted.drained,
        allowed=allowed,
        total=counted.total,
    )


def unknown(limit: DrainLimit, scope: str, why: str) -> Guard:
    """The count could not be had: hold the drain (fail safe)."""
    return Guard(
        False,
        f"not drained: cannot count the nodes drained by preflight ({why}); "
        f"--max-drained {limit} holds drains it cannot verify",
        str(limit),
        scope,
        error=why,
    )
