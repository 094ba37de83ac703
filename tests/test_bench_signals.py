"""Signals and the `--nproc` launcher, for real: no orphaned rank, no traceback, 128 + N.

A rank made to hang by the HANG_AFTER hook (which creates a file when it starts hanging) keeps
the world waiting at a known point: the test then knows exactly which rows were measured before
it signals or kills the launcher.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench_procs import ROOT, clean_env

pytest.importorskip("torch")

HANG = "PREFLIGHT_BENCH_TEST_HANG_AFTER"
# Two hooked collectives per size (--warmup 0, --iters 1, then the verification all_reduce).
SWEEP = [
    *("bench", "allreduce", "--nproc", "2", "--backend", "gloo", "--iters", "1", "--warmup", "0"),
    *("--sizes", "1K,4K,16K,64K,256K", "--op-timeout", "300", "--init-timeout", "120"),
]
ROWS_BEFORE_HANG = [1024, 4096, 16384]
GONE_WITHIN_S = 10.0
"""How soon orphaned ranks must be gone (a loaded 2-core machine; they die in well under 1 s)."""


def start(argv: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[bytes]:
    """The launcher, in a process group of its own (as a shell runs a foreground command)."""
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "preflight", *argv],
        env=clean_env(env),
        cwd=ROOT,
        start_new_session=True,
        **kwargs,
    )


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the hang mark never appeared (launcher: {proc.poll()})")
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    """The processes whose parent is pid."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that never comes is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pty(fd: int, until: float) -> bytes:
    """Everything the terminal shows until every writer has closed it (or the time is up)."""
    out = bytearray()
    while time.monotonic() < until:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: no process holds the terminal any more
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


def measured_sizes(text: str) -> list[int]:
    """The sizes of the nccl-tests rows printed."""
    return [int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s+\d+\s+float\s+sum\s", text, re.M)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_killing_the_launcher_leaves_no_rank_behind(tmp_path: Path, sig: signal.Signals) -> None:
    mark = tmp_path / "hang"
    proc = start(SWEEP, {HANG: f"1:2:{mark}"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(mark, proc)
        ranks = children(proc.pid)
        assert len(ranks) == 2 and all(alive(r) for r in ranks)
        killed = time.monotonic()
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        while any(alive(r) for r in ranks) and time.monotonic() - killed < GONE_WITHIN_S:
            time.sleep(0.05)
        left = [r for r in ranks if alive(r)]
    finally:
        for r in children(proc.pid):
            os.kill(r, signal.SIGKILL)
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert not left, f"ranks {left} outlived the launcher by {GONE_WITHIN_S} s"
    if sig == signal.SIGHUP:  # a signal it can handle: it stops the ranks itself and says so
        assert proc.returncode == 128 + signal.SIGHUP
        assert b"interrupted by SIGHUP" in err and b"Traceback" not in err


@pytest.mark.parametrize(
    ("sig", "times"), [(signal.SIGINT, 2), (signal.SIGTERM, 1)], ids=["ctrl-c-twice", "sigterm"]
)
def test_an_interrupted_sweep_prints_its_rows_and_restores_the_terminal(
    tmp_path: Path, sig: signal.Signals, times: int
) -> None:
    mark = tmp_path / "hang"
    primary, secondary = pty.openpty()
    # Rank 1 hangs after the third size: rank 0 has measured three rows and waits in the fourth.
    proc = start(
        [*SWEEP, "--progress"],
        {HANG: f"1:{2 * len(ROWS_BEFORE_HANG)}:{mark}", "TERM": "xterm"},
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    try:
        shown = bytearray()
        deadline = time.monotonic() + 180
        while not mark.exists():
            shown += read_pty(primary, min(deadline, time.monotonic() + 0.2))
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the hang mark never appeared: {bytes(shown)!r}")
        for _ in range(times):  # as the terminal sends Ctrl-C: to the foreground process group
            os.killpg(proc.pid, sig)
            time.sleep(0.2)
        shown += read_pty(primary, time.monotonic() + 60)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        os.close(primary)
    text = shown.decode(errors="replace").replace("\r\n", "\n")
    assert proc.returncode == 128 + sig, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert measured_sizes(text) == ROWS_BEFORE_HANG, text
    assert f"Interrupted by {sig.name} after 3 of 5 sizes: no verdict" in text
    assert "PASS" not in text and "FAIL" not in text
    # The progress bar hid the cursor; it is shown again after the last hide.
    assert "\x1b[?25l" in text and text.rfind("\x1b[?25h") > text.rfind("\x1b[?25l"), text


def test_an_interrupted_locate_prints_the_pairs_measured(tmp_path: Path) -> None:
    mark = tmp_path / "hang"
    # 4 simulated nodes: 3 rounds of 2 pairs. Rank 0 hangs at the start of round 2, after its
    # warmup + iters of round 1; the other pair of round 2 finishes and waits for the results.
    argv = [
        *("bench", "locate", "--nproc", "4", "--backend", "gloo", "--node-id", "n{local_rank}"),
        *("--bytes", "4K", "--iters", "2", "--warmup", "1", "--op-timeout", "300"),
        *("--init-timeout", "120"),
    ]
    proc = start(argv, {HANG: f"0:3:{mark}"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(mark, proc)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    text, errors = out.decode(), err.decode()
    assert proc.returncode == 130, errors
    assert "Traceback" not in errors + text
    assert "interrupted by SIGINT after 1 rounds (2 pair tests of 4 KiB" in text, text
    pairs = [line for line in text.splitlines() if re.match(r"^n\d - n\d\s+1\s+\d", line)]
    assert len(pairs) == 2, text


DRIVER = """
import sys
from preflight.bench.errors import BenchInterrupted
from preflight.bench.launch import launch_local
try:
    code = launch_local(2, sys.argv[1:])
except BenchInterrupted as exc:
    print("interrupted", exc.signum, exc.exit_code, flush=True)
    raise
print("returned", code, flush=True)
"""


def test_the_launcher_raises_bench_interrupted_for_its_caller(tmp_path: Path) -> None:
    """`preflight run --bench` relies on this: an interruption is not a failed measurement."""
    mark = tmp_path / "hang"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *SWEEP[:2], *SWEEP[4:]],
        env=clean_env({HANG: f"1:2:{mark}"}),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(mark, proc)
        ranks = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert out.decode().splitlines()[-1] == "interrupted 15 143"  # after rank 0's rows
    assert b"Traceback" not in err
    assert not [r for r in ranks if alive(r)]


def test_run_bench_interrupted_exits_143_and_judges_nothing(tmp_path: Path) -> None:
    mark = tmp_path / "hang"
    report = tmp_path / "report.json"
    argv = [
        *("run", "--bench", "--bench-backend", "gloo", "--bench-nproc", "2"),
        *("--only", "bench.allreduce", "--format", "json", "--output", str(report)),
        *("--set", "bench.allreduce.min_bytes=1024", "--set", "bench.allreduce.max_bytes=4096"),
        *("--set", "bench.allreduce.gate_bytes=4096", "--set", "bench.allreduce.op_timeout_s=300"),
    ]
    proc = start(argv, {HANG: f"1:2:{mark}"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(mark, proc)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert b"Traceback" not in err
    assert not report.exists()  # no report, so no verdict and nothing to drain on
