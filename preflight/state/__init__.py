"""Memory across runs (`run --state DIR`, `preflight ack`): one small JSON file in DIR.

It holds the last run's since-boot counters (so the next run turns them into rates), the
operator's Xid acknowledgements, and the last HISTORY runs' outcomes (a node that fails again
after a repair is a lemon). Nothing is written without --state (or the site config's
`state_dir`).

Everything in DIR is hostile input and never a reason to stop a health check: a corrupt,
oversized or foreign file, a symlink, an unwritable directory or a lock another run holds past
LOCK_WAIT_S is one warning line on stderr, and the run goes on without memory. DIR is created
0700, the files 0600; no path is followed out of DIR (O_NOFOLLOW, and a symlink in DIR is
refused, not replaced). Reads and read-modify-writes happen under an fcntl lock on
DIR/state.lock, each held for milliseconds, so concurrent runs interleave whole updates; the
file is replaced atomically (outfile.replace_atomically), so a crash leaves the old one.

`store` keeps the file safe; `run` turns it into what the checks see and records each run;
`preflight.ack` adds acknowledgements.
"""

from __future__ import annotations

from preflight.state.run import HISTORY_CHECK, RunState, boot_id, lemon, memory_of
from preflight.state.store import (
    HISTORY,
    LOCK_WAIT_S,
    MAX_BYTES,
    WARNING_TAIL,
    Say,
    StateUnusable,
    empty,
    update,
    validate,
)

__all__ = [
    "HISTORY",
    "HISTORY_CHECK",
    "LOCK_WAIT_S",
    "MAX_BYTES",
    "WARNING_TAIL",
    "RunState",
    "Say",
    "StateUnusable",
    "boot_id",
    "empty",
    "lemon",
    "memory_of",
    "update",
    "validate",
]
