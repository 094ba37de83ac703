"""GPU↔NIC topology: distance classes against a real `nvidia-smi topo -m`, the check, the facts."""

from __future__ import annotations

import re
from collections.abc import Callable

from typer.testing import CliRunner

from preflight.checks.topology import DistanceParams, gpu_nic_distance, judge_distance
from preflight.cli import app
from preflight.inventory import Inventory
from preflight.inventory.facts import node_facts
from preflight.inventory.topology import PathType
from preflight.model import Status
from tests.paths import CAPTURES

# The GPU x NIC block of the Mooncake node's matrix (CAP_TOPO: the 8 GPU rows, NIC0..NIC11
# columns, the NV18 GPU columns left out). Its 8 ConnectX-7 NICs are NIC0, NIC3, NIC4, NIC5,
# NIC6, NIC9, NIC10, NIC11: the ones dgx-h100 models as mlx5_0..7.
CAPTURED_ROWS = """\
GPU0  PIX  PIX  PIX  NODE NODE NODE SYS  SYS  SYS  SYS  SYS  SYS
GPU1  NODE NODE NODE PIX  NODE NODE SYS  SYS  SYS  SYS  SYS  SYS
GPU2  NODE NODE NODE NODE PIX  NODE SYS  SYS  SYS  SYS  SYS  SYS
GPU3  NODE NODE NODE NODE NODE PIX  SYS  SYS  SYS  SYS  SYS  SYS
GPU4  SYS  SYS  SYS  SYS  SYS  SYS  PIX  PIX  PIX  NODE NODE NODE
GPU5  SYS  SYS  SYS  SYS  SYS  SYS  NODE NODE NODE PIX  NODE NODE
GPU6  SYS  SYS  SYS  SYS  SYS  SYS  NODE NODE NODE NODE PIX  NODE
GPU7  SYS  SYS  SYS  SYS  SYS  SYS  NODE NODE NODE NODE NODE PIX
"""
CX7_COLUMNS = (0, 3, 4, 5, 6, 9, 10, 11)
ProfileInventory = Callable[[str], Inventory]  # the conftest fixture


def test_dgx_h100_matrix_is_the_captured_one(profile_inventory: ProfileInventory) -> None:
    facts = node_facts(profile_inventory("dgx-h100"))
    for gpu, line in enumerate(CAPTURED_ROWS.splitlines()):
        nics = line.split()[1:]
        expected = [nics[c] for c in CX7_COLUMNS]
        ours = [facts[f"topology.GPU{gpu}.mlx5_{n}"] for n in range(8)]
        assert ours == expected, gpu
        assert facts[f"topology.GPU{gpu}.nearest_nic"] == f"mlx5_{gpu} PIX"


def test_embedded_rows_are_the_capture() -> None:
    text = next(CAPTURES.glob("nvidia-smi-topo-m_and_ibstat_8xH100*")).read_text()
    rows = {ln.split()[0]: ln.split()[9:21] for ln in text.splitlines() if ln.startswith("GPU")}
    for line in CAPTURED_ROWS.splitlines():
        assert rows[line.split()[0]] == line.split()[1:]


def test_check_passes_on_dgx_h100(profile_inventory: ProfileInventory) -> None:
    v = gpu_nic_distance.func(profile_inventory("dgx-h100"), DistanceParams())
    assert v.status is Status.PASS and v.summary == "8 GPUs with a NIC within PXB"
    first = v.findings[0]
    assert first.subject == "GPU0 0000:18:00.0" and first.message == "nearest NIC mlx5_0 (PIX)"
    assert str(first.evidence[0].observed).startswith("mlx5_0:PIX mlx5_1:NODE")


def test_check_fails_on_cross_socket_nic(profile_inventory: ProfileInventory) -> None:
    v = gpu_nic_distance.func(profile_inventory("dgx-h100-gpu-nic-cross-socket"), DistanceParams())
    assert v.status is Status.FAIL
    assert v.summary.startswith("GPU0 0000:18:00.0: nearest NIC mlx5_1 is NODE, farther than PXB")
    statuses = [f.status for f in v.findings]
    assert statuses == [Status.FAIL] + [Status.PASS] * 7
    # With the limit relaxed to NODE it passes: NODE is on GPU0's NUMA node.
    assert (
        gpu_nic_distance.func(
            profile_inventory("dgx-h100-gpu-nic-cross-socket"), DistanceParams(max_distance="node")
        ).status
        is Status.PASS
    )
    assert (
        gpu_nic_distance.func(
            profile_inventory("dgx-h100"), DistanceParams(max_distance="far")
        ).status
        is Status.ERROR
    )


def test_judge_distance_plain_values() -> None:
    row = [("mlx5_0", PathType.PIX), ("mlx5_1", PathType.NODE)]
    assert judge_distance("GPU0", row, PathType.PXB).status is Status.PASS
    far = [("mlx5_4", PathType.SYS)]
    assert judge_distance("GPU0", far, PathType.PXB).status is Status.FAIL
    # Within a relaxed limit it passes; the NUMA mismatch is numa.gpu_nic_affinity's to judge.
    assert judge_distance("GPU0", far, PathType.SYS).status is Status.PASS
    assert judge_distance("GPU0", [], PathType.PXB).status is Status.SKIP


def test_verbose_run_shows_the_matrix() -> None:
    result = CliRunner().invoke(app, ["run", "--profile", "dgx-h100", "--only", "topology.*", "-v"])
    assert result.exit_code == 0, result.output
    flat = " ".join(re.sub(r"[│┃]", " ", result.stdout).split())
    for gpu in range(8):
        assert f"GPU{gpu} 0000:" in flat
    assert "mlx5_0:PIX mlx5_1:NODE mlx5_2:NODE mlx5_3:NODE mlx5_4:SYS" in flat
