"""Multi-node on one machine: four network namespaces joined by a bridge, one "node" each, the
fourth node's link rate-limited with tc htb. `bench locate` must name exactly that node.

Needs root (CAP_NET_ADMIN) and iproute2; skipped with the reason elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.bench_procs import ROOT, clean_env

pytest.importorskip("torch")

NODES = 4
SLOW = 3
RATE = "50mbit"  # 512 KiB pair all-reduce: ~85 ms at this rate, ~2 ms over an open veth
SUBNET = "10.213.0"


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=20)


def quiet(*argv: str) -> None:
    subprocess.run(argv, capture_output=True, timeout=20, check=False)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove(pid: int) -> None:
    for k in range(NODES):
        quiet("ip", "netns", "del", f"pfns{pid}-{k}")
    quiet("ip", "link", "del", f"pfbr{pid}")


def remove_stale() -> None:
    """Namespaces of an earlier run that was killed before its teardown (names carry its pid)."""
    links = subprocess.run(
        ["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True, timeout=20
    ).stdout
    for pid in re.findall(r"^\d+: pfbr(\d+):", links, flags=re.MULTILINE):
        if not alive(int(pid)):
            remove(int(pid))


@pytest.fixture
def namespaces() -> Iterator[list[str]]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces, veth pairs and tc qdiscs")
    if not (shutil.which("ip") and shutil.which("tc")):
        pytest.skip("needs iproute2 (ip, tc)")
    remove_stale()
    pid = os.getpid()  # in every name, so a later run can tell a dead owner's leftovers
    bridge = f"pfbr{pid}"
    names = [f"pfns{pid}-{k}" for k in range(NODES)]
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot create a bridge here: {exc}")
    try:
        sh("ip", "link", "set", bridge, "up")
        for k, ns in enumerate(names):
            veth = f"pfv{pid}-{k}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", bridge, "up")
            sh("ip", "-n", ns, "addr", "add", f"{SUBNET}.{k + 1}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            if k == SLOW:
                # Shape both directions: the bridge port toward the node, and the node's eth0.
                for prefix in ((), ("ip", "netns", "exec", ns)):
                    dev = "eth0" if prefix else veth
                    sh(
                        *prefix,
                        "tc",
                        "qdisc",
                        "add",
                        "dev",
                        dev,
                        "root",
                        "handle",
                        "1:",
                        "htb",
                        "default",
                        "10",
                    )
                    sh(
                        *prefix,
                        "tc",
                        "class",
                        "add",
                        "dev",
                        dev,
                        "parent",
                        "1:",
                        "classid",
                        "1:10",
                        "htb",
                        "rate",
                        RATE,
                    )
        yield names
    finally:
        remove(pid)


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
