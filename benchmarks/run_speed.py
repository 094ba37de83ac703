"""Time `preflight run --profile dgx-h100` as a whole process, and prove its import path is light.

Usage: python benchmarks/run_speed.py [--runs 10] [--profile dgx-h100] [--budget-s 1.0]

Prints min/median/max wall time over the runs and the modules that must never load on this path
(torch, pynvml). Exits 1 when the median exceeds the budget or a heavy module was imported, so
it can gate a release; it is not part of the unit tests, where timing would flake on a busy
machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "pynvml", "numpy")

PROBE = """
import sys
from preflight.cli import app
try:
    app(["run", "--profile", {profile!r}, "--format", "json", "--output", "/dev/null"])
except SystemExit:
    pass
print(__import__("json").dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--profile", default="dgx-h100")
    parser.add_argument("--budget-s", type=float, default=1.0)
    args = parser.parse_args()
    cmd = [
        sys.executable,
        "-m",
        "preflight",
        "run",
        "--profile",
        args.profile,
        "--format",
        "json",
        "--output",
        "/dev/null",
    ]
    subprocess.run(cmd, capture_output=True, check=False)  # warm the page cache and .pyc files
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            print(proc.stderr.decode(), file=sys.stderr)
            return 1
    probe = subprocess.run(
        [sys.executable, "-c", PROBE.format(profile=args.profile, heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=False,
    )
    heavy = json.loads(probe.stdout.strip().splitlines()[-1])
    median = statistics.median(times)
    print(
        f"preflight run --profile {args.profile}: {args.runs} runs, "
        f"min {min(times):.3f} s, median {median:.3f} s, max {max(times):.3f} s"
    )
    print(f"heavy modules imported: {', '.join(heavy) or 'none'}")
    return 0 if median <= args.budget_s and not heavy else 1


if __name__ == "__main__":
    raise SystemExit(main())
