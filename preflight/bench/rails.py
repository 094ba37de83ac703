"""`bench allreduce --per-rail`: the sweep once per rail, and the rail below its peers.

NCCL reads NCCL_IB_HCA once per process, so each rail needs processes of its own: every rank
runs the sweep as a child per rail, in the same order, each rail with its own rendezvous port
(MASTER_PORT + 1 + k). A rail is one HCA for NCCL (``NCCL_IB_HCA==mlx5_3``, network only:
P2P, SHM and NVLS off, so the bytes cross the NIC even between GPUs of one node) and one socket
interface for gloo (``GLOO_SOCKET_IFNAME``). No torch here: the children import it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess  # noqa: TID251  (the ranks' children: one sweep per rail)
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from preflight.bench.env import RankEnv

from preflight.outfile import write_output

RAIL_ENV = "PREFLIGHT_BENCH_RAIL"  # set in a rail's child: it sweeps, it does not fan out again


def rail_environment(backend: str, rail: str) -> dict[str, str]:
    """The variables that confine one run to one rail."""
    if backend == "gloo":
        return {"GLOO_SOCKET_IFNAME": rail, RAIL_ENV: rail}
    return {
        "NCCL_IB_HCA": f"={rail}",  # "=": exactly this HCA (mlx5_1 would also match mlx5_10)
        "NCCL_P2P_DISABLE": "1",
        "NCCL_SHM_DISABLE": "1",
        "NCCL_NVLS_ENABLE": "0",
        RAIL_ENV: rail,
    }


@dataclass
class RailOutcome:
    """One rail's sweep: its exit code and (on the leader) its JSON result."""

    rail: str
    code: int
    result: dict[str, Any] | None
    busbw_gbps: float | None = None
    verdict: str = "error"


def run_legs(
    argv: Sequence[str],
    legs: Sequence[tuple[str, Mapping[str, str]]],
    environ: Mapping[str, str],
    master_port: int,
    leader: bool,
    timeout_s: float,
) -> list[RailOutcome]:
    """Run `python -m preflight ARGV --format json --output F` once per (name, variables) leg,
    one after another: a rail, or one side of `--split`."""
    out = []
    with tempfile.TemporaryDirectory(prefix="preflight-rails-") as tmp:
        for k, (rail, variables) in enumerate(legs):
            path = os.path.join(tmp, f"rail{k}.json")
            env = dict(environ)
            env.update(variables)
            env["MASTER_PORT"] = str(master_port + 1 + k)
            cmd = [sys.executable, "-m", "preflight", *argv, "--format", "json", "--output", path]
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                code = 1
            result = None
            if leader:
                try:
                    with open(path, encoding="utf-8") as f:
                        result = json.load(f)
                except (OSError, ValueError):
                    result = None
            out.append(RailOutcome(rail, code, result if isinstance(result, dict) else None))
            time.sleep(0.2)  # the previous rail's sockets close before the next rendezvous
    return out


def judge_rails(outcomes: Sequence[RailOutcome], slow_ratio: float = 0.75) -> float | None:
    """Mark each rail ok or slow against the typical rail (median of the upper half, as
    `bench locate` takes the typical pair); returns that reference busbw."""
    for o in outcomes:
        rows = (o.result or {}).get("rows") or []
        if rows:
            o.busbw_gbps = float(max(rows, key=lambda r: r["bytes"])["busbw_gbps"])
    values = sorted(o.busbw_gbps for o in outcomes if o.busbw_gbps is not None)
    ref = statistics.median(values[len(values) // 2 :]) if values else None
    for o in outcomes:
        if o.busbw_gbps is None or o.code not in (0, 1):
            o.verdict = "error"
        elif ref is not None and o.busbw_gbps < slow_ratio * ref:
            o.verdict = "slow"
        else:
            o.verdict = "ok"
    return ref


def report(outcomes: Sequence[RailOutcome], ref: float | None, backend: str) -> dict[str, Any]:
    """The JSON document of `bench allreduce --per-rail --format json`."""
    slow = [o.rail for o in outcomes if o.verdict == "slow"]
    bad = [o.rail for o in outcomes if o.verdict == "error"]
    parts = ([f"rail(s) below their peers: {', '.join(slow)}"] if slow else []) + (
        [f"rail(s) without a result: {', '.join(bad)}"] if bad else []
    )
    return {
        "schema": "preflight-bench-allreduce-rails/1",
        "backend": backend,
        "reference_busbw_gbps": ref,
        "rails": [
            {
                "rail": o.rail,
                "exit_code": o.code,
                "busbw_gbps": o.busbw_gbps,
                "verdict": o.verdict,
                "sweep": o.result,
            }
            for o in outcomes
        ],
        "status": "fail" if parts else "pass",
        "summary": ("FAIL: " + "; ".join(parts)) if parts else "PASS: every rail near its peers",
    }


def table(doc: Mapping[str, Any]) -> str:
    """One line per rail with its busbw at the largest size, a bar, and the verdict."""
    from preflight.bench.render import bar

    ref = doc["reference_busbw_gbps"]
    top = max([r["busbw_gbps"] or 0.0 for r in doc["rails"]] + [ref or 0.0])
    lines = [
        f"# preflight bench allreduce --per-rail ({doc['backend']}): busbw at the largest size; "
        f"typical rail {ref if ref is None else f'{ref:.3f}'} GB/s"
    ]
    for r in doc["rails"]:
        value = r["busbw_gbps"]
        shown = "-" if value is None else f"{value:9.3f}"
        lines.append(
            f"{r['rail']:<12} {shown:>9} GB/s  {bar(value or 0.0, top, 40):<40}  {r['verdict']}"
        )
    lines.append(doc["summary"])
    return "\n".join(lines) + "\n"


def rails_from(rails_csv: str, backend: str) -> list[str] | None:
    """The distinct comma-separated rails of `--per-rail`, or None (after one error line) when
    they or the backend do not fit."""
    rails = [r.strip() for r in rails_csv.split(",") if r.strip()]
    if backend not in ("nccl", "gloo") or not rails or len(set(rails)) != len(rails):
        sys.stderr.write(
            "preflight: error: --per-rail needs --backend nccl (HCA names) or gloo (interface "
            "names) and distinct comma-separated rails\n"
        )
        return None
    return rails


def fan_out(
    argv: Sequence[str],
    legs: Callable[[RankEnv], Sequence[tuple[str, Mapping[str, str]]]],
    conclude: Callable[[list[RailOutcome], RankEnv], Mapping[str, Any]],
    table: Callable[[Mapping[str, Any]], str],
    fmt: str,
    output: str | None,
    timeout_s: float,
    follower_codes: tuple[int, ...] = (0, 1),
) -> int:
    """This rank's part of a command that runs itself as children (`--per-rail`, `--split`,
    `locate --per-rail`): its place in the job, each leg as a child (run_legs), then on rank 0
    the document `conclude` makes of the outcomes, written as JSON or `table`. The exit code:
    rank 0's is the document's status (0 pass, 1 otherwise), another rank's is 0 when every
    child ended with one of `follower_codes`."""
    from preflight.bench.env import rank_env
    from preflight.errors import PreflightError
    from preflight.safetext import clean

    try:
        me = rank_env(os.environ)
    except PreflightError as exc:
        sys.stderr.write(f"preflight: error: {exc}\n")
        return exc.exit_code
    leader = me.rank == 0
    outcomes = run_legs(argv, legs(me), os.environ, me.master_port, leader, timeout_s)
    if not leader:
        return 0 if all(o.code in follower_codes for o in outcomes) else 1
    doc = conclude(outcomes, me)
    text = json.dumps(doc, indent=1) + "\n" if fmt == "json" else table(doc)
    try:
        # Rail and node names come from the ranks; JSON is already escaped. Replaced atomically.
        write_output(output, clean(text))
    except PreflightError as exc:
        sys.stderr.write(f"preflight: error: {exc}\n")
        return exc.exit_code
    return 0 if doc["status"] == "pass" else 1


def per_rail_command(
    argv: Sequence[str],
    rails_csv: str,
    backend: str,
    fmt: str,
    output: str | None,
    timeout_s: float,
) -> int:
    """This rank's part of `--per-rail`: the children, then (rank 0) the report. Exit code."""
    rails = rails_from(rails_csv, backend)
    if rails is None:
        return 2

    def conclude(outcomes: list[RailOutcome], _me: RankEnv) -> dict[str, Any]:
        return report(outcomes, judge_rails(outcomes), backend)

    legs = [(rail, rail_environment(backend, rail)) for rail in rails]
    return fan_out(argv, lambda _me: legs, conclude, table, fmt, output, timeout_s)
