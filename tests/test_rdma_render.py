"""`bench rdma` renderings from real captures' numbers: the table (golden file, also quoted in
README "RDMA benchmark"), the JSON schema fields, the Prometheus families."""

from __future__ import annotations

import io
from pathlib import Path

from preflight.bench.rdma_bench import RdmaResult, RdmaRun, judge
from preflight.bench.rdma_perftest import PerftestSpec, parse_perftest
from preflight.bench.rdma_render import families, table_text
from preflight.bench.rdma_targets import HcaPort
from preflight.inventory.rdma_sysfs_text import LinkRate
from tests.test_rdma_perftest import sections

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "data" / "golden" / "rdma_sample_table.txt"
HPE = "ib_write_bw_RoCE-100G_-D_server-client-rdmacm_HPE-Cray-doc.txt"
SPARK = "ib_write_bw-4qp_ib_write_lat_RoCE-rdmacm_DGX-Spark_code-index-18730269313.txt"

# The HPE doc's port: mlx5_0 RoCE at ~100 Gb/s; sysfs shows a 100GbE RoCE port as 4X EDR.
PORT = HcaPort(
    "mlx5_0", 1, "Ethernet", LinkRate(100.0, 4, "EDR"), True, 3, "hsn0", None, None, None
)


def real_run(test: str, text: str, size: int) -> RdmaRun:
    spec = PerftestSpec(test, size, 5 if test.endswith("_bw") else None, 1000)
    result = RdmaResult(
        "pair", test, "mlx5_0", 1, "n002:mlx5_0", "host", None, size, PORT.rate_text, [], []
    )
    judge(result, PORT, spec, 0.90 if test.endswith("_bw") else None, [parse_perftest(text)], None)
    return RdmaRun("pair", test, "n001", [result], spec)


def sample() -> str:
    bw = real_run("write_bw", sections(HPE)[1], 65536)
    lat = real_run("write_lat", sections(SPARK)[1], 2)
    return table_text(bw) + "\n" + table_text(lat)


def test_sample_table_matches_golden_and_readme() -> None:
    text = sample()
    assert text == GOLDEN.read_text(encoding="utf-8")
    assert text in (ROOT / "README.md").read_text(encoding="utf-8")


def test_prometheus_families_carry_the_figures() -> None:
    out = io.StringIO()
    from preflight.promtext import write

    write(families(real_run("write_bw", sections(HPE)[1], 65536)), out)
    text = out.getvalue()
    assert "preflight_bench_rdma_bandwidth_bits_per_second{" in text
    assert 'hca="mlx5_0"' in text and " 98030000000" in text
    assert "preflight_bench_rdma_line_rate_ratio{" in text and " 0.9803" in text
    assert 'preflight_bench_rdma_passed{test="write_bw"' in text
