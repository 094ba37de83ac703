"""Active GPU tests on torch's CPU device (PREFLIGHT_ACTIVE_TEST_DEVICE=cpu, test only): real
worker processes in parallel, deadlines, peer statistics and the output checksum; and the
judges on plain records."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from preflight.active.collect import MEASURED, SKIPPED, UNAVAILABLE, ActiveOutcome, GpuRun
from preflight.active.hooks import nvml_standin
from preflight.active.judge import (
    below_peers,
    held_clock,
    judge_burn,
    judge_copy,
    judge_gemm,
    judge_p2p,
    not_measured,
    pcie_gbps,
    slowdown_names,
)
from preflight.cluster import figures
from preflight.execute import RunOptions, execute
from preflight.model import CheckResult, Status

torch_missing = pytest.importorskip  # torch is in the dev environment; the workers need it
torch_missing("torch")

CPU = {"PREFLIGHT_ACTIVE_TEST_DEVICE": "cpu"}


def run_one(check_id: str, env: dict[str, str], sets: tuple[str, ...] = ()) -> CheckResult:
    report = execute(RunOptions(only=(check_id,), env=env, sets=sets, level=2))
    return next(r for r in report.results if r.id == check_id)


def failing(result: CheckResult) -> dict[str, str]:
    return {f.subject: f.message for f in result.findings if f.status is Status.FAIL}


# -- real workers on the CPU device ------------------------------------------------------------


def test_gemm_on_parallel_workers_gives_one_checksum() -> None:
    result = run_one(
        "gpu.gemm", {**CPU, "PREFLIGHT_ACTIVE_TEST_DEVICES": "3"}, ("gpu.gemm.peer_tolerance=0",)
    )
    assert result.status is Status.PASS, result.summary
    assert "3 GPUs compute the same BF16 GEMM output" in result.summary
    assert {f.subject: f.status for f in result.findings} == {
        **{f"cpu:{i} BF16 GEMM": Status.PASS for i in range(3)},
        **{f"cpu:{i} FP8 GEMM": Status.SKIP for i in range(3)},
    }
    assert "cpu:0 FP8 GEMM: not supported on the torch CPU device (test only)" in result.summary


def test_a_corrupted_output_is_named_as_silent_data_corruption() -> None:
    env = {**CPU, "PREFLIGHT_ACTIVE_TEST_DEVICES": "3", "PREFLIGHT_ACTIVE_TEST_CORRUPT": "1"}
    result = run_one("gpu.gemm", env, ("gpu.gemm.peer_tolerance=0",))
    assert result.status is Status.FAIL
    assert failing(result) == {
        "cpu:1 checksum": "the GEMM output differs from the other 2 GPUs' for the same inputs: "
        "silent data corruption"
    }


def test_a_slow_device_among_fast_peers_fails_copy() -> None:
    env = {**CPU, "PREFLIGHT_ACTIVE_TEST_DEVICES": "3", "PREFLIGHT_ACTIVE_TEST_SLOW": "2:0.5"}
    result = run_one("gpu.copy_bandwidth", env, ("gpu.copy_bandwidth.peer_tolerance=0.5",))
    assert result.status is Status.FAIL
    bad = failing(result)
    assert {"cpu:2 host→device", "cpu:2 device→host", "cpu:2 device-local"} == set(bad)
    assert "below the node's median" in bad["cpu:2 host→device"]


def test_a_slow_pair_is_named() -> None:
    env = {**CPU, "PREFLIGHT_ACTIVE_TEST_DEVICES": "3", "PREFLIGHT_ACTIVE_TEST_SLOW": "0+2:0.5"}
    result = run_one("gpu.p2p_bandwidth", env, ("gpu.p2p_bandwidth.peer_tolerance=0.5",))
    assert result.status is Status.FAIL
    assert set(failing(result)) == {"GPU0→GPU2 copy"}
    assert len(result.findings) == 6  # every ordered pair of 3


def test_a_hung_worker_is_abandoned_at_its_deadline_and_named() -> None:
    env = {**CPU, "PREFLIGHT_ACTIVE_TEST_HANG": "1:gemm"}
    start = time.monotonic()
    result = run_one("gpu.gemm", env, ("gpu.gemm.timeout_s=25",))
    assert time.monotonic() - start < 40
    assert result.status is Status.FAIL
    assert failing(result)["cpu:1"] == (
        "the gemm worker did not finish within 25 s (stopped in gemm): a hung kernel or a wedged "
        "GPU (abandoned)"
    )
    assert "cpu:0 BF16 GEMM" in {f.subject for f in result.findings}


def test_burn_samples_nvml_of_a_profile_and_fails_a_thermal_slowdown(tmp_path: Any) -> None:
    profile = tmp_path / "hot.json"
    hot = {"clock_event_reasons": 0x40}
    profile.write_text(json.dumps({"extends": "dgx-h100", "nvml": {"gpus": {"0000:18:00.0": hot}}}))
    report = execute(
        RunOptions(
            profile=str(profile),
            baseline="generic",  # the H100 floors are not the CPU device's
            only=("gpu.burn",),
            sets=("gpu.burn.peer_tolerance=0",),  # CPU workers vary; the NVML reasons are judged
            env=CPU,
            nvml_timeout_s=10.0,
            level=2,
        )
    )
    result = report.results[0]
    assert result.status is Status.FAIL, result.summary
    assert failing(result) == {
        "GPU0 0000:18:00.0 clocks": "slowed down under load: HW thermal slowdown"
    }


def test_burn_on_the_cpu_device_says_its_clocks_were_not_sampled() -> None:
    result = run_one("gpu.burn", CPU, ("gpu.burn.peer_tolerance=0",))
    assert result.status is Status.PASS, result.summary
    skipped = {f.subject: f.message for f in result.findings if f.status is Status.SKIP}
    assert skipped == {
        "cpu:0 clocks": "not sampled: the test-only CPU device has no NVML",
        "cpu:1 clocks": "not sampled: the test-only CPU device has no NVML",
    }
    assert "2 of 4 not checked: cpu:0 clocks: not sampled" in result.summary


@pytest.mark.parametrize(
    ("standin", "bad"),
    [
        # a GPU that holds a lower clock than its peers, no reason given (stand-in samples)
        (
            "0:sm=1980;1:sm=1980;2:sm=1410",
            {
                "cpu:2 clocks": "held 1410 MHz SM clock under load, 29% below the node's median "
                "1980 MHz (tolerance 5%)"
            },
        ),
        (
            "0:sm=1980,reasons=0x40;1:sm=1980;2:sm=1980",
            {"cpu:0 clocks": "slowed down under load: HW thermal slowdown"},
        ),
        ("0:sm=1980;1:sm=1900;2:sm=1980", {}),  # 4% below: within the tolerance
    ],
)
def test_burn_judges_the_clocks_the_workers_sampled(standin: str, bad: dict[str, str]) -> None:
    env = {**CPU, "PREFLIGHT_ACTIVE_TEST_DEVICES": "3", "PREFLIGHT_ACTIVE_TEST_NVML": standin}
    result = run_one("gpu.burn", env, ("gpu.burn.peer_tolerance=0",))
    assert failing(result) == bad, result.summary
    assert result.status is (Status.FAIL if bad else Status.PASS)


def test_the_report_lists_the_figures_compare_reads_from_its_results() -> None:
    doc = execute(RunOptions(only=("gpu.gemm",), env=CPU, level=2)).to_dict()
    assert "gpu.gemm BF16 GEMM (TFLOPS)" in doc["figures"]
    assert not any("cpu:0" in metric for metric in doc["figures"])  # the median over devices
    older = json.dumps({k: v for k, v in doc.items() if k != "figures"}, indent=2).encode()
    assert dict(figures.extract(older, doc["facts"])) == doc["figures"]


def test_run_never_imports_torch_in_the_parent() -> None:
    code = (
        "import sys; from preflight.execute import RunOptions, execute; "
        "r = execute(RunOptions(only=('gpu.gemm',), env={'PREFLIGHT_ACTIVE_TEST_DEVICE': 'cpu'})); "
        "print(r.results[0].status.value, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["pass", "False"] or out.stdout.split()[1] == "False", out.stderr


def test_on_a_profile_without_the_test_device_active_tests_skip() -> None:
    report = execute(RunOptions(profile="dgx-h100", only=("gpu.gemm",)))
    assert report.results[0].status is Status.SKIP
    assert "profile describes a mocked node" in report.results[0].summary


# -- judges on plain records --------------------------------------------------------------------


def outcome(
    test: str, records: Sequence[dict[str, Any] | None], kind: str = "cuda", **kw: Any
) -> ActiveOutcome:
    runs = tuple(
        GpuRun(i, f"GPU{i} 0000:{i:02x}:00.0", r, None if r else "did not finish within 5 s")
        for i, r in enumerate(records)
    )
    return ActiveOutcome(test, MEASURED, "", kind, runs, **kw)


def test_pcie_bandwidth_per_generation() -> None:
    assert pcie_gbps(32.0, 16) == pytest.approx(63.02, abs=0.01)  # Gen5 x16
    assert pcie_gbps(16.0, 16) == pytest.approx(31.51, abs=0.01)  # Gen4 x16
    assert pcie_gbps(5.0, 16) == pytest.approx(8.0)  # Gen2: 8b/10b
    assert pcie_gbps(None, 16) is None


def test_below_peers() -> None:
    assert below_peers({"a": 100, "b": 98, "c": 70}, 0.15) == {"c": 98}
    assert below_peers({"a": 100}, 0.15) == {}


def test_copy_judged_against_the_link() -> None:
    rec = {"h2d_gbps": 55.0, "d2h_gbps": 30.0, "d2d_gbps": 2500.0}
    v = judge_copy(outcome("copy", [rec, rec]), {0: (32.0, 16), 1: (32.0, 8)}, 0.76, 2000.0, 0.15)
    bad = {f.subject: f.message for f in v.findings if f.status is Status.FAIL}
    # 30 GB/s is below 76% of Gen5 x16 (47.9) but above 76% of Gen5 x8 (23.9)
    assert set(bad) == {"GPU0 0000:00:00.0 device→host"}
    assert (
        "expected >= 47.89 GB/s (76% of the 32 GT/s x16 link)"
        in bad["GPU0 0000:00:00.0 device→host"]
    )


def test_a_worker_without_a_record_fails_as_hung() -> None:
    v = judge_gemm(outcome("gemm", [{"tflops": 700.0, "sha256": "ab"}, None]), 0.0, 0.1)
    assert v.status is Status.FAIL and "a hung kernel or a wedged GPU" in v.summary


def test_two_gpus_disagreeing_both_named() -> None:
    v = judge_gemm(
        outcome("gemm", [{"tflops": 1.0, "sha256": "a"}, {"tflops": 1.0, "sha256": "b"}]), 0, 0.1
    )
    assert {f.subject for f in v.findings if f.status is Status.FAIL} == {
        "GPU0 0000:00:00.0 checksum",
        "GPU1 0000:01:00.0 checksum",
    }


def fp8(tflops: float, sha: str) -> dict[str, Any]:
    return {"supported": True, "tflops": tflops, "sha256": sha}


NO_FP8 = {
    "supported": False,
    "reason": "not supported on NVIDIA A100 (compute capability 8.0 < 8.9)",
}

GEMM_FP8 = [
    # fp8 record per GPU, min_fp8_tflops, expected {subject: status} of the non-BF16 findings
    (
        [fp8(1300, "x"), fp8(1310, "x")],
        990.0,
        {"GPU0 FP8 GEMM": Status.PASS, "GPU1 FP8 GEMM": Status.PASS},
    ),
    (
        [fp8(1300, "x"), fp8(1310, "x"), fp8(1305, "y")],
        0.0,
        {
            "GPU0 FP8 GEMM": Status.PASS,
            "GPU1 FP8 GEMM": Status.PASS,
            "GPU2 FP8 GEMM": Status.PASS,
            "GPU2 FP8 checksum": Status.FAIL,
        },
    ),
    (
        [fp8(1300, "x"), fp8(900, "x")],
        990.0,
        {"GPU0 FP8 GEMM": Status.PASS, "GPU1 FP8 GEMM": Status.FAIL},
    ),
    ([NO_FP8, NO_FP8], 990.0, {"GPU0 FP8 GEMM": Status.SKIP, "GPU1 FP8 GEMM": Status.SKIP}),
]


@pytest.mark.parametrize(("records", "floor", "expected"), GEMM_FP8)
def test_gemm_fp8_table(
    records: list[dict[str, Any]], floor: float, expected: dict[str, Status]
) -> None:
    recs = [{"tflops": 700.0, "sha256": "bf", "fp8": f} for f in records]
    v = judge_gemm(outcome("gemm", recs), 0.0, 0.1, floor)
    got = {
        f.subject.replace(f"{f.subject.split()[1]} ", ""): f.status
        for f in v.findings
        if "BF16" not in f.subject
    }
    assert got == expected
    if all(s is not Status.FAIL for s in expected.values()):
        assert v.status is Status.PASS
    if NO_FP8 in records:
        assert "not supported on NVIDIA A100 (compute capability 8.0 < 8.9)" in v.summary


def test_burn_power_cap_warns_and_a_low_gpu_fails() -> None:
    recs = [
        {"window_tflops": [700.0] * 4},
        {"window_tflops": [700.0] * 4},
        {"window_tflops": [700.0, 500.0, 500.0, 500.0]},
    ]
    samples = ({"gpus": {"0000:00:00.0": {"clock_event_reasons": 0x4}}},)
    v = judge_burn(outcome("burn", recs, nvml_samples=samples), 0.0, 0.1)
    status = {f.subject: f.status for f in v.findings}
    assert status["GPU0 0000:00:00.0 clocks"] is Status.WARN
    assert status["GPU2 0000:02:00.0 sustained GEMM"] is Status.FAIL


def burn_record(sm: Sequence[float], reasons: int = 0) -> dict[str, Any]:
    samples = [{"t": i, "sm_mhz": v, "reasons": reasons} for i, v in enumerate(sm)]
    return {"window_tflops": [700.0] * 4, "clocks": {"sampled": True, "samples": samples}}


BURN_CLOCKS = [
    # records per GPU, clock tolerance, {GPU: expected clocks finding status}
    ([burn_record([1980] * 4)] * 3, 0.05, {0: Status.PASS, 1: Status.PASS, 2: Status.PASS}),
    # the ramp from idle does not count: the held clock is the second half's median
    ([burn_record([900, 1980, 1980, 1980])] * 2, 0.05, {0: Status.PASS, 1: Status.PASS}),
    (
        [burn_record([1980] * 4)] * 2 + [burn_record([1980, 1980, 1700, 1700])],
        0.05,
        {0: Status.PASS, 1: Status.PASS, 2: Status.FAIL},
    ),
    (
        [burn_record([1980] * 4)] * 2 + [burn_record([1700] * 4)],
        0.20,
        {0: Status.PASS, 1: Status.PASS, 2: Status.PASS},
    ),
    (
        [burn_record([1980] * 4, 0x8), burn_record([1980] * 4)],
        0.05,
        {0: Status.FAIL, 1: Status.PASS},
    ),  # HW slowdown
    (
        [burn_record([1980] * 4, 0x80), burn_record([1980] * 4)],
        0.05,
        {0: Status.FAIL, 1: Status.PASS},
    ),  # power brake
    (
        [burn_record([1980] * 4, 0x20), burn_record([1980] * 4)],
        0.05,
        {0: Status.FAIL, 1: Status.PASS},
    ),  # SW thermal slowdown
    (
        [burn_record([1980] * 4, 0x4), burn_record([1980] * 4)],
        0.05,
        {0: Status.WARN, 1: Status.PASS},
    ),  # SW power cap: a warning
    (
        [burn_record([1980] * 4, 0x1), burn_record([1980] * 4)],
        0.05,
        {0: Status.PASS, 1: Status.PASS},
    ),  # GPU idle bit: not a slowdown
    (
        [{"window_tflops": [1.0], "clocks": {"sampled": False, "reason": "NVML: NotSupported"}}],
        0.05,
        {0: Status.SKIP},
    ),
]


@pytest.mark.parametrize(("records", "tolerance", "expected"), BURN_CLOCKS)
def test_burn_clock_table(
    records: list[dict[str, Any]], tolerance: float, expected: dict[int, Status]
) -> None:
    v = judge_burn(outcome("burn", records), 0.0, 0.5, tolerance)
    got = {int(f.subject[3]): f.status for f in v.findings if f.subject.endswith(" clocks")}
    assert got == expected


def test_held_clock_and_slowdown_names() -> None:
    assert held_clock([]) is None
    assert held_clock([300, 1500, 1980, 1980, 1970]) == 1980
    assert slowdown_names(0x8 | 0x40 | 0x4 | 0x1) == ["HW slowdown", "HW thermal slowdown"]


def test_nvml_standin_hook_parsing() -> None:
    assert nvml_standin("1:sm=1410,reasons=0x40;2:temp=x,power=700;bad;3:sm=-5") == {
        "1": {"sm_mhz": 1410.0, "reasons": 0x40},
        "2": {"power_w": 700.0},
    }


def test_p2p_floor() -> None:
    rec = {
        "devices": [{"index": 0}, {"index": 1}],
        "pairs": [{"src": 0, "dst": 1, "gbps": 300.0}, {"src": 1, "dst": 0, "gbps": 360.0}],
    }
    v = judge_p2p(outcome("p2p", [rec]), 335.0, 0.5)
    assert v.status is Status.FAIL and v.summary.startswith(
        "GPU0→GPU1 copy: 300 GB/s, expected >= 335"
    )


@pytest.mark.parametrize(
    ("o", "status"),
    [
        (None, Status.SKIP),
        (
            ActiveOutcome("gemm", SKIPPED, "no NVIDIA GPU on this node: nothing to test"),
            Status.SKIP,
        ),
        (ActiveOutcome("gemm", UNAVAILABLE, "torch is not installed"), Status.ERROR),
    ],
)
def test_nothing_to_judge(o: ActiveOutcome | None, status: Status) -> None:
    v = not_measured(o, "run --level 2")
    assert v is not None and v.status is status


def test_fp8_product_runs_through_torch_scaled_mm() -> None:
    """The FP8 code path itself (cast, column-major B, scales, BF16 out) on torch's CPU
    _scaled_mm, which the CPU device otherwise reports as not supported: same bits twice, and
    the corruption hook changes them."""
    from preflight.active.worker import Worker

    def run(hooks: dict[str, Any]) -> dict[str, Any]:
        w = Worker({"kind": "cpu", "index": 0, "params": {}, "hooks": hooks})
        assert w.fp8_unsupported() == "not supported on the torch CPU device (test only)"
        w.fp8_unsupported = lambda: None  # type: ignore[method-assign]
        a, b = w._operands(64)
        return w.gemm_fp8(a, b, 64, 1)

    first, second, corrupt = run({}), run({}), run({"corrupt": "0"})
    assert first["supported"] and first["tflops"] > 0
    assert first["sha256"] == second["sha256"] != corrupt["sha256"]


def test_clock_sampler_says_why_it_has_no_samples() -> None:
    from preflight.active.clocks import CPU_REASON, STANDIN_SOURCE, ClockSampler

    cpu = ClockSampler("cpu", None, None)
    cpu.sample()
    assert cpu.record() == {"sampled": False, "reason": CPU_REASON}
    standin = ClockSampler("cpu", None, {"sm_mhz": 1410.0, "reasons": 0x40})
    standin.sample()
    record = standin.record()
    assert record["source"] == STANDIN_SOURCE
    assert [{k: v for k, v in s.items() if k != "t"} for s in record["samples"]] == [
        {"sm_mhz": 1410.0, "reasons": 0x40}
    ]
    assert ClockSampler("cuda", None, None).record()["reason"] == (
        "CUDA reports no PCI address for this GPU"
    )
    if not Path("/proc/driver/nvidia/version").exists():  # a real GPU would answer instead
        real = ClockSampler("cuda", "0000:18:00.0", None)
        real.sample()
        assert real.record()["reason"].startswith("NVML: NVMLError")
