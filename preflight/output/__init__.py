"""Renderers: one signature each, no globals: render(report, out, options)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from preflight.model import Report


@dataclass(frozen=True)
class RenderOptions:
    """What a renderer may vary on."""

    verbose: bool = False
    color: bool = False
    width: int = 120
    problems: bool = False  # the table shows only the checks that did not pass or skip


Renderer = Callable[[Report, TextIO, RenderOptions], None]


def renderers() -> dict[str, Renderer]:
    """Output formats by name (imported on demand so `run` loads only the one it uses)."""
    from preflight.output import jsonfmt, junit, prometheus, table

    return {
        "table": table.render,
        "json": jsonfmt.render,
        "jsonl": jsonfmt.render_line,
        "junit": junit.render,
        "prometheus": prometheus.render,
    }


FORMATS = ("table", "json", "jsonl", "junit", "prometheus")
