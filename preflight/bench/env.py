"""Who this rank is: from torchrun's or srun's environment, from `--nproc`, or alone."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from preflight.errors import ConfigError

NODE_ID_ENV = "PREFLIGHT_NODE_ID"
LAUNCHED_ENV = "PREFLIGHT_BENCH_LAUNCHED"
"""Set by the `--nproc` parent in its rank processes."""
TOKEN_ENV = "PREFLIGHT_BENCH_TOKEN"
"""The secret every rank of a job shares (preflight.bench.auth); `--nproc` makes a random one."""

DEFAULT_PORT = 29500


@dataclass(frozen=True)
class RankEnv:
    """This process's place in the world and where the rendezvous store listens."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int
    launcher: str  # torchrun, srun, nproc, env, single
    agent_store: bool = False  # torchrun's agent already serves the store at master_port
    run_id: str = ""

    @property
    def is_leader(self) -> bool:
        """Rank 0 reports."""
        return self.rank == 0


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise ConfigError(f"{name}={env[name]!r} is not an integer") from None


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: 'node[005,007]' → 'node005', 'a[1-3]-b[2-4]' → 'a1-b2'.

    Only the first host is expanded: it is where srun starts rank 0 (block distribution).
    """
    first, depth = [], 0
    for ch in nodelist:
        if ch == "," and depth == 0:
            break
        depth += ch == "["
        depth -= ch == "]"
        first.append(ch)
    text = "".join(first)

    def pick(m: re.Match[str]) -> str:
        return re.split(r"[,-]", m.group(1), maxsplit=1)[0]

    return re.sub(r"\[([^\]]*)\]", pick, text)


def tasks_per_node(value: str) -> int:
    """SLURM_TASKS_PER_NODE '8(x2),4' → 8: the first node's count."""
    m = re.match(r"^\s*(\d+)", value)
    if not m:
        raise ConfigError(f"SLURM_TASKS_PER_NODE={value!r} is not understood")
    return int(m.group(1))


def rank_env(env: Mapping[str, str]) -> RankEnv:
    """Read the launcher's variables; alone (world size 1) when none is set.

    torchrun and `--nproc` set RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and
    MASTER_PORT. srun sets SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID and the node list; the
    store then listens on the first node, on MASTER_PORT or a port derived from the job id.
    """
    if "RANK" in env and "WORLD_SIZE" in env:
        if "MASTER_ADDR" not in env or "MASTER_PORT" not in env:
            raise ConfigError("RANK and WORLD_SIZE are set but MASTER_ADDR/MASTER_PORT are not")
        if "TORCHELASTIC_RUN_ID" in env:
            launcher = "torchrun"
        elif LAUNCHED_ENV in env:
            launcher = "nproc"
        else:
            launcher = "env"
        world = _int(env, "WORLD_SIZE")
        return RankEnv(
            rank=_int(env, "RANK"),
            world_size=world,
            local_rank=_int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0,
            local_world_size=_int(env, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in env else 1,
            master_addr=env["MASTER_ADDR"],
            master_port=_int(env, "MASTER_PORT"),
            launcher=launcher,
            agent_store=env.get("TORCHELASTIC_USE_AGENT_STORE") == "True",
            run_id=env.get("TORCHELASTIC_RUN_ID", "")
            + "/"
            + env.get("TORCHELASTIC_RESTART_COUNT", "0"),
        )
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
        addr = env.get("MASTER_ADDR") or (first_host(nodelist) if nodelist else "")
        if not addr:
            raise ConfigError("under srun but neither MASTER_ADDR nor SLURM_STEP_NODELIST is set")
        if "MASTER_PORT" in env:
            port = _int(env, "MASTER_PORT")
        else:
            # Every step of a job computes the same port; jobs sharing a node rarely collide.
            port = 20000 + _int(env, "SLURM_JOB_ID") % 20000 if "SLURM_JOB_ID" in env else 29500
        per_node = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE") or "1"
        return RankEnv(
            rank=_int(env, "SLURM_PROCID"),
            world_size=_int(env, "SLURM_NTASKS"),
            local_rank=_int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0,
            local_world_size=tasks_per_node(per_node),
            master_addr=addr,
            master_port=port,
            launcher="srun",
        )
    return RankEnv(0, 1, 0, 1, "127.0.0.1", DEFAULT_PORT, "single")


def node_id(template: str | None, env: Mapping[str, str], rank: RankEnv) -> str:
    """The node this rank belongs to: --node-id, else $PREFLIGHT_NODE_ID, else the hostname.

    '{rank}', '{local_rank}' and '{host}' in the value are replaced, so one command line can
    give each local rank its own simulated node (`--node-id 'sim{local_rank}'`).
    """
    value = template or env.get(NODE_ID_ENV) or socket.gethostname()
    try:
        return value.format(rank=rank.rank, local_rank=rank.local_rank, host=socket.gethostname())
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"--node-id {value!r}: only {{rank}}, {{local_rank}} and {{host}} may be used ({exc})"
        ) from None
