"""Node lists in Slurm's hostlist notation: gpu-[001-004,007], as `scontrol show hostlist` prints.

Names that end in digits are grouped by prefix and digit count (zero padding is kept); a run of
consecutive numbers becomes a range. Other names are listed as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TAIL = re.compile(r"^(.*?)(\d+)$")


def compress(names: Iterable[str]) -> str:
    """`n1 n2 n3 n7 login` → `login,n[1-3,7]`."""
    plain: set[str] = set()
    numbered: dict[tuple[str, int], set[int]] = {}
    for name in names:
        m = _TAIL.match(name)
        if m is None:
            plain.add(name)
        else:
            prefix, digits = m.groups()
            numbered.setdefault((prefix, len(digits)), set()).add(int(digits))
    parts: list[tuple[tuple[str, int], str]] = [((name, -1), name) for name in plain]
    for (prefix, width), numbers in numbered.items():
        ranges = _ranges(sorted(numbers))
        if len(numbers) == 1:
            text = f"{prefix}{ranges[0][0]:0{width}d}"
        else:
            inner = ",".join(
                f"{a:0{width}d}" if a == b else f"{a:0{width}d}-{b:0{width}d}" for a, b in ranges
            )
            text = f"{prefix}[{inner}]"
        parts.append(((prefix, min(numbers)), text))
    return ",".join(text for _, text in sorted(parts))


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def shorten(text: str, limit: int) -> str:
    """Cut a long list at a comma boundary, saying so."""
    if len(text) <= limit:
        return text
    cut = text.rfind(",", 0, limit)
    return text[: cut if cut > 0 else limit] + ",…"
