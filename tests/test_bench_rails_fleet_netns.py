"""`bench locate --per-rail` for real: four "nodes" (network namespaces), each with two rails:
a veth into bridge "rail 0" (interface r0) and one into bridge "rail 1" (r1). Node 3's rail-1
veth is rate-limited with tc htb on both ends. Over gloo (GLOO_SOCKET_IFNAME per rail) the
report must name node 3 and rail r1, and nothing else.

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
BAD_NODE, BAD_RAIL = 3, 1
RATE = "10mbit"  # 512 KiB pair all-reduce: ~0.4 s at this rate, 1-20 ms over an open veth here
SUBNETS = ("10.215.0", "10.215.1")  # rail 0, rail 1


@pytest.fixture
def four_nodes_two_rails() -> Iterator[list[str]]:
    rails = [(f"r{rail}", subnet) for rail, subnet in enumerate(SUBNETS)]
    with fabric("f", NODES, rails, shaped={(BAD_NODE, BAD_RAIL)}, rate=RATE) as names:
        yield names


def test_fleet_per_rail_names_the_node_and_the_rail(four_nodes_two_rails: list[str]) -> None:
    procs = []
    for k, ns in enumerate(four_nodes_two_rails):
        env = clean_env(
            {
                "RANK": str(k),
                "WORLD_SIZE": str(NODES),
                "LOCAL_RANK": "0",
                "LOCAL_WORLD_SIZE": "1",
                "MASTER_ADDR": f"{SUBNETS[0]}.1",
                "MASTER_PORT": "29620",
            }
        )
        argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "preflight", "bench", "locate",
                "--backend", "gloo", "--per-rail", "r0,r1", "--node-id", f"node{k}",
                "--bytes", "512K", "--iters", "3", "--warmup", "1", "--slow-ratio", "0.08",
                "--init-timeout", "30", "--op-timeout", "15", "--format", "json"]  # fmt: skip
        procs.append(
            subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
            )
        )
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=180))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=10)
    assert [p.returncode for p in procs] == [1, 0, 0, 0], [err for _, err in outs]
    doc = json.loads(outs[0][0])
    assert doc["schema"] == "preflight-bench-locate-rails/1"
    assert doc["bad"] == [{"node": "node3", "rails": ["r1"]}], doc["summary"]
    assert doc["summary"] == "FAIL: node3 slow on rail r1", doc["rails"]
    by_rail = {r["rail"]: r["verdicts"] for r in doc["rails"]}
    assert by_rail["r0"] == {f"node{k}": "ok" for k in range(NODES)}
    assert by_rail["r1"] == {"node0": "ok", "node1": "ok", "node2": "ok", "node3": "slow"}
    r1 = next(r["locate"] for r in doc["rails"] if r["rail"] == "r1")
    medians = {n["node"]: n["median_gbps"] for n in r1["nodes"]}
    assert medians["node3"] < 0.08 * medians["node0"]
