"""Option values typer hands back unchanged, given back without importing pydantic.

typer (0.2x) coerces every option's value, its default included, through a pydantic
TypeAdapter, built on first use: importing pydantic costs ~390 M instructions (~160 ms of CPU),
more than the rest of typer and rich together, and a `preflight run` never needs it. What
preflight's options receive is almost always a value the adapter returns as it is: None for an
option not given, a `str` for a `str` option, an `int` or `float` default, a parser's answer,
`str` items of a repeatable option. Those are answered here; every other value (a number typed
on the command line, a path, a parser that refuses) goes through typer's own coercion, which
raises the error it always did. tests/test_cli_values.py checks, for every option of every
command, that the answers are the ones typer's coercion gives.
"""

from __future__ import annotations

import re
from typing import Any

_UNCHANGED = (str, int, float)
"""Annotations whose adapter returns a value of exactly that type as it is."""
_DIGITS = re.compile(r"(?:0|[1-9][0-9]{0,17})")


class _Coercion:
    """One parameter's coercion: the common values here, the rest through typer's."""

    def __init__(self, param: Any) -> None:
        self._param = param

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multiple = param.multiple or param.nargs == -1
        if value is None:  # typer's RuntimeParam.coerce answers None before any adapter
            return () if multiple else None
        found = _unchanged(self._param.type_descriptor, value, multiple)
        if found is not _TYPER:
            return found
        from typer._coercion import build_runtime_param  # imports pydantic

        if self._param._runtime_param is None:
            self._param._runtime_param = build_runtime_param(self._param.type_descriptor)
        return self._param._runtime_param.coerce(value, param=param, ctx=ctx)


_TYPER = object()
"""_unchanged's answer for a value that needs typer's coercion."""


def _unchanged(descriptor: Any, value: Any, multiple: bool) -> Any:
    """What typer's adapter returns for `value`, when that is known without it; else _TYPER."""
    if descriptor.file_annotation is not None:
        return _TYPER
    annotation = descriptor.annotation
    parser = descriptor.parameter_info.parser
    if multiple:
        # list[str]: the adapter validates each item and answers a list.
        of_str = getattr(annotation, "__origin__", None) is list
        of_str = of_str and getattr(annotation, "__args__", ()) == (str,)
        items = isinstance(value, (list, tuple)) and all(type(v) is str for v in value)
        return list(value) if of_str and parser is None and items else _TYPER
    if parser is not None:
        # The adapter is Annotated[Any, BeforeValidator(parser)]: the parser's answer as it is.
        # A parser that raises is called again by typer, which words the error.
        try:
            return parser(value)
        except Exception:
            return _TYPER
    info = descriptor.parameter_info
    bounded = info.min is not None or info.max is not None or info.clamp
    if annotation in _UNCHANGED and type(value) is annotation and not bounded:
        return value
    if annotation is int and type(value) is str and _DIGITS.fullmatch(value) and not bounded:
        return int(value)  # `--level 2`: plain decimal digits, as the adapter reads them
    return _TYPER


def install() -> bool:
    """Route typer's option coercion through _Coercion; False (nothing done) for a typer
    without the pydantic layer (before 0.2x), which has nothing to avoid."""
    try:
        from typer.core import _TyperParameter
    except ImportError:
        return False
    if not hasattr(_TyperParameter, "get_runtime_param"):
        return False

    def get_runtime_param(self: Any) -> Any:
        return _Coercion(self)

    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
    return True
