"""GPUDirect RDMA checks: peer memory (nvidia-peermem or DMA-BUF) and the verbs device nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from preflight.checks.gdr import PeermemParams, judge_peermem, judge_uverbs
from preflight.inventory.rdma import GpuDirectInfo, VerbsDevice
from preflight.model import Status
from tests.rdma_sysroot import host
from tests.test_rdma_checks import eight, run

PEERMEM = {"/sys/module/nvidia_peermem/version": "565.57.01"}
OPEN = ("565.57.01", True, "5.15.0-1067-nvidia")


def test_peermem_loaded_passes() -> None:
    f = judge_peermem(PEERMEM, "565.57.01", False, "5.4.0", "0", PeermemParams())
    assert f.status is Status.PASS and f.message == "nvidia_peermem loaded (version 565.57.01)"
    legacy = {"/sys/kernel/mm/memory_peers/nv_mem/version": "1.3"}
    assert "legacy" in judge_peermem(legacy, None, None, None, None, PeermemParams()).message


def test_dmabuf_passes_without_peermem() -> None:
    f = judge_peermem({}, *OPEN, None, PeermemParams())
    assert f.status is Status.PASS and f.message.startswith("DMA-BUF: open kernel module 565.57.01")


@pytest.mark.parametrize(
    ("driver", "open_module", "kernel", "env", "params", "reason"),
    [
        ("565.57.01", False, "5.15.0", None, PeermemParams(), "proprietary kernel module"),
        ("565.57.01", True, "5.4.0-150-generic", None, PeermemParams(), "older than 5.12"),
        ("565.57.01", True, "5.15.0", "0", PeermemParams(), "NCCL_DMABUF_ENABLE=0"),
        ("565.57.01", True, "5.15.0", None, PeermemParams(allow_dmabuf=False), "requires"),
        (None, None, "6.8.0", None, PeermemParams(), "no NVIDIA kernel module"),
    ],
)
def test_no_gdr_path_fails(
    driver: str | None,
    open_module: bool | None,
    kernel: str,
    env: str | None,
    params: PeermemParams,
    reason: str,
) -> None:
    f = judge_peermem({}, driver, open_module, kernel, env, params)
    assert f.status is Status.FAIL and reason in f.message
    assert f.message.startswith("no GPUDirect RDMA path: nvidia_peermem not loaded")


def test_gdr_info_reads_peermem_and_verbs(tmp_path: Path) -> None:
    (tmp_path / "sys/module/nvidia_peermem").mkdir(parents=True)
    (tmp_path / "sys/module/nvidia_peermem/version").write_text("565.57.01\n")
    verbs = tmp_path / "sys/class/infiniband_verbs/uverbs0"
    verbs.mkdir(parents=True)
    (verbs / "ibdev").write_text("mlx5_0\n")
    (tmp_path / "sys/class/infiniband_verbs/abi_version").write_text("6\n")
    (tmp_path / "dev/infiniband").mkdir(parents=True)
    (tmp_path / "dev/infiniband/uverbs0").write_text("")
    info = GpuDirectInfo.read(host(tmp_path))
    assert info.peermem == PEERMEM
    assert info.verbs == [VerbsDevice("uverbs0", "mlx5_0", "/dev/infiniband/uverbs0", True, True)]
    assert info.dev_infiniband == ["uverbs0"]


def _verbs(root: Path, count: int, nodes: int) -> None:
    for i in range(count):
        d = root / f"sys/class/infiniband_verbs/uverbs{i}"
        d.mkdir(parents=True)
        (d / "ibdev").write_text(f"mlx5_{i}\n")
    (root / "dev/infiniband").mkdir(parents=True, exist_ok=True)
    for i in range(nodes):
        (root / f"dev/infiniband/uverbs{i}").write_text("")


def test_uverbs_pass(tmp_path: Path) -> None:
    root = eight(tmp_path)
    _verbs(root, 8, 8)
    v = run("gdr.uverbs", root)
    assert v.status is Status.PASS and v.summary == "8 verbs devices, read-write"


def test_uverbs_missing_dev_directory_fails(tmp_path: Path) -> None:
    v = run("gdr.uverbs", eight(tmp_path))
    assert v.status is Status.FAIL and "/dev/infiniband is missing" in v.summary


def test_uverbs_missing_nodes_fail(tmp_path: Path) -> None:
    root = eight(tmp_path)
    _verbs(root, 7, 6)
    found = {f.subject: f for f in run("gdr.uverbs", root).findings}
    assert found["mlx5_7"].status is Status.FAIL and "ib_uverbs" in found["mlx5_7"].message
    assert found["mlx5_6"].status is Status.FAIL and "container" in found["mlx5_6"].message
    assert found["mlx5_0"].status is Status.PASS


def test_judge_uverbs_no_access() -> None:
    verbs = [VerbsDevice("uverbs0", "mlx5_0", "/dev/infiniband/uverbs0", True, False)]
    (f,) = judge_uverbs(["mlx5_0"], verbs, ["uverbs0"])
    assert f.status is Status.FAIL and "not readable and writable" in f.message


def test_uverbs_without_rdma_devices_skips(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    assert run("gdr.uverbs", tmp_path).status is Status.SKIP
