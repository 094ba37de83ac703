"""Replay of real kernel log lines (tests/data/real/kernel-log/) through the Xid parser and the
kernel event catalogue, each compared with the ground truth written next to it.

A sample file is a log in the order it was printed: `# ` header lines (source, date, kind), then
`<truth>TAB<line>`. Truth is `xid=N bdf=B action=A [cause=N]` (an Xid line), `lost bdf=B
action=A` (a GPU that fell off the bus without an Xid), `kernel=ID subject=S action=A` (a row of
the kernel event catalogue), `none` (neither parser may report the line) or `-` (a line that
belongs to the event on an earlier line).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from preflight.host import Host
from preflight.inventory.kernel_events import KernelLog, scan
from preflight.inventory.xid import XidLog, parse_xids
from preflight.sources.kernel_log import ProfileKernelLog

REAL = Path(__file__).parent / "data" / "real" / "kernel-log"
FILES = sorted(REAL.glob("*.txt"))


def load(path: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    header: dict[str, str] = {}
    rows = []
    for raw in path.read_text().splitlines():
        if raw.startswith("# "):
            key, _, value = raw[2:].partition(": ")
            header[key] = value
            continue
        truth, _, line = raw.partition("\t")
        rows.append((truth, line))
    return header, rows


def reported(lines: list[str]) -> dict[str, list[str]]:
    """Each line's reports, as truth strings."""
    out: dict[str, list[str]] = {}
    for e in parse_xids(lines):
        if e.xid is None:
            text = f"lost bdf={e.bdf} action={e.action}"
        else:
            text = f"xid={e.xid} bdf={e.bdf} action={e.action}"
            if e.cause_xid is not None:
                text += f" cause={e.cause_xid}"
        out.setdefault(e.line, []).append(text)
    for k in scan(lines):
        out.setdefault(k.line, []).append(
            f"kernel={k.pattern} subject={k.subject} action={k.action}"
        )
    return out


def test_every_sample_names_its_source_and_date() -> None:
    assert len(FILES) >= 5
    for path in FILES:
        header, rows = load(path)
        assert header.get("source", "").startswith(("https://", "leptonai/")), path.name
        assert header.get("date") and header.get("kind", "").startswith("real"), path.name
        assert rows, path.name


def test_at_least_thirty_real_lines_from_five_sources() -> None:
    judged = [t for p in FILES for t, _ in load(p)[1] if t != "-"]
    assert len(judged) >= 30
    sources = {
        load(p)[0]["source"].split("/")[3] for p in FILES if "github.com" in load(p)[0]["source"]
    }
    assert len(sources) >= 5, sources


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_replay_matches_ground_truth(path: Path) -> None:
    _, rows = load(path)
    lines = [line for _, line in rows]
    got = reported(lines)
    for truth, line in rows:
        if truth == "-":
            continue
        expected = [] if truth == "none" else [truth]
        assert got.get(line.strip(), []) == expected, line


def test_every_reported_line_survives_a_snapshot() -> None:
    # A snapshot keeps the lines containing a word some reader searched for; the rest become "".
    for path in FILES:
        lines = [line for _, line in load(path)[1]]
        host = Host(env={}, kernel=ProfileKernelLog(lines)).recorded()
        read = (KernelLog.read(host), XidLog.read(host))
        assert host.recording is not None
        kept = host.recording.kept_log()
        assert kept is not None and len(kept) == len(lines)
        replay = Host(env={}, kernel=ProfileKernelLog(kept))
        assert (KernelLog.read(replay), XidLog.read(replay)) == read, path
