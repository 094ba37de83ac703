"""Pair mode of `bench rdma` with real processes: `--serve` on one side, `--peer` on the other,
the perftest STAND-IN on PATH (replays, never a measurement). The control connection takes
hostile input: every malformed request is refused in one line, the server stays up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preflight.bench.rdma_bench import free_port
from preflight.bench.rdma_run import listening
from preflight.bench.rdma_serve import ControlError, parse_request
from tests.bench_procs import ROOT, clean_env, preflight

STANDINS = str(Path(__file__).parent / "standins")


def start_server(port: int, count: int) -> subprocess.Popen[str]:
    env = clean_env({"PATH": STANDINS + os.pathsep + os.environ["PATH"]})
    proc = subprocess.Popen(
        [sys.executable, "-m", "preflight", "bench", "rdma", "--profile", "dgx-h100", "--serve",
         "--bind", "127.0.0.1", "--control-port", str(port), "--serve-count", str(count),
         "--serve-idle", "30"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not listening(port):
        assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
        time.sleep(0.05)
    return proc


def test_pair_rail_to_rail_through_serve() -> None:
    port = free_port()
    server = start_server(port, 1)
    try:
        res = preflight(
            "bench", "rdma", "--profile", "dgx-h100", "--peer", "127.0.0.1",
            "--control-port", str(port), "--hca", "mlx5_2", "--gpudirect", "off",
            "--duration", "1", "--format", "json",
            env={"PATH": STANDINS + os.pathsep + os.environ["PATH"]},
        )  # fmt: skip
        _, err = server.communicate(timeout=30)
    finally:
        server.kill()
    assert res.returncode == 1, res.stderr  # a stand-in's replay is never a pass
    doc = json.loads(res.stdout)
    (run,) = doc["results"]
    assert doc["mode"] == "pair" and run["peer"] == "127.0.0.1:mlx5_2"  # rail 2 meets rail 2
    assert run["status"] == "stand-in" and run["average_gbps"] == pytest.approx(98.03)
    assert run["server_cmd"][1:3] == ["-d", "mlx5_2"] and run["client_cmd"][-1] == "127.0.0.1"
    assert server.returncode == 0 and "served 1 request(s)" in err
    assert not listening(port)


@pytest.mark.parametrize(
    "doc",
    [
        {"test": "rm -rf /"},
        {"test": "write_bw", "rail": -1},
        {"test": "write_bw", "rail": True},
        {"test": "write_bw", "size": 1 << 40},
        {"test": "write_bw", "memory": "disk"},
        {"test": "write_bw", "bidirectional": "yes"},
        {"test": "write_bw", "duration_s": 0},
    ],
)
def test_malformed_requests_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ControlError):
        parse_request(doc)


def test_garbage_on_the_control_port_is_refused_and_serve_goes_on() -> None:
    port = free_port()
    server = start_server(port, 3)
    replies = []
    try:
        for payload in (b"\xff\xfe not json\n", b'{"test": "write_bw", "rail": 9}\n', b"[1]\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(payload)
                replies.append(json.loads(s.recv(4096).split(b"\n")[0]))
        _, err = server.communicate(timeout=30)
    finally:
        server.kill()
    assert [sorted(r) for r in replies] == [["error"]] * 3
    assert "this node has 8 active RDMA ports" in replies[1]["error"]
    assert server.returncode == 0 and "Traceback" not in err
