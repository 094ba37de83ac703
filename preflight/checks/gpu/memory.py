"""GPU memory health: ECC error counters and row remapping."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.checks.gpu.common import NVML, each_gpu, no_answer, scalar
from preflight.inventory import Inventory
from preflight.inventory.gpu import (
    EccCounts,
    RemappedRows,
    RetiredPages,
    TwoStates,
)
from preflight.model import Evidence, Finding, Status, Verdict, passed
from preflight.registry import check

# -- ECC ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EccParams:
    """required: ECC enabled; corrected errors since the driver loaded above the max warn."""

    required: bool = True
    max_volatile_corrected: int = 100


def judge_ecc(name: str, mode: object, counts: object, params: EccParams) -> list[Finding]:
    """ECC mode (current and pending) and the volatile/aggregate counts of one GPU."""
    skip = no_answer(name, mode, "nvmlDeviceGetEccMode")
    if skip:
        return [skip]
    assert isinstance(mode, TwoStates)
    findings: list[Finding] = []
    src = NVML + "nvmlDeviceGetEccMode"
    if mode.current != 1:
        status = Status.FAIL if params.required else Status.PASS
        findings.append(
            Finding(
                name, status, "ECC disabled", (Evidence(src + " current", "disabled", "enabled"),)
            )
        )
    if isinstance(mode.pending, int) and mode.pending != mode.current:
        want = "enabled" if mode.pending == 1 else "disabled"
        findings.append(
            Finding(
                name,
                Status.WARN,
                f"ECC change to {want} pending: takes effect after a GPU reset",
                (Evidence(src + " pending", want, "== current"),),
            )
        )
    if mode.current != 1:
        return findings
    skip = no_answer(name, counts, "nvmlDeviceGetTotalEccErrors")
    if skip:
        return [*findings, skip]
    assert isinstance(counts, EccCounts)
    src = NVML + "nvmlDeviceGetTotalEccErrors"
    vu, vc, au = (
        counts.volatile_uncorrected,
        counts.volatile_corrected,
        counts.aggregate_uncorrected,
    )
    evidence = (
        Evidence(src + " volatile uncorrected", scalar(vu), "0"),
        Evidence(src + " volatile corrected", scalar(vc), f"<= {params.max_volatile_corrected}"),
        Evidence(src + " aggregate uncorrected", scalar(au)),
    )
    if isinstance(vu, int) and vu > 0:
        findings.append(
            Finding(
                name,
                Status.FAIL,
                f"{vu} uncorrectable ECC errors since the driver loaded: data was corrupted",
                evidence,
            )
        )
    if isinstance(vc, int) and vc > params.max_volatile_corrected:
        findings.append(
            Finding(
                name,
                Status.WARN,
                f"{vc} corrected ECC errors since the driver loaded "
                f"(> {params.max_volatile_corrected})",
                evidence,
            )
        )
    if not findings:
        findings.append(
            Finding(
                name,
                Status.PASS,
                f"ECC on, {scalar(vu)} uncorrected, {scalar(vc)} corrected",
                evidence,
            )
        )
    return findings


@check(
    "gpu.ecc",
    title="ECC is on and memory shows no uncorrectable errors",
    tags=("gpu", "nvml", "memory"),
    needs=("nvml",),
    params=EccParams,
)
def ecc(inv: Inventory, params: EccParams) -> Verdict:
    """ECC is enabled on every GPU, with no uncorrectable errors since the driver loaded.

    ## Why
    Without ECC a flipped HBM bit silently corrupts weights or gradients. An uncorrectable
    error since the driver loaded means some job already read bad data and the affected row
    awaits a remap; many corrected errors announce a failing memory stack.

    ## Reads
    `nvmlDeviceGetEccMode` (current, pending) and `nvmlDeviceGetTotalEccErrors` (corrected and
    uncorrected, volatile = since the driver loaded, aggregate = lifetime) per GPU.

    ## Verdicts
    - pass: ECC on, no volatile uncorrected error, corrected ones at most
      `max_volatile_corrected`.
    - fail: ECC off while `required`, or volatile uncorrected errors > 0.
    - warn: corrected errors above `max_volatile_corrected`; an ECC mode change pending.
    - skip: no GPU, NVML unavailable, or ECC not supported on the GPU.

    ## Fix
    `nvidia-smi -e 1` and reset the GPU to enable ECC. After uncorrectable errors: drain, reset
    the GPU (pending row remaps take effect), then check `gpu.row_remap`; replace the GPU when
    they come back.
    """
    findings = each_gpu(inv, lambda g, n: judge_ecc(n, g.ecc_mode, g.ecc_errors, params))
    return Verdict.from_findings(
        findings, ok=f"ECC on, no uncorrectable errors, {passed(findings)} GPUs"
    )


# -- row remapping -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowRemapParams:
    """Rows remapped for uncorrectable errors above the max warn."""

    max_uncorrectable_rows: int = 0


def judge_row_remap(
    name: str, rows: object, pages: object, params: RowRemapParams
) -> list[Finding]:
    """Remapped rows (Ampere and newer) and, on older GPUs, retired pages."""
    findings: list[Finding] = []
    if isinstance(rows, RemappedRows):
        src = NVML + "nvmlDeviceGetRemappedRows"
        evidence = (
            Evidence(src + " pending", scalar(rows.pending), "0"),
            Evidence(src + " failure", scalar(rows.failure), "0"),
            Evidence(
                src + " uncorrectable",
                scalar(rows.uncorrected),
                f"<= {params.max_uncorrectable_rows}",
            ),
            Evidence(src + " correctable", scalar(rows.corrected)),
        )
        if rows.failure == 1:
            findings.append(
                Finding(
                    name,
                    Status.FAIL,
                    "row remapping failed: a bank has no spare row left; the GPU needs an RMA",
                    evidence,
                )
            )
        if rows.pending == 1:
            findings.append(
                Finding(
                    name,
                    Status.FAIL,
                    "row remap pending: reset the GPU to activate it before the next job",
                    evidence,
                )
            )
        if isinstance(rows.uncorrected, int) and rows.uncorrected > params.max_uncorrectable_rows:
            findings.append(
                Finding(
                    name,
                    Status.WARN,
                    f"{rows.uncorrected} rows remapped for uncorrectable errors "
                    f"(> {params.max_uncorrectable_rows})",
                    evidence,
                )
            )
        if not findings:
            findings.append(
                Finding(
                    name,
                    Status.PASS,
                    f"no remap pending, {scalar(rows.corrected)} correctable / "
                    f"{scalar(rows.uncorrected)} uncorrectable rows remapped",
                    evidence,
                )
            )
        return findings
    if isinstance(pages, RetiredPages):
        src = NVML + "nvmlDeviceGetRetiredPagesPendingStatus"
        ev = (
            Evidence(src, scalar(pages.pending), "0"),
            Evidence(NVML + "nvmlDeviceGetRetiredPages single-bit", scalar(pages.single_bit_ecc)),
            Evidence(NVML + "nvmlDeviceGetRetiredPages double-bit", scalar(pages.double_bit_ecc)),
        )
        if pages.pending == 1:
            return [Finding(name, Status.FAIL, "page retirement pending: reset the GPU", ev)]
        return [Finding(name, Status.PASS, "no page retirement pending", ev)]
    return [
        no_answer(name, rows, "nvmlDeviceGetRemappedRows")
        or Finding(name, Status.SKIP, "no answer")
    ]


@check(
    "gpu.row_remap",
    title="No GPU memory row remap pending or failed",
    tags=("gpu", "nvml", "memory"),
    needs=("nvml",),
    params=RowRemapParams,
)
def row_remap(inv: Inventory, params: RowRemapParams) -> Verdict:
    """No row remap is pending or has failed on any GPU (page retirement on older GPUs).

    ## Why
    Since Ampere a GPU repairs a failing HBM row by remapping it to a spare; the remap takes
    effect only after a GPU reset, and until then the bad row is still in use. A remapping
    failure means a bank ran out of spare rows: the GPU must be replaced.

    ## Reads
    `nvmlDeviceGetRemappedRows` per GPU (correctable, uncorrectable, pending, failure); where it
    is not supported (before Ampere), `nvmlDeviceGetRetiredPagesPendingStatus` and
    `nvmlDeviceGetRetiredPages`.

    ## Verdicts
    - pass: nothing pending, no failure.
    - fail: a remap (or page retirement) pending: reset needed; a remapping failure: RMA.
    - warn: more rows remapped for uncorrectable errors than `max_uncorrectable_rows`.
    - skip: no GPU, NVML unavailable, or neither mechanism supported.

    ## Fix
    Pending: drain the node and reset the GPU (`nvidia-smi -r -i N`) or reboot. Failure: open
    an RMA with the GPU's serial number and the `nvidia-smi -q` output.
    """
    findings = each_gpu(
        inv, lambda g, n: judge_row_remap(n, g.remapped_rows, g.retired_pages, params)
    )
    return Verdict.from_findings(
        findings, ok=f"no row remap pending or failed, {passed(findings)} GPUs"
    )
