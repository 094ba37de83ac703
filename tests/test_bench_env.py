"""Who a rank is, from torchrun's, srun's or the --nproc parent's environment."""

from __future__ import annotations

import pytest

from preflight.bench.env import first_host, node_id, rank_env, tasks_per_node
from preflight.bench.launch import under_launcher
from preflight.errors import ConfigError

TORCHRUN = {
    "RANK": "3",
    "WORLD_SIZE": "8",
    "LOCAL_RANK": "3",
    "LOCAL_WORLD_SIZE": "4",
    "MASTER_ADDR": "node1",
    "MASTER_PORT": "29400",
    "TORCHELASTIC_RUN_ID": "abc",
    "TORCHELASTIC_RESTART_COUNT": "1",
    "TORCHELASTIC_USE_AGENT_STORE": "True",
}


def test_torchrun() -> None:
    env = rank_env(TORCHRUN)
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size) == (3, 8, 3, 4)
    assert (env.master_addr, env.master_port, env.launcher) == ("node1", 29400, "torchrun")
    assert env.agent_store and env.run_id == "abc/1"


def test_srun() -> None:
    env = rank_env(
        {
            "SLURM_PROCID": "9",
            "SLURM_NTASKS": "16",
            "SLURM_LOCALID": "1",
            "SLURM_STEP_NODELIST": "node[005,007]",
            "SLURM_STEP_TASKS_PER_NODE": "8(x2)",
            "SLURM_JOB_ID": "123456",
        }
    )
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size) == (9, 16, 1, 8)
    assert env.master_addr == "node005" and env.master_port == 20000 + 123456 % 20000
    assert env.launcher == "srun" and not env.agent_store


def test_alone_and_broken() -> None:
    assert rank_env({}).world_size == 1 and rank_env({}).launcher == "single"
    with pytest.raises(ConfigError, match="MASTER_ADDR"):
        rank_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="not an integer"):
        rank_env({**TORCHRUN, "RANK": "x"})


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [
        ("node[005,007]", "node005"),
        ("gpu-[01-04],cpu1", "gpu-01"),
        ("a1,b2", "a1"),
        ("rack[1-2]-n[08-09]", "rack1-n08"),
        ("single", "single"),
    ],
)
def test_first_host(nodelist: str, first: str) -> None:
    assert first_host(nodelist) == first


def test_tasks_per_node() -> None:
    assert tasks_per_node("8(x2),4") == 8
    with pytest.raises(ConfigError):
        tasks_per_node("(x2)")


def test_node_id_template() -> None:
    env = rank_env(TORCHRUN)
    assert node_id("sim{local_rank}", {}, env) == "sim3"
    assert node_id(None, {"PREFLIGHT_NODE_ID": "r{rank}"}, env) == "r3"
    assert node_id(None, {}, env)  # the hostname
    with pytest.raises(ConfigError, match="only"):
        node_id("{gpu}", {}, env)


def test_under_launcher() -> None:
    assert under_launcher({}) is None
    assert under_launcher(TORCHRUN) == "torchrun"
    assert under_launcher({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) == "srun"
    assert under_launcher({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) is None
    assert under_launcher({"PREFLIGHT_BENCH_LAUNCHED": "1", "RANK": "0"}) == "--nproc"
