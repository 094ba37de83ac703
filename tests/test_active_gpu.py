"""The active tests on this machine's real GPUs (`gpu` marker; tools/gpu_check.sh runs them):
skipped where there is no NVIDIA driver or torch sees no CUDA device."""

from __future__ import annotations

import os

import pytest

from preflight.execute import RunOptions, execute
from preflight.model import Status

pytestmark = pytest.mark.gpu
ACTIVE = ("gpu.copy_bandwidth", "gpu.p2p_bandwidth", "gpu.gemm", "gpu.burn")


def fp8_capable() -> bool:
    torch = pytest.importorskip("torch")
    return all(
        torch.cuda.get_device_capability(i) >= (8, 9) for i in range(torch.cuda.device_count())
    )


@pytest.fixture(scope="module")
def report() -> dict[str, tuple[Status, str]]:
    if not os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("no NVIDIA driver on this machine")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    env = {"PREFLIGHT_ACTIVE_TEST_DEVICE": ""}  # the real GPUs, whatever the caller's env
    sets = ("gpu.burn.duration_s=10",)
    result = execute(RunOptions(only=ACTIVE, env=env, sets=sets, level=2))
    for r in result.results:
        print(f"{r.status.value:5} {r.id}: {r.summary}")
        for f in r.findings:
            print(f"      {f.status.value:5} {f.subject}: {f.message}")
    return {r.id: (r.status, r.summary) for r in result.results}


@pytest.mark.parametrize("check_id", ACTIVE)
def test_measured_on_every_gpu(report: dict[str, tuple[Status, str]], check_id: str) -> None:
    status, summary = report[check_id]
    assert status is not Status.ERROR, summary
    assert status is not Status.SKIP or "fewer than 2 GPUs" in summary, summary
    assert "test-only CPU device" not in summary


def test_every_gpu_computes_the_same_bits(report: dict[str, tuple[Status, str]]) -> None:
    assert "silent data corruption" not in report["gpu.gemm"][1]


def test_fp8_measured_where_the_gpus_have_fp8(report: dict[str, tuple[Status, str]]) -> None:
    summary = report["gpu.gemm"][1]
    if fp8_capable():
        assert "BF16 and FP8 GEMM output" in summary, summary
    else:
        assert "FP8 GEMM: not supported on" in summary, summary


def test_burn_sampled_the_clocks(report: dict[str, tuple[Status, str]]) -> None:
    summary = report["gpu.burn"][1]
    assert "SM clocks held at" in summary and "not sampled" not in summary, summary
