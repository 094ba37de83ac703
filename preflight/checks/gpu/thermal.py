"""Clocks, temperature and power: why a GPU runs slower than it should."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.checks.gpu.common import NVML, each_gpu, no_answer
from preflight.inventory import Inventory
from preflight.inventory.gpu import (
    Power,
    Temperature,
)
from preflight.model import Evidence, Finding, Status, Verdict, passed
from preflight.registry import check

# -- clock event reasons -----------------------------------------------------------------------

# nvmlClocksEventReason* bits (nvml.h; the same bits as the older ClocksThrottleReason*).
CLOCK_REASONS = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}


@dataclass(frozen=True)
class ClocksParams:
    """Reason names (CLOCK_REASONS) that fail or warn; the others are informational."""

    fail_reasons: tuple[str, ...] = (
        "hw_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
    )
    warn_reasons: tuple[str, ...] = ("sw_thermal_slowdown",)


def reason_names(mask: int) -> list[str]:
    """The named bits set in a clock event reason mask, plus unknown bits in hex."""
    names = [n for n, bit in CLOCK_REASONS.items() if mask & bit]
    unknown = mask & ~sum(CLOCK_REASONS.values())
    if unknown:
        names.append(f"0x{unknown:x}")
    return names


def judge_clocks(name: str, mask: object, params: ClocksParams) -> Finding:
    skip = no_answer(name, mask, "nvmlDeviceGetCurrentClocksEventReasons")
    if skip:
        return skip
    assert isinstance(mask, int)
    active = reason_names(mask)
    ev = (
        Evidence(
            NVML + "nvmlDeviceGetCurrentClocksEventReasons",
            f"0x{mask:x} ({' '.join(active) or 'none'})",
        ),
    )
    failing = [r for r in active if r in params.fail_reasons]
    warning = [r for r in active if r in params.warn_reasons]
    if failing:
        return Finding(name, Status.FAIL, f"clocks held down by {', '.join(failing)}", ev)
    if warning:
        return Finding(name, Status.WARN, f"clocks held down by {', '.join(warning)}", ev)
    return Finding(name, Status.PASS, ", ".join(active) or "no clock event", ev)


@check(
    "gpu.clocks",
    title="No GPU clocks held down by hardware slowdown, thermal or power brake",
    tags=("gpu", "nvml", "thermal"),
    needs=("nvml",),
    params=ClocksParams,
)
def clocks(inv: Inventory, params: ClocksParams) -> Verdict:
    """No GPU's clocks are held down by hardware slowdown, thermal slowdown or power brake.

    ## Why
    A GPU in HW slowdown runs at a fraction of its clock: in a synchronous job every rank waits
    for it. HW slowdown and power brake are asserted by the board (PSU or cooling fault, external
    power brake signal); SW thermal slowdown means the GPU is running hot.

    ## Reads
    `nvmlDeviceGetCurrentClocksEventReasons` per GPU (`nvmlDeviceGetCurrentClocksThrottleReasons`
    on drivers before 535: the same bitmask).

    ## Verdicts
    - pass: none of `fail_reasons` / `warn_reasons` active; idle (0x1) is the healthy state of a
      GPU without work.
    - fail: a reason in `fail_reasons` (default HW slowdown 0x8, HW thermal 0x40, power brake
      0x80).
    - warn: a reason in `warn_reasons` (default SW thermal slowdown 0x20).
    - skip: no GPU, or NVML unavailable.

    ## Fix
    Check the chassis: fans, inlet temperature, PSU redundancy and BMC event log (`ipmitool sel
    list`); power brake is asserted by the platform, not the GPU.
    """
    unknown = [r for r in (*params.fail_reasons, *params.warn_reasons) if r not in CLOCK_REASONS]
    if unknown:
        return Verdict(
            Status.ERROR,
            f"unknown clock reason {unknown[0]!r} (known: {', '.join(CLOCK_REASONS)})",
        )
    findings = each_gpu(inv, lambda g, n: [judge_clocks(n, g.clock_event_reasons, params)])
    return Verdict.from_findings(findings, ok=f"no clock slowdown, {passed(findings)} GPUs")


# -- temperature and power ---------------------------------------------------------------------


@dataclass(frozen=True)
class TemperatureParams:
    """WARN within margin_c of the slowdown threshold; max_c > 0 adds an absolute limit."""

    margin_c: int = 10
    max_c: int = 0


def judge_temperature(name: str, temp: object, params: TemperatureParams) -> Finding:
    skip = no_answer(name, temp, "nvmlDeviceGetTemperature")
    if skip:
        return skip
    assert isinstance(temp, Temperature)
    current = temp.gpu
    if not isinstance(current, int):
        return no_answer(name, current, "nvmlDeviceGetTemperature") or Finding(
            name, Status.SKIP, "no temperature"
        )
    slowdown = temp.slowdown if isinstance(temp.slowdown, int) else None
    limit = (
        slowdown
        if slowdown is not None
        else (temp.gpu_max if isinstance(temp.gpu_max, int) else None)
    )
    src = NVML + "nvmlDeviceGetTemperature"
    expected = f"< {limit - params.margin_c} °C" if limit is not None else None
    ev = [Evidence(src, f"{current} °C", expected)]
    if limit is not None:
        ev.append(Evidence(NVML + "nvmlDeviceGetTemperatureThreshold", f"{limit} °C"))
    if params.max_c and current > params.max_c:
        return Finding(
            name, Status.FAIL, f"{current} °C, above the {params.max_c} °C limit", tuple(ev)
        )
    if limit is not None and current >= limit:
        return Finding(
            name,
            Status.FAIL,
            f"{current} °C, at or above the slowdown threshold {limit} °C",
            tuple(ev),
        )
    if limit is not None and current >= limit - params.margin_c:
        return Finding(
            name,
            Status.WARN,
            f"{current} °C, within {params.margin_c} °C of slowdown at {limit} °C",
            tuple(ev),
        )
    where = f" (slowdown at {limit} °C)" if limit is not None else ""
    return Finding(name, Status.PASS, f"{current} °C{where}", tuple(ev))


@check(
    "gpu.temperature",
    title="GPUs run well below their slowdown temperature",
    tags=("gpu", "nvml", "thermal"),
    needs=("nvml",),
    params=TemperatureParams,
)
def temperature(inv: Inventory, params: TemperatureParams) -> Verdict:
    """Every GPU runs well below its slowdown temperature.

    ## Why
    A GPU that is already hot before a job starts reaches its slowdown threshold under load and
    throttles, making the whole job wait for it; at idle it points at a cooling fault.

    ## Reads
    `nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)` and
    `nvmlDeviceGetTemperatureThreshold` (slowdown; max operating when slowdown is not
    reported) per GPU.

    ## Verdicts
    - pass: below the slowdown threshold minus `margin_c`.
    - fail: at or above the slowdown threshold, or above `max_c` when set.
    - warn: within `margin_c` of the slowdown threshold.
    - skip: no GPU, or NVML unavailable.

    ## Fix
    Check fans, airflow, inlet temperature and the BMC's thermal events; reseat the heatsink of
    a GPU that runs hotter than its neighbours.
    """
    findings = each_gpu(inv, lambda g, n: [judge_temperature(n, g.temperature, params)])
    return Verdict.from_findings(findings, ok=f"{passed(findings)} GPUs below slowdown temperature")


@dataclass(frozen=True)
class PowerParams:
    """min_limit_w: enforced power limit at least this (the board's TGP); 0 = not pinned."""

    min_limit_w: float = 0.0


def judge_power(name: str, power: object, params: PowerParams, majority_mw: int | None) -> Finding:
    skip = no_answer(name, power, "nvmlDeviceGetEnforcedPowerLimit")
    if skip:
        return skip
    assert isinstance(power, Power)
    limit = power.limit_mw
    if not isinstance(limit, int):
        return no_answer(name, limit, "nvmlDeviceGetEnforcedPowerLimit") or Finding(
            name, Status.SKIP, "no limit"
        )
    src = NVML + "nvmlDeviceGetEnforcedPowerLimit"
    want = (
        f">= {params.min_limit_w:g} W"
        if params.min_limit_w
        else (f"== {majority_mw / 1000:g} W" if majority_mw else None)
    )
    ev = [Evidence(src, f"{limit / 1000:g} W", want)]
    if isinstance(power.usage_mw, int):
        ev.append(Evidence(NVML + "nvmlDeviceGetPowerUsage", f"{power.usage_mw / 1000:.2f} W"))
    if params.min_limit_w and limit < params.min_limit_w * 1000:
        return Finding(
            name,
            Status.FAIL,
            f"power limit {limit / 1000:g} W, expected {params.min_limit_w:g} W",
            tuple(ev),
        )
    if majority_mw is not None and limit != majority_mw:
        return Finding(
            name,
            Status.WARN,
            f"power limit {limit / 1000:g} W, other GPUs {majority_mw / 1000:g} W",
            tuple(ev),
        )
    return Finding(name, Status.PASS, f"power limit {limit / 1000:g} W", tuple(ev))


@check(
    "gpu.power",
    title="No GPU power-capped below the node's limit",
    tags=("gpu", "nvml", "power"),
    needs=("nvml",),
    params=PowerParams,
)
def power(inv: Inventory, params: PowerParams) -> Verdict:
    """Every GPU's enforced power limit is the full limit, the same on all GPUs.

    ## Why
    A power cap left behind (`nvidia-smi -pl`, a datacenter power policy) makes one GPU slower
    than its peers under load; the whole synchronous job runs at its pace.

    ## Reads
    `nvmlDeviceGetEnforcedPowerLimit` and `nvmlDeviceGetPowerUsage` (milliwatts) per GPU.

    ## Verdicts
    - pass: limit at least `min_limit_w` (when pinned) and equal on every GPU.
    - fail: a limit below `min_limit_w`.
    - warn: a GPU's limit differs from the others'.
    - skip: no GPU, or NVML unavailable.

    ## Fix
    `nvidia-smi -pl <watts> -i N` back to the default limit (`nvidia-smi -q -d POWER` shows
    it), and find what set the cap (DCGM policy, a prolog script).
    """
    limits = [
        g.power.limit_mw
        for g in inv.gpu.gpus
        if isinstance(g.power, Power) and isinstance(g.power.limit_mw, int)
    ]
    majority = max(set(limits), key=limits.count) if limits else None
    findings = each_gpu(inv, lambda g, n: [judge_power(n, g.power, params, majority)])
    return Verdict.from_findings(
        findings,
        ok=f"power limit {majority / 1000 if majority else 0:g} W on {passed(findings)} GPUs",
    )
