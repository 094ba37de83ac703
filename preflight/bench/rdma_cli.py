"""`preflight bench rdma` and `preflight bench rdma-plan`: the command lines of the RDMA benchmark.

Registered on the `bench` Typer group by preflight/bench/cli.py. Nothing here imports torch.
"""

# No `from __future__ import annotations` here: typer reads every command's annotations at
# start-up, and string annotations cost it a compile and two evals each (~40 ms of `--help`).
import json
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from preflight.bench.cli_common import fail, usage, write_report
from preflight.errors import PreflightError
from preflight.exitcodes import ExitCode

TESTS = ("write_bw", "read_bw", "send_bw", "write_lat", "send_lat")


def _partners(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        a, sep, b = item.partition("=")
        if not sep or not a.strip() or not b.strip():
            raise usage(f"--partner takes HCA=HCA pairs (mlx5_0=mlx5_1), got {item!r}")
        out[a.strip()] = b.strip()
    return out


def rdma(
    test: Annotated[
        str, typer.Option(help="write_bw, read_bw, send_bw, write_lat or send_lat.")
    ] = ("write_bw"),
    size: Annotated[
        str | None,
        typer.Option("--bytes", help="Message size (default 1M for bandwidth, 2 for latency)."),
    ] = None,
    duration: Annotated[int, typer.Option(help="Seconds per bandwidth run (perftest -D).")] = 5,
    iters: Annotated[int, typer.Option(help="Iterations per latency run (perftest -n).")] = 5000,
    qps: Annotated[int, typer.Option(help="Queue pairs per bandwidth run (perftest -q).")] = 1,
    bidirectional: Annotated[bool, typer.Option(help="Both directions at once (perftest -b).")] = (
        False
    ),
    hca: Annotated[
        str | None, typer.Option(help="Only these HCAs (comma-separated), default every active.")
    ] = None,
    partner: Annotated[
        str | None,
        typer.Option(help="Loopback to another HCA of this node: mlx5_0=mlx5_1,… (default self)."),
    ] = None,
    gpudirect: Annotated[
        str,
        typer.Option(
            help="auto (host memory, then the nearest GPU's where there is one), off, only."
        ),
    ] = "auto",
    dmabuf: Annotated[
        bool, typer.Option(help="GPUDirect through DMA-BUF (--use_cuda_dmabuf), not peermem.")
    ] = False,
    min_efficiency: Annotated[
        float | None,
        typer.Option(
            help="Share of line rate a bandwidth run must reach (default per test, 0.90)."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds a run may take once the server listens (default duration+30)."),
    ] = None,
    listen_timeout: Annotated[
        float, typer.Option(help="Seconds the server gets to listen on its port.")
    ] = 10.0,
    profile: Annotated[
        str | None, typer.Option(help="Read the HCAs from this hardware profile, not the node.")
    ] = None,
    peer: Annotated[
        str | None,
        typer.Option(
            help="Pair mode: test rail k here against rail k of HOST (bench rdma --serve)."
        ),
    ] = None,
    serve: Annotated[
        bool, typer.Option(help="Serve perftest servers to a peer's `bench rdma --peer`.")
    ] = False,
    control_port: Annotated[int, typer.Option(help="TCP port of the pair-mode control.")] = 18600,
    bind: Annotated[str, typer.Option(help="--serve: address to listen on.")] = "0.0.0.0",
    serve_count: Annotated[
        int | None, typer.Option(help="--serve: end after this many requests.")
    ] = None,
    serve_idle: Annotated[
        float, typer.Option(help="--serve: end after this many seconds without a request.")
    ] = 300.0,
    dry_run: Annotated[bool, typer.Option(help="Print the perftest command lines only.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table, json or prometheus.")] = "table",
    output: Annotated[Path | None, typer.Option(help="Write the report here.")] = None,
    chart: Annotated[bool, typer.Option(help="Bar chart of Gb/s under the table.")] = True,
) -> None:
    """RDMA bandwidth or latency per HCA with perftest (loopback or --peer), against line rate.

    Loopback: each active HCA port runs a perftest server and client on this node (to itself, or
    to --partner), in host memory and with GPUDirect from the GPU nearest the HCA. Pair: rail k
    here against rail k of --peer, which runs `bench rdma --serve`. Exit 0 when every
    run reaches its share of line rate, 1 otherwise (a stand-in replay is never a pass), 2 for a
    bad command line, 3 when perftest is not installed.
    """
    from preflight.bench.metrics import parse_size
    from preflight.bench.rdma_bench import RdmaRun, loopback_plans, run_loopback
    from preflight.bench.rdma_perftest import BINARIES, PerftestSpec, find_binary, is_bandwidth
    from preflight.bench.rdma_targets import EFFICIENCY_FLOOR, hca_ports
    from preflight.host import Host

    if test not in TESTS:
        raise usage(f"unknown --test {test!r} (choose from {', '.join(TESTS)})")
    if fmt not in ("table", "json", "prometheus"):
        raise usage(f"unknown --format {fmt!r} (choose from table, json, prometheus)")
    if gpudirect not in ("auto", "off", "only"):
        raise usage(f"unknown --gpudirect {gpudirect!r} (choose from auto, off, only)")
    if not 1 <= duration <= 3600 or not 1 <= iters <= 10**8 or not 1 <= qps <= 1024:
        raise usage("--duration must be 1..3600, --iters 1..10^8 and --qps 1..1024")
    if min_efficiency is not None and not 0 < min_efficiency <= 1:
        raise usage("--min-efficiency must be in (0, 1]")
    if listen_timeout <= 0 or (timeout is not None and timeout <= 0):
        raise usage("--timeout and --listen-timeout must be positive")
    try:
        nbytes = parse_size(size) if size else (1 << 20 if is_bandwidth(test) else 2)
    except ValueError as exc:
        raise usage(str(exc)) from None
    spec = PerftestSpec(
        test, nbytes, duration if is_bandwidth(test) else None, iters, qps, bidirectional
    )
    try:
        if profile:
            from preflight.profile import host_from_profile

            host = host_from_profile(profile)
        else:
            host = Host()
        ports = hca_ports(host)
        binary = BINARIES[test] if dry_run else find_binary(test, os.environ.get("PATH"))
    except PreflightError as exc:
        raise fail(exc) from None
    wanted = {h.strip() for h in (hca or "").split(",") if h.strip()}
    unknown = wanted - {p.hca for p in ports}
    if unknown:
        raise usage(f"no RDMA device {', '.join(sorted(unknown))} on this node")
    if wanted:
        ports = [p for p in ports if p.hca in wanted]
    if serve:
        from preflight.bench.rdma_serve import serve as serve_requests

        if not 0 < control_port < 65536 or serve_idle <= 0:
            raise usage("--control-port must be 1..65535 and --serve-idle positive")
        try:
            served = serve_requests(
                ports,
                bind,
                control_port,
                serve_count,
                serve_idle,
                os.environ.get("PATH"),
                os.environ,
                listen_timeout,
                log=lambda m: typer.echo(m, err=True),
            )
        except OSError as exc:
            raise usage(f"cannot listen on {bind}:{control_port}: {exc.strerror}") from None
        typer.echo(f"served {served} request(s)", err=True)
        raise typer.Exit(ExitCode.OK)
    plans = loopback_plans(ports, _partners(partner), gpudirect, dmabuf)
    floor = min_efficiency if min_efficiency is not None else EFFICIENCY_FLOOR.get(test)
    limit = timeout if timeout is not None else float(duration + 30)
    if dry_run:
        from preflight.bench.rdma_bench import endpoint
        from preflight.bench.rdma_perftest import command

        lines = []
        for plan in plans:
            server = command(binary, spec, endpoint(plan.target, plan.memory), 18515, None)
            client = command(binary, spec, endpoint(plan.partner, plan.memory), 18515, "127.0.0.1")
            lines += [f"# {plan.target.hca} {plan.memory}", " ".join(server), " ".join(client)]
        write_report("\n".join(lines) + "\n", output)
        raise typer.Exit(ExitCode.OK)
    if peer is not None:
        from preflight.bench.rdma_serve import run_peer

        rails = {p.hca: i for i, p in enumerate(x for x in hca_ports(host) if x.active)}
        results = [
            run_peer(
                peer,
                control_port,
                plan.target,
                rails[plan.target.hca],
                plan.memory,
                spec,
                binary,
                floor,
                limit,
                os.environ,
            )
            for plan in plans
        ]
    else:
        results = [
            run_loopback(plan, spec, binary, floor, limit, listen_timeout, os.environ)
            for plan in plans
        ]
    mode = "loopback" if peer is None else "pair"
    run = RdmaRun(mode, test, host.hostname or socket.gethostname(), results, spec)
    if fmt == "json":
        write_report(json.dumps(run.to_dict(), indent=1) + "\n", output)
    elif fmt == "prometheus":
        import io

        from preflight.bench.rdma_render import write_prometheus

        buf = io.StringIO()
        write_prometheus(run, buf)
        write_report(buf.getvalue(), output)
    elif output is not None:
        from preflight.bench.rdma_render import table_text

        write_report(table_text(run), output)
    else:
        from preflight.bench.rdma_render import print_run

        print_run(run, sys.stdout, color=sys.stdout.isatty(), chart=chart)
    raise typer.Exit(ExitCode.OK if run.passed else ExitCode.FAILED)


def rdma_plan(
    nodes: Annotated[int, typer.Option(help="Nodes in the allocation.")] = 12500,
    rails: Annotated[int, typer.Option(help="RDMA rails (HCAs) per node.")] = 8,
    rounds: Annotated[int, typer.Option(help="Rounds (each node gets 2 partners per round).")] = 2,
    test_seconds: Annotated[float, typer.Option(help="Seconds one perftest run takes.")] = 30.0,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """The fleet schedule: rounds of pairs (round r: node i sends to node i+r), per rail.

    Every node sends to one partner and receives from another in each round, on every rail at
    once, so a round takes one test's time whatever the node count.
    """
    from preflight.bench.rdma_plan import plan_summary

    if fmt not in ("table", "json"):
        raise usage(f"unknown --format {fmt!r} (choose from table, json)")
    if not 2 <= nodes <= 1_000_000 or not 1 <= rails <= 64 or not 1 <= rounds < nodes:
        raise usage("--nodes must be 2..10^6, --rails 1..64, --rounds 1..nodes-1")
    if not 0 < test_seconds <= 3600:
        raise usage("--test-seconds must be in (0, 3600]")
    summary = plan_summary(nodes, rails, rounds, test_seconds)
    if fmt == "json":
        write_report(json.dumps(summary, indent=1) + "\n", None)
    else:
        write_report(
            f"{summary['nodes']} nodes × {summary['rails']} rails: {summary['rounds']} round(s), "
            f"{summary['pairs_per_round_per_rail']} pairs per round per rail "
            f"({summary['tests_per_round']} perftest runs per round, all rails at once), "
            f"{summary['tests_total']} runs in all; each node meets "
            f"{summary['partners_per_node']} partners; wall time "
            f"{summary['wall_time_s']:.0f} s at {test_seconds:g} s per test\n",
            None,
        )


def register(app: typer.Typer) -> None:
    """Add `rdma` and `rdma-plan` to the bench group."""
    app.command("rdma")(rdma)
    app.command("rdma-plan")(rdma_plan)
