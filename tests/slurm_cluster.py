"""A real Slurm on this machine for tests: slurmctld and one slurmd per node (Debian's packages,
auth/none), nodes in the partitions given. Every daemon runs in a session of its own and is
killed when the context ends; every wait is bounded."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from preflight.slurm import parse_show_node

DAEMONS = ("slurmctld", "slurmd", "scontrol", "sinfo")
MISSING = [d for d in DAEMONS if shutil.which(d) is None]
SKIPS = [
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
{extra}
{nodes}
{partitions}
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
    nodes: tuple[str, ...]

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
        """How many health checks of `node` healthcheck.log records ("NODE STATUS" lines)."""
        path = self.root / "healthcheck.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return sum(1 for line in lines if line.split()[0] == node)

    def wait(self, what: str, ok: Callable[[], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.25)
        states = {n: self.node(n) for n in self.nodes}
        health = [f"hc-{n}.err" for n in self.nodes if (self.root / "log" / f"hc-{n}.err").exists()]
        pytest.fail(
            f"timed out after {timeout_s:g} s waiting for {what}; nodes: {states}\n"
            f"slurmctld.log:\n{self.log('slurmctld.log')}\n"
            + "".join(f"{name}:\n{self.log(name)}\n" for name in health)
        )


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Each daemon leads its own session: the group takes slurmstepd along.
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


@contextlib.contextmanager
def running(
    root: Path,
    partitions: Mapping[str, Sequence[str]],
    extra_conf: str = "",
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Cluster]:
    """slurmctld and a slurmd per node; `partitions` maps a partition to its nodes (a node may
    be in several); `extra_conf`: more slurm.conf lines (a HealthCheckProgram); `extra_env`: more
    environment for the daemons and the commands. Yields once every node is idle."""
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir(exist_ok=True)
    names = tuple(dict.fromkeys(n for nodes in partitions.values() for n in nodes))
    ctld_port, *node_ports = free_ports(1 + len(names))
    nodes = "\n".join(
        f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} CPUs=1 "
        "RealMemory=100 State=UNKNOWN"
        for name, port in zip(names, node_ports, strict=True)
    )
    parts = "\n".join(
        f"PartitionName={p} Nodes={','.join(ns)} Default={'YES' if i == 0 else 'NO'} "
        "MaxTime=INFINITE State=UP"
        for i, (p, ns) in enumerate(partitions.items())
    )
    conf = root / "slurm.conf"
    conf.write_text(
        CONF.format(root=root, ctld_port=ctld_port, extra=extra_conf, nodes=nodes, partitions=parts)
    )
    env = {**os.environ, **(extra_env or {}), "SLURM_CONF": str(conf)}
    procs = [_start(["slurmctld", "-D", "-i", "-f", str(conf)], env, root / "log" / "ctld.out")]
    try:
        for name in names:
            procs.append(
                _start(
                    ["slurmd", "-D", "-N", name, "-f", str(conf)], env, root / "log" / f"{name}.out"
                )
            )
        c = Cluster(root, env, names)
        c.wait("every node idle", lambda: all(c.node(n)[0] == "IDLE" for n in names), 60.0)
        yield c
    finally:
        for proc in reversed(procs):
            _stop(proc)
