"""Check parameters as baseline TOML: what `explain` and `list` print, so it can be pasted.

Values are TOML (`false`, `["a", "b"]`, `"performance"`, never Python's `False` or `()`); a
parameter whose value means "not set" is written commented out with its documentation, the one
spelling of unset a baseline has (TOML has no null).
"""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from typing import Any

WIDTH = 100


def doc(f: dataclasses.Field[Any]) -> str:
    """A field's documentation (`param(..., doc)`), or "" when it has none."""
    return str(f.metadata.get("doc", ""))


def is_unset(f: dataclasses.Field[Any], value: Any) -> bool:
    """Whether value means "not set" for this field: None, or the default of a field declared
    `unset=True` (a 0 or "" that says "no expectation")."""
    if value is None:
        return True
    return bool(f.metadata.get("unset")) and value == f.default


def value(v: Any) -> str:
    """A TOML value: booleans lower-case, strings quoted and escaped, tuples as arrays,
    dicts as inline tables."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{v!r} has no TOML spelling a parameter may take")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON's escapes are TOML basic-string ones
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(item) for item in v) + "]"
    if isinstance(v, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {value(x)}" for k, x in v.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"{type(v).__name__} has no TOML spelling")


def fields(params: type[Any]) -> tuple[dataclasses.Field[Any], ...]:
    """The parameter fields of a params dataclass."""
    return dataclasses.fields(params)


def default_of(f: dataclasses.Field[Any]) -> Any:
    """A field's default value."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def assignment(f: dataclasses.Field[Any], v: Any, width: int = WIDTH) -> str:
    """`name = value`, or `# name = (unset)` when v means not set; an array too long for
    width is written one item per line (TOML allows that)."""
    if is_unset(f, v):
        return f"# {f.name} = (unset)"
    line = f"{f.name} = {value(v)}"
    if len(line) <= width or not isinstance(v, (list, tuple)) or not v:
        return line
    return "\n".join([f"{f.name} = [", *(f"    {value(item)}," for item in v), "]"])


def snippet(check_id: str, params: type[Any], width: int = WIDTH) -> str:
    """The check's table with every parameter at its default, each after its documentation
    (wrapped to width): TOML a baseline can take as it is."""
    lines = [f"[{check_id}]"]
    for f in fields(params):
        text = doc(f)
        if text:
            lines.extend(textwrap.wrap(text, width, initial_indent="# ", subsequent_indent="# "))
        lines.append(assignment(f, default_of(f), width))
    return "\n".join(lines) + "\n"


def short(params: type[Any]) -> str:
    """One line for `list`: `name = value, other (unset)`."""
    out = []
    for f in fields(params):
        v = default_of(f)
        out.append(f"{f.name} (unset)" if is_unset(f, v) else f"{f.name} = {value(v)}")
    return ", ".join(out)
