"""The `preflight` command line: wiring only; the work lives in execute, registry, output."""

# No `from __future__ import annotations` here: typer reads every command's annotations at
# start-up, and string annotations cost it a compile and two evals each (~40 ms of `--help`).
import contextlib
import errno
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup, TyperOption

from preflight import __version__, cli_values, terminal
from preflight.bench.cli import bench_app  # imports no torch: the ranks do
from preflight.completion import baseline_names, check_ids, check_patterns, choices, profile_names
from preflight.errors import PreflightError, UsageError
from preflight.exitcodes import ExitCode
from preflight.interrupts import Interrupted
from preflight.options import JOBS, RANKS, SECONDS
from preflight.output import FORMATS  # names only: each renderer is imported when used


class PreflightGroup(TyperGroup):
    """The root command: every command ends through `finish`, the one error/exit path."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def invoke() -> Any:
            return super(PreflightGroup, self).main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )

        code = finish(invoke, standalone_mode)
        if standalone_mode:
            sys.exit(code)
        return code


_METAVARS = {"str": "TEXT", "list[str]": "TEXT", "float": "NUMBER", "int": "INTEGER"}


def _help_metavar(option: TyperOption, ctx: Any) -> str | None:
    """What help shows after an option: nothing for a flag (typer shows `<bool>`), and the
    conventional upper-case word for a value (`TEXT`, not `<str>`)."""
    if option.metavar is not None:
        return option.metavar
    if option.is_flag or option.count:
        return None
    label = option.display_type(ctx).strip("<>")
    return _METAVARS.get(label, label.upper())


# Needed: typer 0.29's help prints the Python type of every option (`--strict <bool>`,
# `--profile <str>`) and offers no hook to choose the option class, so the method is replaced
# once, here, where the app is made. It changes help text only: parsing and shell completion
# (which list option names, never metavars) do not call it.
TyperOption.display_type_rich = _help_metavar  # type: ignore[method-assign,assignment]
cli_values.install()  # option values typer would return unchanged skip pydantic (~160 ms)


app = typer.Typer(
    name="preflight",
    help="Check a GPU node for what silently ruins distributed training, before the job starts.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=PreflightGroup,
)
profiles_app = typer.Typer(help="Built-in mocked hardware profiles.", no_args_is_help=True)
baselines_app = typer.Typer(
    help="Built-in baselines (what a healthy node looks like).", no_args_is_help=True
)
app.add_typer(profiles_app, name="profiles")
app.add_typer(baselines_app, name="baselines")
app.add_typer(bench_app, name="bench")
# `preflight baseline generate` (singular) as the issue and habit spell it: the same commands.
app.add_typer(baselines_app, name="baseline", hidden=True)


def say_error(message: object) -> None:
    """The one-line error every failure ends with (control characters shown escaped)."""
    from preflight.safetext import clean_line

    sys.stderr.write(f"preflight: error: {clean_line(message)}\n")
    sys.stderr.flush()


_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF)
_VALUE_ERROR = re.compile(r"^Invalid value for '([^']*)': Value error, ")


def finish(invoke: Callable[[], Any], standalone: bool) -> int:
    """Run the command; map every way it can end to one exit code and at most one line on
    stderr. A closed pipe on stdout ends quietly with 141 (128 + SIGPIPE), as `head` expects."""
    _tolerant_streams()
    code: int
    try:
        value = invoke()
        code = value if isinstance(value, int) else 0
        sys.stdout.flush()
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # typer has printed the help
            pass
        else:
            say_error(_VALUE_ERROR.sub(r"\1 ", exc.format_message()))
        code = exc.exit_code
    except Interrupted as exc:
        typer.echo(
            f"preflight: interrupted by {exc}: nothing drained, resumed or reported", err=True
        )
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 128 + 2
    except (typer.Abort, EOFError):
        code = ExitCode.FAILED
    except BrokenPipeError:
        code = ExitCode.BROKEN_PIPE
    except SystemExit as exc:  # rich and typer end a closed pipe with exit 1: 141 is what it is
        if isinstance(exc.__context__, BrokenPipeError):
            code = ExitCode.BROKEN_PIPE
        elif exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            say_error(exc.code)
            code = ExitCode.FAILED
    except PreflightError as exc:
        say_error(exc)
        code = exc.exit_code
    except OSError as exc:
        if exc.filename or exc.errno in _WRITE_ERRNOS:
            # No file name: typer.echo's write to stdout met a full disk or an I/O error.
            where = exc.filename or "cannot write standard output"
            say_error(f"{where}: {exc.strerror or exc}")
            code = ExitCode.USAGE
        else:
            say_error(f"internal error: {type(exc).__name__}: {exc} (please report this)")
            code = ExitCode.INTERNAL
    except Exception as exc:  # a bug (MemoryError, RecursionError…): one line, no traceback
        say_error(f"internal error: {type(exc).__name__}: {exc} (please report this)")
        code = ExitCode.INTERNAL
    if standalone:
        _quiet_stdout()
    return int(code)


def _tolerant_streams() -> None:
    """Text no encoding of the terminal can show (an ASCII locale, a lone surrogate of an
    undecodable file name) is written as backslash escapes, never an encoding error."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def _quiet_stdout() -> None:
    """Flush stdout; when that fails (a closed pipe, a full disk), point it at /dev/null so the
    interpreter's own flush at exit prints nothing."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"preflight {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Check a GPU node for what silently ruins distributed training, before the job starts."""


@app.command()
def run(
    profile: Annotated[
        str | None,
        typer.Option(
            help="Built-in profile name or path to a profile JSON: "
            "check a mocked node instead of this machine.",
            autocompletion=profile_names,
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Baseline name or TOML path (default: detected from the node).",
            autocompletion=baseline_names,
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only these checks: ids, globs (pcie.*) or tag:NAME. Repeatable.",
            autocompletion=check_patterns,
        ),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            help="Skip these checks (same patterns). Repeatable.", autocompletion=check_patterns
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table, json, jsonl, junit or prometheus.",
            autocompletion=choices(*FORMATS),
        ),
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option(help="Write the report to this file (replaced atomically); - for stdout."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a parameter: CHECK_ID.PARAM=VALUE. Repeatable."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=VALUE seen by the checks instead of this process's environment. Repeatable."
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            parser=SECONDS, help="Seconds each check may take before it is abandoned as an error."
        ),
    ] = 10.0,
    deadline: Annotated[
        float | None,
        typer.Option(
            parser=SECONDS,
            help="Seconds the whole run may take; checks not started by then are errors.",
        ),
    ] = None,
    nvml_timeout: Annotated[
        float,
        typer.Option(
            parser=SECONDS,
            help="Seconds NVML (queried in a child process) may take to answer for every GPU; "
            "past that the child is killed and gpu.nvml_available fails naming the hung call.",
        ),
    ] = 5.0,
    strict: Annotated[
        bool,
        typer.Option(help="Warnings, and essential checks that could not run, fail the exit code."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show every finding with its evidence (and tracebacks of errors).",
        ),
    ] = False,
    problems: Annotated[
        bool,
        typer.Option(
            "--problems",
            "--quiet",
            "-q",
            help="Table: show only the checks that failed, errored or warned.",
        ),
    ] = False,
    slurm_drain: Annotated[
        bool,
        typer.Option(
            help="On fail/error, drain this Slurm node (SLURMD_NODENAME) with a reason "
            "'preflight: <failing checks>'; a node someone else drained is left as it is."
        ),
    ] = False,
    slurm_resume: Annotated[
        bool,
        typer.Option(
            help="On pass, resume this Slurm node, only if its drain reason starts 'preflight:'."
        ),
    ] = False,
    slurm_timeout: Annotated[
        float,
        typer.Option(
            parser=SECONDS, help="Seconds each scontrol call may take before it is abandoned."
        ),
    ] = 5.0,
    dry_run: Annotated[
        bool,
        typer.Option(help="With --slurm-drain/--slurm-resume: say what scontrol would do, do not."),
    ] = False,
    node_name: Annotated[
        str | None,
        typer.Option(
            help="With --slurm-drain/--slurm-resume: the Slurm node to act on (default "
            "SLURMD_NODENAME, else the short hostname; needed with --profile)."
        ),
    ] = None,
    bench: Annotated[
        bool, typer.Option(help="Also measure all-reduce across the node's GPUs (bench.allreduce).")
    ] = False,
    bench_backend: Annotated[
        str | None, typer.Option(help="With --bench: nccl or gloo (default nccl on GPUs).")
    ] = None,
    bench_nproc: Annotated[
        int | None,
        typer.Option(parser=RANKS, help="With --bench: ranks to start (default one per GPU)."),
    ] = None,
    level: Annotated[
        int,
        typer.Option(
            help="Depth: 1 reads the node's state (seconds), 2 adds the short active GPU tests "
            "(about 2 minutes), 3 the deep ones (DCGM r3, a long burn). --only ID runs that check "
            "at any level."
        ),
    ] = 1,
    npd: Annotated[
        bool,
        typer.Option(
            help="Answer as a Kubernetes node-problem-detector custom plugin: one line on stdout "
            "(failing checks first), exit 0 OK, 1 problem, 2 unknown; --output still gets the "
            "--format report."
        ),
    ] = False,
    npd_max_output: Annotated[
        int, typer.Option(help="With --npd: the plugin config's max_output_length (bytes).")
    ] = 80,
    bench_rdma: Annotated[
        bool,
        typer.Option(help="Also run perftest loopback on each HCA port (bench.rdma_loopback)."),
    ] = False,
    max_drained: Annotated[
        str | None,
        typer.Option(
            metavar="N|P%",
            help="With --slurm-drain: drain only while at most N nodes (or P% of the nodes) in "
            "the scope are drained by preflight; above that, and when sinfo cannot count them, "
            "the node is not drained (site config: max_drained).",
        ),
    ] = None,
    max_drained_scope: Annotated[
        str | None,
        typer.Option(
            metavar="partition|cluster",
            help="With --max-drained: count in this node's partitions (default) or the cluster.",
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Remember counters, Xid acknowledgements and run history in DIR across runs "
            "(site config: state_dir); nothing is written without it.",
        ),
    ] = None,
) -> None:
    """Run the checks on this node (or on a mocked profile) and report pass/warn/fail.

    Slurm is told first, the report written after: a report that cannot be written never keeps
    a failing node in service. SIGINT/SIGTERM end the run with 130/143 and nothing done.
    """
    from preflight import interrupts
    from preflight.bench.errors import BenchInterrupted
    from preflight.execute import RunOptions, execute, parse_env_options
    from preflight.exitcodes import for_report
    from preflight.outfile import Buffer
    from preflight.output import RenderOptions, renderers

    _choice("--format", fmt, FORMATS)
    if dry_run and not (slurm_drain or slurm_resume):
        raise UsageError("--dry-run needs --slurm-drain or --slurm-resume")
    if level not in (1, 2, 3):
        raise UsageError(f"--level must be 1, 2 or 3, got {level}")
    if npd_max_output < 16:
        raise UsageError(f"--npd-max-output must be at least 16 bytes, got {npd_max_output}")
    if node_name is not None and not (slurm_drain or slurm_resume):
        raise UsageError("--node-name needs --slurm-drain or --slurm-resume")
    if node_name is not None and not _NODE_NAME.fullmatch(node_name):
        raise UsageError("--node-name: expected a Slurm node name (letters, digits, . _ -)")
    if (
        profile
        and (slurm_drain or slurm_resume)
        and not (node_name or os.environ.get("SLURMD_NODENAME"))
    ):
        # The checks read a mocked node: this host's name would drain a node nobody checked.
        raise UsageError(
            "--slurm-drain/--slurm-resume with --profile act on a node the checks did not read: "
            "name it with --node-name or SLURMD_NODENAME"
        )
    from preflight import runflags

    guard = runflags.drain_limits(max_drained, max_drained_scope, slurm_drain, os.environ)
    memory = runflags.open_state(state, profile, os.environ)
    to_stdout = _is_stdout(output)
    with interrupts.watching() as watch:
        options = RunOptions(
            profile=profile,
            baseline=baseline,
            only=only or (),
            skip=skip or (),
            sets=set_ or (),
            env=parse_env_options(env or ()),
            timeout_s=timeout,
            deadline_s=deadline,
            nvml_timeout_s=nvml_timeout,
            bench=bench,
            bench_backend=bench_backend,
            bench_nproc=bench_nproc,
            level=level,
            strict=strict,
            bench_rdma=bench_rdma,
            state=memory,
        )
        try:
            report = execute(options)
        except BenchInterrupted as exc:  # the launcher stopped its ranks on the signal
            raise interrupts.Interrupted(exc.signum) from None
        except PreflightError as exc:
            if not npd:
                raise
            from preflight import npd as plugin

            typer.echo(plugin.unknown(str(exc), npd_max_output))
            say_error(exc)
            raise typer.Exit(plugin.UNKNOWN) from None
        # A signal swallowed on the way (the bench launcher stops its ranks on one) still
        # means these results are not the node's: raise it now, before Slurm or the report.
        watch.settle()
        if memory is not None:  # an interrupted run leaves no memory either
            report = memory.finish(report)
        code = for_report(report, strict)
        if slurm_drain or slurm_resume:
            import dataclasses

            from preflight import slurm
            from preflight.safetext import clean_line

            failing = slurm.failing_checks(report.results, strict)
            outcome = slurm.carry_out(
                node_name or slurm.node_name(os.environ),
                code == ExitCode.OK,
                failing + ([i for i, _ in report.unchecked] if report.unchecked_fails else []),
                remedy=slurm.failing_action(report.results, failing),
                drain=slurm_drain,
                resume=slurm_resume,
                dry_run=dry_run,
                timeout_s=slurm_timeout,
                say=lambda line: typer.echo(clean_line(line), err=True),
                max_drained=guard[0] if guard else None,
                scope=guard[1] if guard else "partition",
            )
            report = dataclasses.replace(report, slurm=outcome.to_dict())
        color = to_stdout and fmt == "table" and terminal.wants_color(sys.stdout)
        text = Buffer(output)
        renderers()[fmt](
            report,
            text,
            RenderOptions(verbose=verbose, color=color, width=_width(output), problems=problems),
        )
        try:
            if not (npd and to_stdout):  # with --npd, stdout is the plugin's one line
                _write(output, text.getvalue())
        except PreflightError as exc:
            say_error(exc)
            # The node's verdict outranks the write error: a failed run still exits 1.
            raise typer.Exit(code if code != ExitCode.OK else exc.exit_code) from None
        if npd:
            from preflight import npd as plugin

            typer.echo(plugin.message(report, strict, npd_max_output))
            raise typer.Exit(plugin.exit_code(report, strict))
    raise typer.Exit(code)


def _choice(option: str, value: str, allowed: Sequence[str]) -> None:
    """One bad option, one line: `unknown --format 'xml' (choose from table, json)`."""
    if value not in allowed:
        raise UsageError(f"unknown {option} {value!r} (choose from {', '.join(allowed)})")


def _is_stdout(output: Path | None) -> bool:
    from preflight.outfile import STDOUT

    return output is None or str(output) == STDOUT


def _width(output: Path | None) -> int:
    """The terminal's width for what goes to stdout; a file gets 160 columns."""
    return terminal.width() if _is_stdout(output) else 160


def _write(output: Path | None, text: str) -> None:
    """The one writer of every command's output: stdout (no --output, or -) or the file,
    replaced atomically; a write that fails is an OutputError (one line, exit 2)."""
    from preflight.outfile import write_output

    write_output(None if _is_stdout(output) else output, text)


@app.command()
def snapshot(
    output: Annotated[
        Path,
        typer.Option(help="Profile file to write: .json, or .json.gz for gzip; - for stdout."),
    ],
    mask: Annotated[
        bool,
        typer.Option(
            help="Replace what identifies the node, its networks and its users (hostname, "
            "serials, UUIDs, GUIDs, MACs, IP addresses, user names) with placeholders of the "
            "same format."
        ),
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option(
            help="Built-in profile name or profile path to write again (with --mask: "
            "masked) instead of capturing this node.",
            autocompletion=profile_names,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(parser=SECONDS, help="Seconds each check may take before it is abandoned."),
    ] = 10.0,
    nvml_timeout: Annotated[
        float,
        typer.Option(parser=SECONDS, help="Seconds NVML (queried in a child process) may take."),
    ] = 5.0,
) -> None:
    """Capture what every check reads on this node into a profile that `run --profile` replays
    (or, with --profile, write an existing profile again, masked with --mask)."""
    import time

    from preflight import snapshot as snap
    from preflight.mask import mask as mask_profile
    from preflight.profile import resolve

    t0 = time.monotonic()
    data = resolve(profile) if profile else snap.capture(timeout, nvml_timeout)[0]
    if mask:
        data = mask_profile(data)
    size = snap.write(data, output)  # replaced atomically; OutputError: one line, exit 2
    typer.echo(
        f"wrote {output}: {len(data.get('files', {}))} files, "
        f"{len(data.get('symlinks', {}))} symlinks, "
        f"{size} bytes in {time.monotonic() - t0:.2f} s",
        err=True,
    )


@app.command()
def ack(
    state: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="The state directory runs use (default: site state_dir)."),
    ] = None,
    gpu: Annotated[
        str | None,
        typer.Option(metavar="BDF", help="Acknowledge this GPU's Xids only (default: every GPU)."),
    ] = None,
    by: Annotated[
        str | None, typer.Option(help="Who acknowledges (default SUDO_USER, else USER).")
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="Read a mocked node's kernel log (tests, rehearsals).")
    ] = None,
) -> None:
    """Acknowledge the GPU Xids logged so far (after a GPU reset): `run --state DIR` stops
    failing xid.events for them and names who acknowledged them when; newer Xids count again."""
    from preflight import runflags
    from preflight.ack import parse_gpu, run_ack, who
    from preflight.execute import make_host

    path = runflags.state_dir(state, profile, os.environ)
    if not path:
        raise UsageError("ack needs --state DIR (or state_dir in the site config)")
    bdf = parse_gpu(gpu) if gpu is not None else None
    name = who(by, os.environ)
    line = run_ack(make_host(profile, {}), path, bdf, name, runflags.say_warning)
    typer.echo(line, err=True)


@app.command("list")
def list_checks(
    fmt: Annotated[
        str,
        typer.Option("--format", help="table or json.", autocompletion=choices("table", "json")),
    ] = "table",
) -> None:
    """List every check: id, title, tags, what it needs, its action classes and its parameters
    with defaults (in TOML; `explain ID` documents each)."""
    from rich.table import Table

    from preflight import paramtoml
    from preflight.registry import discover
    from preflight.remediation import classes
    from preflight.stages import STAGES

    _choice("--format", fmt, ("table", "json"))
    registry = discover()
    if fmt == "json":
        rows = [
            {
                "id": s.id,
                "kind": "check",
                "title": s.title,
                "tags": list(s.tags),
                "needs": list(s.needs),
                "provides": list(s.provides),
                "tier": s.tier,
                "params": s.defaults(),
                "action": s.action.value if s.action else None,
                "actions": classes(s),
                "param_docs": {f.name: paramtoml.doc(f) for f in paramtoml.fields(s.params)},
            }
            for s in registry
        ] + [
            # A stage runs at every level and has no parameters; its row explains a report's.
            {
                "id": s.id,
                "kind": "stage",
                "title": s.title,
                "tags": [],
                "needs": [],
                "provides": [],
                "tier": 1,
                "params": {},
                "action": None,
                "actions": [],
                "param_docs": {},
            }
            for s in STAGES
        ]
        rows.sort(key=lambda row: str(row["id"]))
        _write(None, json.dumps(rows, indent=2, default=list) + "\n")
        return
    table = Table(show_lines=False)
    for col in ("Check", "Tier", "Title", "Tags", "Needs", "Actions", "Parameters (defaults)"):
        table.add_column(col, overflow="fold")
    lines = [
        (
            s.id,
            str(s.tier),
            s.title,
            ",".join(s.tags),
            ",".join(s.needs),
            ",".join(classes(s)),
            _params_line(s),
        )
        for s in registry
    ] + [(s.id, "1", s.title, "", "", "", f"(a step of {s.runs})") for s in STAGES]
    for line in sorted(lines):
        table.add_row(*line)
    _show(terminal.width(), table)


def _params_line(spec: Any) -> str:
    from preflight import paramtoml

    return paramtoml.short(spec.params)


@app.command()
def explain(
    check_id: Annotated[
        str, typer.Argument(help="A check id, e.g. pcie.acs", autocompletion=check_ids)
    ],
) -> None:
    """Why a check matters, what it reads, its verdicts, how to fix, and its parameters."""
    from rich.markdown import Markdown
    from rich.text import Text

    from preflight import paramtoml
    from preflight.registry import discover
    from preflight.remediation import classes
    from preflight.stages import stage

    step = stage(check_id)
    if step is not None:
        _show(
            terminal.width(100),
            Text(step.id, style="bold") + Text(f" — {step.title}"),
            f"a step of {step.runs}, not a check: it reports a row {step.row}\n",
            Markdown(step.doc),
        )
        return
    spec = discover().get(check_id)
    parts: list[Any] = [
        Text(spec.id, style="bold") + Text(f" — {spec.title}"),
        f"tags: {', '.join(spec.tags) or '-'}   needs: {', '.join(spec.needs) or '-'}   "
        + (f"provides: {', '.join(spec.provides)}   " if spec.provides else "")
        + f"tier: {spec.tier} (runs with `preflight run --level {spec.tier}` or deeper)",
        f"action classes: {', '.join(classes(spec)) or '-'} (README: Remediation classes)\n",
        Markdown(spec.doc),
    ]
    if spec.defaults():
        where = f"(baseline TOML table [{spec.id}], or --set {spec.id}.NAME=VALUE)"
        parts.append(Text("\nParameters", style="bold") + Text(f" {where}"))
        # Not wrapped: each line stays TOML to paste.
        width = terminal.width(100)
        toml = Text(paramtoml.snippet(spec.id, spec.params, width).rstrip("\n"))
        _show(width, *parts, verbatim=toml)
        return
    _show(terminal.width(100), *parts)


def _show(width: int, *renderables: Any, verbatim: Any = None) -> None:
    """Draw rich renderables as wide as the terminal (colour where it wants it), then verbatim
    unwrapped, and write them through the one writer, without the trailing spaces rich pads
    lines with."""
    from preflight.outfile import Buffer
    from preflight.safetext import console

    buffer = Buffer(None)
    screen = console(buffer, width, terminal.wants_color(sys.stdout))
    for renderable in renderables:
        screen.print(renderable)
    if verbatim is not None:
        screen.print(verbatim, soft_wrap=True)
    _write(None, "\n".join(line.rstrip() for line in buffer.getvalue().split("\n")))


REPORTS_HELP = (
    "Report files, folders (searched recursively), globs (quote them), .tar.gz archives, "
    ".jsonl files, or - for JSON lines on stdin."
)


@app.command()
def compare(
    reports: Annotated[list[str], typer.Argument(help=REPORTS_HELP)],
    golden: Annotated[
        Path | None,
        typer.Option(
            help="A known-good node's report: compare every node with it, not the majority."
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table, json, or html (one self-contained page).",
            autocompletion=choices("table", "json", "html"),
        ),
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option(help="Write to this file (replaced atomically) instead of stdout; - stdout."),
    ] = None,
    fail_on: Annotated[
        str,
        typer.Option(
            help="Exit 1 on: drift (failing nodes, unreadable reports or drift), fail (failing "
            "nodes or unreadable reports only), none (never).",
            autocompletion=choices("drift", "fail", "none"),
        ),
    ] = "drift",
    ignore_fact: Annotated[
        list[str] | None,
        typer.Option(
            help="Leave these facts out of drift too: globs on the whole key. Repeatable."
        ),
    ] = None,
    group_by: Annotated[
        str,
        typer.Option(help="Peer groups for drift: baseline (node type), none, or a fact key."),
    ] = "baseline",
    jobs: Annotated[
        int | None,
        typer.Option(
            parser=JOBS, help="Worker processes that decode reports (default: CPUs, ≤ 8)."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Every row and every node, not the first 30.")
    ] = False,
) -> None:
    """Compare many node reports: which nodes fail, and which differ from their peers (drift)."""
    from preflight.cluster import aggregate, record, render, rules, sources
    from preflight.cluster import compare as comparison
    from preflight.outfile import Buffer

    _choice("--format", fmt, ("table", "json", "html"))
    _choice("--fail-on", fail_on, comparison.FAIL_ON)
    rule = rules.FactRule(tuple(ignore_fact or ()))
    gold = None
    if golden is not None:
        gold = comparison.golden_from(*record.read_file(str(golden)), rule)
    items = sources.expand(reports, sys.stdin.buffer)
    fleet = aggregate.collect(items, rule, "none" if gold else group_by, jobs, detail=fmt == "html")
    if fleet.reports == 0:
        raise UsageError(f"no report found in {' '.join(reports)}")
    result = comparison.compare(fleet, "none (golden node)" if gold else group_by, gold)
    text = Buffer(output)
    if fmt == "json":
        render.render_json(result, text)
    elif fmt == "html":
        from preflight.cluster import html

        html.render_html(result, text)
    else:
        render.render_table(result, text, verbose, _width(output))
    _write(output, text.getvalue())
    raise typer.Exit(result.exit_code(fail_on))


@profiles_app.command("list")
def profiles_list() -> None:
    """Built-in profiles with their descriptions."""
    from preflight.profile import builtin_names, resolve

    _write(None, "".join(f"{n:32} {resolve(n).get('description', '')}\n" for n in builtin_names()))


@profiles_app.command("show")
def profiles_show(
    name: Annotated[str, typer.Argument(help="Profile name or path", autocompletion=profile_names)],
) -> None:
    """Print the fully resolved profile (extends merged in) as JSON."""
    from preflight.profile import resolve

    _write(None, json.dumps(resolve(name), indent=1, sort_keys=True) + "\n")


@baselines_app.command("list")
def baselines_list() -> None:
    """Built-in baselines with their descriptions."""
    from preflight.baseline import builtin_names, load
    from preflight.registry import discover

    registry = discover()
    _write(None, "".join(f"{n:20} {load(n, registry).description}\n" for n in builtin_names()))


@baselines_app.command("show")
def baselines_show(
    name: Annotated[
        str, typer.Argument(help="Baseline name or path", autocompletion=baseline_names)
    ],
) -> None:
    """Print a baseline's resolved parameters (extends merged in) as JSON."""
    from preflight.baseline import load
    from preflight.registry import discover

    b = load(name, discover())
    _write(
        None,
        json.dumps(
            {
                "name": b.name,
                "description": b.description,
                "source": b.source,
                "match": {
                    "product_names": b.product_names,
                    "gpu_ids": b.gpu_ids,
                    "gpu_count": b.gpu_count,
                },
                "params": b.params,
            },
            indent=2,
            sort_keys=True,
        )
        + "\n",
    )


@baselines_app.command("generate")
def baselines_generate(
    reports: Annotated[list[str], typer.Argument(help=REPORTS_HELP)],
    name: Annotated[
        str | None, typer.Option(help="The baseline's name (default: fleet-<group>).")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Which group to pin when the reports hold several.")
    ] = None,
    group_by: Annotated[
        str, typer.Option(help="Groups: baseline (node type), none, or a fact key.")
    ] = "baseline",
    extends: Annotated[
        str | None,
        typer.Option(
            help="Write `extends = NAME`: a built-in name or a path.",
            autocompletion=baseline_names,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Write the TOML to this file (replaced atomically); - for stdout."),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option(parser=JOBS, help="Worker processes that decode reports.")
    ] = None,
) -> None:
    """Pin what a known-good report (or the majority of many) shows into a baseline TOML."""
    from preflight.cluster import aggregate, genbaseline, sources
    from preflight.registry import discover

    fleet = aggregate.collect(sources.expand(reports, sys.stdin.buffer), None, group_by, jobs)
    if not fleet.nodes:
        problems = "; ".join(f"{s}: {e}" for s, e in fleet.unreadable[:3])
        raise UsageError(
            f"no readable report in {' '.join(reports)}" + (f" ({problems})" if problems else "")
        )
    text = genbaseline.generate(
        fleet,
        discover(),
        group,
        name,
        extends,
        "generated.toml" if _is_stdout(output) else str(output),
    )
    _write(output, text)


def main() -> None:
    """Console-script entry point."""
    app()
