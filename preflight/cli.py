"""The `preflight` command line: wiring only; the work lives in app, registry, output."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from preflight import __version__
from preflight.bench.cli import bench_app  # imports no torch: the ranks do
from preflight.errors import PreflightError
from preflight.exitcodes import ExitCode

app = typer.Typer(
    name="preflight",
    help="Check a GPU node for what silently ruins distributed training, before the job starts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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

F = TypeVar("F", bound=Callable[..., Any])


def _fail(exc: PreflightError) -> typer.Exit:
    typer.echo(f"preflight: error: {exc}", err=True)
    return typer.Exit(exc.exit_code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"preflight {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Check a GPU node for what silently ruins distributed training, before the job starts."""


@app.command()
def run(
    profile: Annotated[
        str | None,
        typer.Option(
            help="Built-in profile name or path to a profile JSON: "
            "check a mocked node instead of this machine."
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="Baseline name or TOML path (default: detected from the node)."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only these checks: ids, globs (pcie.*) or tag:NAME. Repeatable."),
    ] = None,
    skip: Annotated[
        list[str] | None, typer.Option(help="Skip these checks (same patterns). Repeatable.")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table, json, junit or prometheus.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option(help="Write the report to this file instead of stdout.")
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
        float, typer.Option(help="Seconds each check may take before it is abandoned as an error.")
    ] = 10.0,
    deadline: Annotated[
        float | None,
        typer.Option(help="Seconds the whole run may take; checks not started by then are errors."),
    ] = None,
    nvml_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds NVML (queried in a child process) may take to answer for every GPU; "
            "past that the child is killed and gpu.nvml_available fails naming the hung call."
        ),
    ] = 5.0,
    strict: Annotated[
        bool, typer.Option(help="Treat warnings as failures in the exit code.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show every finding with its evidence (and tracebacks of errors).",
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
        float, typer.Option(help="Seconds each scontrol call may take before it is abandoned.")
    ] = 5.0,
    dry_run: Annotated[
        bool,
        typer.Option(help="With --slurm-drain/--slurm-resume: say what scontrol would do, do not."),
    ] = False,
    bench: Annotated[
        bool, typer.Option(help="Also measure all-reduce across the node's GPUs (bench.allreduce).")
    ] = False,
    bench_backend: Annotated[
        str | None, typer.Option(help="With --bench: nccl or gloo (default nccl on GPUs).")
    ] = None,
    bench_nproc: Annotated[
        int | None, typer.Option(help="With --bench: ranks to start (default one per GPU).")
    ] = None,
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
) -> None:
    """Run the checks on this node (or on a mocked profile) and report pass/warn/fail."""
    from preflight.app import RunOptions, execute, parse_env_options
    from preflight.exitcodes import for_report
    from preflight.output import FORMATS, RenderOptions, renderers

    if fmt not in FORMATS:
        typer.echo(
            f"preflight: error: unknown --format {fmt!r} (choose from {', '.join(FORMATS)})",
            err=True,
        )
        raise typer.Exit(ExitCode.USAGE)
    if timeout <= 0 or (deadline is not None and deadline <= 0):
        typer.echo("preflight: error: --timeout and --deadline must be positive", err=True)
        raise typer.Exit(ExitCode.USAGE)
    if nvml_timeout <= 0 or npd_max_output < 16:
        typer.echo(
            "preflight: error: --nvml-timeout must be positive, --npd-max-output at least 16",
            err=True,
        )
        raise typer.Exit(ExitCode.USAGE)
    if (dry_run and not (slurm_drain or slurm_resume)) or slurm_timeout <= 0:
        typer.echo(
            "preflight: error: --dry-run needs --slurm-drain or --slurm-resume, "
            "and --slurm-timeout must be positive",
            err=True,
        )
        raise typer.Exit(ExitCode.USAGE)
    try:
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
        )
        report = execute(options)
    except PreflightError as exc:
        if npd:
            from preflight import npd as plugin

            typer.echo(plugin.unknown(str(exc), npd_max_output))
            typer.echo(f"preflight: error: {exc}", err=True)
            raise typer.Exit(plugin.UNKNOWN) from None
        raise _fail(exc) from None
    render = renderers()[fmt]
    color = output is None and fmt == "table" and sys.stdout.isatty()
    width = shutil.get_terminal_size((160, 24)).columns if color else 160
    opts = RenderOptions(verbose=verbose, color=color, width=width)
    if output is not None:
        try:
            with open(output, "w", encoding="utf-8") as f:
                render(report, f, opts)
        except OSError as exc:
            typer.echo(f"preflight: error: cannot write {output}: {exc.strerror}", err=True)
            raise typer.Exit(ExitCode.USAGE) from None
    elif not npd:
        render(report, sys.stdout, opts)
    code = for_report(report, strict)
    if slurm_drain or slurm_resume:
        from preflight import slurm

        slurm.apply(
            slurm.node_name(os.environ),
            code == ExitCode.OK,
            slurm.failing_checks(report.results, strict),
            drain=slurm_drain,
            resume=slurm_resume,
            dry_run=dry_run,
            timeout_s=slurm_timeout,
            say=lambda line: typer.echo(line, err=True),
        )
    if npd:
        from preflight import npd as plugin

        typer.echo(plugin.message(report, strict, npd_max_output))
        raise typer.Exit(plugin.exit_code(report, strict))
    raise typer.Exit(code)


@app.command()
def snapshot(
    output: Annotated[
        Path, typer.Option(help="Profile file to write: .json, or .json.gz for gzip.")
    ],
    mask: Annotated[
        bool,
        typer.Option(
            help="Replace serials, GUIDs, MACs, UUIDs and the hostname with placeholders."
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds each check may take before it is abandoned.")
    ] = 10.0,
    nvml_timeout: Annotated[
        float, typer.Option(help="Seconds NVML (queried in a child process) may take.")
    ] = 5.0,
) -> None:
    """Capture what every check reads on this node into a profile that `run --profile` replays."""
    import time

    from preflight import snapshot as snap

    if timeout <= 0 or nvml_timeout <= 0:
        typer.echo("preflight: error: --timeout and --nvml-timeout must be positive", err=True)
        raise typer.Exit(ExitCode.USAGE)
    t0 = time.monotonic()
    try:
        profile, _ = snap.capture(timeout, nvml_timeout)
    except PreflightError as exc:
        raise _fail(exc) from None
    if mask:
        profile = snap.mask(profile)
    try:
        size = snap.write(profile, output)
    except OSError as exc:
        typer.echo(f"preflight: error: cannot write {output}: {exc.strerror}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    typer.echo(
        f"wrote {output}: {len(profile['files'])} files, {len(profile['symlinks'])} symlinks, "
        f"{size} bytes in {time.monotonic() - t0:.2f} s",
        err=True,
    )


@app.command("list")
def list_checks(
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """List every check: id, title, tags, what it needs and its parameters with defaults."""
    from rich.console import Console
    from rich.table import Table

    from preflight.registry import discover

    try:
        registry = discover()
    except PreflightError as exc:
        raise _fail(exc) from None
    if fmt == "json":
        rows = [
            {
                "id": s.id,
                "title": s.title,
                "tags": list(s.tags),
                "needs": list(s.needs),
                "params": s.defaults(),
            }
            for s in registry
        ]
        typer.echo(json.dumps(rows, indent=2, default=list))
        return
    table = Table(show_lines=False)
    for col in ("Check", "Title", "Tags", "Needs", "Parameters (defaults)"):
        table.add_column(col, overflow="fold")
    for s in registry:
        params = ", ".join(f"{k}={v!r}" for k, v in s.defaults().items())
        table.add_row(s.id, s.title, ",".join(s.tags), ",".join(s.needs), params)
    Console(width=160).print(table)


@app.command()
def explain(check_id: Annotated[str, typer.Argument(help="A check id, e.g. pcie.acs")]) -> None:
    """Why a check matters, what it reads, its verdicts, how to fix, and its parameters."""
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.markup import escape

    from preflight.registry import discover

    try:
        spec = discover().get(check_id)
    except PreflightError as exc:
        raise _fail(exc) from None
    console = Console(width=100)
    console.print(f"[bold]{spec.id}[/bold] — {spec.title}")
    console.print(f"tags: {', '.join(spec.tags) or '-'}   needs: {', '.join(spec.needs) or '-'}\n")
    console.print(Markdown(spec.doc))
    defaults = spec.defaults()
    if defaults:
        where = escape(f"(baseline TOML table [{spec.id}], or --set {spec.id}.NAME=VALUE)")
        console.print(f"\n[bold]Parameters[/bold] {where}")
        for k, v in defaults.items():
            console.print(escape(f"  {k} = {v!r}"))


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
        str, typer.Option("--format", help="table, json, or html (one self-contained page).")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option(help="Write to this file instead of stdout.")
    ] = None,
    fail_on: Annotated[
        str,
        typer.Option(
            help="Exit 1 on: drift (failing nodes, unreadable reports or drift), fail (failing "
            "nodes or unreadable reports only), none (never)."
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
        int | None, typer.Option(help="Worker processes that decode reports (default: CPUs, ≤ 8).")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Every row and every node, not the first 30.")
    ] = False,
) -> None:
    """Compare many node reports: which nodes fail, and which differ from their peers (drift)."""
    import io

    from preflight.cluster import aggregate, record, render, rules, sources
    from preflight.cluster import compare as comparison

    if fmt not in ("table", "json", "html") or fail_on not in comparison.FAIL_ON:
        typer.echo(
            "preflight: error: --format is table, json or html; --fail-on is "
            + " or ".join(comparison.FAIL_ON),
            err=True,
        )
        raise typer.Exit(ExitCode.USAGE)
    rule = rules.FactRule(tuple(ignore_fact or ()))
    try:
        gold = None
        if golden is not None:
            gold = comparison.golden_from(*record.read_file(str(golden)), rule)
        items = sources.expand(reports, sys.stdin.buffer)
        fleet = aggregate.collect(
            items, rule, "none" if gold else group_by, jobs, detail=fmt == "html"
        )
    except PreflightError as exc:
        raise _fail(exc) from None
    if fleet.reports == 0:
        typer.echo(f"preflight: error: no report found in {' '.join(reports)}", err=True)
        raise typer.Exit(ExitCode.USAGE)
    result = comparison.compare(fleet, "none (golden node)" if gold else group_by, gold)
    width = max(100, shutil.get_terminal_size((160, 24)).columns) if output is None else 160
    text = io.StringIO()
    if fmt == "json":
        render.render_json(result, text)
    elif fmt == "html":
        from preflight.cluster import html

        html.render_html(result, text)
    else:
        render.render_table(result, text, verbose, width)
    try:
        if output is None:
            sys.stdout.write(text.getvalue())
        else:
            output.write_text(text.getvalue(), encoding="utf-8")
    except OSError as exc:
        typer.echo(f"preflight: error: cannot write {output}: {exc.strerror}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    raise typer.Exit(result.exit_code(fail_on))


@profiles_app.command("list")
def profiles_list() -> None:
    """Built-in profiles with their descriptions."""
    from preflight.profile import builtin_names, resolve

    for name in builtin_names():
        typer.echo(f"{name:32} {resolve(name).get('description', '')}")


@profiles_app.command("show")
def profiles_show(name: Annotated[str, typer.Argument(help="Profile name or path")]) -> None:
    """Print the fully resolved profile (extends merged in) as JSON."""
    from preflight.profile import resolve

    try:
        data = resolve(name)
    except PreflightError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(data, indent=1, sort_keys=True))


@baselines_app.command("list")
def baselines_list() -> None:
    """Built-in baselines with their descriptions."""
    from preflight.baseline import builtin_names, load
    from preflight.registry import discover

    registry = discover()
    for name in builtin_names():
        typer.echo(f"{name:20} {load(name, registry).description}")


@baselines_app.command("show")
def baselines_show(name: Annotated[str, typer.Argument(help="Baseline name or path")]) -> None:
    """Print a baseline's resolved parameters (extends merged in) as JSON."""
    from preflight.baseline import load
    from preflight.registry import discover

    try:
        b = load(name, discover())
    except PreflightError as exc:
        raise _fail(exc) from None
    typer.echo(
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
        str | None, typer.Option(help="Write `extends = NAME`: a built-in name or a path.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the TOML to this file instead of stdout.")
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="Worker processes that decode reports.")] = None,
) -> None:
    """Pin what a known-good report (or the majority of many) shows into a baseline TOML."""
    from preflight.cluster import aggregate, genbaseline, sources
    from preflight.errors import UsageError
    from preflight.registry import discover

    try:
        fleet = aggregate.collect(sources.expand(reports, sys.stdin.buffer), None, group_by, jobs)
        if not fleet.nodes:
            problems = "; ".join(f"{s}: {e}" for s, e in fleet.unreadable[:3])
            raise UsageError(
                f"no readable report in {' '.join(reports)}"
                + (f" ({problems})" if problems else "")
            )
        text = genbaseline.generate(
            fleet, discover(), group, name, extends, str(output or "generated.toml")
        )
    except PreflightError as exc:
        raise _fail(exc) from None
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        typer.echo(f"preflight: error: cannot write {output}: {exc.strerror}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None


def main() -> None:
    """Console-script entry point."""
    app()
