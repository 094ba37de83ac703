"""Human report: a rich table, one row per check; -v adds every finding with its evidence."""

from __future__ import annotations

from typing import TextIO

from rich.table import Table
from rich.text import Text

from preflight.model import Report, Status
from preflight.output import RenderOptions
from preflight.safetext import cell, clean, console

STYLE = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.ERROR: "bold magenta",
    Status.SKIP: "dim",
}


def render(report: Report, out: TextIO, options: RenderOptions) -> None:
    """Write the table and a one-line summary."""
    # Everything a report holds may come from the node or a profile: cells are Text objects
    # of cleaned text, on a console that would not read markup anyway.
    screen = console(out, options.width, options.color)
    title = f"preflight {report.tool_version} on {report.hostname}"
    if report.profile:
        title += f" (profile {report.profile})"
    table = Table(title=cell(title), title_justify="left", show_lines=False, expand=False)
    table.add_column("Status", no_wrap=True)
    table.add_column("Check", no_wrap=True)
    table.add_column("Summary", overflow="fold")
    table.add_column("Time", justify="right", no_wrap=True)
    for r in report.results:
        summary = cell(r.summary)
        if options.verbose:
            for f in r.findings:
                summary.append(clean(f"\n  {f.status.value.upper():5} {f.subject}: {f.message}"))
                for e in f.evidence:
                    expected = f" (expected {e.expected})" if e.expected is not None else ""
                    summary.append(
                        clean(f"\n        {e.observed!s}{expected} [{e.source}]"), style="dim"
                    )
            if r.traceback:
                summary.append(clean("\n" + r.traceback.rstrip()), style="dim")
        table.add_row(
            Text(r.status.value.upper(), style=STYLE[r.status]),
            cell(r.id),
            summary,
            f"{r.duration_s * 1000:.0f} ms",
        )
    screen.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n)
    status = report.status
    screen.print(
        Text(f"{status.value.upper()}", style=STYLE[status])
        + cell(f": {counts or 'no checks'}; baseline {report.baseline}; {report.duration_s:.2f} s")
    )
