"""`preflight bench …`: the command line of the benchmark. torch is imported only inside a rank."""

# No `from __future__ import annotations` here: typer reads every command's annotations at
# start-up, and string annotations cost it a compile and two evals each (~40 ms of `--help`).
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from preflight.bench.cli_common import fail, usage, write_report
from preflight.bench.errors import BenchInterrupted, TorchMissing
from preflight.errors import PreflightError
from preflight.exitcodes import ExitCode
from preflight.options import (
    GBPS,
    ITERATIONS,
    POSITIVE_GBPS,
    RANKS,
    RATIO,
    ROUNDS,
    SECONDS,
    STEP_FACTOR,
    WARMUP,
)

SHOW_CURSOR = "\x1b[?25h"

bench_app = typer.Typer(
    help="All-reduce benchmark over torch.distributed (needs the bench extra: torch).",
    no_args_is_help=True,
)

BackendOpt = Annotated[
    str, typer.Option(help="auto (NCCL when torch sees a GPU, else gloo), nccl or gloo.")
]
NprocOpt = Annotated[
    int | None,
    typer.Option(
        parser=RANKS,
        help="Start this many local ranks (not under torchrun or srun).",
    ),
]
DtypeOpt = Annotated[str, typer.Option(help="float32, bfloat16, float16, float64, int32 or int64.")]
InitTimeoutOpt = Annotated[
    float,
    typer.Option(parser=SECONDS, help="Seconds for the rendezvous and the communicator to form."),
]
OpTimeoutOpt = Annotated[
    float,
    typer.Option(
        parser=SECONDS,
        help="Seconds from issuing a collective to its completion, then the rank fails.",
    ),
]
NodeIdOpt = Annotated[
    str | None,
    typer.Option(
        help="This rank's node (default $PREFLIGHT_NODE_ID or the hostname); "
        "{rank}, {local_rank} and {host} are replaced."
    ),
]
FormatOpt = Annotated[str, typer.Option("--format", help="table or json.")]
OutputOpt = Annotated[
    Path | None, typer.Option(help="Write the report here (rank 0) instead of stdout.")
]
DeadlineOpt = Annotated[
    float | None,
    typer.Option(parser=SECONDS, help="With --nproc: seconds after which every rank is killed."),
]


def child_argv(ctx: typer.Context, drop: Sequence[str] = ("nproc", "deadline")) -> list[str]:
    """This command line again, as the ranks must run it: options with non-default values."""
    names = []
    node: Any = ctx
    while node.parent is not None:
        names.append(node.info_name or "")
        node = node.parent
    argv = names[::-1]
    for param in ctx.command.params:
        opts = getattr(param, "opts", None)
        if not opts or not opts[0].startswith("--") or param.name in drop:
            continue  # arguments have no --name; there are none here
        value = ctx.params.get(param.name or "")
        if value is None or value == param.default:
            continue
        secondary: list[str] = list(getattr(param, "secondary_opts", ()))
        if getattr(param, "is_flag", False):
            if value or secondary:
                argv.append(opts[0] if value else secondary[0])
        else:
            argv += [opts[0], str(value)]
    return argv


def _check_limits(
    backend: str, iters: int, warmup: int, init_timeout: float, op_timeout: float
) -> None:
    if backend not in ("auto", "nccl", "gloo"):
        raise usage(f"unknown --backend {backend!r} (choose from auto, nccl, gloo)")
    if iters < 1 or warmup < 0:
        raise usage("--iters must be at least 1 and --warmup at least 0")
    if init_timeout <= 0 or op_timeout <= 0:
        raise usage("--init-timeout and --op-timeout must be positive")


def _enter_rank(ctx: typer.Context, nproc: int | None, deadline: float | None) -> None:
    """Start the local ranks (with --nproc) and end, or go on as one rank of the world."""
    _maybe_launch(ctx, nproc, deadline)
    from preflight.bench import interrupt

    interrupt.raise_on_stop_signals()
    # c10d's C++ warnings (a peer's dropped socket, with a backtrace) would bury the one-line
    # error each rank prints; TORCH_CPP_LOG_LEVEL=INFO brings them back.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")


def _maybe_launch(ctx: typer.Context, nproc: int | None, deadline: float | None) -> None:
    """With --nproc (and not already a rank): start the ranks and end with their verdict."""
    from preflight.bench.launch import under_launcher

    outer = under_launcher(os.environ)
    if nproc is None or outer == "--nproc":
        return
    if outer is not None:
        raise usage(f"--nproc starts ranks itself; this process already runs under {outer}")
    if nproc < 1:
        raise usage("--nproc must be at least 1")
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise fail(TorchMissing())
    from preflight.bench.launch import launch_local

    try:
        code = launch_local(nproc, child_argv(ctx), deadline_s=deadline)
    except BenchInterrupted as exc:
        if sys.stderr.isatty():
            # Rank 0 hides the cursor while its progress bar runs; a killed rank leaves it so.
            sys.stderr.write(SHOW_CURSOR)
        _leave(exc.exit_code)
    raise typer.Exit(code)


def _leave(code: int) -> NoReturn:
    """Exit now, skipping the interpreter's shutdown: it puts back the default action of the
    signals the handlers absorb, and a second Ctrl-C in that window would kill the process."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _torch_missing(exc: ImportError) -> BaseException:
    """TorchMissing when torch itself is what failed to import; otherwise the error as it is."""
    if (exc.name or "").split(".")[0] == "torch":
        return fail(TorchMissing())
    return exc


def _end_rank(exc: PreflightError) -> typer.Exit:
    """A rank's one-line error. A rank in a multi-process world leaves at once: the interpreter's
    shutdown could block on a communicator a dead peer left half-open."""
    from preflight.bench import interrupt
    from preflight.bench.env import rank_env

    signum = interrupt.received()
    if signum is not None:  # a peer stopped by the same signal made this rank's wait fail
        _end_interrupted(BenchInterrupted(signum), "table", None)
    typer.echo(f"preflight: error: {exc}", err=True)
    try:
        many = rank_env(os.environ).world_size > 1
    except PreflightError:
        many = False
    if many:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.exit_code)
    return typer.Exit(exc.exit_code)


def _end_interrupted(exc: BenchInterrupted, fmt: str, output: Path | None) -> NoReturn:
    """An interrupted rank: the leader writes what was measured (no verdict); every rank leaves
    at once with 128 + the signal's number."""
    from preflight.bench.env import rank_env

    try:
        env = rank_env(os.environ)
    except PreflightError:
        env = None
    name = exc.signal_name
    if env is None or env.is_leader:
        partial: Any = exc.partial
        if partial is not None:
            from preflight.bench.pairtest import PartialLocate

            if isinstance(partial, PartialLocate):
                text = (
                    json.dumps(partial.to_dict(name), indent=1) + "\n"
                    if fmt == "json"
                    else partial.table(name)
                )
            elif fmt == "json":
                doc = partial.result.to_dict()
                doc.update(status="interrupted", interrupted=name, sizes_planned=partial.planned)
                text = json.dumps(doc, indent=1) + "\n"
            else:
                from preflight.bench.render import interrupted_table

                text = interrupted_table(partial.result, name, partial.planned)
            with contextlib.suppress(typer.Exit):
                write_report(text, output)
        typer.echo(f"preflight: interrupted by {name}", err=True)
    _leave(exc.exit_code)


@bench_app.command("allreduce")
def allreduce(
    ctx: typer.Context,
    backend: BackendOpt = "auto",
    nproc: NprocOpt = None,
    min_bytes: Annotated[str, typer.Option(help="Smallest size (8, 64K, 1M, 1G).")] = "8",
    max_bytes: Annotated[str, typer.Option(help="Largest size.")] = "1G",
    step_factor: Annotated[
        float, typer.Option(parser=STEP_FACTOR, help="Each size is the previous × this.")
    ] = 2.0,
    sizes: Annotated[
        str | None, typer.Option(help="Explicit comma-separated sizes instead of the sweep.")
    ] = None,
    iters: Annotated[int, typer.Option(parser=ITERATIONS, help="Timed all_reduces per size.")] = 20,
    warmup: Annotated[
        int, typer.Option(parser=WARMUP, help="Untimed all_reduces per size, first.")
    ] = 5,
    dtype: DtypeOpt = "float32",
    init_timeout: InitTimeoutOpt = 60.0,
    op_timeout: OpTimeoutOpt = 30.0,
    gate_bytes: Annotated[
        str | None, typer.Option(help="Size judged against --min-busbw (default: the largest).")
    ] = None,
    min_busbw: Annotated[
        float | None,
        typer.Option(parser=GBPS, help="busbw floor in GB/s at the gate size: below fails."),
    ] = None,
    theoretical_gbps: Annotated[
        float | None,
        typer.Option(
            parser=POSITIVE_GBPS, help="The bound to compare with, instead of the topology's."
        ),
    ] = None,
    node_id: NodeIdOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: TTY)."),
    ] = None,
    chart: Annotated[bool, typer.Option(help="Bar chart of busbw by size under the table.")] = True,
    deadline: DeadlineOpt = None,
    per_rail: Annotated[
        str | None,
        typer.Option(
            help="Sweep once per rail (comma-separated HCAs for nccl, interfaces for gloo) "
            "and name the rail below its peers."
        ),
    ] = None,
    split: Annotated[
        bool,
        typer.Option(
            help="Sweep inside the node, then network only (NCCL: P2P, SHM, NVLS off), side "
            "by side; gloo has no NVLink path and says so."
        ),
    ] = False,
) -> None:
    """All-reduce bus bandwidth by message size, as nccl-tests measures it, with #wrong checked.

    Run it under torchrun or srun (one rank per GPU), or let --nproc start local ranks.
    Exit 0 when every value is exact and the gate passes, 1 otherwise.
    """
    from preflight.bench.metrics import dtype as parse_dtype
    from preflight.bench.metrics import parse_size, sweep

    if fmt not in ("table", "json"):
        raise usage(f"unknown --format {fmt!r} (choose from table, json)")
    _check_limits(backend, iters, warmup, init_timeout, op_timeout)
    try:
        parse_dtype(dtype)
        if sizes:
            chosen = [parse_size(s) for s in sizes.split(",") if s.strip()]
        else:
            chosen = sweep(parse_size(min_bytes), parse_size(max_bytes), step_factor)
        gate = parse_size(gate_bytes) if gate_bytes else None
    except ValueError as exc:
        raise usage(str(exc)) from None
    if gate is not None and gate not in chosen:
        chosen.append(gate)
    if split and per_rail:
        raise usage("--split and --per-rail are separate runs: choose one")
    _enter_rank(ctx, nproc, deadline)
    from preflight.bench.rails import RAIL_ENV, per_rail_command

    if per_rail and RAIL_ENV not in os.environ:  # this rank fans out: one child sweep per rail
        drop = ("nproc", "deadline", "per_rail", "fmt", "output", "progress")
        budget = init_timeout + op_timeout * (iters + warmup) * len(chosen) + 30
        out = str(output) if output is not None else None
        argv = child_argv(ctx, drop)
        raise typer.Exit(per_rail_command(argv, per_rail, backend, fmt, out, budget))
    if split and RAIL_ENV not in os.environ:  # this rank fans out: one child sweep per leg
        from preflight.bench.split import split_command

        drop = ("nproc", "deadline", "split", "fmt", "output", "progress")
        budget = init_timeout + op_timeout * (iters + warmup) * len(chosen) + 30
        out = str(output) if output is not None else None
        raise typer.Exit(split_command(child_argv(ctx, drop), backend, fmt, out, budget))
    try:
        from preflight.bench.sweep import SweepOptions, run_sweep
    except ImportError as exc:
        raise _torch_missing(exc) from None
    opts = SweepOptions(
        sizes=tuple(sorted(set(chosen))),
        backend=backend,
        iters=iters,
        warmup=warmup,
        dtype=dtype,
        init_timeout_s=init_timeout,
        op_timeout_s=op_timeout,
        gate_bytes=gate,
        min_busbw_gbps=min_busbw,
        theoretical_gbps=theoretical_gbps,
        node_id=node_id,
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    try:
        result, leader = run_sweep(opts, os.environ)
    except BenchInterrupted as exc:
        _end_interrupted(exc, fmt, output)
    except PreflightError as exc:
        raise _end_rank(exc) from None
    if leader:
        if fmt == "json":
            write_report(json.dumps(result.to_dict(), indent=1) + "\n", output)
        elif output is not None:
            from preflight.bench.render import nccl_table

            write_report(nccl_table(result), output)
        else:
            from preflight.bench.render import print_table

            print_table(result, sys.stdout, color=sys.stdout.isatty(), chart=chart)
    raise typer.Exit(ExitCode.OK if result.passed else ExitCode.FAILED)


@bench_app.command("locate")
def locate(
    ctx: typer.Context,
    backend: BackendOpt = "auto",
    nproc: NprocOpt = None,
    size: Annotated[str, typer.Option("--bytes", help="Message size of each pair test.")] = "64M",
    iters: Annotated[int, typer.Option(parser=ITERATIONS, help="Timed all_reduces per pair.")] = 10,
    warmup: Annotated[
        int, typer.Option(parser=WARMUP, help="Untimed all_reduces per pair, first.")
    ] = 3,
    dtype: DtypeOpt = "float32",
    init_timeout: InitTimeoutOpt = 60.0,
    op_timeout: OpTimeoutOpt = 30.0,
    rounds: Annotated[
        int | None,
        typer.Option(
            parser=ROUNDS,
            help="Round-robin rounds before re-tests (default: every pair up to 8 nodes, else 1).",
        ),
    ] = None,
    slow_ratio: Annotated[
        float,
        typer.Option(parser=RATIO, help="A pair below this share of the typical pair is slow."),
    ] = 0.75,
    min_busbw: Annotated[
        float | None,
        typer.Option(parser=GBPS, help="A pair below this busbw (GB/s) is slow in any case."),
    ] = None,
    node_id: NodeIdOpt = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    deadline: DeadlineOpt = None,
    per_rail: Annotated[
        str | None,
        typer.Option(
            help="Run the pair tests once per rail (comma-separated HCAs for nccl, interfaces "
            "for gloo) and name the node and the rail."
        ),
    ] = None,
) -> None:
    """Name the node (or the pair of nodes) that slows the job, from pair all-reduce tests.

    Nodes are tested in pairs; suspects are re-tested against nodes known to be good, so a slow
    node is told apart from a bad link between two nodes. Exit 1 when one is found.
    """
    from preflight.bench.metrics import dtype as parse_dtype
    from preflight.bench.metrics import parse_size

    if fmt not in ("table", "json"):
        raise usage(f"unknown --format {fmt!r} (choose from table, json)")
    _check_limits(backend, iters, warmup, init_timeout, op_timeout)
    if not 0 < slow_ratio < 1:
        raise usage("--slow-ratio must be between 0 and 1")
    try:
        parse_dtype(dtype)
        nbytes = parse_size(size)
    except ValueError as exc:
        raise usage(str(exc)) from None
    _enter_rank(ctx, nproc, deadline)
    from preflight.bench.rails import RAIL_ENV

    if per_rail and RAIL_ENV not in os.environ:  # one locate child per rail, then node × rail
        from preflight.bench.rails_locate import RETEST_ROUNDS, per_rail_locate_command

        drop = ("nproc", "deadline", "per_rail", "fmt", "output")
        max_rounds = (rounds or 7) + RETEST_ROUNDS  # 7: every pair of 8 nodes
        budget = init_timeout + op_timeout * (iters + warmup) * max_rounds + 30
        out = str(output) if output is not None else None
        argv = child_argv(ctx, drop)
        raise typer.Exit(per_rail_locate_command(argv, per_rail, backend, fmt, out, budget))
    try:
        from preflight.bench.pairtest import LocateOptions, run_locate
    except ImportError as exc:
        raise _torch_missing(exc) from None
    opts = LocateOptions(
        nbytes=nbytes,
        backend=backend,
        iters=iters,
        warmup=warmup,
        dtype=dtype,
        init_timeout_s=init_timeout,
        op_timeout_s=op_timeout,
        rounds=rounds,
        slow_ratio=slow_ratio,
        min_busbw_gbps=min_busbw,
        node_id=node_id,
    )
    try:
        run, leader = run_locate(opts, os.environ)
    except BenchInterrupted as exc:
        _end_interrupted(exc, fmt, output)
    except PreflightError as exc:
        raise _end_rank(exc) from None
    if leader:
        if fmt == "json":
            write_report(json.dumps(run.to_dict(), indent=1) + "\n", output)
        else:
            write_report(run.table(), output)
    raise typer.Exit(ExitCode.OK if run.judgement.passed else ExitCode.FAILED)


# `bench rdma` and `bench rdma-plan` (perftest): preflight/bench/rdma_cli.py
from preflight.bench.rdma_cli import register as _register_rdma  # noqa: E402

_register_rdma(bench_app)
