"""Human report: a rich table, one row per check; -v adds every finding with its evidence."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from preflight.model import Report, Status
from preflight.output import RenderOptions

STYLE = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.ERROR: "bold magenta",
    Status.SKIP: "dim",
}


def render(report: Report, out: TextIO, options: RenderOptions) -> None:
    """Write the table and a one-line summary."""
    console = Console(
        file=out,
        width=options.width,
        no_color=not options.color,
        force_terminal=options.color,
        highlight=False,
        soft_wrap=False,
    )
    title = f"preflight {report.tool_version} on {report.hostname}"
    if report.profile:
        title += f" (profile {report.profile})"
    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    table.add_column("Status", no_wrap=True)
    table.add_column("Check", no_wrap=True)
    table.add_column("Summary", overflow="fold")
    table.add_column("Time", justify="right", no_wrap=True)
    for r in report.results:
        summary = Text(r.summary)
        if options.verbose:
            for f in r.findings:
                summary.append(f"\n  {f.status.value.upper():5} {f.subject}: {f.message}")
                for e in f.evidence:
                    expected = f" (expected {e.expected})" if e.expected is not None else ""
                    summary.append(f"\n        {e.observed!s}{expected} [{e.source}]", style="dim")
            if r.traceback:
                summary.append("\n" + r.traceback.rstrip(), style="dim")
        table.add_row(
            Text(r.status.value.upper(), style=STYLE[r.status]),
            r.id,
            summary,
            f"{r.duration_s * 1000:.0f} ms",
        )
    console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n)
    status = report.status
    console.print(
        Text(f"{status.value.upper()}", style=STYLE[status])
        + Text(f": {counts or 'no checks'}; baseline {report.baseline}; {report.duration_s:.2f} s")
    )
