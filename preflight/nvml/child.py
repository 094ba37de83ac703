"""`python -m preflight.nvml.child`: run the NVML collector and print its record as JSON.

stdin carries one JSON object: `{"section": {...}}` (a profile's `nvml` section: the collector
talks to the fake NVML) or `{}` (the real libnvidia-ml through pynvml). Before each NVML call
the child writes `@call <function> <where>` to stderr, unbuffered, so that the parent, when its
deadline passes, knows which call never returned. The record goes to stdout at the end.

`--deadline SECONDS` arms SIGALRM as a second line of defence: a child orphaned by a killed
parent still ends (unless the kernel holds it in an uninterruptible call, which nothing can end).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from typing import Any

CALL_PREFIX = "@call "


def report(call: str, where: str) -> None:
    """Announce a call on stderr with one write(2): it must be out before the call can hang."""
    os.write(2, f"{CALL_PREFIX}{call} {where}\n".encode())


def deadline_of(argv: list[str]) -> float:
    """`--deadline SECONDS`, the one option (the parent's probe always passes it); 0 without.
    Read by hand: argparse would cost this child ~8 ms of CPU on every run."""
    if not argv:
        return 0.0
    if len(argv) != 2 or argv[0] != "--deadline":
        raise SystemExit(f"usage: python -m preflight.nvml.child [--deadline SECONDS], got {argv}")
    try:
        return float(argv[1])
    except ValueError:
        raise SystemExit(f"--deadline: not a number of seconds: {argv[1]!r}") from None


def main(argv: list[str] | None = None) -> int:
    deadline = deadline_of(sys.argv[1:] if argv is None else argv)
    if deadline > 0:
        signal.alarm(math.ceil(deadline) + 2)
    request: dict[str, Any] = json.loads(sys.stdin.read() or "{}")
    from preflight.nvml.collector import collect, live_api

    if "section" in request:
        from preflight.nvml.fake import FakeNvml

        api: Any = FakeNvml(request["section"])
    else:
        api = live_api()
    record = collect(api, report)
    sys.stdout.write(json.dumps(record, sort_keys=True))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
