"""Renderings of a `bench rdma` run: a table per mode, a bar chart of Gb/s against line rate,
the Prometheus families."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from preflight.bench.metrics import format_size
from preflight.bench.rdma_bench import FAIL, PASS, RdmaResult, RdmaRun
from preflight.bench.render import bar
from preflight.promtext import Family, write


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def table_text(run: RdmaRun) -> str:
    """Plain text: one header line, one row per run, the headline."""
    lines = [
        f"# preflight bench rdma {run.mode}: {run.test} on {run.host}, "
        f"{len(run.results)} run(s)"
        + (", bidirectional" if run.spec.bidirectional else "")
        + (f", {run.spec.qps} QPs" if run.spec.qps > 1 else "")
    ]
    bandwidth = any(r.average_gbps is not None for r in run.results) or run.test.endswith("_bw")
    if bandwidth:
        lines.append(
            f"{'hca':<9} {'port':>4} {'peer':<20} {'memory':<11} {'gpu':<13} {'size':>6} "
            f"{'avg Gb/s':>9} {'peak':>8} {'line':>6} {'%line':>6} {'min%':>5}  status"
        )
        for r in run.results:
            lines.append(
                f"{r.hca:<9} {r.port:>4} {r.peer[:20]:<20} {r.memory:<11} {(r.gpu or '-'):<13} "
                f"{format_size(r.size):>6} {_num(r.average_gbps):>9} {_num(r.peak_gbps):>8} "
                f"{_num(r.line_rate_gbps, '{:g}'):>6} {_num(_pct(r.share), '{:.0f}%'):>6} "
                f"{_num(_pct(r.floor), '{:.0f}%'):>5}  {r.status}"
            )
    else:
        lines.append(
            f"{'hca':<9} {'port':>4} {'peer':<20} {'size':>6} {'typical':>8} {'avg':>8} "
            f"{'stdev':>7} {'p99':>8} {'p99.9':>8}  status  (µs)"
        )
        for r in run.results:
            lat = r.latency_us
            lines.append(
                f"{r.hca:<9} {r.port:>4} {r.peer[:20]:<20} {format_size(r.size):>6} "
                f"{_num(lat.get('typical')):>8} {_num(lat.get('avg')):>8} "
                f"{_num(lat.get('stdev')):>7} {_num(lat.get('p99')):>8} "
                f"{_num(lat.get('p99.9')):>8}  {r.status}"
            )
    for r in run.results:
        if r.status != PASS:
            where = f"port {r.port}, {r.memory} memory" + (f" of GPU {r.gpu}" if r.gpu else "")
            lines.append(
                f"{r.status}: {r.message} [{where}, peer {r.peer}]"
                + (f" [{r.problem}]" if r.problem else "")
            )
        lines += [f"  warning: {w}" for w in r.warnings]
    lines.append(run.headline())
    return "\n".join(lines) + "\n"


def _pct(share: float | None) -> float | None:
    return None if share is None else share * 100


def bar_chart(results: Sequence[RdmaResult], width: int = 50) -> Table:
    """Average Gb/s per HCA and memory, full width = line rate; red below the floor."""
    top = max([r.line_rate_gbps or 0.0 for r in results] + [r.average_gbps or 0.0 for r in results])
    table = Table(
        title=f"average Gb/s (full width = {top:g} Gb/s)", show_edge=False, box=None, pad_edge=False
    )
    table.add_column("hca", no_wrap=True)
    table.add_column("Gb/s", no_wrap=True, min_width=width)
    table.add_column("", justify="right")
    for r in results:
        if r.average_gbps is None:
            continue
        style = "red" if r.status == FAIL else "green"
        table.add_row(
            f"{r.hca} {r.memory}",
            Text(bar(r.average_gbps, top, width), style=style),
            f"{r.average_gbps:.1f}" + (f" {r.share:.0%}" if r.share is not None else ""),
        )
    return table


def print_run(run: RdmaRun, out: IO[str], color: bool, chart: bool = True) -> None:
    out.write(table_text(run))
    if chart and any(r.average_gbps is not None for r in run.results):
        console = Console(file=out, force_terminal=color, no_color=not color, width=100)
        console.print()
        console.print(bar_chart(run.results))
    out.flush()


def families(run: RdmaRun) -> list[Family]:
    """`preflight_bench_rdma_*`: bandwidth, share of line rate, latency, status per run."""
    bw = Family("bench_rdma_bandwidth_bits_per_second", "perftest average bandwidth.")
    share = Family("bench_rdma_line_rate_ratio", "Average bandwidth over the port's line rate.")
    lat = Family("bench_rdma_latency_seconds", "perftest latency (typical and percentiles).")
    ok = Family("bench_rdma_passed", "1 when the run reached its expected share of line rate.")
    for r in run.results:
        key = {
            "test": r.test,
            "hca": r.hca,
            "port": str(r.port),
            "peer": r.peer,
            "memory": r.memory,
            "bytes": str(r.size),
        }
        if r.average_gbps is not None:
            bw.add(r.average_gbps * 1e9, **key)
        if r.share is not None:
            share.add(r.share, **key)
        for q, v in r.latency_us.items():
            if v is not None:
                lat.add(v / 1e6, **key, stat=q)
        ok.add(1 if r.status == PASS else 0, **key)
    return [bw, share, lat, ok]


def write_prometheus(run: RdmaRun, out: IO[str]) -> None:
    write(families(run), out)  # type: ignore[arg-type]
