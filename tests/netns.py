"""Several "nodes" on one machine: network namespaces joined per rail by a bridge, with chosen
links rate-limited by tc htb. The benchmark tests run one rank per namespace over gloo.

Every name carries this process's pid, so a later run can tell a dead owner's leftovers
(`remove_stale`). Needs root (CAP_NET_ADMIN) and iproute2: `fabric` skips with the reason
elsewhere, and when the kernel refuses a bridge or a namespace.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Collection, Iterator, Sequence

import pytest


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


def shape(prefix: tuple[str, ...], dev: str, rate: str) -> None:
    """Limit what leaves dev to rate (an htb class every packet falls into)."""
    sh(*prefix, "tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10")
    sh(*prefix, "tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb",
       "rate", rate)  # fmt: skip


def _names(tag: str, pid: int, nodes: int, rails: int) -> tuple[list[str], list[str]]:
    return [f"pf{tag}{pid}-{k}" for k in range(nodes)], [f"pf{tag}b{pid}-{r}" for r in range(rails)]


def _remove(namespaces: Sequence[str], bridges: Sequence[str]) -> None:
    for ns in namespaces:
        quiet("ip", "netns", "del", ns)  # takes the node ends of its veth pairs with it
    for br in bridges:
        quiet("ip", "link", "del", br)


def remove_stale(tag: str) -> None:
    """Namespaces and bridges of an earlier run that was killed before its teardown."""
    links = subprocess.run(
        ["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True, timeout=20
    ).stdout
    owners = {int(p) for p in re.findall(rf"^\d+: pf{tag}b(\d+)-\d+:", links, flags=re.M)}
    spaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20)
    for pid in owners:
        if not alive(pid):
            mine = re.findall(rf"^(pf{tag}{pid}-\d+)", spaces.stdout, flags=re.M)
            bridges = re.findall(rf"^\d+: (pf{tag}b{pid}-\d+):", links, flags=re.M)
            _remove(mine, bridges)


@contextlib.contextmanager
def fabric(
    tag: str,
    nodes: int,
    rails: Sequence[tuple[str, str]],
    shaped: Collection[tuple[int, int]] = (),
    rate: str = "50mbit",
) -> Iterator[list[str]]:
    """`nodes` namespaces (yielded, node k at <subnet>.<k+1>/24 on each rail) and one bridge per
    rail; rails are (device name inside each node, subnet's first three octets). Each
    (node, rail) in `shaped` is rate-limited in both directions: on the bridge port toward the
    node and on the node's own device. Tag: one letter that tells the tests' fabrics apart."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces, bridges, veth pairs and tc qdiscs")
    if not (shutil.which("ip") and shutil.which("tc")):
        pytest.skip("needs iproute2 (ip, tc)")
    remove_stale(tag)
    pid = os.getpid()
    names, bridges = _names(tag, pid, nodes, len(rails))
    try:
        for br in bridges:
            sh("ip", "link", "add", br, "type", "bridge")
            sh("ip", "link", "set", br, "up")
        for k, ns in enumerate(names):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            for rail, (dev, subnet) in enumerate(rails):
                veth = f"pf{tag}v{pid}-{k}{rail}"
                sh("ip", "link", "add", veth, "type", "veth", "peer", "name", dev, "netns", ns)
                sh("ip", "link", "set", veth, "master", bridges[rail], "up")
                sh("ip", "-n", ns, "addr", "add", f"{subnet}.{k + 1}/24", "dev", dev)
                sh("ip", "-n", ns, "link", "set", dev, "up")
                if (k, rail) in shaped:
                    shape((), veth, rate)
                    shape(("ip", "netns", "exec", ns), dev, rate)
    except (subprocess.CalledProcessError, OSError) as exc:
        _remove(names, bridges)
        pytest.skip(f"cannot build namespaces and bridges here: {exc}")
    try:
        yield names
    finally:
        _remove(names, bridges)
