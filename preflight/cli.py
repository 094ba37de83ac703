"""The `preflight` command line: wiring only; the work lives in app, registry, output."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from preflight import __version__
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
    fmt: Annotated[str, typer.Option("--format", help="table, json or junit.")] = "table",
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
        )
        report = execute(options)
    except PreflightError as exc:
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
    else:
        render(report, sys.stdout, opts)
    raise typer.Exit(for_report(report, strict))


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
        console.print(
            "\n[bold]Parameters[/bold] (baseline TOML table ["
            + spec.id
            + "], or --set "
            + spec.id
            + ".NAME=VALUE)"
        )
        for k, v in defaults.items():
            console.print(f"  {k} = {v!r}")


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


def main() -> None:
    """Console-script entry point."""
    app()
