"""Pair mode of `bench rdma`: `--serve` starts perftest servers for a peer, `--peer HOST` is
that peer's client side. Rail k of the client meets rail k of the server (the k-th active RDMA
port of each node, in natural order).

The control connection carries one JSON line each way and is hostile input on both ends: a
request is at most 4 KiB, every field is checked against the ranges the command line allows,
the server runs only perftest binaries from its own PATH with arguments it builds itself, and
every socket read has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from preflight.bench.rdma_bench import (
    RdmaResult,
    _parse,
    endpoint,
    free_port,
    judge,
)
from preflight.bench.rdma_perftest import BINARIES, PerftestSpec, command, find_binary
from preflight.bench.rdma_run import ServerHandle, SideOutcome, run_one
from preflight.bench.rdma_targets import HcaPort
from preflight.errors import PreflightError

CONTROL_PORT = 18600
MAX_LINE = 4096
MAX_REPLY = 256 * 1024
IO_TIMEOUT_S = 10.0
MEMORIES = ("host", "cuda", "cuda-dmabuf")


class ControlError(PreflightError):
    """The control connection failed or carried something malformed (exit 1)."""


def _read_line(sock: socket.socket, limit: int) -> dict[str, Any]:
    buf = b""
    while b"\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise ControlError(f"control message longer than {limit} bytes")
    line = buf.split(b"\n", 1)[0]
    try:
        doc = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ControlError("control message is not one JSON line") from None
    if not isinstance(doc, dict):
        raise ControlError("control message is not a JSON object")
    return doc


def _send(sock: socket.socket, doc: Mapping[str, Any]) -> None:
    sock.sendall(json.dumps(doc).encode("utf-8") + b"\n")


def _int(doc: Mapping[str, Any], key: str, low: int, high: int, default: int | None) -> int | None:
    value = doc.get(key, default)
    if value is None and default is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ControlError(f"request field {key!r} must be an integer in {low}..{high}")
    return value


@dataclass(frozen=True)
class Request:
    rail: int
    memory: str
    spec: PerftestSpec


def parse_request(doc: Mapping[str, Any]) -> Request:
    """A client's request, every field checked; ControlError otherwise."""
    test = doc.get("test")
    if test not in BINARIES:
        raise ControlError(f"request test must be one of {', '.join(BINARIES)}")
    memory = doc.get("memory", "host")
    if memory not in MEMORIES:
        raise ControlError(f"request memory must be one of {', '.join(MEMORIES)}")
    bidirectional = doc.get("bidirectional", False)
    if not isinstance(bidirectional, bool):
        raise ControlError("request field 'bidirectional' must be true or false")
    rail = _int(doc, "rail", 0, 63, 0)
    size = _int(doc, "size", 1, 1 << 31, 1 << 20)
    duration = _int(doc, "duration_s", 1, 3600, None)
    iters = _int(doc, "iterations", 1, 10**8, 5000)
    qps = _int(doc, "qps", 1, 1024, 1)
    assert rail is not None
    assert size is not None
    assert iters is not None
    assert qps is not None
    spec = PerftestSpec(str(test), size, duration, iters, qps, bidirectional)
    return Request(rail, str(memory), spec)


def serve_one(
    conn: socket.socket,
    ports: Sequence[HcaPort],
    path: str | None,
    env: Mapping[str, str],
    listen_timeout_s: float,
) -> str:
    """Handle one client: start the perftest server it asks for, report, clean up."""
    conn.settimeout(IO_TIMEOUT_S)
    try:
        req = parse_request(_read_line(conn, MAX_LINE))
        active = [p for p in ports if p.active]
        if req.rail >= len(active):
            raise ControlError(f"rail {req.rail}: this node has {len(active)} active RDMA ports")
        target = active[req.rail]
        binary = find_binary(req.spec.test, path)
    except (ControlError, PreflightError, OSError) as exc:
        with contextlib.suppress(OSError):
            _send(conn, {"error": str(exc)})
        return f"refused: {exc}"
    port = free_port()
    argv = command(binary, req.spec, endpoint(target, req.memory), port, None)
    server = ServerHandle(argv, env)
    problem = server.wait_listening(port, listen_timeout_s)
    try:
        _send(conn, {"port": port, "hca": target.hca, "problem": problem, "argv": argv})
    except OSError:
        problem = problem or "the client went away"
    limit = (req.spec.duration_s or 0) + 30.0
    outcome = server.finish(limit if problem is None else 0.1)
    with contextlib.suppress(OSError):
        _send(
            conn,
            {
                "output": outcome.output[-MAX_REPLY // 2 :],
                "problem": problem or (None if outcome.returncode == 0 else outcome.describe()),
            },
        )
    return f"rail {req.rail} {target.hca}: {outcome.describe()}"


def serve(
    ports: Sequence[HcaPort],
    bind: str,
    control_port: int,
    count: int | None,
    idle_timeout_s: float,
    path: str | None,
    env: Mapping[str, str],
    listen_timeout_s: float = 10.0,
    log: Any = None,
) -> int:
    """Serve requests one at a time until `count` are handled or none came for idle_timeout_s."""
    handled = 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as lsock:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((bind, control_port))
        lsock.listen(4)
        lsock.settimeout(idle_timeout_s)
        while count is None or handled < count:
            try:
                conn, addr = lsock.accept()
            except TimeoutError:
                break
            with conn:
                line = serve_one(conn, ports, path, env, listen_timeout_s)
            handled += 1
            if log is not None:
                log(f"{addr[0]}: {line}")
    return handled


def run_peer(
    peer: str,
    control_port: int,
    local: HcaPort,
    rail: int,
    memory: str,
    spec: PerftestSpec,
    binary: str,
    floor: float | None,
    timeout_s: float,
    env: Mapping[str, str],
) -> RdmaResult:
    """One pair run: ask the peer for a server on rail `rail`, run the client here."""
    result = RdmaResult(
        mode="pair",
        test=spec.test,
        hca=local.hca,
        port=local.port,
        peer=f"{peer}:rail{rail}",
        memory=memory,
        gpu=local.gpu_bdf if memory != "host" else None,
        size=spec.size,
        rate=local.rate_text,
        server_cmd=[],
        client_cmd=[],
    )
    request = {
        "test": spec.test,
        "rail": rail,
        "memory": memory,
        "size": spec.size,
        "duration_s": spec.duration_s,
        "iterations": spec.iterations,
        "qps": spec.qps,
        "bidirectional": spec.bidirectional,
    }
    try:
        with socket.create_connection((peer, control_port), timeout=IO_TIMEOUT_S) as sock:
            sock.settimeout(IO_TIMEOUT_S)
            _send(sock, request)
            first = _read_line(sock, MAX_REPLY)
            if "error" in first:
                raise ControlError(f"{peer} refused: {str(first['error'])[:200]}")
            port = first.get("port")
            if not isinstance(port, int) or not 0 < port < 65536:
                raise ControlError(f"{peer} sent no perftest port")
            argv = first.get("argv")
            if isinstance(argv, list):
                result.server_cmd = [str(a)[:200] for a in argv[:64]]
            if isinstance(first.get("hca"), str):
                result.peer = f"{peer}:{first['hca'][:32]}"
            if first.get("problem"):
                client = SideOutcome("client", [])
                problem: str | None = f"{peer}: {str(first['problem'])[:200]}"
            else:
                result.client_cmd = command(binary, spec, endpoint(local, memory), port, peer)
                client = run_one(result.client_cmd, timeout_s, env)
                problem = None if client.returncode == 0 else client.describe()
            sock.settimeout(timeout_s + IO_TIMEOUT_S)
            last = _read_line(sock, MAX_REPLY)
    except (OSError, ControlError) as exc:
        result.problem = f"control connection to {peer}:{control_port}: {exc}"
        result.message = f"{local.hca}: no result: {result.problem}"
        return result
    server_text = last.get("output") if isinstance(last.get("output"), str) else ""
    if last.get("problem") and problem is None:
        problem = f"{peer}: {str(last['problem'])[:200]}"
    server = SideOutcome("server", result.server_cmd, output=str(server_text))
    outs = [o for o in (_parse(client), _parse(server)) if o is not None]
    return judge(result, local, spec, floor, outs, problem)
