"""`run` options that come from the command line or the site config: the drain circuit
breaker's limit and the state directory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from preflight import siteconfig
from preflight.errors import ConfigError, UsageError
from preflight.safetext import clean_line

if TYPE_CHECKING:
    from preflight.drain_guard import DrainLimit
    from preflight.state import RunState


def drain_limits(
    max_drained: str | None, scope: str | None, drain: bool, env: Mapping[str, str]
) -> tuple[DrainLimit, str] | None:
    """--max-drained/--max-drained-scope, else the site config's; None: no limit."""
    if (max_drained is not None or scope is not None) and not drain:
        raise UsageError("--max-drained and --max-drained-scope need --slurm-drain")
    if scope is not None and max_drained is None:
        raise UsageError("--max-drained-scope needs --max-drained")
    if not drain:
        return None
    from preflight import drain_guard  # only a draining run needs it

    if max_drained is not None:
        return drain_guard.parse_limit(max_drained), drain_guard.parse_scope(scope or "partition")
    site = siteconfig.load(env)
    if site.max_drained is None:
        return None
    try:
        limit = drain_guard.parse_limit(site.max_drained)
    except UsageError as exc:
        raise ConfigError(f"config {site.source}: max_drained: {exc}") from None
    return limit, site.max_drained_scope or "partition"


def state_dir(state: Path | None, profile: str | None, env: Mapping[str, str]) -> str | None:
    """--state, else (on a live node only: a profile is not this node) the site's state_dir."""
    if state is not None:
        if not str(state):
            raise UsageError("--state: expected a directory")
        return str(state)
    if profile is not None:
        return None
    return siteconfig.load(env).state_dir


def say_warning(line: str) -> None:
    typer.echo(clean_line(line), err=True)


def open_state(state: Path | None, profile: str | None, env: Mapping[str, str]) -> RunState | None:
    """The run's state directory, read; None without --state or state_dir."""
    path = state_dir(state, profile, env)
    if not path:
        return None
    from preflight.state import RunState  # only a run with a state directory needs it

    return RunState.open(path, say_warning)
