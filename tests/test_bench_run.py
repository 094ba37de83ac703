"""`preflight bench allreduce` for real: gloo ranks on this machine under --nproc and torchrun."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preflight.bench import TORCH_MISSING
from preflight.cli import app
from tests.bench_procs import ROOT, clean_env, preflight, python_c
from tests.nccl_tables import parse

pytest.importorskip("torch")

FAST = ["--backend", "gloo", "--iters", "3", "--warmup", "1"]


def test_nproc_prints_the_nccl_tests_table_and_a_chart() -> None:
    proc = preflight(
        "bench", "allreduce", "--nproc", "2", *FAST, "--min-bytes", "1K", "--max-bytes", "256K"
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    [table] = parse(proc.stdout)
    assert table.ranks == 2
    assert [r.bytes for r in table.rows] == [1024 << i for i in range(9)]
    for row in table.rows:
        half = row.halves[0]
        assert half.wrong == 0 and half.busbw == half.algbw  # 2 ranks: factor 1
    assert "launcher nproc" in proc.stdout and "busbw by size" in proc.stdout
    assert "no theoretical figure on CPU" in proc.stdout and proc.stdout.rstrip().count("PASS")


def test_torchrun_json_in_bfloat16(tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not on PATH")
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "preflight",
            "bench",
            "allreduce",
            *FAST,
            "--dtype",
            "bfloat16",
            "--sizes",
            "1K,64K,1M",
            "--format",
            "json",
            "--output",
            str(out),
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["launcher"] == "torchrun" and doc["world_size"] == 2 and doc["backend"] == "gloo"
    assert doc["dtype"] == "bfloat16" and [r["type"] for r in doc["rows"]] == ["bfloat16"] * 3
    assert [r["bytes"] for r in doc["rows"]] == [1024, 65536, 1 << 20]
    assert [r["count"] for r in doc["rows"]] == [512, 32768, 1 << 19]
    for row in doc["rows"]:
        assert row["wrong"] == 0 and len(row["rank_time_us"]) == 2
        assert row["time_us"] == max(row["rank_time_us"])  # the slowest rank's time
    assert doc["environment"]["torch"].startswith("2.") and doc["environment"]["nccl"] is None
    assert [r["rank"] for r in doc["ranks"]] == [0, 1] and doc["hosts"]
    assert doc["theoretical"] is None and "CPU" in doc["theoretical_note"]
    assert doc["status"] == "pass" and doc["gate"]["bytes"] == 1 << 20


def test_corruption_on_one_rank_fails_the_run() -> None:
    """Test hook: rank 1 flips 5 elements of every reduced buffer (float16, 3 ranks)."""
    proc = preflight(
        "bench",
        "allreduce",
        "--nproc",
        "3",
        *FAST,
        "--dtype",
        "float16",
        "--sizes",
        "4K,64K",
        "--min-busbw",
        "1000000",
        "--format",
        "json",
        env={"PREFLIGHT_BENCH_TEST_CORRUPT": "1:5"},
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert [r["wrong"] for r in doc["rows"]] == [5, 5]
    for row in doc["rows"]:  # 3 ranks: busbw = algbw × 2·2/3
        assert row["busbw_gbps"] == pytest.approx(row["algbw_gbps"] * 4 / 3, rel=1e-3, abs=2e-4)
    assert [r["rank_wrong"] for r in doc["rows"]] == [[0, 5, 0], [0, 5, 0]]
    assert doc["status"] == "fail"
    [corrupt, floor] = doc["problems"]
    assert "10 wrong elements" in corrupt and "silent data corruption" in corrupt
    assert "expected >= 1e+06 GB/s" in floor


BLOCK_TORCH = (
    "import sys; sys.modules['torch'] = None; sys.argv[0] = 'preflight'; "
    "from preflight.cli import main; main()"
)


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "allreduce"],
        ["bench", "allreduce", "--nproc", "2", "--backend", "gloo"],
        ["bench", "locate", "--nproc", "2"],
    ],
)
def test_without_torch_one_line_and_exit_3(argv: list[str]) -> None:
    proc = python_c(BLOCK_TORCH, *argv, timeout=30)
    assert proc.returncode == 3
    assert proc.stderr.splitlines() == [f"preflight: error: {TORCH_MISSING}"]
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--format", "xml"], "--format"),
        (["--backend", "mpi"], "--backend"),
        (["--sizes", "1K,banana"], "not a size"),
        (["--dtype", "float8"], "unknown dtype"),
        (["--iters", "0"], "--iters"),
        (["--op-timeout", "0"], "positive"),
        (["--max-bytes", "4", "--min-bytes", "8"], "min-bytes"),
    ],
)
def test_usage_errors(argv: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, ["bench", "allreduce", *argv])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and result.stderr.startswith("preflight: error:")


def test_nproc_under_torchrun_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    result = CliRunner().invoke(app, ["bench", "allreduce", "--nproc", "2"])
    assert result.exit_code == 2 and "already runs under torchrun" in result.stderr
