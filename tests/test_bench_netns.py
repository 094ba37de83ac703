"""Multi-node on one machine: four network namespaces joined by a bridge, one "node" each, the
fourth node's link rate-limited with tc htb. `bench locate` must name exactly that node.

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

NODES = 4
SLOW = 3
RATE = "50mbit"  # 512 KiB pair all-reduce: ~85 ms at this rate, ~2 ms over an open veth
SUBNET = "10.213.0"


@pytest.fixture
def namespaces() -> Iterator[list[str]]:
    with fabric("n", NODES, [("eth0", SUBNET)], shaped={(SLOW, 0)}, rate=RATE) as names:
        yield names


def test_locate_names_the_rate_limited_namespace(namespaces: list[str]) -> None:
    procs = []
    for k, ns in enumerate(namespaces):
        env = clean_env(
            {
                "RANK": str(k),
                "WORLD_SIZE": str(NODES),
                "LOCAL_RANK": "0",
                "LOCAL_WORLD_SIZE": "1",
                "MASTER_ADDR": f"{SUBNET}.1",
                "MASTER_PORT": "29500",
                "GLOO_SOCKET_IFNAME": "eth0",
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
                    "locate",
                    "--backend",
                    "gloo",
                    "--node-id",
                    f"node{k}",
                    "--bytes",
                    "512K",
                    "--iters",
                    "3",
                    "--warmup",
                    "1",
                    "--slow-ratio",
                    "0.15",
                    "--init-timeout",
                    "60",
                    "--op-timeout",
                    "20",
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
            outs.append(p.communicate(timeout=120))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=10)
    codes = [p.returncode for p in procs]
    assert codes == [1] * NODES, [err for _, err in outs]
    doc = json.loads(outs[0][0])
    verdicts = {n["node"]: n["verdict"] for n in doc["nodes"]}
    assert verdicts == {"node0": "ok", "node1": "ok", "node2": "ok", "node3": "slow"}, doc
    assert doc["bad_pairs"] == []
    slow = next(n for n in doc["nodes"] if n["node"] == "node3")
    fast = next(n for n in doc["nodes"] if n["node"] == "node0")
    assert slow["median_gbps"] < 0.15 * fast["median_gbps"]
