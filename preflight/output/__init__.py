"""Renderers: one signature each, no globals: render(report, out, options)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
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


_RENDERERS = {
    "table": ("table", "render"),
    "json": ("jsonfmt", "render"),
    "jsonl": ("jsonfmt", "render_line"),
    "junit": ("junit", "render"),
    "prometheus": ("prometheus", "render"),
}


class _Renderers(Mapping[str, Renderer]):
    """Renderers by format name, each module imported when its format is asked for: `run
    --format json` never loads rich's table nor the XML library."""

    def __getitem__(self, name: str) -> Renderer:
        module, attr = _RENDERERS[name]
        renderer: Renderer = getattr(importlib.import_module(f"preflight.output.{module}"), attr)
        return renderer

    def __iter__(self) -> Iterator[str]:
        return iter(_RENDERERS)

    def __len__(self) -> int:
        return len(_RENDERERS)


def renderers() -> Mapping[str, Renderer]:
    """Output formats by name (imported on demand so `run` loads only the one it uses)."""
    return _Renderers()


FORMATS = ("table", "json", "jsonl", "junit", "prometheus")
