"""CPU: frequency governor and SMT."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.inventory import Inventory
from preflight.model import Action, Evidence, Finding, Status, Verdict
from preflight.registry import check, param


@dataclass(frozen=True)
class GovernorParams:
    """The governor every CPU should run."""

    expected: str = param("performance", "cpufreq governor every CPU should run.")


def judge_governors(governors: dict[int, str], expected: str) -> Verdict:
    """All CPUs on the expected governor; the others are named by count and governor."""
    if not governors:
        return Verdict.skip("no cpufreq driver: frequency is managed by firmware or the hypervisor")
    other: dict[str, list[int]] = {}
    for cpu, gov in governors.items():
        if gov != expected:
            other.setdefault(gov, []).append(cpu)
    src = "sysfs:/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
    if not other:
        return Verdict(
            Status.PASS,
            f"{len(governors)} CPUs on {expected}",
            (Finding("cpus", Status.PASS, expected, (Evidence(src, expected, expected),)),),
        )
    findings = tuple(
        Finding(
            f"cpu{cpus[0]}" + (f" and {len(cpus) - 1} more" if len(cpus) > 1 else ""),
            Status.WARN,
            f"{len(cpus)} CPUs on {gov}, expected {expected}",
            (Evidence(src, gov, expected),),
        )
        for gov, cpus in sorted(other.items())
    )
    return Verdict.from_findings(findings, ok="")


@check(
    "cpu.governor",
    title="Every CPU runs the performance frequency governor",
    tags=("cpu", "bios"),
    params=GovernorParams,
    action=Action.FIX_CONFIG,
)
def governor(inv: Inventory, params: GovernorParams) -> Verdict:
    """Every CPU runs the `performance` frequency governor.

    ## Why
    Power-saving governors add latency to the CPU threads that drive NCCL proxies and data
    loading; step time becomes jittery and collectives wait on the slowest rank.

    ## Reads
    `/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor`.

    ## Verdicts
    - pass: every CPU on `expected`.
    - warn: some CPUs on another governor.
    - skip: no cpufreq driver (firmware or hypervisor manages frequency).

    ## Fix
    `cpupower frequency-set -g performance`, made persistent with the distribution's tuned or
    cpupower service; or the BIOS power profile "Maximum Performance".
    """
    return judge_governors(inv.cpu.governors, params.expected)


@dataclass(frozen=True)
class SmtParams:
    """expected: true = SMT on, false = off, unset = only recorded."""

    expected: bool | None = param(None, "true: SMT must be on, false: off; unset: only recorded.")


@check(
    "cpu.smt",
    title="SMT (hyper-threading) as the baseline expects",
    tags=("cpu", "bios"),
    params=SmtParams,
    action=Action.FIX_CONFIG,
)
def smt(inv: Inventory, params: SmtParams) -> Verdict:
    """SMT (hyper-threading) is on or off as the node type expects.

    ## Why
    A node whose SMT differs from its peers has a different CPU count and thread placement;
    launchers that pin ranks to cores then bind them wrongly and data loading slows.

    ## Reads
    `/sys/devices/system/cpu/smt/active` and `/sys/devices/system/cpu/smt/control`.

    ## Verdicts
    - pass: SMT state equals `expected`.
    - fail: it differs.
    - skip: no expectation set (the state is still recorded in facts) or the kernel does not
      report SMT.

    ## Fix
    Set Hyper-Threading / SMT in the BIOS, or `nosmt` on the kernel command line.
    """
    active = inv.cpu.smt_active
    if active is None:
        return Verdict.skip("the kernel does not report SMT state")
    state = "on" if active else "off"
    if params.expected is None:
        return Verdict.skip(
            f"SMT {state} (control {inv.cpu.smt_control}); the baseline pins no state"
        )
    want = "on" if params.expected else "off"
    ev = (
        Evidence(
            "sysfs:/sys/devices/system/cpu/smt/active", int(active), "1" if params.expected else "0"
        ),
    )
    status = Status.PASS if active == params.expected else Status.FAIL
    return Verdict.single(Finding("node", status, f"SMT {state}, expected {want}", ev))
