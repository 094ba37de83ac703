"""Kernel log lines as the parsers read them: one printed line each, with the dmesg stamp known.

/dev/kmsg keeps a printk call with several lines as one record and escapes its newlines as
`\\x0a` (the NVIDIA driver prints "The NVIDIA GPU ... has fallen off the bus" that way, in three
lines); dmesg and journalctl show them as separate lines. `split_records` gives the parsers
the dmesg view of either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_LINE = 2048
"""Longer lines are cut: printk caps a record at 1024 bytes, a syslog prefix adds little."""

# "[  123.456789] ", "<4>[123.4] " (/proc/kmsg), "[+0.000004] " (dmesg -d) after any syslog or
# journal prefix; captured only at the start of the text the parsers see.
TIMESTAMP_RE = re.compile(r"^(?:<\d{1,3}>)?\[\s*(?P<ts>\d{1,12}\.\d{1,9})\]")


def split_records(lines: Iterable[str]) -> list[str]:
    """Each record's printed lines: embedded newlines and kmsg's `\\x0a` escapes split it."""
    out: list[str] = []
    for record in lines:
        text = record[:MAX_LINE]
        for part in text.replace("\\x0a", "\n").split("\n"):
            out.append(part.rstrip("\r"))
    return out


def timestamp_s(line: str) -> float | None:
    """Seconds since boot when the line starts with dmesg's stamp, else None."""
    m = TIMESTAMP_RE.match(line.strip())
    return float(m.group("ts")) if m else None
