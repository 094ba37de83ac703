"""nccl-tests arithmetic, checked against real all_reduce_perf tables (8×H100, 8×A100, 2×H100
PCIe, 2 nodes × 8 H100), plus sizes, types and the exact verification fill."""

from __future__ import annotations

import pytest

from preflight.bench.metrics import (
    DTYPES,
    algbw_gbps,
    bus_factor,
    busbw_gbps,
    dtype,
    element_count,
    fill_for,
    format_size,
    parse_size,
    sweep,
)
from tests.nccl_tables import Half, TableRow, parse
from tests.paths import CAPTURES

FILES = {
    # file stem → (tables, rank count per table, rows per table)
    "nccl-tests_all_reduce_perf_8xH100-SXM_1node-and-2node-IB-NDR_nccl-tests-issue290": (
        [8, 16, 16],
        [6, 11, 11],
    ),
    "nccl-tests_all_reduce_perf_8xA100-SXM4-80GB_1node_thanos": ([8, 8], [30, 30]),
    # The excerpt has no "Rank" lines; its command line (-g 2) gives the rank count.
    "nccl-tests_all_reduce_perf_2xH100-PCIe-NVLink-bridge_excerpt_nccl-tests-issue194": ([2], [2]),
}


def decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def tables(stem: str) -> list[tuple[int, list[TableRow]]]:
    path = CAPTURES / f"{stem}.txt"
    text = path.read_text()
    ranks, rows = FILES[stem]
    found = parse(text)
    assert [len(t.rows) for t in found] == rows
    if found[0].ranks is None:
        assert "-g 2" in text
    return [(t.ranks or n, t.rows) for t, n in zip(found, ranks, strict=True)]


@pytest.mark.parametrize("stem", sorted(FILES))
def test_busbw_is_algbw_times_2_n_minus_1_over_n(stem: str) -> None:
    """Every row of every table, both column groups: busbw = algbw × 2(n−1)/n within rounding."""
    checked = 0
    for ranks, rows in tables(stem):
        factor = bus_factor(ranks)
        for row in rows:
            for half in row.halves:
                # algbw is printed to 0.01 GB/s, busbw too: their rounding errors add up.
                tolerance = 0.005 * factor + 0.005 + 1e-9
                assert abs(half.algbw * factor - half.busbw) <= tolerance, (stem, row.bytes)
                checked += 1
    assert checked > 0


def rounding(half: Half, nbytes: int, ranks: int) -> tuple[float, float]:
    """How far algbw and busbw computed from the printed time can be from the printed values.

    The time column is rounded (to 0, 1 or 2 decimals), the bandwidths to 0.01 GB/s.
    """
    dt = 0.5 * 10 ** -decimals(half.time_text)
    t, t_low = half.time_us / 1e6, (half.time_us - dt) / 1e6
    alg = algbw_gbps(nbytes, t_low) - algbw_gbps(nbytes, t) + 0.005 + 1e-9
    bus = busbw_gbps(nbytes, t_low, ranks) - busbw_gbps(nbytes, t, ranks) + 0.005 + 1e-9
    return alg, bus


@pytest.mark.parametrize("stem", sorted(FILES))
def test_busbw_from_size_time_and_rank_count(stem: str) -> None:
    """Our algbw_gbps/busbw_gbps of (bytes, time, n) reproduce each row's printed bandwidths."""
    for ranks, rows in tables(stem):
        for row in rows:
            assert element_count(row.bytes, dtype(row.type)) == row.count
            for half in row.halves:
                alg_slack, bus_slack = rounding(half, row.bytes, ranks)
                ours = busbw_gbps(row.bytes, half.time_us / 1e6, ranks)
                assert abs(ours - half.busbw) <= bus_slack, (stem, row.bytes, ours, half.busbw)
                alg = algbw_gbps(row.bytes, half.time_us / 1e6)
                assert abs(alg - half.algbw) <= alg_slack, (stem, row.bytes, alg, half.algbw)


def test_bus_factor_values_from_the_captures() -> None:
    assert bus_factor(8) == 1.75  # 8 GPUs in one node
    assert bus_factor(16) == 1.875  # 2 nodes × 8
    assert bus_factor(2) == 1.0  # busbw == algbw for two ranks
    assert bus_factor(1) == 0.0
    with pytest.raises(ValueError, match="at least 1"):
        bus_factor(0)


def test_sweep_matches_nccl_tests_b8_e4g_f2() -> None:
    _, rows = tables("nccl-tests_all_reduce_perf_8xA100-SXM4-80GB_1node_thanos")[0]
    assert sweep(8, 4 << 30, 2) == [r.bytes for r in rows]
    assert sweep(1 << 20, 1 << 20) == [1 << 20]
    with pytest.raises(ValueError, match="step factor"):
        sweep(8, 64, 1)
    with pytest.raises(ValueError, match="min-bytes"):
        sweep(64, 8)


@pytest.mark.parametrize(
    ("text", "value"),
    [("8", 8), ("64K", 65536), ("1M", 1 << 20), ("1G", 1 << 30), ("4GiB", 4 << 30), ("1.5K", 1536)],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "x", "-1", "0", "1.3", "1Q"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"size|bytes"):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(8) == "8 B"
    assert format_size(1 << 30) == "1 GiB"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(96 << 20) == "96 MiB"


def test_dtype_names_and_aliases() -> None:
    assert dtype("float").name == "float32"
    assert dtype("bf16").nccl_name == "bfloat16"
    assert dtype("half").size == 2
    with pytest.raises(ValueError, match="unknown dtype"):
        dtype("float8")


@pytest.mark.parametrize("name", sorted(DTYPES))
@pytest.mark.parametrize("ranks", [1, 2, 3, 8, 16, 255, 256, 257, 1000, 4096, 100_000])
def test_fill_sums_stay_exact(name: str, ranks: int) -> None:
    """The largest sum of the fill over all ranks is within the type's exact integer range."""
    dt = DTYPES[name]
    fill = fill_for(ranks, dt)
    expected = fill.expected(ranks)
    assert max(expected) <= dt.exact_limit
    assert len(set(expected)) > 1  # the sum changes along the buffer: misplaced data shows
    if ranks > 1:
        assert fill.rank_values(0) != fill.rank_values(1)  # ranks write different data


@pytest.mark.parametrize(("name", "ranks"), [("bfloat16", 3), ("bfloat16", 600), ("float16", 64)])
def test_fill_closed_form_matches_the_sum(name: str, ranks: int) -> None:
    fill = fill_for(ranks, DTYPES[name])
    brute = [sum(fill.value(r, i) for r in range(ranks)) for i in range(fill.period)]
    assert fill.expected(ranks) == brute


@pytest.mark.parametrize("name", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("ranks", [2, 3, 8, 64, 300])
def test_fill_sums_are_exact_in_torch_in_any_order(name: str, ranks: int) -> None:
    """Summed in the type itself, forwards or backwards (ring order varies), the sum is exact."""
    torch = pytest.importorskip("torch")
    dt = DTYPES[name]
    fill = fill_for(ranks, dt)
    tdt = getattr(torch, name)
    want = torch.tensor(fill.expected(ranks), dtype=tdt)
    for order in (range(ranks), reversed(range(ranks))):
        acc = torch.zeros(fill.period, dtype=tdt)
        for r in order:
            acc += torch.tensor(fill.rank_values(r), dtype=tdt)
        assert torch.equal(acc, want)
