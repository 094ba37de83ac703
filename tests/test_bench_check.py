"""The bench.allreduce check of `preflight run --bench`: its judge, when it runs, and the CI path
(gloo ranks on a node without GPUs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preflight.bench.expected import Theoretical
from preflight.bench.measurement import FAILED, MEASURED, SKIPPED, UNAVAILABLE, Measurement
from preflight.bench.result import RankInfo, Row, SweepResult
from preflight.bench.run_bench import plan_measurement
from preflight.checks.bench import judge_allreduce
from preflight.cli import app
from preflight.model import Status
from tests import harness
from tests.bench_procs import python_c

GIB = 1 << 30
RANKS = tuple(RankInfo(r, r, "h", "h", r, f"cuda:{r}") for r in range(8))


def measured(busbw: float, wrong: int = 0) -> Measurement:
    rows = (
        Row(1 << 20, 1 << 18, "float", 100.0, 10.0, 17.5, 0, (), (0,) * 8),
        Row(GIB, GIB // 4, "float", 8000.0, 130.0, busbw, wrong, (), (0, wrong, *(0,) * 6)),
    )
    theo = Theoretical(300.0, "NVLink 12 links × 25 GB/s per GPU")
    result = SweepResult("nccl", "float32", 20, 5, "nproc", RANKS, rows, {}, theo)
    return Measurement(MEASURED, "", result, "nccl", 8)


class TestJudge:
    def test_pass_says_share_of_theoretical(self) -> None:
        v = judge_allreduce(measured(232.44), GIB, 200.0)
        assert v.status is Status.PASS
        assert "busbw 232.44 GB/s at 1 GiB on 8 nccl ranks, floor 200 GB/s" in v.summary
        assert "77% of 300 GB/s theoretical" in v.summary

    def test_below_floor_fails(self) -> None:
        v = judge_allreduce(measured(150.0), GIB, 200.0)
        assert v.status is Status.FAIL
        assert "busbw 150.00 GB/s, expected >= 200 GB/s" in v.summary
        [f] = v.findings
        assert f.evidence[0].observed == "150.00 GB/s"
        assert f.evidence[0].expected == ">= 200 GB/s busbw"

    def test_wrong_elements_fail_whatever_the_speed(self) -> None:
        v = judge_allreduce(measured(232.44, wrong=7), GIB, 0.0)
        assert v.status is Status.FAIL
        assert "7 wrong elements" in v.summary and "1: 7" in v.summary

    def test_gate_size_not_measured(self) -> None:
        v = judge_allreduce(measured(232.44), 2 * GIB, 0.0)
        assert v.status is Status.ERROR and "not measured" in v.summary

    def test_not_run_skipped_failed_unavailable(self) -> None:
        assert judge_allreduce(None, GIB, 0.0).status is Status.SKIP
        assert "--bench" in judge_allreduce(None, GIB, 0.0).summary
        assert judge_allreduce(Measurement(SKIPPED, "no GPU"), GIB, 0.0).summary == "no GPU"
        v = judge_allreduce(Measurement(FAILED, "rank 3 died", None, "nccl", 8), GIB, 0.0)
        assert v.status is Status.FAIL and "(nccl, 8 ranks) failed: rank 3 died" in v.summary
        v = judge_allreduce(Measurement(UNAVAILABLE, "torch is not installed"), GIB, 0.0)
        assert v.status is Status.ERROR


def test_plan_measurement() -> None:
    assert plan_measurement(8, True, None, None) == ("nccl", 8)
    assert plan_measurement(8, True, "nccl", 4) == ("nccl", 4)
    assert plan_measurement(0, True, "gloo", 2) == ("gloo", 2)
    assert "no NVIDIA GPU" in str(plan_measurement(0, True, None, None))
    assert "no NVIDIA GPU" in str(plan_measurement(0, True, "gloo", None))
    assert "mocked node" in str(plan_measurement(8, False, None, None))


def run_json(*args: str) -> tuple[int, dict[str, dict[str, object]]]:
    code, doc = harness.run_json(*args)
    return code, harness.by_id(doc)


def test_not_selected_without_bench() -> None:
    _, results = run_json("--profile", "dgx-h100")
    assert "bench.allreduce" not in results


def test_named_without_bench_skips_with_a_hint() -> None:
    code, results = run_json("--profile", "dgx-h100", "--only", "bench.allreduce")
    assert code == 0 and results["bench.allreduce"]["status"] == "skip"
    assert "add --bench" in str(results["bench.allreduce"]["summary"])


def test_bench_on_a_profile_skips() -> None:
    _, results = run_json("--profile", "dgx-h100", "--bench", "--only", "pcie.link")
    assert set(results) == {"pcie.link", "bench.allreduce"}
    assert results["bench.allreduce"]["status"] == "skip"
    assert "mocked node" in str(results["bench.allreduce"]["summary"])


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--bench-nproc", "2"], "need --bench"),
        (["--bench", "--bench-backend", "mpi"], "unknown --bench-backend"),
        (["--bench", "--bench-nproc", "0"], "at least 1"),
    ],
)
def test_bench_option_errors(argv: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, ["run", "--profile", "dgx-h100", *argv])
    assert result.exit_code == 2 and needle in result.stderr


@pytest.mark.parametrize(
    ("setting", "needle"),
    [("dtype=float8", "unknown dtype"), ("min_bytes=4096", "min-bytes <= max-bytes")],
)
def test_bad_bench_parameters_are_configuration_errors(setting: str, needle: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--profile",
            "dgx-h100",
            "--bench",
            "--only",
            "bench.allreduce",
            "--set",
            f"bench.allreduce.{setting}",
            "--set",
            "bench.allreduce.max_bytes=1024",
        ],
    )
    assert result.exit_code == 3, result.output
    assert needle in result.stderr and "Traceback" not in result.output


SIZES = [
    "--set",
    "bench.allreduce.min_bytes=65536",
    "--set",
    "bench.allreduce.max_bytes=262144",
    "--set",
    "bench.allreduce.gate_bytes=262144",
    "--set",
    "bench.allreduce.iters=3",
    "--set",
    "bench.allreduce.warmup=1",
]
PROBE = """
import json, sys
sys.argv[0] = "preflight"
from preflight.cli import app
assert "torch" not in sys.modules, "import preflight.cli imported torch"
for argv in (["run", "--profile", "dgx-h100", "--format", "json", "--output", "/dev/null"],
             sys.argv[1:]):
    try:
        app(argv)
    except SystemExit as exc:
        print("exit", exc.code, file=sys.stderr)
print(json.dumps(sorted(m for m in ("torch", "torch.distributed") if m in sys.modules)))
"""


def test_run_bench_on_gloo_ranks_never_imports_torch_here(tmp_path: Path) -> None:
    """The CI path: no GPU, gloo with 2 ranks. `preflight run` (with and without --bench) never
    imports torch in its own process; the ranks it starts do."""
    pytest.importorskip("torch")
    out = tmp_path / "report.json"
    argv = [
        "run",
        "--bench",
        "--bench-backend",
        "gloo",
        "--bench-nproc",
        "2",
        "--only",
        "bench.allreduce",
        *SIZES,
        "--set",
        "bench.allreduce.min_busbw_gbps=0.001",
        "--format",
        "json",
        "--output",
        str(out),
    ]
    proc = python_c(PROBE, *argv)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr
    assert "exit 0" in proc.stderr.splitlines()[-1], proc.stderr
    doc = json.loads(out.read_text())
    [result] = doc["results"]
    assert result["id"] == "bench.allreduce" and result["status"] == "pass", result
    assert "on 2 gloo ranks, floor 0.001 GB/s" in result["summary"]
    assert "no theoretical figure on CPU" in result["summary"]


def test_run_bench_without_torch_is_an_error() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.argv[0] = 'preflight'; "
        "from preflight.cli import main; main()"
    )
    proc = python_c(
        code,
        "run",
        "--bench",
        "--bench-backend",
        "gloo",
        "--bench-nproc",
        "2",
        "--only",
        "bench.allreduce",
        "--format",
        "json",
        timeout=60,
    )
    assert proc.returncode == 1
    [result] = json.loads(proc.stdout)["results"]
    assert result["status"] == "error"
    assert "torch is not installed: pip install 'gpu-preflight[bench]'" in result["summary"]


def test_first_error_is_what_a_failed_measurement_reports(tmp_path: Path) -> None:
    from preflight.bench.run_bench import first_error

    a, b = tmp_path / "rank0.err", tmp_path / "rank1.err"
    a.write_text("some torch warning\n")
    b.write_text("preflight: error: rank 1 (h): all_reduce of 1 MiB failed: reset\n")
    assert first_error([a, b]) == "rank 1 (h): all_reduce of 1 MiB failed: reset"
    assert first_error([a, tmp_path / "absent"]) is None
