"""Read all_reduce_perf tables: the real nccl-tests captures, and what `bench allreduce` prints."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# " 0: " is srun --label's prefix on every line of rank 0's output.
LABEL = re.compile(r"^\s*\d+: ")
RANK = re.compile(r"^#\s+Rank\s+(\d+)\b")
NUM = r"(\d+(?:\.\d+)?)"
HALF = rf"\s+{NUM}\s+{NUM}\s+{NUM}\s+(\d+|N/A)"
ROW = re.compile(rf"^\s*(\d+)\s+(\d+)\s+(\w+)\s+(\w+)\s+(-?\d+)(?:{HALF})(?:{HALF})?\s*$")


@dataclass
class Half:
    """One of the out-of-place / in-place column groups."""

    time_us: float
    time_text: str
    algbw: float
    busbw: float
    wrong: int | None


@dataclass
class TableRow:
    bytes: int
    count: int
    type: str
    redop: str
    halves: list[Half]


@dataclass
class Table:
    ranks: int | None
    rows: list[TableRow] = field(default_factory=list)


def parse(text: str) -> list[Table]:
    """Every table in the text, each with the rank count its 'Rank N' lines give."""
    tables: list[Table] = []
    ranks: set[int] = set()
    current: Table | None = None
    for raw in text.splitlines():
        line = LABEL.sub("", raw, count=1)
        m = RANK.match(line)
        if m:
            if current is not None:
                current, ranks = None, set()
            ranks.add(int(m.group(1)))
            continue
        m = ROW.match(line)
        if not m:
            continue
        if current is None:
            current = Table(max(ranks) + 1 if ranks else None)
            tables.append(current)
        g = m.groups()
        halves = []
        for base in (5, 9):
            if g[base] is None:
                continue
            wrong = None if g[base + 3] == "N/A" else int(g[base + 3])
            halves.append(
                Half(float(g[base]), g[base], float(g[base + 1]), float(g[base + 2]), wrong)
            )
        current.rows.append(TableRow(int(g[0]), int(g[1]), g[2], g[3], halves))
    return tables
