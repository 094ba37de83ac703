"""Every wait is bounded: a rank that never joins, dies or hangs ends the others in time, and the
--nproc parent leaves no process behind. Ranks are started by hand (as srun would) or by --nproc;
every process has a timeout, so a hang fails the test instead of stalling it."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.bench_procs import error_lines, preflight, start_ranks, wait_all

pytest.importorskip("torch")

SWEEP = ["bench", "allreduce", "--backend", "gloo", "--sizes", "1K,4K,16K,64K"]
SWEEP += ["--iters", "20", "--warmup", "2"]
# Starting a rank (importing torch) takes seconds on a loaded 2-core machine: the bounds below
# are the timeout under test plus this allowance (four ranks importing torch at once on two busy
# cores took 15 s: the allowance still tells a bounded wait from a hang, which runs to the wait).
STARTUP_S = 25.0


def test_ranks_that_never_join() -> None:
    """Two worlds at once. World size 3 with ranks 0 and 1 started: both fail after
    --init-timeout, naming the world size, who arrived and who is missing. World size 2 with
    only rank 1: rank 0, which serves the store, never comes; rank 1 says so in time."""
    three = start_ranks(3, [0, 1], [*SWEEP, "--init-timeout", "3"])
    lone = start_ranks(2, [1], [*SWEEP, "--init-timeout", "2"])
    wait_all([*three, *lone], timeout=3 + STARTUP_S + 10)
    for r in three:
        assert r.proc.returncode == 1, r.err
        [line] = error_lines(r.err)
        assert "2 of 3 ranks arrived within 3 s (world size 3)" in line
        assert "arrived: ranks 0-1" in line and "missing: rank 2" in line
        assert "Traceback" not in r.err
        assert r.ended is not None and r.ended - r.started < 3 + STARTUP_S
    [r] = lone
    assert r.proc.returncode == 1
    [line] = error_lines(r.err)
    assert "store at 127.0.0.1:" in line and "served by rank 0" in line
    assert "could not be reached within 2 s (world size 2)" in line


def test_a_rank_that_dies_mid_sweep() -> None:
    """Test hook: rank 1 exits after 30 collectives; rank 0 ends within --op-timeout of that."""
    ranks = start_ranks(
        2, [0, 1], [*SWEEP, "--op-timeout", "10"], {"PREFLIGHT_BENCH_TEST_EXIT_AFTER": "1:30"}
    )
    wait_all(ranks, timeout=10 + STARTUP_S + 10)
    zero, one = ranks
    assert one.proc.returncode == 17
    assert zero.proc.returncode == 1
    assert zero.ended is not None and one.ended is not None
    assert zero.ended - one.ended < 10
    [line] = error_lines(zero.err)
    assert "rank 0" in line and "all_reduce of" in line and "failed" in line


def test_a_rank_that_hangs_mid_sweep() -> None:
    """Test hook: rank 1 stops after 30 collectives with its sockets open; no peer notices a
    closed connection, so only the bounded wait (gloo's timeout or the watchdog) ends rank 0."""
    ranks = start_ranks(
        2, [0, 1], [*SWEEP, "--op-timeout", "3"], {"PREFLIGHT_BENCH_TEST_HANG_AFTER": "1:30"}
    )
    wait_all(ranks, timeout=3 + STARTUP_S + 10)
    zero = ranks[0]
    assert zero.proc.returncode == 1
    [line] = error_lines(zero.err)
    assert re.search(r"(Timed out waiting 3000ms|did not complete within 3 s)", line), line
    assert zero.ended is not None and zero.ended - zero.started < 3 + STARTUP_S


def pgid_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_nproc_parent_kills_its_process_group_on_failure() -> None:
    """Test hook: rank 1 is stuck before the rendezvous and deaf to SIGTERM. Rank 0 times out;
    the parent kills the group (SIGTERM, then SIGKILL) and nothing is left running."""
    start = time.monotonic()
    proc = preflight(
        *SWEEP,
        "--nproc",
        "2",
        "--init-timeout",
        "3",
        env={"PREFLIGHT_BENCH_TEST_STALL": "1"},
        timeout=3 + STARTUP_S + 20,
    )
    assert proc.returncode == 1
    m = re.search(r"killing process group (\d+) \(ranks still running: \[1\]\)", proc.stderr)
    assert m, proc.stderr
    assert pgid_gone(int(m.group(1)))
    assert any("missing: rank 1" in line for line in error_lines(proc.stderr))
    assert time.monotonic() - start < 3 + STARTUP_S + 10


def test_nproc_parent_deadline() -> None:
    proc = preflight(
        *SWEEP,
        "--nproc",
        "1",
        "--deadline",
        "2",
        env={"PREFLIGHT_BENCH_TEST_STALL": "0"},
        timeout=40,
    )
    assert proc.returncode == 1
    m = re.search(r"after the 2 s deadline; killing process group (\d+)", proc.stderr)
    assert m, proc.stderr
    assert pgid_gone(int(m.group(1)))
