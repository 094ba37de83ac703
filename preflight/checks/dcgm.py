"""DCGM diagnostics: NVIDIA's own GPU tests (`dcgmi diag`), run before the checks, judged here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from preflight.inventory import Inventory
from preflight.model import Action, Verdict
from preflight.registry import check, param


@dataclass(frozen=True)
class DiagParams:
    """level: dcgmi's run level (1 quick, 2 medium ~2 min, 3 long ~30 min on H100; NVIDIA DCGM
    user guide); timeout_s: the process group is killed after it."""

    TEST: ClassVar[str] = "dcgm"
    level: int = param(
        3, "dcgmi diag run level: 1 quick, 2 medium (~2 min), 3 long (~30 min on H100)."
    )
    timeout_s: float = param(3600.0, "Seconds dcgmi may take; then its process group is killed.")

    def worker_params(self, kind: str) -> dict[str, Any]:
        return {}


@check(
    "dcgm.diag",
    title="NVIDIA's DCGM diagnostic passes on every GPU",
    tags=("gpu", "active", "dcgm"),
    params=DiagParams,
    tier=3,
    action=Action.RESET_GPU,
    actions=(Action.REPLACE,),
)
def diag(inv: Inventory, params: DiagParams) -> Verdict:
    """Every GPU passes NVIDIA's DCGM diagnostic at the configured run level.

    ## Why
    DCGM's diagnostic exercises what the other checks only read: memory (with patterns),
    PCIe and NVLink bandwidth, targeted power and stress. Operators at scale run it after
    repairs and on a schedule (IBM Autopilot r3 every few hours, NVSentinel r2).

    ## Reads
    `dcgmi diag -r LEVEL -j` (DCGM 3.x or 4.x JSON), run against the host engine in its own
    process group and killed at `timeout_s`; results per test and GPU.

    ## Verdicts
    - pass: every test passed (or skipped) on every GPU.
    - warn: a test warned on a GPU.
    - fail: a test failed on a GPU (named, with DCGM's message).
    - skip: DCGM is not installed, the host engine is not running, the GPUs are in use
      (DCGM_ST_IN_USE), level < 3 without --only, a profile, or no GPU.
    - error: dcgmi timed out or printed no readable result.

    ## Fix
    Follow DCGM's message for the failing test (`dcgmi diag -r 3 -v`); a memory or stress
    failure that repeats after a GPU reset means RMA. "In use": stop the jobs on the node first.
    """
    from preflight.active.collect import outcome  # tier 3: a level-1 run never imports it
    from preflight.active.judge import judge_dcgm, measured

    o = measured(outcome(inv, "dcgm"), "run `preflight run --level 3` (or --only dcgm.diag)")
    if isinstance(o, Verdict):
        return o
    names = {i: f"GPU{i} {g.bdf}" for i, g in enumerate(inv.pci.gpus())}
    return judge_dcgm(o, names)
