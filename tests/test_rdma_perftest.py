"""The perftest output parser against real outputs from public sources (tests/data/real/perftest,
ground truth in expected.json there), and against any text at all (hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight.bench.rdma_perftest import (
    MIB_GBPS,
    connect_target,
    parse_perftest,
)
from preflight.errors import ParseError

DATA = Path(__file__).parent / "data" / "real" / "perftest"
EXPECTED: dict[str, Any] = json.loads((DATA / "expected.json").read_text(encoding="utf-8"))
CASES = [
    (name, index, truth)
    for name, sections in EXPECTED.items()
    if not name.startswith("_")
    for index, truth in enumerate(sections)
]


def sections(name: str) -> list[str]:
    """The outputs in a capture file: split at '# =====' lines, provenance ('# ') lines dropped."""
    chunks: list[list[str]] = [[]]
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("# ====="):
            chunks.append([])
        elif not line.startswith("# "):
            chunks[-1].append(line)
    texts = ["\n".join(c) + "\n" for c in chunks]
    return [t for t in texts if t.strip()]


def test_every_capture_has_provenance_and_ground_truth() -> None:
    files = sorted(p.name for p in DATA.glob("*.txt"))
    assert files == sorted(n for n in EXPECTED if not n.startswith("_"))
    for name in files:
        assert (DATA / name).read_text(encoding="utf-8").startswith("# SOURCE: "), name
        assert len(sections(name)) == len(EXPECTED[name]), name
    sources = {n.rsplit("_", 1)[-1].removesuffix(".txt") for n in files}
    assert len(sources) >= 5


def gbps(value: float, unit: str) -> float:
    return value if unit == "Gb/sec" else value * MIB_GBPS


@pytest.mark.parametrize(("name", "index", "truth"), CASES, ids=[f"{n}#{i}" for n, i, _ in CASES])
def test_real_output(name: str, index: int, truth: dict[str, Any]) -> None:
    out = parse_perftest(sections(name)[index])
    for key in ("title", "device", "link_type", "gid_index", "qps", "unit", "mtu", "rdma_cm"):
        if key in truth:
            assert getattr(out, key) == truth[key], key
    for key in ("waited_for_client", "bidirectional", "peak_measured"):
        if key in truth:
            assert getattr(out, key) is truth[key], key
    assert [w.kind for w in out.warnings] == truth["warnings"]
    assert [e.kind for e in out.errors] == truth["errors"]
    if "connect_target" in truth:
        assert connect_target(out) == truth["connect_target"]
    if "cuda_lines" in truth:
        assert len(out.cuda) == truth["cuda_lines"]
    unit = truth.get("unit", "Gb/sec")
    rows = {r.bytes: r for r in out.bw_rows}
    if "lat_rows" not in truth:
        assert len(out.bw_rows) == truth.get("row_count", len(truth.get("bw_rows", [])))
    for size, iters, peak, avg, rate in truth.get("bw_rows", []):
        row = rows[size]
        assert row.iterations == iters
        assert row.peak_gbps == pytest.approx(gbps(peak, unit))
        assert row.average_gbps == pytest.approx(gbps(avg, unit))
        assert row.msg_rate_mpps == pytest.approx(rate)
    lats = {r.bytes: r for r in out.lat_rows}
    if "lat_rows" in truth:
        assert len(out.lat_rows) == truth.get("row_count", len(truth["lat_rows"]))
    for size, iters, tmin, tmax, typ, avg, sd, p99, p999 in truth.get("lat_rows", []):
        lrow = lats[size]
        assert (lrow.iterations, lrow.t_min_us, lrow.t_max_us, lrow.t_typical_us) == (
            iters,
            tmin,
            tmax,
            typ,
        )
        assert (lrow.t_avg_us, lrow.t_stdev_us, lrow.p99_us, lrow.p999_us) == (avg, sd, p99, p999)


def test_mib_is_two_to_the_twenty_bytes() -> None:
    # perftest's help: "Factor=10^9/(2^20*8)=119.2; Gb=MiB_result / factor".
    assert round(1 / MIB_GBPS, 1) == 119.2


def test_a_broken_result_row_is_one_parse_error() -> None:
    text = " #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]\n 2  1000 1.4 x\n"
    with pytest.raises(ParseError, match="latency row"):
        parse_perftest(text)


def test_oversized_output_is_refused() -> None:
    with pytest.raises(ParseError, match="beyond"):
        parse_perftest("x" * (4 * 1024 * 1024 + 1))


LINES = st.sampled_from(
    [
        " #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]",
        " #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]",
        " #bytes        #iterations       t_avg[usec]    tps average",
        " 65536      560960           0.00               98.03              0.186974",
        " 2       1000          453.06         37330.73     692.41     928.05     2465.901216.65",
        "---------------------------------------------------------------------------------------",
        " Dual-port       : OFF\t\tDevice         : mlx5_0",
        " GID index       : 3",
        "Couldn't connect to 10.0.0.1:18515",
        " WARNING: BW peak won't be measured in this run.",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(LINES, st.text(max_size=80)), max_size=30))
def test_any_text_parses_or_raises_parse_error(lines: list[str]) -> None:
    try:
        out = parse_perftest("\n".join(lines))
    except ParseError as exc:
        message = str(exc)
        out = None
    if out is None:
        assert "\n" not in message
        return
    for row in out.bw_rows:
        assert row.average_gbps >= 0
