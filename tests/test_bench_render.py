"""The nccl-tests-like table, the bar chart and the JSON document of a sweep."""

from __future__ import annotations

import io
import json

from preflight.bench.expected import Theoretical
from preflight.bench.render import bar, bar_chart, nccl_row, nccl_table, nccl_time, print_table
from preflight.bench.result import RankInfo, Row, SweepResult, judge_gate
from tests.nccl_tables import parse

RANKS = (RankInfo(0, 0, "h0", "h0", 100, "cuda:0"), RankInfo(1, 1, "h0", "h0", 101, "cuda:1"))


def sweep_result(wrong: int = 0, floor: float | None = None) -> SweepResult:
    rows = tuple(
        Row(b, b // 4, "float", t, b / t / 1e3, b / t / 1e3, wrong if b == 1 << 30 else 0)
        for b, t in ((8, 40.12), (1 << 20, 52.61), (1 << 30, 9306.7))
    )
    theo = Theoretical(300.0, "NVLink 12 links × 25 GB/s per GPU")
    r = SweepResult("nccl", "float32", 20, 5, "torchrun", RANKS, rows, {"torch": "2.13"}, theo)
    return r.with_gate(judge_gate(r.rows, 1 << 30, floor, theo))


def test_time_column_like_nccl_tests() -> None:
    assert nccl_time(40.12) == "  40.12"
    assert nccl_time(9306.7) == " 9306.7"
    assert nccl_time(18535.2) == "  18535"


def test_row_is_byte_identical_to_a_captured_one() -> None:
    # 8×A100 capture: "           8             2     float     sum      -1    40.12    0.00    0.00
    #      0" (out-of-place half).
    row = Row(8, 2, "float", 40.12, 0.0, 0.0, 0)
    assert nccl_row(row) == (
        "           8             2     float     sum      -1    40.12    0.00    0.00      0"
    )


def test_table_reads_back_with_the_nccl_tests_parser() -> None:
    result = sweep_result()
    [table] = parse(nccl_table(result))
    assert table.ranks == 2
    assert [r.bytes for r in table.rows] == [8, 1 << 20, 1 << 30]
    assert table.rows[2].halves[0].busbw == round(result.rows[2].busbw_gbps, 2)
    text = nccl_table(result)
    assert "Theoretical busbw 300.0 GB/s" in text and text.rstrip().endswith("PASS")


def test_failures_are_stated() -> None:
    text = nccl_table(sweep_result(wrong=3, floor=200.0))
    assert "# Out of bounds values : 3 FAILED" in text
    assert "3 wrong elements" in text and "expected >= 200 GB/s" in text


def test_bar_chart() -> None:
    assert bar(50, 100, 10) == "█████"
    assert bar(55, 100, 10) == "█████▌"
    assert bar(0, 100, 10) == "" and bar(200, 100, 4) == "████"
    out = io.StringIO()
    print_table(sweep_result(), out, color=False)
    text = out.getvalue()
    assert "busbw by size (full width = 300.0 GB/s (theoretical))" in text
    assert "1 GiB" in text and "█" in text
    assert bar_chart(sweep_result()).row_count == 3


def test_json_round_trip() -> None:
    result = sweep_result(floor=100.0)
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["schema"] == "preflight-bench-allreduce/1"
    assert doc["world_size"] == 2 and doc["hosts"] == ["h0"] and doc["status"] == "pass"
    assert doc["gate"]["percent_of_theoretical"] == round(100 * result.rows[2].busbw_gbps / 300, 1)
    back = SweepResult.from_dict(doc)
    assert back.rows[2].bytes == 1 << 30 and back.theoretical == result.theoretical
    assert back.ranks == RANKS
