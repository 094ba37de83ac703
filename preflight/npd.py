"""`preflight run --npd`: a Kubernetes node-problem-detector custom plugin's answer.

node-problem-detector (NPD) runs a custom plugin every `invoke_interval` and reads its exit code
(0 = OK, 1 = NonOK: a problem, anything else = Unknown) and its standard output, trimmed of
surrounding white space and cut at `max_output_length` bytes (default 80; NPD's
pkg/custompluginmonitor/types/config.go and plugin/plugin.go), as the node condition's message.
So the line says the node's remediation class and the failing checks first (`reset-gpu: FAIL
gpu.row_remap`, for a site's automation to act on), stays within the limit by itself (naming
how many it left out rather than being cut mid-word), and is ASCII so that a byte cut never
splits a character. A failed or errored check is a problem (as for `preflight run`'s exit
code); a run that could not happen at all (bad options, an unreadable baseline) is Unknown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from preflight.model import Report, Status

OK = 0
PROBLEM = 1
UNKNOWN = 2

MAX_OUTPUT_LENGTH = 80
"""NPD's default max_output_length: bytes of stdout that become the condition's message."""

_UNSAFE = re.compile(r"[^\x20-\x7e]")


def ascii_line(text: str) -> str:
    """One line of printable ASCII: anything else (newlines, control and non-ASCII characters
    from hostile text) becomes `?`."""
    return _UNSAFE.sub("?", text)


def _named(label: str, ids: Sequence[str], room: int) -> str:
    """`label a,b +3` with as many ids as fit in room characters (at least the count)."""
    if not ids:
        return ""
    out = f"{label} {len(ids)}"
    for k in range(len(ids), 0, -1):
        rest = len(ids) - k
        candidate = f"{label} " + ",".join(ids[:k]) + (f" +{rest}" if rest else "")
        if len(candidate) <= room:
            return candidate
    return out[:room]


def message(report: Report, strict: bool = False, limit: int = MAX_OUTPUT_LENGTH) -> str:
    """The condition message: the node's action class (when the limit leaves room for it), then
    failing checks, errored, and (with strict) warning ones; `OK` and the counts when nothing is
    wrong. At most `limit` characters of printable ASCII."""
    by: dict[Status, list[str]] = {s: [] for s in Status}
    for r in report.results:
        by[r.status].append(ascii_line(r.id))
    parts = [("FAIL", by[Status.FAIL]), ("ERROR", by[Status.ERROR])]
    if strict:
        parts.append(("WARN", by[Status.WARN]))
    parts = [(label, ids) for label, ids in parts if ids]
    if not parts:
        counts = report.counts
        line = f"OK {counts.get('pass', 0)} pass"
        if by[Status.WARN]:
            line += f", {len(by[Status.WARN])} warn: " + ",".join(by[Status.WARN])
        return line if len(line) <= limit else line[: limit - 3] + "..."
    prefix = "" if report.action is None else f"{report.action.value}: "
    shortest = "; ".join(f"{label} {len(ids)}" for label, ids in parts)
    if len(prefix) + len(shortest) > limit:
        prefix = ""  # the checks matter more than the class
    return prefix + _named_parts(parts, limit - len(prefix))


def _named_parts(parts: list[tuple[str, list[str]]], limit: int) -> str:
    """`FAIL a,b +3; ERROR c` in limit characters: each part gets the room the later ones leave
    at their shortest (`ERROR 3`)."""
    shortest = [len(f"; {label} {len(ids)}") for label, ids in parts]
    out: list[str] = []
    used = 0
    for k, (label, ids) in enumerate(parts):
        room = limit - used - (2 if out else 0) - sum(shortest[k + 1 :])
        text = _named(label, ids, max(room, 0))
        if not text:
            break
        out.append(text)
        used = len("; ".join(out))
    return "; ".join(out)[:limit]


def exit_code(report: Report, strict: bool = False) -> int:
    """1 when a check failed or errored (or warned, with strict), else 0."""
    statuses = {r.status for r in report.results}
    if statuses & {Status.FAIL, Status.ERROR} or (strict and Status.WARN in statuses):
        return PROBLEM
    return OK


def unknown(reason: str, limit: int = MAX_OUTPUT_LENGTH) -> str:
    """The message of a run that could not happen."""
    return ascii_line(f"UNKNOWN {reason}")[:limit]
