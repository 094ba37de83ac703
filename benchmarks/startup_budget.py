"""Start-up budget: CPU of whole `preflight` processes against a minimal Typer app's floor.

Usage: python benchmarks/startup_budget.py [--runs 15] [--budget 2.0]

The floor is the least a Typer + rich command-line tool costs: a Typer app with two options that
prints a rich table and a JSON line. Each command below is run as a whole process, interleaved
with the floor in every round (so machine load hits both alike), and measured by the CPU it used
(user + system of the child, from wait4), which a busy machine inflates far less than wall time.
Prints each command's median CPU and its ratio to the floor's median; exits 1 when a `run`
command exceeds the budget ratio (issue 2/7: at most 2× the floor; `--help` stays at the floor).
Not a unit test: timing belongs in benchmark scripts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

FLOOR_APP = """
import json
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False)


@app.command()
def main(name: str = "node", count: int = 3) -> None:
    table = Table("check", "status")
    for i in range(count):
        table.add_row(f"{name}.{i}", "PASS")
    Console().print(table)
    print(json.dumps({"name": name, "count": count}))


app()
"""


def cpu_seconds(cmd: list[str]) -> float:
    """Run `cmd` to completion with output discarded; the child's user + system CPU seconds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--budget", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        floor_py = os.path.join(tmp, "floor_app.py")
        with open(floor_py, "w", encoding="utf-8") as fh:
            fh.write(FLOOR_APP)
        py = [sys.executable, "-I"]
        commands = {
            "floor (typer app: rich table + JSON line)": [*py, floor_py],
            "preflight --help": [*py, "-m", "preflight", "--help"],
            "preflight run (live)": [*py, "-m", "preflight", "run", "--format", "json"],
            "preflight run --profile dgx-h100": [
                *py,
                "-m",
                "preflight",
                "run",
                "--profile",
                "dgx-h100",
                "--format",
                "json",
            ],
        }
        for cmd in commands.values():  # warm the page cache and .pyc files
            cpu_seconds(cmd)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                samples[name].append(cpu_seconds(cmd))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    floor = medians[next(iter(commands))]
    over = []
    for name, median in medians.items():
        ratio = median / floor
        spread = f"min {min(samples[name]) * 1e3:.0f}, max {max(samples[name]) * 1e3:.0f}"
        print(f"{name:45} median CPU {median * 1e3:6.0f} ms ({spread})  {ratio:4.2f}× floor")
        if name.startswith("preflight run") and ratio > args.budget:
            over.append(name)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} interleaved rounds")
    if over:
        print(f"over the {args.budget}× budget: {', '.join(over)}")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
