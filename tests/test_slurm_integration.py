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
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preflight.cli import app
from preflight.slurm import parse_show_node

DAEMONS = ("slurmctld", "slurmd", "scontrol", "srun")
MISSING = [d for d in DAEMONS if shutil.which(d) is None]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"Slurm not installed ({', '.join(MISSING)} missing): "
        "apt-get install slurmctld slurmd slurm-client (.ci/run does, as root)",
    ),
    pytest.mark.skipif(
        hasattr(os, "geteuid") and os.geteuid() != 0,
        reason="slurmd runs jobs as their users, so it must run as root",
    ),
]

NODES = {"n1": "dgx-h100", "n2": "dgx-h100-acs-enabled", "n3": "dgx-h100"}
HEALTH_CHECK_INTERVAL_S = 4
REPO = Path(__file__).resolve().parent.parent

CONF = """\
ClusterName=preflight-test
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/linear
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MailProg=/bin/true
HealthCheckProgram={root}/healthcheck.sh
HealthCheckInterval={interval}
HealthCheckNodeState=ANY
{nodes}
PartitionName=debug Nodes={names} Default=YES MaxTime=INFINITE State=UP
"""

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


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]

    def scontrol(self, *args: str) -> str:
        done = subprocess.run(
            ["scontrol", *args], env=self.env, capture_output=True, text=True, timeout=15
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def node(self, name: str) -> tuple[str, str | None]:
        state = parse_show_node(name, self.scontrol("show", "node", name))
        return state.state, state.reason

    def log(self, name: str) -> str:
        path = self.root / "log" / name
        return path.read_text()[-3000:] if path.exists() else f"({name} missing)"

    def checks_of(self, node: str) -> int:
        path = self.root / "healthcheck.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return sum(1 for line in lines if line.split()[0] == node)

    def wait(self, what: str, ok: Callable[[], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.25)
        states = {n: self.node(n) for n in NODES}
        pytest.fail(
            f"timed out after {timeout_s:g} s waiting for {what}; nodes: {states}\n"
            f"slurmctld.log:\n{self.log('slurmctld.log')}\n"
            + "".join(f"hc-{n}.err:\n{self.log(f'hc-{n}.err')}\n" for n in NODES)
        )


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Each daemon leads its own session: the group takes slurmstepd and health checks along.
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    root = tmp_path
    for sub in ("state", "spool", "log", "profiles", "sweep"):
        (root / sub).mkdir()
    ctld_port, *node_ports = free_ports(1 + len(NODES))
    nodes = "\n".join(
        f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} CPUs=1 "
        "RealMemory=100 State=UNKNOWN"
        for name, port in zip(NODES, node_ports, strict=True)
    )
    (root / "slurm.conf").write_text(
        CONF.format(
            root=root,
            ctld_port=ctld_port,
            interval=HEALTH_CHECK_INTERVAL_S,
            nodes=nodes,
            names=",".join(NODES),
        )
    )
    path = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    fill = {"root": root, "python": sys.executable, "path": path, "repo": REPO}
    for name, text in (("healthcheck.sh", HEALTHCHECK), ("sweep.sh", SWEEP)):
        (root / name).write_text(text.format(**fill))
        (root / name).chmod(0o755)
    for name, profile in NODES.items():
        set_profile(root, name, profile)
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf"), "PYTHONPATH": str(REPO)}
    conf = str(root / "slurm.conf")
    procs = [_start(["slurmctld", "-D", "-i", "-f", conf], env, root / "log" / "ctld.out")]
    try:
        for name in NODES:
            procs.append(
                _start(["slurmd", "-D", "-N", name, "-f", conf], env, root / "log" / f"{name}.out")
            )
        c = Cluster(root, env)
        c.wait(
            "every node idle",
            lambda: all(c.node(n)[0] == "IDLE" for n in NODES),
        )
        yield c
    finally:
        for proc in reversed(procs):
            _stop(proc)


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
