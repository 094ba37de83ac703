"""`preflight compare` output: a rich table for people, one JSON document for programs."""

from __future__ import annotations

import io
import json
import re
from typing import TextIO

from rich.table import Table
from rich.text import Text

from preflight.cluster.compare import Comparison
from preflight.cluster.drift import ABSENT, Drift, Value
from preflight.cluster.failures import by_action
from preflight.cluster.hostlist import compress, shorten
from preflight.safetext import cell, clean, console
from preflight.wording import count as plural

ROWS = 30
"""Rows per table without -v; JSON always has everything."""
NODES_WIDTH = 120
"""Characters of a node list without -v."""
OUTLIERS_SHOWN = 10
"""Outliers named per metric in the table; JSON has them all."""

_BDF = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
_INDEX = re.compile(r"(?<=\.)\d+(?=\.)")

STYLE = {"fail": "bold red", "drift": "yellow", "ok": "green"}
NO_CLASS = "(no class: could not run, or an older report)"


def render_json(comparison: Comparison, out: TextIO) -> None:
    """One JSON document (see Comparison.to_dict)."""
    json.dump(comparison.to_dict(), out, indent=2)
    out.write("\n")


def show(value: Value) -> str:
    """A fact value as JSON spells it; ABSENT as (absent)."""
    if value is ABSENT:
        return "(absent)"
    return value if isinstance(value, str) else json.dumps(value)


def show_change(value: Value, expected: Value) -> str:
    """Long space-separated strings (a kernel command line) as the tokens added and removed."""
    if (
        isinstance(value, str)
        and isinstance(expected, str)
        and " " in expected
        and max(len(value), len(expected)) > 40
    ):
        have, want = value.split(), expected.split()
        added = [f"+{t}" for t in have if t not in want]
        removed = [f"-{t}" for t in want if t not in have]
        return " ".join(removed + added) or show(value)
    return show(value)


def family(key: str) -> str:
    """Device addresses and indices as `*`: pci.0000:18:00.0.acs_ctl → pci.*.acs_ctl."""
    return _INDEX.sub("*", _BDF.sub("*", key))


def fold(drift: list[Drift]) -> list[tuple[str, list[Drift]]]:
    """Rows of the drift table: facts of one family that drift the same way on the same nodes,
    and all the facts missing from the same nodes (a run without root lacks every config-space
    fact), so that one cause is one row."""
    rows: dict[tuple[object, ...], tuple[list[str], list[Drift]]] = {}
    for d in drift:
        absent_only = all(v is ABSENT for v, _ in d.differs)
        if absent_only:
            signature: tuple[object, ...] = (d.group, repr(d.differs))
        else:
            signature = (d.group, family(d.key), repr(d.expected), repr(d.differs))
        labels, members = rows.setdefault(signature, ([], []))
        if family(d.key) not in labels:
            labels.append(family(d.key))
        members.append(d)
    return [(", ".join(labels), members) for labels, members in rows.values()]


class _Lines(io.StringIO):
    """The table on its way to `out`, with out's encoding (rich draws ASCII boxes for ASCII)."""

    def __init__(self, encoding: str) -> None:
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The encoding of where the text goes."""
        return self._encoding


def render_table(comparison: Comparison, out: TextIO, verbose: bool, width: int) -> None:
    """Headline, failing checks, failing nodes, drift, and a one-line verdict."""
    # Names, sources, summaries and values come from reports anyone may have written: every
    # string goes in as cleaned Text, on a console that reads no markup.
    buffer = _Lines(getattr(out, "encoding", None) or "utf-8")
    screen = console(buffer, width)

    def say(text: str) -> None:
        screen.print(cell(text))

    fleet = comparison.fleet
    name = fleet.name
    limit = None if verbose else ROWS
    nodes_width = 10_000 if verbose else NODES_WIDTH
    groups = ", ".join(f"{g} {len(m):,}" for g, m in sorted(fleet.groups.items()))
    say(
        f"preflight compare: {plural(len(fleet.nodes), 'node')} from "
        f"{plural(fleet.reports, 'report')}; "
        f"groups by {comparison.group_by}: {groups or '-'}"
    )
    if comparison.golden is not None:
        g = comparison.golden.record
        say(f"expected values: golden node {g.name} ({g.source})")
    for source, error in fleet.unreadable[:limit]:
        say(f"UNREADABLE {source}: {error}")
    if limit is not None and len(fleet.unreadable) > limit:
        say(f"… {plural(len(fleet.unreadable) - limit, 'more unreadable report')}")
    if fleet.duplicates:
        say(
            f"{plural(len(fleet.duplicates), 'older duplicate report')} left out "
            f"(the newest report of a node counts), e.g. {fleet.duplicates[0][2]}"
        )

    if comparison.failures:
        table = Table(title="Failing checks", title_justify="left")
        for col in ("Check", "Nodes", "Which", "Most common summary"):
            table.add_column(col, overflow="fold")
        for c in comparison.failures[:limit]:
            summary, count = c.common_summary
            which = shorten(compress(n for n, _, _ in c.nodes), nodes_width)
            table.add_row(
                cell(c.check), f"{len(c.nodes):,}", cell(which), cell(f"{summary} ({count:,})")
            )
        screen.print(table)
        table = Table(title="Failing nodes by action", title_justify="left")
        for col in ("Action", "Nodes", "Which"):
            table.add_column(col, overflow="fold")
        for action, records in by_action(comparison.failing):
            which = shorten(compress(r.name for r in records), nodes_width)
            table.add_row(cell(action or NO_CLASS), f"{len(records):,}", cell(which))
        screen.print(table)
        table = Table(title="Failing nodes", title_justify="left")
        for col in ("Node", "Action", "Failing checks", "Report"):
            table.add_column(col, overflow="fold")
        for r in comparison.failing[:limit]:
            checks = ", ".join(c if s == "fail" else f"{c} ({s})" for c, s, _ in r.failing)
            table.add_row(cell(r.name), cell(r.action or "-"), cell(checks), cell(r.source))
        screen.print(table)
        if limit is not None and len(comparison.failing) > limit:
            say(f"… {plural(len(comparison.failing) - limit, 'more failing node')} (-v: all)")

    warned = comparison.warning_nodes
    if warned:
        which = shorten(compress(r.name for r in warned), nodes_width)
        say(f"warnings on {plural(len(warned), 'node')}: {which} (`run -q` there says which)")

    rows = fold(comparison.drift)
    if rows:
        expected_title = "Golden value" if comparison.golden else "Majority value (nodes)"
        table = Table(title="Drift, rarest first", title_justify="left")
        for col in ("Group", "Fact", expected_title, "Differs: value → nodes"):
            table.add_column(col, overflow="fold")
        for label, members in rows[:limit]:
            d = members[0]
            fact = d.key if len(members) == 1 else f"{label} ({len(members)} keys)"
            expected = show(d.expected)
            if any(repr(m.expected) != repr(d.expected) for m in members):
                expected = "(various)"
            elif comparison.golden is None:
                expected += f" ({d.expected_nodes:,})"
            differs = Text()
            for value, ids in d.differs:
                which = shorten(compress(name(i) for i in ids), nodes_width)
                if differs:
                    differs.append("\n")
                differs.append(clean(f"{show_change(value, d.expected)} → {which} ({len(ids):,})"))
            table.add_row(cell(d.group), cell(fact), cell(expected), differs)
        screen.print(table)
        if limit is not None and len(rows) > limit:
            say(f"… {plural(len(rows) - limit, 'more drift row')} (-v or --format json: all)")

    if comparison.figures:
        table = Table(title="Figures: outliers by median and MAD", title_justify="left")
        for col in ("Group", "Metric", "Nodes", "Median", "MAD", "Outliers: node value"):
            table.add_column(col, overflow="fold")
        for f in comparison.figures[:limit]:
            outs = ", ".join(f"{name(i)} {v:g}" for i, v, _ in f.outliers[:OUTLIERS_SHOWN])
            if len(f.outliers) > OUTLIERS_SHOWN:
                outs += f" … {len(f.outliers) - OUTLIERS_SHOWN:,} more"
            table.add_row(
                cell(f.group),
                cell(f.metric),
                f"{f.count:,}",
                f"{f.median:g}",
                f"{f.mad:g}",
                cell(outs or "-"),
            )
        screen.print(table)

    unique = sum(1 for r in fleet.left_out.values() if r == "unique")
    ignored = len(fleet.left_out) - unique
    if unique or ignored:
        say(
            f"left out of drift: {plural(unique, 'naturally unique fact key')}"
            + (f", {ignored} by --ignore-fact" if ignored else "")
        )
    status = comparison.status
    verdict = Text(status.upper(), style=STYLE[status])
    verdict.append(
        f": {len(comparison.failing):,} of {plural(len(fleet.nodes), 'node')} fail"
        + (f", {plural(len(fleet.unreadable), 'report')} unreadable" if fleet.unreadable else "")
        + f"; {plural(len(comparison.drift), 'fact')}"
        + (" drifts" if len(comparison.drift) == 1 else " drift")
        + f" on {plural(comparison.drifting_nodes, 'node')}"
    )
    screen.print(verdict)
    # rich pads table titles to the table's width: no trailing spaces.
    out.write("\n".join(line.rstrip() for line in buffer.getvalue().split("\n")))
