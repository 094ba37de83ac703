"""Judges of the active tests: plain records in, findings out (no process, no device).

Every figure is judged twice: against the floor its hardware promises (a parameter of the
baseline, with its source there) and against the node's median (a GPU well below its peers is
faulty even above the floor). GB = 1e9 bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from preflight.active.collect import SKIPPED, UNAVAILABLE, ActiveOutcome, GpuRun
from preflight.model import Evidence, Finding, Status, Verdict

SOURCE = "preflight active worker"


def pcie_gbps(speed_gts: float | None, width: int | None) -> float | None:
    """One direction's raw PCIe bandwidth in GB/s: GT/s × lanes × line-code efficiency / 8
    (8b/10b up to 5 GT/s, 128b/130b from 8 GT/s; PCIe base spec)."""
    if not speed_gts or not width:
        return None
    code = 0.8 if speed_gts <= 5.0 else 128 / 130
    return speed_gts * width * code / 8


def not_measured(o: ActiveOutcome | None, how: str) -> Verdict | None:
    """The verdict when there is nothing to judge, else None."""
    if o is None:
        return Verdict.skip(f"not measured: {how}")
    if o.outcome == SKIPPED:
        return Verdict.skip(o.reason)
    if o.outcome == UNAVAILABLE:
        return Verdict(Status.ERROR, f"cannot run: {o.reason}")
    return None


def measured(o: ActiveOutcome | None, how: str) -> ActiveOutcome | Verdict:
    """The outcome to judge, or the verdict that says why there is nothing to judge."""
    if o is None:
        return Verdict.skip(f"not measured: {how}")
    return not_measured(o, how) or o


def run_failure(run: GpuRun, test: str) -> Finding:
    """A worker with no record: hung past its deadline (fail), or ended without one (error)."""
    msg = run.failure or "no record"
    if msg.startswith("did not finish"):
        return Finding(
            run.name,
            Status.FAIL,
            f"the {test} worker {msg}: a hung kernel or a wedged GPU (abandoned)",
            (Evidence(SOURCE, f"{run.elapsed_s:.1f} s", "finished before the deadline"),),
        )
    return Finding(run.name, Status.ERROR, f"the {test} worker failed: {msg}", ())


def below_peers(values: Mapping[str, float], tolerance: float) -> dict[str, float]:
    """Subjects more than `tolerance` (a fraction) below the median of all: subject → median."""
    if len(values) < 2 or tolerance <= 0:
        return {}
    import statistics  # with fractions and decimal: only when a test measured something

    median = statistics.median(values.values())
    return {k: median for k, v in values.items() if v < median * (1 - tolerance)}


def _figures(
    runs: Sequence[GpuRun],
    metric: str,
    label: str,
    floor: Callable[[GpuRun], tuple[float, str] | None],
    tolerance: float,
    unit: str = "GB/s",
) -> list[Finding]:
    """One finding per device for one figure: floor, then peers."""
    values = {
        r.name: float(r.record[metric])
        for r in runs
        if r.record is not None and isinstance(r.record.get(metric), int | float)
    }
    slow = below_peers(values, tolerance)
    out = []
    for run in runs:
        if run.name not in values:
            continue
        v = values[run.name]
        limit = floor(run)
        subject = f"{run.name} {label}"
        if limit is not None and v < limit[0]:
            out.append(
                Finding(
                    subject,
                    Status.FAIL,
                    f"{v:.4g} {unit}, expected >= {limit[0]:.4g} {unit} ({limit[1]})",
                    (Evidence(SOURCE, f"{v:.4g} {unit}", f">= {limit[0]:.4g} {unit}"),),
                )
            )
        elif run.name in slow:
            med = slow[run.name]
            out.append(
                Finding(
                    subject,
                    Status.FAIL,
                    f"{v:.4g} {unit}, {100 * (1 - v / med):.0f}% below the node's median "
                    f"{med:.4g} {unit} (tolerance {100 * tolerance:.0f}%)",
                    (
                        Evidence(
                            SOURCE,
                            f"{v:.4g} {unit}",
                            f">= {med * (1 - tolerance):.4g} {unit} (node median {med:.4g})",
                        ),
                    ),
                )
            )
        else:
            expected = f">= {limit[0]:.4g} {unit}" if limit else "no floor; near the node median"
            out.append(
                Finding(
                    subject,
                    Status.PASS,
                    f"{v:.4g} {unit}",
                    (Evidence(SOURCE, f"{v:.4g} {unit}", expected),),
                )
            )
    return out


def judge_copy(
    o: ActiveOutcome,
    links: Mapping[int, tuple[float | None, int | None]],
    link_efficiency: float,
    min_d2d_gbps: float,
    tolerance: float,
    min_h2d_gbps: float = 0.0,
    min_d2h_gbps: float = 0.0,
) -> Verdict:
    """H2D and D2H against the GPU's PCIe link × link_efficiency (or min_h2d_gbps /
    min_d2h_gbps, a fleet's pinned figure, where higher), D2D against min_d2d_gbps; each against
    the node's median. `links`: device index → (GT/s, width) of its link."""
    findings = [run_failure(r, "copy") for r in o.runs if r.record is None]

    def link_floor(run: GpuRun) -> tuple[float, str] | None:
        if o.kind != "cuda":
            return None  # the CPU test device crosses no PCIe link
        speed, width = links.get(run.index, (None, None))
        raw = pcie_gbps(speed, width)
        if raw is None or link_efficiency <= 0:
            return None
        return raw * link_efficiency, f"{link_efficiency:.0%} of the {speed:g} GT/s x{width} link"

    def host_floor(minimum: float, name: str) -> Callable[[GpuRun], tuple[float, str] | None]:
        def floor(run: GpuRun) -> tuple[float, str] | None:
            link = link_floor(run)
            if minimum > 0 and (link is None or minimum > link[0]):
                return minimum, name
            return link

        return floor

    def hbm_floor(run: GpuRun) -> tuple[float, str] | None:
        return (min_d2d_gbps, "min_d2d_gbps (HBM)") if min_d2d_gbps > 0 else None

    h2d, d2h = host_floor(min_h2d_gbps, "min_h2d_gbps"), host_floor(min_d2h_gbps, "min_d2h_gbps")
    findings += _figures(o.runs, "h2d_gbps", "host→device", h2d, tolerance)
    findings += _figures(o.runs, "d2h_gbps", "device→host", d2h, tolerance)
    findings += _figures(o.runs, "d2d_gbps", "device-local", hbm_floor, tolerance)
    good = [r for r in o.runs if r.record is not None]
    return Verdict.from_findings(
        findings, ok=f"{len(good)} GPUs copy at speed (H2D, D2H, device-local){_cpu(o)}"
    )


def judge_p2p(o: ActiveOutcome, min_gbps: float, tolerance: float) -> Verdict:
    """Every ordered GPU pair against min_gbps and the median of all pairs."""
    run = o.runs[0]
    if run.record is None:
        return Verdict.from_findings([run_failure(run, "p2p")], ok="")
    names = {
        int(d.get("index", i)): f"GPU{int(d.get('index', i))}"
        for i, d in enumerate(run.record.get("devices", []))
    }
    pairs: dict[str, float] = {}
    for p in run.record.get("pairs", []):
        try:
            pairs[f"{names.get(int(p['src']), p['src'])}→{names.get(int(p['dst']), p['dst'])}"] = (
                float(p["gbps"])
            )
        except (KeyError, TypeError, ValueError):
            continue
    fake = [GpuRun(i, name, {"gbps": v}) for i, (name, v) in enumerate(pairs.items())]
    floor = (min_gbps, "min_gbps") if min_gbps > 0 else None
    findings = _figures(fake, "gbps", "copy", lambda r: floor, tolerance)
    return Verdict.from_findings(
        findings,
        ok=f"{len(pairs)} GPU pairs copy at speed{_cpu(o)}",
        empty="no GPU pair was measured",
        empty_status=Status.ERROR,
    )


def checksum_findings(hashes: Mapping[str, str], label: str) -> list[Finding]:
    """Every output hash must equal the others' (same inputs, model and library): a GPU outside
    the majority (or every GPU, when there is none) computed something else."""
    counts = Counter(hashes.values())
    if len(counts) <= 1:
        return []
    top, n = counts.most_common(1)[0]
    majority = n > len(hashes) / 2
    return [
        Finding(
            f"{name} {label}checksum",
            Status.FAIL,
            f"the {label}GEMM output differs from "
            + (f"the other {n} GPUs'" if majority else "another GPU's")
            + " for the same inputs: silent data corruption",
            (Evidence(SOURCE, h[:16], f"{top[:16]} (sha256 of the output)"),),
        )
        for name, h in hashes.items()
        if not (majority and h == top)
    ]


def judge_gemm(
    o: ActiveOutcome, min_tflops: float, tolerance: float, min_fp8_tflops: float = 0.0
) -> Verdict:
    """BF16 and (where the GPU has FP8 tensor cores) FP8 TFLOPS against their floors and the
    median; within each dtype every output hash must equal the others'. FP8 that a GPU cannot
    run is a skip saying why, not a failure."""
    findings = [run_failure(r, "gemm") for r in o.runs if r.record is None]
    floor = (min_tflops, "min_tflops") if min_tflops > 0 else None
    findings += _figures(o.runs, "tflops", "BF16 GEMM", lambda r: floor, tolerance, "TFLOPS")
    hashes = {r.name: str(r.record.get("sha256")) for r in o.runs if r.record is not None}
    findings += checksum_findings(hashes, "")
    fp8 = {
        r.name: r.record.get("fp8") for r in o.runs if r.record is not None and "fp8" in r.record
    }
    fp8_runs = [
        GpuRun(r.index, r.name, dict(f))
        for r in o.runs
        if isinstance(f := fp8.get(r.name), dict) and f.get("supported")
    ]
    fp8_floor = (min_fp8_tflops, "min_fp8_tflops") if min_fp8_tflops > 0 else None
    findings += _figures(fp8_runs, "tflops", "FP8 GEMM", lambda r: fp8_floor, tolerance, "TFLOPS")
    findings += checksum_findings(
        {r.name: str((r.record or {}).get("sha256")) for r in fp8_runs}, "FP8 "
    )
    for name, f in fp8.items():
        if isinstance(f, dict) and not f.get("supported"):
            why = str(f.get("reason") or "not supported")[:200]
            findings.append(Finding(f"{name} FP8 GEMM", Status.SKIP, why))
    dtypes = "BF16 and FP8" if fp8_runs else "BF16"
    return Verdict.from_findings(
        findings,
        ok=f"{len(hashes)} GPUs compute the same {dtypes} GEMM output at speed{_cpu(o)}",
    )


# nvmlClocksEventReason* bits that mean the GPU slowed itself under load (nvml.h).
SLOWDOWN_REASONS = {
    0x8: "HW slowdown",
    0x20: "SW thermal slowdown",
    0x40: "HW thermal slowdown",
    0x80: "HW power brake slowdown",
}
SW_POWER_CAP = 0x4
NVML_REASONS = "nvmlDeviceGetCurrentClocksEventReasons"
SM_CLOCK = "nvmlDeviceGetClockInfo(SM)"


def _bdf(name: str) -> str:
    return name.rpartition(" ")[2]


def held_clock(sm_mhz: Sequence[float]) -> float | None:
    """The SM clock a GPU held under load: the median of the second half of its samples (the
    first half includes the ramp from idle clocks)."""
    import statistics

    values = [float(v) for v in sm_mhz]
    return statistics.median(values[len(values) // 2 :]) if values else None


def slowdown_names(mask: int) -> list[str]:
    """The slowdown reasons set in an nvmlClocksEventReasons mask (nvml.h)."""
    return [text for bit, text in SLOWDOWN_REASONS.items() if mask & bit]


def clock_samples(record: Mapping[str, Any] | None) -> tuple[list[Mapping[str, Any]], str]:
    """A burn record's NVML samples, or why it has none ("" when sampled)."""
    clocks = (record or {}).get("clocks")
    if not isinstance(clocks, Mapping):
        return [], "the worker recorded no clocks"
    if not clocks.get("sampled"):
        return [], str(clocks.get("reason") or "not sampled")[:200]
    samples = [x for x in clocks.get("samples") or [] if isinstance(x, Mapping)]
    return samples, "" if samples else "no sample was taken"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _clock_findings(
    o: ActiveOutcome, clock_tolerance: float, min_sm_mhz: float = 0.0
) -> tuple[list[Finding], dict[str, float]]:
    """Per GPU: slowdown reasons seen while burning (the worker's samples and the NVML
    collector's), a clock held below the peers' median, or why the clocks were not sampled."""
    findings: list[Finding] = []
    held: dict[str, float] = {}
    seen: dict[str, int] = {}
    unsampled: dict[str, str] = {}
    for run in o.runs:
        if run.record is None:
            continue
        samples, why = clock_samples(run.record)
        mask = 0
        for sample in samples:
            reasons = _number(sample.get("reasons"))
            mask |= int(reasons) if reasons is not None else 0
        for sample in o.nvml_samples:  # the NVML collector's records (also on a profile)
            gpu: Any = (sample.get("gpus") or {}).get(_bdf(run.name))
            reasons = gpu.get("clock_event_reasons") if isinstance(gpu, dict) else None
            if isinstance(reasons, int) and not isinstance(reasons, bool):
                mask |= reasons
        seen[run.name] = mask
        mhz = [v for v in (_number(x.get("sm_mhz")) for x in samples) if v is not None]
        clock = held_clock(mhz)
        if clock is not None:
            held[run.name] = clock
        elif why and not mask:
            unsampled[run.name] = why
    low = below_peers(held, clock_tolerance)
    for run in o.runs:
        if run.name not in seen:
            continue
        subject, mask = f"{run.name} clocks", seen[run.name]
        named = slowdown_names(mask)
        if named:
            findings.append(
                Finding(
                    subject,
                    Status.FAIL,
                    f"slowed down under load: {', '.join(named)}",
                    (Evidence(NVML_REASONS, hex(mask), "no slowdown"),),
                )
            )
        elif min_sm_mhz > 0 and held.get(run.name, min_sm_mhz) < min_sm_mhz:
            mine = held[run.name]
            findings.append(
                Finding(
                    subject,
                    Status.FAIL,
                    f"held {mine:.0f} MHz SM clock under load, expected >= {min_sm_mhz:.0f} MHz "
                    "(min_sm_mhz)",
                    (Evidence(SM_CLOCK, f"{mine:.0f} MHz", f">= {min_sm_mhz:.0f} MHz"),),
                )
            )
        elif run.name in low:
            med, mine = low[run.name], held[run.name]
            findings.append(
                Finding(
                    subject,
                    Status.FAIL,
                    f"held {mine:.0f} MHz SM clock under load, {100 * (1 - mine / med):.0f}% "
                    f"below the node's median {med:.0f} MHz (tolerance "
                    f"{100 * clock_tolerance:.0f}%)",
                    (
                        Evidence(
                            SM_CLOCK,
                            f"{mine:.0f} MHz",
                            f">= {med * (1 - clock_tolerance):.0f} MHz (node median {med:.0f})",
                        ),
                    ),
                )
            )
        elif mask & SW_POWER_CAP:
            findings.append(
                Finding(
                    subject,
                    Status.WARN,
                    "held at the software power cap under load",
                    (Evidence(NVML_REASONS, hex(mask), "no power cap"),),
                )
            )
        elif run.name in unsampled:
            findings.append(Finding(subject, Status.SKIP, f"not sampled: {unsampled[run.name]}"))
        elif run.name in held:
            findings.append(
                Finding(
                    subject,
                    Status.PASS,
                    f"held {held[run.name]:.0f} MHz SM clock, no slowdown",
                    (
                        Evidence(
                            SM_CLOCK,
                            f"{held[run.name]:.0f} MHz",
                            "near the node median",
                        ),
                    ),
                )
            )
    return findings, held


def judge_burn(
    o: ActiveOutcome,
    min_tflops: float,
    tolerance: float,
    clock_tolerance: float = 0.05,
    min_sm_mhz: float = 0.0,
) -> Verdict:
    """Sustained TFLOPS (median of the second half of the windows) against the floor and the
    median; any slowdown reason NVML reported during the burn fails that GPU, and so does an SM
    clock held more than clock_tolerance below the node's median."""
    import statistics

    findings = [run_failure(r, "burn") for r in o.runs if r.record is None]
    sustained = []
    for r in o.runs:
        windows = [
            float(w)
            for w in (r.record or {}).get("window_tflops", [])
            if isinstance(w, int | float)
        ]
        if r.record is not None and windows:
            sustained.append(
                GpuRun(r.index, r.name, {"tflops": statistics.median(windows[len(windows) // 2 :])})
            )
    floor = (min_tflops, "min_tflops") if min_tflops > 0 else None
    findings += _figures(
        sustained, "tflops", "sustained GEMM", lambda r: floor, tolerance, "TFLOPS"
    )
    clock_findings, held = _clock_findings(o, clock_tolerance, min_sm_mhz)
    findings += clock_findings
    for problem in o.nvml_problems[:1]:
        findings.append(Finding("NVML sampling", Status.WARN, f"a sample failed: {problem}", ()))
    clocks = (
        f"SM clocks held at {min(held.values()):.0f}-{max(held.values()):.0f} MHz"
        if held
        else "no clock sampled"
    )
    return Verdict.from_findings(
        findings,
        ok=f"{len(sustained)} GPUs held their GEMM rate for the burn without slowdown, "
        f"{clocks}{_cpu(o)}",
    )


def _cpu(o: ActiveOutcome) -> str:
    took = f"; measured in {o.duration_s:.1f} s"
    return took + (" (test-only CPU device: figures mean nothing)" if o.kind == "cpu" else "")


def judge_dcgm(o: ActiveOutcome, names: Mapping[int, str]) -> Verdict:
    """dcgmi's results per GPU: any fail fails the GPU, a warning warns; could-not-run is SKIP
    (not installed, no host engine, GPUs in use) or ERROR (timeout, unreadable output)."""
    from preflight.active.dcgm import DcgmRun, DcgmUnavailable, by_gpu, could_not_run

    answer = o.dcgm
    if isinstance(answer, DcgmRun) and answer.runtime_error and not answer.results:
        answer = could_not_run(None, answer.runtime_error) or DcgmUnavailable(
            "error", f"dcgmi diag could not run: {answer.runtime_error[:300]}"
        )
    if isinstance(answer, DcgmUnavailable):
        if answer.kind in ("missing", "engine", "in_use"):
            return Verdict.skip(answer.reason)
        return Verdict(Status.ERROR, answer.reason)
    if not isinstance(answer, DcgmRun) or not answer.results:
        return Verdict(Status.ERROR, "dcgmi diag returned no result")
    findings = []
    for gpu, results in sorted(
        by_gpu(answer.results).items(), key=lambda kv: (kv[0] is None, kv[0] or 0)
    ):
        subject = "all GPUs" if gpu is None else names.get(gpu, f"GPU{gpu}")
        for status, word in ((Status.FAIL, "fail"), (Status.WARN, "warn"), (Status.PASS, "pass")):
            hit = [r for r in results if r.status == word]
            if hit:
                tests = ", ".join(dict.fromkeys(r.test for r in hit))
                detail = next((r.detail for r in hit if r.detail), "")
                message = f"{word}: {tests}" + (f" ({detail})" if detail and word != "pass" else "")
                source = f"dcgmi diag {answer.version}".strip()
                findings.append(
                    Finding(subject, status, message, (Evidence(source, word, "pass"),))
                )
                break
    return Verdict.from_findings(
        findings,
        ok=f"DCGM diagnostic {answer.version} passed on {len(findings)} subjects",
        empty="every DCGM test was skipped",
    )
