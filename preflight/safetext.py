"""Text from a node on its way to a terminal: control characters shown escaped, never markup.

Hostnames, profile paths, NCCL settings, fact values, scontrol reasons and check summaries come
from the node or from whoever wrote a profile or report. An ESC in them could move the cursor,
retitle the terminal or hide lines; `[/b]` in them is rich markup. Every console here is made by
`console()` (markup and emoji off), and node text goes through `clean()` on its way in.
"""

from __future__ import annotations

import re
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported when a table is drawn, not for JSON or Prometheus
    from rich.console import Console
    from rich.text import Text

_UNSAFE = re.compile(
    # C0 controls but tab and newline, DEL and C1 controls, lone surrogates (undecodable bytes of
    # a file name), and the bidirectional overrides that reorder what a terminal shows.
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]"
)
_UNSAFE_LINE = re.compile(_UNSAFE.pattern[:-1] + "\n\t]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0x0A:
        return "\\n"
    if code == 0x09:
        return "\\t"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: object) -> str:
    """The text with every control character (but tab and newline) as a visible escape: ESC as
    `\\x1b`, a lone surrogate as `\\udcff`."""
    return _UNSAFE.sub(_escape, str(text))


def clean_line(text: object) -> str:
    """Like clean, with newlines and tabs escaped too: for one-line messages."""
    return _UNSAFE_LINE.sub(_escape, str(text))


def cell(text: object, style: str = "") -> Text:
    """A rich Text of node text: shown literally (`[node7]` stays), control characters escaped."""
    from rich.text import Text

    return Text(clean(text), style=style)


def console(out: IO[str], width: int, color: bool = False) -> Console:
    """A console that never interprets markup or emoji codes in the strings it is given."""
    from rich.console import Console

    return Console(
        file=out,
        width=width,
        no_color=not color,
        force_terminal=color,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=False,
    )
