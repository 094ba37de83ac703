"""The active GPU tests' figures across a fleet: each node's median over its GPUs read from its
report, drift between nodes found by `compare` (median and MAD, as for the benchmarks), and
`baselines generate` pinning the inlier medians as floors. Fleets generated with known outliers."""

from __future__ import annotations

import copy
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

from preflight import result_figures
from preflight.active.collect import MEASURED, ActiveOutcome, GpuRun
from preflight.active.judge import judge_burn, judge_copy, judge_gemm, judge_p2p
from preflight.cluster import genbaseline
from preflight.model import CheckResult, Verdict
from tests.cluster_reports import _cached, with_results
from tests.harness import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

GPUS = 8
BDFS = [f"0000:{0x18 + 0x10 * i:02x}:00.0" for i in range(GPUS)]


def result(check: str, v: Verdict) -> dict[str, Any]:
    return CheckResult(check, check, v.status, v.summary, 1.0, v.findings).to_dict()


def outcome(test: str, records: list[dict[str, Any]]) -> ActiveOutcome:
    runs = tuple(GpuRun(i, f"GPU{i} {BDFS[i]}", r) for i, r in enumerate(records))
    return ActiveOutcome(test, MEASURED, "", "cuda", runs)


def active_results(gemm: float, mhz: float, h2d: float = 55.0) -> list[dict[str, Any]]:
    """The four active results of one node whose GPUs measure about these figures (GPU i
    differs by i/10 so the node median is not one GPU's value)."""
    sha = "ab" * 32
    gemms = [
        {
            "tflops": gemm + i / 10,
            "sha256": sha,
            "fp8": {"supported": True, "tflops": 2 * gemm, "sha256": sha},
        }
        for i in range(GPUS)
    ]
    samples = [{"t": t, "sm_mhz": mhz, "reasons": 0} for t in range(4)]
    burns = [
        {"window_tflops": [gemm - 20] * 4, "clocks": {"sampled": True, "samples": samples}}
        for _ in range(GPUS)
    ]
    copies = [{"h2d_gbps": h2d + i / 10, "d2h_gbps": 50.0, "d2d_gbps": 2600.0} for i in range(GPUS)]
    pairs = [
        {"src": s, "dst": d, "gbps": 360.0} for s in range(GPUS) for d in range(GPUS) if s != d
    ]
    p2p = {"devices": [{"index": i} for i in range(GPUS)], "pairs": pairs}
    links = dict.fromkeys(range(GPUS), (32.0, 16))
    return [
        result("gpu.copy_bandwidth", judge_copy(outcome("copy", copies), links, 0.76, 0, 0.15)),
        result("gpu.p2p_bandwidth", judge_p2p(outcome("p2p", [p2p]), 0.0, 0.15)),
        result("gpu.gemm", judge_gemm(outcome("gemm", gemms), 495.0, 0.10, 990.0)),
        result("gpu.burn", judge_burn(outcome("burn", burns), 0.0, 0.10)),
    ]


# Known fleet: 20 DGX H100 around 700 TFLOPS BF16 (± 2, MAD 1) holding 1980 MHz (± 5); one node
# 8 % below its peers' GEMM (644, above the 495 floor: only drift finds it), one holding 1800 MHz.
NODES = [(f"dgx-{k:02d}", 700.0 + (k % 5 - 2), 1980.0 + (k % 3 - 1) * 5) for k in range(20)]
NODES += [("dgx-gemm-low", 644.0, 1980.0), ("dgx-clock-low", 700.0, 1800.0)]


OLDER = {"dgx-gemm-low", *(name for name, _, _ in NODES[::2])}
"""Reports written as a preflight before `figures` did: compare reads their results instead."""


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("active-figures")
    for name, gemm, mhz in NODES:
        doc = copy.deepcopy(_cached("dgx-h100", "template-dgx-h100"))
        doc["host"]["hostname"] = name
        with_results(doc, active_results(gemm, mhz), older=name in OLDER)
        (folder / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    return folder


def test_node_figures_are_the_median_over_its_gpus() -> None:
    results = active_results(700.0, 1980.0)
    got = dict(m for r in results for m in result_figures.from_active_result(r))
    assert got == {
        "gpu.copy_bandwidth host→device (GB/s)": pytest.approx(55.35),
        "gpu.copy_bandwidth device→host (GB/s)": 50.0,
        "gpu.copy_bandwidth device-local (GB/s)": 2600.0,
        "gpu.p2p_bandwidth copy (GB/s)": 360.0,
        "gpu.gemm BF16 GEMM (TFLOPS)": pytest.approx(700.35),
        "gpu.gemm FP8 GEMM (TFLOPS)": 1400.0,
        "gpu.burn sustained GEMM (TFLOPS)": 680.0,
        "gpu.burn clocks (MHz)": 1980.0,
    }


def test_compare_finds_the_node_8_percent_below_its_peers(fleet_dir: Path) -> None:
    out = cli("compare", str(fleet_dir), "--format", "json", "--fail-on", "none")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    found = {(f["metric"], o["hostname"]) for f in doc["figures"] for o in f["outliers"]}
    assert ("gpu.gemm BF16 GEMM (TFLOPS)", "dgx-gemm-low") in found
    assert ("gpu.burn clocks (MHz)", "dgx-clock-low") in found
    gemm_low = {h for m, h in found if m.startswith("gpu.gemm")}
    assert gemm_low == {"dgx-gemm-low"}  # FP8 too: the planted node's FP8 is 8 % low as well
    assert {h for m, h in found if m == "gpu.burn clocks (MHz)"} == {"dgx-clock-low"}
    # the planted node passed on the node itself: above the floor, no peer there to compare
    planted = json.loads((fleet_dir / "dgx-gemm-low.json").read_text())
    gemm = next(r for r in planted["results"] if r["id"] == "gpu.gemm")
    assert gemm["status"] == "pass"


def test_baseline_pins_the_inlier_medians(fleet_dir: Path) -> None:
    out = cli("baselines", "generate", str(fleet_dir), "--group", "dgx-h100")
    assert out.exit_code == 0, out.output
    doc = tomllib.loads(out.stdout)
    inlier_gemm = statistics.median(g + 0.35 for name, g, _ in NODES if name != "dgx-gemm-low")
    share = genbaseline.FIGURE_FLOOR_SHARE
    assert doc["gpu"]["gemm"]["min_tflops"] == round(share * inlier_gemm, 1)
    assert doc["gpu"]["gemm"]["min_fp8_tflops"] == round(
        share * statistics.median(2 * g for name, g, _ in NODES if name != "dgx-gemm-low"), 1
    )
    inlier_mhz = statistics.median(m for name, _, m in NODES if name != "dgx-clock-low")
    assert doc["gpu"]["burn"]["min_sm_mhz"] == round(share * inlier_mhz, 1)
    assert doc["gpu"]["p2p_bandwidth"]["min_gbps"] == round(share * 360.0, 1)
    assert doc["gpu"]["copy_bandwidth"]["min_d2d_gbps"] == round(share * 2600.0, 1)
    line = next(x for x in out.stdout.splitlines() if x.startswith("min_sm_mhz = "))
    assert "gpu.burn clocks (MHz) median" in line and "without 1 outliers, x0.9" in line


def test_hostile_subjects_make_no_figure() -> None:
    r = result("gpu.gemm", judge_gemm(outcome("gemm", [{"tflops": 1.0, "sha256": "a"}]), 0, 0.1))
    r["findings"][0]["subject"] = "GPU0; rm -rf / BF16 GEMM"
    r["findings"].append({"subject": "GPU99999 x", "evidence": [{"observed": "5 TFLOPS"}]})
    assert result_figures.from_active_result(r) == []
