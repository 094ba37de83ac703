"""Renderings of a sweep: the nccl-tests table, a bar chart of busbw by size, a progress bar."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from preflight.bench.metrics import format_size
from preflight.bench.result import Row, SweepResult
from preflight.safetext import clean, console

HEADER = (
    "#       size         count      type   redop    root     time   algbw   busbw #wrong\n"
    "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)       "
)


def nccl_time(us: float) -> str:
    """nccl-tests' time column: 2 decimals below 100 µs, 1 below 10 ms, none above."""
    if us >= 10000.0:
        return f"{us:7.0f}"
    if us >= 100.0:
        return f"{us:7.1f}"
    return f"{us:7.2f}"


def nccl_row(row: Row) -> str:
    """One row with nccl-tests' column widths (root is -1: all_reduce has none)."""
    return (
        f"{row.bytes:12d}  {row.count:12d}  {row.type:>8}  {row.redop:>6}  {-1:6d}"
        f"  {nccl_time(row.time_us)}  {row.algbw_gbps:6.2f}  {row.busbw_gbps:6.2f}"
        f"  {row.wrong:5d}"
    )


def nccl_table(result: SweepResult) -> str:
    """The report as all_reduce_perf prints it: header, ranks, the table, then the verdict.

    Only nccl-tests' in-place columns: torch's all_reduce works in place.
    """
    lines = _head(result)
    lines += [nccl_row(r) for r in result.rows]
    wrong = result.wrong
    lines.append(f"# Out of bounds values : {wrong} {'OK' if not wrong else 'FAILED'}")
    lines += [f"# {line}" for line in verdict_lines(result)]
    # Host names and NCCL settings come from the ranks' environment: no control characters.
    return clean("\n".join(lines) + "\n")


def interrupted_table(result: SweepResult, signal_name: str, planned: int) -> str:
    """The rows an interrupted sweep measured, as nccl_table prints them, and no verdict."""
    lines = _head(result)
    lines += [nccl_row(r) for r in result.rows]
    lines.append(
        f"# Interrupted by {signal_name} after {len(result.rows)} of {planned} sizes: no verdict"
    )
    return clean("\n".join(lines) + "\n")


def _head(result: SweepResult) -> list[str]:
    lines = [
        f"# preflight bench allreduce: {result.world_size} ranks on {len(result.nodes)} "
        f"node(s), backend {result.backend}, {result.dtype}, warmup {result.warmup} "
        f"iters {result.iters}, launcher {result.launcher}",
        "# " + ", ".join(f"{k} {v}" for k, v in result.environment.items() if v),
        "#",
        "# Using devices",
    ]
    for r in result.ranks:
        lines.append(
            f"#  Rank {r.rank:2d} Pid {r.pid:6d} on {r.host:>10} node {r.node_id} device {r.device}"
        )
    lines += ["#", HEADER]
    return lines


def verdict_lines(result: SweepResult) -> list[str]:
    """Theoretical bound, gate and overall status, one statement per line."""
    out = []
    if result.theoretical is not None:
        out.append(
            f"Theoretical busbw {result.theoretical.busbw_gbps:.1f} GB/s "
            f"({result.theoretical.basis})"
        )
    else:
        out.append(f"Theoretical busbw: none: {result.theoretical_note}")
    g = result.gate
    if g is not None:
        if g.busbw_gbps is None:
            out.append(f"Gate at {format_size(g.bytes)}: not measured")
        else:
            pct = (
                f", {g.percent_of_theoretical:.0f}% of theoretical"
                if g.percent_of_theoretical is not None
                else ""
            )
            floor = f", floor {g.min_busbw_gbps:g} GB/s" if g.min_busbw_gbps is not None else ""
            out.append(f"Gate at {format_size(g.bytes)}: busbw {g.busbw_gbps:.2f} GB/s{pct}{floor}")
    problems = result.problems()
    out.append("FAIL: " + "; ".join(problems) if problems else "PASS")
    return out


BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(value: float, top: float, width: int) -> str:
    """A horizontal bar of value/top × width cells, in eighths of a cell."""
    if top <= 0 or value <= 0:
        return ""
    eighths = round(min(value / top, 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (BLOCKS[part] if part else "")


def bar_chart(result: SweepResult, width: int = 50) -> Table:
    """busbw by size as horizontal bars, scaled to the theoretical bound when there is one."""
    top = max((r.busbw_gbps for r in result.rows), default=0.0)
    if result.theoretical is not None:
        top = max(top, result.theoretical.busbw_gbps)
    scale = f"full width = {top:.1f} GB/s" + (
        " (theoretical)" if result.theoretical and top == result.theoretical.busbw_gbps else ""
    )
    table = Table(title=f"busbw by size ({scale})", show_edge=False, box=None, pad_edge=False)
    table.add_column("size", justify="right")
    table.add_column("busbw", no_wrap=True, min_width=width)
    table.add_column("GB/s", justify="right")
    gate = result.gate.bytes if result.gate else None
    for r in result.rows:
        style = "red" if r.wrong else ("bold" if r.bytes == gate else "")
        table.add_row(
            format_size(r.bytes),
            Text(bar(r.busbw_gbps, top, width), style=style or "green"),
            f"{r.busbw_gbps:.2f}",
        )
    return table


def print_table(result: SweepResult, out: IO[str], color: bool, chart: bool = True) -> None:
    """The nccl-tests table, then (when asked) the bar chart."""
    out.write(nccl_table(result))
    if chart and result.rows:
        screen = console(out, 100, color)
        screen.print()
        screen.print(bar_chart(result))
    out.flush()


class SweepProgress:
    """A progress bar on stderr over the sizes of a sweep; a no-op when disabled."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self._progress = progress
        self._task = progress.add_task("all_reduce", total=total) if progress else None

    def size(self, nbytes: int, index: int) -> None:
        """Size number index (from 0) is about to be measured."""
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=index, description=f"all_reduce {format_size(nbytes):>9}"
            )

    def done(self, count: int) -> None:
        """count sizes are finished."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=count)


@contextmanager
def sweep_progress(total: int, enabled: bool, stream: IO[str]) -> Iterator[SweepProgress]:
    """A transient rich progress bar on stream (stderr) while the sweep runs."""
    if not enabled:
        yield SweepProgress(None, total)
        return
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} sizes"),
        TimeElapsedColumn(),
        console=Console(file=stream, force_terminal=True),
        transient=True,
    )
    with progress:
        yield SweepProgress(progress, total)
