"""The Prometheus text exposition format: label escaping, sample values, metric families.

Shared by `run --format prometheus` (preflight.output.prometheus) and the benchmarks' own
metrics; it knows nothing of reports or checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from preflight.safetext import clean

PREFIX = "preflight_"


def escape(value: str) -> str:
    """A label value as the text format spells it: backslash, double quote and newline escaped
    (other control characters first shown as visible escapes, which the text format cannot
    carry)."""
    return clean(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(**pairs: str) -> str:
    """`{a="x",b="y"}`, or nothing for no labels."""
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in pairs.items()) + "}"


def number(value: float) -> str:
    """A sample value: integers without a decimal point, floats as Python writes them."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Family:
    """One metric: HELP, TYPE, then its samples."""

    def __init__(self, name: str, help_text: str, kind: str = "gauge") -> None:
        self.lines = [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} {kind}"]
        self.name = PREFIX + name

    def add(self, value: float, **pairs: str) -> Family:
        """Append one sample."""
        self.lines.append(f"{self.name}{labels(**pairs)} {number(value)}")
        return self


def write(families: Sequence[Family], out: TextIO) -> None:
    """The exposition text, ending with a newline as the format requires."""
    for family in families:
        out.write("\n".join(family.lines))
        out.write("\n")
