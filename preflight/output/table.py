"""Human report: a rich table, one row per check, failures first; -v adds every finding with its
evidence, --problems leaves out what passed or skipped."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TextIO

from rich.table import Table
from rich.text import Text

from preflight.model import CheckResult, Report, Status
from preflight.output import RenderOptions
from preflight.safetext import cell, clean, console

STYLE = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.ERROR: "bold magenta",
    Status.SKIP: "dim",
}

# Rows in the order an operator reads them: what could not run, what failed, what warned, then
# the healthy and the skipped (id order within each).
ORDER = (Status.ERROR, Status.FAIL, Status.WARN, Status.PASS, Status.SKIP)
NOT_PASSING = (Status.ERROR, Status.FAIL, Status.WARN)


def ordered(
    results: Iterable[CheckResult], problems: bool = False, keep: Iterable[str] = ()
) -> list[CheckResult]:
    """Results by severity then id; with `problems` only error/fail/warn and the ids in `keep`
    (essential checks that could not run)."""
    rows = sorted(results, key=lambda r: (ORDER.index(r.status), r.id))
    kept = set(keep)
    return [r for r in rows if r.status in NOT_PASSING or r.id in kept] if problems else rows


def render(report: Report, out: TextIO, options: RenderOptions) -> None:
    """Write the table and a summary: counts, then the ids of what failed or errored."""
    # Everything a report holds may come from the node or a profile: cells are Text objects
    # of cleaned text, on a console that would not read markup anyway.
    buffer = io.StringIO()
    screen = console(buffer, options.width, options.color)
    title = f"preflight {report.tool_version} on {report.hostname}"
    if report.profile:
        title += f" (profile {report.profile})"
    rows = ordered(report.results, options.problems, (i for i, _ in report.unchecked))
    if rows:
        table = Table(title=cell(title), title_justify="left", show_lines=False, expand=False)
        table.add_column("Status", no_wrap=True)
        table.add_column("Check", no_wrap=True)
        table.add_column("Summary", overflow="fold")
        table.add_column("Time", justify="right", no_wrap=True)
        for r in rows:
            table.add_row(
                Text(r.status.value.upper(), style=STYLE[r.status]),
                cell(r.id),
                _summary(r, options.verbose),
                f"{r.duration_s * 1000:.0f} ms",
            )
        screen.print(table)
    else:
        screen.print(cell(f"{title}: no problems"))
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n)
    status = report.status
    screen.print(
        Text(f"{status.value.upper()}", style=STYLE[status])
        + cell(f": {counts or 'no checks'}; baseline {report.baseline}; {report.duration_s:.2f} s")
    )
    action = report.action
    if action is not None:
        screen.print(Text("action: ", style="bold") + cell(node_action_line(report)))
    explain = [r.id for r in ordered(report.results, problems=True) if r.status is not Status.ERROR]
    if explain:
        screen.print(cell(f"why and how to fix: preflight explain {explain[0]}"))
    for st, label in ((Status.FAIL, "failed"), (Status.ERROR, "could not run")):
        ids = [r.id for r in report.results if r.status is st]
        if ids:
            screen.print(Text(f"{label}: ", style=STYLE[st]) + cell(", ".join(sorted(ids))))
    if report.unchecked:
        style = STYLE[Status.FAIL] if report.unchecked_fails else STYLE[Status.WARN]
        screen.print(Text("not checked: ", style=style) + cell(unchecked_line(report.unchecked)))
    for hint in report.hints:
        screen.print(Text("hint: ", style="bold") + cell(hint))
    if report.slurm is not None and report.slurm.get("action") == "held":
        screen.print(Text("slurm: ", style=STYLE[Status.WARN]) + cell(str(report.slurm["message"])))
    # rich pads the title and the last column to the table's width: no trailing spaces.
    out.write("\n".join(line.rstrip() for line in buffer.getvalue().split("\n")))


def unchecked_line(unchecked: Iterable[tuple[str, str]]) -> str:
    """`pcie.acs, pcie.devctl: needs root`: ids grouped by the first clause of their reason."""
    groups: dict[str, list[str]] = {}
    for check_id, reason in unchecked:
        groups.setdefault(reason.split(":", 1)[0].strip(), []).append(check_id)
    return "; ".join(f"{', '.join(ids)}: {why}" for why, ids in groups.items())


def node_action_line(report: Report) -> str:
    """`reset-gpu (gpu.row_remap, xid.events): drain the node, reset GPU2 …`: the node's class,
    the checks that ask for it, and the first one's text."""
    action = report.action
    if action is None:
        return ""
    ids = report.action_checks
    first = next((r for r in report.results if r.id in ids), None)
    text = f": {first.action_text}" if first is not None and first.action_text else ""
    return f"{action.value} ({', '.join(ids)}){text}"


def _summary(r: CheckResult, verbose: bool) -> Text:
    summary = cell(r.summary)
    if r.action is not None and not verbose:
        summary.append(clean(f"\n→ {r.action.value}: {r.action_text or ''}".rstrip(": ")))
    if verbose:
        for f in r.findings:
            summary.append(clean(f"\n  {f.status.value.upper():5} {f.subject}: {f.message}"))
            if f.action is not None:
                summary.append(clean(f"\n        → {f.action.value}: {f.action_text or ''}"))
            for e in f.evidence:
                expected = f" (expected {e.expected})" if e.expected is not None else ""
                summary.append(
                    clean(f"\n        {e.observed!s}{expected} [{e.source}]"), style="dim"
                )
        if r.traceback:
            summary.append(clean("\n" + r.traceback.rstrip()), style="dim")
    return summary
