"""A real Slurm on this machine: slurmctld and three slurmd (Debian's packages), auth/none.

Each node runs preflight on its own profile as its HealthCheckProgram (slurmd starts it, with
SLURMD_NODENAME set and an otherwise empty environment). n2's profile has ACS redirect on: it is
drained with a `preflight:` reason while n1 and n3 stay idle; an operator's drain of n3 survives
a passing health check; once n2's profile is fixed, `--slurm-resume` returns it to service. Before
the health checks are switched on, an `srun` sweep writes every node's JSON report and
`preflight compare` names n2. Every daemon is started here, in a session of its own, and killed at
teardown; every wait is bounded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preflight.cli import app
from tests.slurm_cluster import SKIPS, Cluster, running

pytestmark = [
    *SKIPS,
    pytest.mark.skipif(
        shutil.which("srun") is None, reason="srun missing: apt-get install slurm-client"
    ),
]

NODES = {"n1": "dgx-h100", "n2": "dgx-h100-acs-enabled", "n3": "dgx-h100"}
HEALTH_CHECK_INTERVAL_S = 4
REPO = Path(__file__).resolve().parent.parent

HEALTH_CONF = """\
HealthCheckProgram={root}/healthcheck.sh
HealthCheckInterval={interval}
HealthCheckNodeState=ANY"""

# slurmd gives a HealthCheckProgram SLURMD_NODENAME and little else; the script exits 0 until
# the test switches health checks on, so the srun sweep finds every node idle first.
HEALTHCHECK = """#!/bin/sh
[ -e {root}/healthcheck.on ] || exit 0
export SLURM_CONF={root}/slurm.conf PATH={path} PYTHONPATH={repo}
{python} -m preflight run --profile {root}/profiles/$SLURMD_NODENAME.json \\
    --slurm-drain --slurm-resume --format json --output {root}/hc-$SLURMD_NODENAME.json \\
    2>> {root}/log/hc-$SLURMD_NODENAME.err
echo "$SLURMD_NODENAME $?" >> {root}/healthcheck.log
"""

SWEEP = """#!/bin/sh
{python} -m preflight run --profile {root}/profiles/$SLURMD_NODENAME.json \\
    --format json --output {root}/sweep/$SLURMD_NODENAME.json
exit 0
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    root = tmp_path
    for sub in ("profiles", "sweep"):
        (root / sub).mkdir()
    path = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    fill = {"root": root, "python": sys.executable, "path": path, "repo": REPO}
    for name, text in (("healthcheck.sh", HEALTHCHECK), ("sweep.sh", SWEEP)):
        (root / name).write_text(text.format(**fill))
        (root / name).chmod(0o755)
    for name, profile in NODES.items():
        set_profile(root, name, profile)
    extra = HEALTH_CONF.format(root=root, interval=HEALTH_CHECK_INTERVAL_S)
    with running(root, {"debug": list(NODES)}, extra, {"PYTHONPATH": str(REPO)}) as c:
        yield c


def set_profile(root: Path, node: str, profile: str) -> None:
    (root / "profiles" / f"{node}.json").write_text(
        json.dumps({"extends": profile, "hostname": node})
    )


def test_health_check_drains_and_resumes_and_a_sweep_names_the_faulty_node(
    cluster: Cluster,
) -> None:
    c = cluster
    t0 = time.monotonic()

    # whole-cluster sweep: one task per node, then compare
    sweep = subprocess.run(
        ["srun", "-N3", "--ntasks-per-node=1", str(c.root / "sweep.sh")],
        env=c.env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert sweep.returncode == 0, sweep.stderr
    assert sorted(p.name for p in (c.root / "sweep").iterdir()) == ["n1.json", "n2.json", "n3.json"]
    result = CliRunner().invoke(app, ["compare", str(c.root / "sweep"), "--format", "json"])
    doc = json.loads(result.stdout)
    assert result.exit_code == 1
    assert doc["failures"]["by_node"][0]["hostname"] == "n2"
    assert [n["hostname"] for n in doc["failures"]["by_check"][0]["nodes"]] == ["n2"]
    assert doc["failures"]["by_action"] == [{"action": "fix-config", "nodes": ["n2"]}]
    acs = [d for d in doc["drift"]["items"] if d["fact"].endswith(".acs_ctl")]
    assert acs and all(d["differs"][0]["nodes"] == ["n2"] for d in acs)

    # health checks on: the faulty node is drained by preflight, the healthy ones stay idle
    (c.root / "healthcheck.on").write_text("")
    c.wait("n2 drained by preflight", lambda: "DRAIN" in c.node("n2")[0])
    assert c.node("n2")[1] == "preflight: fix-config pcie.acs"
    c.wait("n1 and n3 checked", lambda: c.checks_of("n1") >= 1 and c.checks_of("n3") >= 1)
    assert c.node("n1") == ("IDLE", None) and c.node("n3") == ("IDLE", None)

    # an operator's drain is never undone by a passing health check
    c.scontrol("update", "NodeName=n3", "State=DRAIN", "Reason=maintenance: PSU swap")
    seen = c.checks_of("n3")
    c.wait("n3 checked again", lambda: c.checks_of("n3") > seen)
    state, reason = c.node("n3")
    assert "DRAIN" in state and reason == "maintenance: PSU swap"

    # fix n2: the next health check passes and resumes it
    set_profile(c.root, "n2", "dgx-h100")
    c.wait("n2 back in service", lambda: c.node("n2") == ("IDLE", None))
    assert "resumed n2" in (c.root / "log" / "hc-n2.err").read_text()
    print(f"slurm scenario: {time.monotonic() - t0:.1f} s after the cluster was up")
