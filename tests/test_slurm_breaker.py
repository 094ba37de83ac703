"""The drain circuit breaker against a real Slurm (slurmctld + slurmd from Debian's packages).

A bad baseline pushed to the fleet fails every node. Each node's health check runs
`preflight run --slurm-drain --max-drained …` one after another, as slurmd's
HealthCheckProgram would: only as many nodes as the limit allows are drained; the others stay in
service, say why on stderr and in the report, and still exit 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from tests.harness import SCHEMA
from tests.slurm_cluster import SKIPS, Cluster, running

pytestmark = SKIPS

REPO = Path(__file__).resolve().parent.parent
PARTITIONS = {"gpu": ["g1", "g2", "g3", "g4", "g5"], "cpu": ["c1", "c2"]}
# A baseline rolled out with the wrong GPU count: every node fails node.gpu_count.
BAD_BASELINE = """\
[baseline]
name = "bad-rollout"
description = "pushed with the wrong GPU count"

[node.gpu_count]
expected = 16
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("slurm")
    (root / "bad.toml").write_text(BAD_BASELINE)
    with running(root, PARTITIONS) as c:
        yield c


def health_check(c: Cluster, node: str, *extra: str) -> tuple[int, str, dict[str, object]]:
    """One node's health check: exit code, stderr, JSON report."""
    report = c.root / f"{node}-{time.monotonic_ns()}.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "preflight",
            "run",
            "--profile",
            "dgx-h100",
            "--baseline",
            str(c.root / "bad.toml"),
            "--only",
            "node.gpu_count",
            "--slurm-drain",
            "--node-name",
            node,
            "--format",
            "json",
            "--output",
            str(report),
            *extra,
        ],
        env={**c.env, "PREFLIGHT_CONFIG": ""},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    doc = json.loads(report.read_text())
    jsonschema.validate(doc, SCHEMA)
    return done.returncode, done.stderr, doc


def drained_by_preflight(c: Cluster) -> list[str]:
    out = []
    for n in c.nodes:
        state, reason = c.node(n)
        if "DRAIN" in state and (reason or "").startswith("preflight:"):
            out.append(n)
    return out


def test_a_fleet_failing_everywhere_drains_at_most_the_limit(cluster: Cluster) -> None:
    c = cluster
    # an operator's drain in the partition does not count against preflight's limit
    c.scontrol("update", "NodeName=g5", "State=DRAIN", "Reason=maintenance: PSU swap")
    codes = {}
    for node in ("g1", "g2", "g3", "g4"):
        code, err, doc = health_check(c, node, "--max-drained", "2")
        codes[node] = code
        slurm = doc["slurm"]
        assert isinstance(slurm, dict)
        if node in ("g1", "g2"):
            assert slurm["action"] == "drain" and not slurm["guard"]["held"], err
        else:
            assert slurm["action"] == "held", err
            assert slurm["guard"] == {
                "held": True,
                "limit": "2",
                "scope": "partition",
                "drained": 2,
                "allowed": 2,
                "nodes": 5,
                "error": None,
                "message": "not drained: 2 of 5 nodes in partition gpu already drained by "
                "preflight, limit 2 (2 nodes)",
            }
            lines = [line for line in err.splitlines() if line.strip()]
            assert lines == [
                f"preflight: slurm: node {node}: not drained: 2 of 5 nodes in partition gpu "
                "already drained by preflight, limit 2 (2 nodes)"
            ]
    assert codes == {"g1": 1, "g2": 1, "g3": 1, "g4": 1}  # the run's own verdict, held or not
    assert drained_by_preflight(c) == ["g1", "g2"]
    assert c.node("g5") == ("IDLE+DRAIN", "maintenance: PSU swap")

    # a percentage of the partition: 60% of 5 nodes is 3, so one more may go
    code, err, doc = health_check(c, "g3", "--max-drained", "60%")
    assert code == 1 and doc["slurm"]["action"] == "drain", err  # type: ignore[index]
    code, err, doc = health_check(c, "g4", "--max-drained", "60%")
    assert doc["slurm"]["action"] == "held", err  # type: ignore[index]
    assert drained_by_preflight(c) == ["g1", "g2", "g3"]

    # the table footer says it too
    done = subprocess.run(
        [sys.executable, "-m", "preflight", "run", "--profile", "dgx-h100", "--baseline",
         str(c.root / "bad.toml"), "--only", "node.gpu_count", "--slurm-drain", "--node-name",
         "g4", "--max-drained", "1"],
        env={**c.env, "PREFLIGHT_CONFIG": "", "COLUMNS": "200"},
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.rstrip().endswith(
        "\nslurm: node g4: not drained: 3 of 5 nodes in partition gpu already drained by "
        "preflight, limit 1 (1 node)"
    )

    # the partition scope: cpu has none drained; the cluster scope counts gpu's three
    code, err, doc = health_check(c, "c1", "--max-drained", "3", "--max-drained-scope", "cluster")
    assert doc["slurm"]["action"] == "held", err  # type: ignore[index]
    assert doc["slurm"]["guard"]["nodes"] == 7  # type: ignore[index]
    code, err, doc = health_check(c, "c1", "--max-drained", "1")
    assert doc["slurm"]["action"] == "drain", err  # type: ignore[index]
    assert drained_by_preflight(c) == ["g1", "g2", "g3", "c1"]

    # re-draining a node preflight drained already does not count it against itself
    code, err, doc = health_check(c, "c1", "--max-drained", "1")
    assert doc["slurm"]["action"] == "none", err  # type: ignore[index]


def test_an_unreachable_controller_holds_the_drain(tmp_path: Path, cluster: Cluster) -> None:
    """Fail safe: the count cannot be had (a controller that does not answer), so no drain;
    the sinfo call is killed at --slurm-timeout."""
    conf = cluster.root / "slurm.conf"
    dead = tmp_path / "slurm.conf"
    text = conf.read_text()
    port_line = next(line for line in text.splitlines() if line.startswith("SlurmctldPort="))
    dead.write_text(text.replace(port_line, "SlurmctldPort=9"))  # discard: nobody listens
    c = Cluster(cluster.root, {**cluster.env, "SLURM_CONF": str(dead)}, cluster.nodes)
    t0 = time.monotonic()
    code, err, doc = health_check(c, "g4", "--max-drained", "5", "--slurm-timeout", "1.5")
    took = time.monotonic() - t0
    slurm = doc["slurm"]
    assert isinstance(slurm, dict)
    assert code == 1 and slurm["action"] == "held"
    assert slurm["guard"]["error"] == "sinfo did not answer within 1.5 s; abandoned"
    assert "holds drains it cannot verify" in err
    assert took < 30, took  # show node and sinfo, 1.5 s each, plus the run itself
    assert "DRAIN" not in cluster.node("g4")[0]
