"""What the terminal asks for: colour (NO_COLOR, FORCE_COLOR, a tty) and width (COLUMNS, the
terminal's size), the same for every command."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import IO

WIDTH_LIMITS = (40, 500)  # a hostile or mistyped COLUMNS neither crushes nor balloons a table


def wants_color(stream: IO[str], env: Mapping[str, str] | None = None) -> bool:
    """NO_COLOR (any non-empty value, no-color.org) wins; then FORCE_COLOR (non-empty and not
    0/false); else colour only on a terminal."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR", "").strip().lower() not in ("", "0", "false"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def width(fallback: int = 160) -> int:
    """COLUMNS, else the terminal's width, else `fallback` (output to a pipe or a file), kept
    within WIDTH_LIMITS."""
    low, high = WIDTH_LIMITS
    return min(high, max(low, shutil.get_terminal_size((fallback, 24)).columns))
