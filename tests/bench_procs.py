"""Start `python -m preflight` rank processes for the benchmark tests, always with a timeout."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from preflight.bench.env import TOKEN_ENV
from preflight.bench.launch import free_port

ROOT = Path(__file__).resolve().parent.parent
# Variables of a launcher the test itself may run under; the ranks must not inherit them.
LAUNCHER_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_USE_AGENT_STORE",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "PREFLIGHT_BENCH_LAUNCHED",
)


TOKEN = secrets.token_hex(16)
"""The job secret the tests' hand-started and torchrun ranks share (PREFLIGHT_BENCH_TOKEN)."""


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without launcher variables or test hooks, plus a job token and extra."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in LAUNCHER_VARS and not k.startswith("PREFLIGHT_BENCH_TEST_")
    }
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env[TOKEN_ENV] = TOKEN
    env.update(extra or {})
    return env


def preflight(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """`python -m preflight ARGS` to completion (or the timeout, which fails the test)."""
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def python_c(
    code: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 90,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """`python -c CODE ARGS` to completion, the way `preflight` above runs."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


@dataclass
class Rank:
    rank: int
    proc: subprocess.Popen[str]
    started: float
    ended: float | None = None
    out: str = ""
    err: str = ""


def start_ranks(
    world: int,
    ranks: Sequence[int],
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> list[Rank]:
    """Start the given ranks of a world of `world` by hand, as srun or a script would."""
    port_text = str(port or free_port())
    out = []
    for r in ranks:
        e = clean_env(
            {
                **(env or {}),
                "RANK": str(r),
                "WORLD_SIZE": str(world),
                "LOCAL_RANK": str(r),
                "LOCAL_WORLD_SIZE": str(world),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port_text,
            }
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "preflight", *args],
            env=e,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        out.append(Rank(r, proc, time.monotonic()))
    return out


def wait_all(ranks: Sequence[Rank], timeout: float) -> None:
    """Wait for every rank, recording when each ended; kill and fail on the timeout."""
    deadline = time.monotonic() + timeout
    while any(r.ended is None for r in ranks):
        for r in ranks:
            if r.ended is None and r.proc.poll() is not None:
                r.ended = time.monotonic()
        if time.monotonic() > deadline:
            for r in ranks:
                if r.proc.poll() is None:
                    r.proc.kill()
            for r in ranks:
                r.proc.communicate(timeout=10)
            raise AssertionError(f"ranks still running after {timeout} s: a wait is unbounded")
        time.sleep(0.02)
    for r in ranks:
        r.out, r.err = r.proc.communicate(timeout=10)


def error_lines(text: str) -> list[str]:
    """The 'preflight: error:' lines of a rank's stderr."""
    return [line for line in text.splitlines() if line.startswith("preflight: error:")]
