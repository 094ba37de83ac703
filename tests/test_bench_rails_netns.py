"""`bench allreduce --per-rail` for real: two "nodes" (network namespaces) joined per rail by
a bridge, "rail" r0 and r1 (tests/netns.py); r1 is rate-limited with tc htb on both nodes. Over
gloo (GLOO_SOCKET_IFNAME per rail) the report must name r1 and only r1.

Needs root (CAP_NET_ADMIN) and iproute2; skipped with the reason elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.bench_procs import ROOT, clean_env
from tests.netns import fabric

pytest.importorskip("torch")

RATE = "50mbit"
SUBNETS = ("10.214.0", "10.214.1")  # rail 0, rail 1


@pytest.fixture
def two_nodes_two_rails() -> Iterator[list[str]]:
    rails = [(f"r{rail}", subnet) for rail, subnet in enumerate(SUBNETS)]
    with fabric("r", 2, rails, shaped={(0, 1), (1, 1)}, rate=RATE) as names:
        yield names


def test_per_rail_names_the_shaped_rail(two_nodes_two_rails: list[str]) -> None:
    procs = []
    for k, ns in enumerate(two_nodes_two_rails):
        env = clean_env(
            {
                "RANK": str(k),
                "WORLD_SIZE": "2",
                "LOCAL_RANK": "0",
                "LOCAL_WORLD_SIZE": "1",
                "MASTER_ADDR": f"{SUBNETS[0]}.1",
                "MASTER_PORT": "29610",
            }
        )
        procs.append(
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    sys.executable,
                    "-m",
                    "preflight",
                    "bench",
                    "allreduce",
                    "--backend",
                    "gloo",
                    "--per-rail",
                    "r0,r1",
                    "--sizes",
                    "512K",
                    "--iters",
                    "3",
                    "--warmup",
                    "1",
                    "--init-timeout",
                    "60",
                    "--op-timeout",
                    "30",
                    "--format",
                    "json",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
        )
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=240))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=10)
    assert [p.returncode for p in procs] == [1, 0], [err for _, err in outs]
    doc = json.loads(outs[0][0])
    verdicts = {r["rail"]: r["verdict"] for r in doc["rails"]}
    assert verdicts == {"r0": "ok", "r1": "slow"}, doc["summary"]
    assert doc["summary"] == "FAIL: rail(s) below their peers: r1"
    fast, slow = (r["busbw_gbps"] for r in doc["rails"])
    assert slow < 0.5 * fast
