"""Process control of `bench rdma` with real processes: the perftest STAND-IN (tests/standins,
which replays real perftest outputs and never counts as a measurement) as server and client,
told to fail the ways perftest fails. Each path must end within its timeout, with every process
of both groups gone and nothing listening."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from preflight.bench.rdma_bench import free_port
from preflight.bench.rdma_perftest import parse_perftest
from preflight.bench.rdma_run import listening, run_one, run_pair

STANDIN = str(Path(__file__).parent / "standins" / "ib_write_bw")


def gone(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone too: it holds no port and runs nothing
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z")


def group_gone(pgid: int | None) -> bool:
    """No process of the group runs (zombies waiting for a non-reaping PID 1 run nothing)."""
    if pgid is None:
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return False
    return True


def run(mode: str, timeout: float = 3.0, listen: float = 2.0, duration: str = "1"):  # type: ignore[no-untyped-def]
    port = free_port()
    env = {**os.environ, "PREFLIGHT_STANDIN_MODE": mode}
    server = [STANDIN, "-d", "mlx5_0", "-p", str(port), "-D", duration]
    start = time.monotonic()
    out = run_pair(server, [*server, "127.0.0.1"], port, timeout, listen, env)
    elapsed = time.monotonic() - start
    assert not listening(port), "nothing may be left listening"
    for side in (out.server, out.client):
        assert group_gone(side.pid), f"{side.role} group left running"
    for pid in re.findall(r"standin-child-pid: (\d+)", out.server.output + out.client.output):
        assert gone(int(pid)), "a child of the killed group survived"
    return out, elapsed


def test_replay_completes_with_real_timing_and_is_marked_a_standin() -> None:
    out, elapsed = run("ok", duration="1")
    assert out.problem is None
    assert 1.0 <= elapsed < 3.0  # -D 1: the stand-in waits as long as perftest would
    parsed = parse_perftest(out.client.output)
    assert parsed.standin and parsed.bw_rows[0].average_gbps == pytest.approx(98.03)


def test_server_that_cannot_find_its_device_ends_the_pair_at_once() -> None:
    out, elapsed = run("no-device")
    assert out.problem == f"server exited before listening on port {out.server.argv[4]}"
    assert out.client.pid is None and elapsed < 2.0
    assert [e.kind for e in parse_perftest(out.server.output).errors] == ["no_device", "no_device"]


def test_server_that_never_listens_is_killed_at_the_listen_timeout() -> None:
    out, elapsed = run("no-listen", listen=1.0)
    assert "did not listen" in (out.problem or "") and out.server.timed_out
    assert out.client.pid is None  # the client is never started against nobody
    assert 1.0 <= elapsed < 3.5


def test_server_that_never_accepts_is_killed_with_its_client_at_the_timeout() -> None:
    out, elapsed = run("no-accept", timeout=1.5)
    assert out.problem == "server and client still running after 1.5 s: killed"
    assert out.server.timed_out and out.client.timed_out
    assert 1.5 <= elapsed < 5.0


def test_perftest_hanging_mid_run_is_killed_with_its_whole_group() -> None:
    out, _ = run("hang", timeout=1.5)
    assert out.server.killed and out.client.killed
    assert re.search(r"standin-child-pid: \d+", out.server.output)


def test_client_without_a_server_reports_couldnt_connect() -> None:
    port = free_port()
    side = run_one([STANDIN, "-d", "mlx5_0", "-p", str(port), "127.0.0.1"], 5.0)
    assert side.returncode == 1
    parsed = parse_perftest(side.output)
    assert parsed.errors[0].kind == "connect" and f"127.0.0.1:{port}" in parsed.errors[0].text


def test_a_missing_binary_is_named_not_raised() -> None:
    out = run_pair(["/nonexistent/ib_write_bw"], ["/nonexistent/ib_write_bw"], free_port(), 1, 1)
    assert out.problem is not None and out.problem.startswith("server did not start")


def test_client_that_fails_takes_its_waiting_server_down() -> None:
    port = free_port()
    env = {**os.environ, "PREFLIGHT_STANDIN_MODE_mlx5_1": "no-device"}
    server = [STANDIN, "-d", "mlx5_0", "-p", str(port), "-D", "1"]
    client = [STANDIN, "-d", "mlx5_1", "-p", str(port), "-D", "1", "127.0.0.1"]
    start = time.monotonic()
    out = run_pair(server, client, port, 10.0, 2.0, env)
    assert time.monotonic() - start < 5.0  # not the 10 s timeout: the server is not waited for
    assert out.problem is not None
    assert out.problem.startswith("client exited 1; server killed after")
    assert not listening(port) and group_gone(out.server.pid)
