"""`preflight ack`: an operator says the Xids logged so far on a GPU (or all) were dealt with.

After a GPU reset the Xid that called for it stays in the kernel log until the next reboot, and
a since-boot check would keep the node drained (azurehpc PR #648 kept nodes drained until
logrotate; gpud #1072 asks for a way to mark a node healthy after a reset). The acknowledgement
is a watermark per GPU: the newest Xid line's dmesg stamp (and the line count, for lines without
one) in this boot's log. `run --state DIR` then passes those Xids and says who acknowledged
them when; a newer Xid fails again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from preflight.errors import PreflightError, UsageError
from preflight.host import Host
from preflight.inventory import Inventory
from preflight.inventory.xid import XidEvent
from preflight.outfile import OutputError
from preflight.state import WARNING_TAIL, Say, boot_id
from preflight.state.store import MAX_ACKS, MAX_MARKS, MAX_TEXT, now_iso, update

_BDF = re.compile(r"(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


class AckFailed(PreflightError):
    """The acknowledgement could not be recorded (exit 1: nothing changed)."""


def parse_gpu(text: str) -> str:
    """`0000:5d:00.0` or `5d:00.0` → `0000:5d:00.0`, as Xid events name a GPU."""
    m = _BDF.fullmatch(text.strip().lower())
    if m is None:
        raise UsageError(f"--gpu {text!r}: expected a PCI address such as 0000:5d:00.0")
    return f"{m.group(1) or '0000'}:{m.group(2)}:{m.group(3)}.{m.group(4)}"


def who(by: str | None, env: Mapping[str, str]) -> str:
    """--by, else the user behind sudo, else the user; `unknown` when none is set."""
    name = by if by is not None else env.get("SUDO_USER") or env.get("USER") or env.get("LOGNAME")
    if by is not None and not _NAME.fullmatch(by):
        raise UsageError("--by: expected a name of 1 to 64 printable characters")
    return name if name and _NAME.fullmatch(name) else "unknown"


def run_ack(host: Host, path: str, gpu: str | None, by: str, say: Say) -> str:
    """Record the acknowledgement; the line that says what was acknowledged."""
    log = Inventory(host).xid
    if not log.readable:
        raise AckFailed("the kernel log is not readable (run as root): nothing acknowledged")
    said: list[str] = []
    marks = acknowledge(path, list(log.events), boot_id(host), gpu, by, said.append)
    if marks is None:  # the last line says why: it is the error, not a warning
        why = said.pop().removeprefix("preflight: warning: ").removesuffix(WARNING_TAIL)
        for line in said:
            say(line)
        raise OutputError(f"{why}: nothing acknowledged")
    for line in said:
        say(line)
    if not marks:
        where = f"GPU {gpu}" if gpu else "any GPU"
        return f"acknowledged by {by}: no Xid logged on {where} in this boot (recorded)"
    parts = [f"{bdf} ({m['count']} lines)" for bdf, m in sorted(marks.items())]
    return f"acknowledged by {by}: Xids so far on {', '.join(parts)}; later ones count again"


def marks_for(events: Sequence[XidEvent], gpu: str | None) -> dict[str, dict[str, Any]]:
    """Per GPU (or the one named), the newest Xid line's stamp and how many lines it has."""
    marks: dict[str, dict[str, Any]] = {}
    for event in events:
        if gpu is not None and event.bdf != gpu:
            continue
        mark = marks.setdefault(event.bdf, {"timestamp_s": None, "count": 0})
        mark["count"] += 1
        if event.timestamp_s is not None:
            mark["timestamp_s"] = max(mark["timestamp_s"] or 0.0, event.timestamp_s)
    return dict(list(marks.items())[:MAX_MARKS])


def acknowledge(
    path: str, events: Sequence[XidEvent], boot: str | None, gpu: str | None, by: str, say: Say
) -> dict[str, dict[str, Any]] | None:
    """Record an acknowledgement of the Xids logged so far; the marks, or None when the state
    could not be written (said)."""
    marks = marks_for(events, gpu)
    ack = {"at": now_iso(), "by": by[:MAX_TEXT], "gpu": gpu, "boot_id": boot, "marks": marks}

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        # Acks of an earlier boot point into a kernel log that is gone.
        kept = [a for a in doc["acks"] if a["boot_id"] == boot]
        doc["acks"] = [*kept, ack][-MAX_ACKS:]
        return doc

    return marks if update(path, change, say) else None
