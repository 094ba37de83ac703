"""Prometheus text format for node_exporter's textfile collector (`run --format prometheus`).

node_exporter reads `*.prom` files from its `--collector.textfile.directory` on every scrape and
adds the node's `instance` label, so no sample here names the host, and none carries a timestamp
(the collector rejects them). Each check is a state set: one `preflight_check_status` sample per
possible status, 1 for the status it had and 0 for the others, so `== 1` selects and absent
series never mean "passed". Units are seconds and bytes per second, as Prometheus names them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TextIO

from preflight.model import ACTIONS, Report, Status
from preflight.output import RenderOptions
from preflight.promtext import Family, write

SLURM_ACTIONS = ("drain", "resume", "held", "none")
"""What a run may have done to its Slurm node (slurm.Outcome.action)."""


def epoch(iso: str) -> float | None:
    """Seconds since 1970 from the report's ISO 8601 start time; None when it does not parse."""
    try:
        when = dt.datetime.fromisoformat(iso)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def report_families(report: Report) -> list[Family]:
    """The metrics of one run."""
    statuses = [s.value for s in Status]
    check = Family(
        "check_status",
        "Outcome of each check in the last run: 1 for its status, 0 for the others.",
    )
    duration = Family("check_duration_seconds", "Time each check took in the last run.")
    for r in report.results:
        for s in statuses:
            check.add(1 if r.status.value == s else 0, check=r.id, status=s)
        duration.add(round(r.duration_s, 6), check=r.id)
    counts = Family("checks", "Number of checks per status in the last run.")
    for s, n in report.counts.items():
        counts.add(n, status=s)
    node = Family("node_status", "Worst check status of the last run: 1 for it, 0 for the others.")
    for s in statuses:
        node.add(1 if report.status.value == s else 0, status=s)
    healthy = Family(
        "node_healthy", "1 when no check failed or errored in the last run (exit code 0)."
    )
    bad = {Status.FAIL, Status.ERROR} | ({Status.WARN} if report.strict else set())
    healthy.add(0 if any(r.status in bad for r in report.results) else 1)
    # The remediation class as a state set too: `preflight_node_action{action="reset-gpu"} == 1`
    # selects the nodes automation may reset; "none" when no finding asks for anything.
    node_action = Family(
        "node_action",
        "Remediation class of the last run (its findings' strongest): 1 for it, 0 for others.",
    )
    top = (report.action or ACTIONS[0]).value
    for a in ACTIONS:
        node_action.add(1 if a.value == top else 0, action=a.value)
    check_action = Family(
        "check_action", "Remediation class of each check in the last run (none when it asks none)."
    )
    for r in report.results:
        check_action.add(1, check=r.id, action=(r.action or ACTIONS[0]).value)
    out = [check, duration, counts, node, healthy, node_action, check_action]
    if report.figures:
        figure = Family("figure", "What the last run measured, by metric (the report's figures).")
        for metric, value in report.figures:
            figure.add(value, metric=metric)
        out.append(figure)
    if report.slurm is not None:
        # `preflight_slurm_action{action="held"} == 1`: a node the breaker kept in service
        slurm = Family(
            "slurm_action",
            "What --slurm-drain/--slurm-resume did in the last run: 1 for it, 0 for the others "
            "(held: --max-drained kept a failing node in service).",
        )
        done = str(report.slurm.get("action"))
        for action in SLURM_ACTIONS:
            slurm.add(1 if action == done else 0, action=action)
        out.append(slurm)
    info = Family("info", "The last run's preflight version, baseline and profile.")
    info.add(
        1,
        version=report.tool_version,
        baseline=report.baseline,
        profile=report.profile or "",
        hostname=report.hostname,
    )
    out.append(info)
    out.append(
        Family("run_duration_seconds", "Wall time of the last run.").add(
            round(report.duration_s, 6)
        )
    )
    started = epoch(report.started_at)
    if started is not None:
        out.append(
            Family(
                "last_run_timestamp_seconds", "When the last run started, in seconds since 1970."
            ).add(started)
        )
    return out


def bench_families(
    rows: Sequence[tuple[int, float, float]],
    gate: tuple[int, float | None, bool] | None = None,
    started_at: str | None = None,
) -> list[Family]:
    """All-reduce figures: rows of (message bytes, algbw GB/s, busbw GB/s) and the gate
    (bytes, busbw GB/s or None when not measured, passed). GB/s are 1e9 bytes/s (nccl-tests)."""
    busbw = Family(
        "bench_allreduce_busbw_bytes_per_second",
        "All-reduce bus bandwidth per message size (nccl-tests' busbw).",
    )
    algbw = Family(
        "bench_allreduce_algbw_bytes_per_second",
        "All-reduce algorithm bandwidth per message size (bytes / time).",
    )
    for size, alg, bus in rows:
        busbw.add(bus * 1e9, size_bytes=str(size))
        algbw.add(alg * 1e9, size_bytes=str(size))
    out = [busbw, algbw]
    if gate is not None:
        size, gate_bw, passed = gate
        g = Family("bench_allreduce_gate_passed", "1 when busbw at the gate size met its floor.")
        out.append(g.add(1 if passed else 0, size_bytes=str(size)))
        if gate_bw is not None:
            out.append(
                Family(
                    "bench_allreduce_gate_busbw_bytes_per_second",
                    "Bus bandwidth at the gate size.",
                ).add(gate_bw * 1e9, size_bytes=str(size))
            )
    started = epoch(started_at) if started_at else None
    if started is not None:
        out.append(
            Family(
                "bench_last_run_timestamp_seconds", "When the last benchmark started (epoch s)."
            ).add(started)
        )
    return out


def render(report: Report, out: TextIO, options: RenderOptions) -> None:
    """Write the run's metrics for the textfile collector."""
    write(report_families(report), out)
