"""Run selected checks against an Inventory: gating, timeouts, crash isolation, timing."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from preflight.inventory import Inventory
from preflight.inventory.node import PartHung
from preflight.model import CheckResult, Status, Verdict
from preflight.registry import CheckSpec
from preflight.remediation import Override, judged

GPU_COUNT_CHECK = "node.gpu_count"
NIC_COUNT_CHECK = "node.nic_count"
NEEDS_ROOT = (
    "needs root: without CAP_SYS_ADMIN the kernel returns only the first 64 bytes of a PCI "
    "config space"
)


@dataclass(frozen=True)
class Planned:
    """A check with its resolved parameters."""

    spec: CheckSpec[Any]
    params: Any
    override: Override | None = None  # the baseline's change to its findings' class/severity


@dataclass
class _Outcome:
    verdict: Verdict | None = None
    error: BaseException | None = None
    trace: str | None = None


def gate(
    spec: CheckSpec[Any], inv: Inventory, expects_gpus: bool, expects_nics: bool
) -> str | None:
    """Why a check cannot run on this node, or None when it can."""
    if "root" in spec.needs and not inv.privileged:
        return NEEDS_ROOT
    if ("gpu" in spec.needs or "nvml" in spec.needs) and not inv.pci.gpus():
        where = f" (see {GPU_COUNT_CHECK})" if expects_gpus else ""
        return f"no NVIDIA GPU on this node{where}"
    if "nic" in spec.needs and not inv.pci.nics():
        where = f" (see {NIC_COUNT_CHECK})" if expects_nics else ""
        return f"no RDMA NIC on this node{where}"
    if "nvml" in spec.needs:
        return inv.gpu.gate_reason(spec.id)
    return None


def run_with_timeout(
    func: Callable[[], Verdict],
    timeout_s: float,
    on_abandon: Callable[[int], None] | None = None,
) -> _Outcome:
    """Run func in a daemon thread; a call still running at the deadline is abandoned.

    A thread blocked in a read of a hung device cannot be interrupted, so it is left behind as
    a daemon; the run moves on and the process can still exit. `on_abandon` gets the abandoned
    thread's id (Inventory.abandon: later users of what it was building fail at once).
    """
    outcome = _Outcome()

    def target() -> None:
        try:
            outcome.verdict = func()
        except BaseException as exc:
            outcome.error = exc
            outcome.trace = traceback.format_exc()

    thread = threading.Thread(target=target, name="preflight-check", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        outcome.error = TimeoutError(f"did not finish within {timeout_s:g} s; abandoned")
        if on_abandon is not None and thread.ident is not None:
            on_abandon(thread.ident)
    return outcome


def describe_error(err: BaseException) -> str:
    """Why a check could not finish, for its summary: a timeout or an abandoned inventory part
    says it in words (no internal class name); an unexpected exception keeps its class, which
    says what kind of bug it is (`KeyError: 'x'`)."""
    text = str(err)
    if isinstance(err, (TimeoutError, PartHung)):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def run_checks(
    plan: Sequence[Planned],
    inv: Inventory,
    *,
    timeout_s: float = 10.0,
    deadline_s: float | None = None,
    expects_gpus: bool = False,
    expects_nics: bool = False,
    deadline_given_s: float | None = None,
) -> list[CheckResult]:
    """Run every planned check; each gets its own time budget and never crashes the run.

    `deadline_s` is what is left of the run's deadline; `deadline_given_s` the --deadline the
    operator gave, which is what a message names.

    `final` checks run last (results keep the plan's order); when there are any, the
    inventory's sampling window opens before the first check.
    """
    results: dict[int, CheckResult] = {}
    run_start = time.monotonic()
    order = sorted(range(len(plan)), key=lambda i: plan[i].spec.final)
    if any(item.spec.final for item in plan):

        def open_window() -> Verdict:
            inv.open_window()
            return Verdict.skip("sampling window opened")

        # A failed first sample shows again, as an error, in the check that needs it.
        run_with_timeout(open_window, timeout_s, inv.abandon)
    given = deadline_s if deadline_given_s is None else deadline_given_s
    for index in order:
        item = plan[index]
        spec = item.spec
        start = time.monotonic()
        if deadline_s is not None and start - run_start > deadline_s:
            results[index] = CheckResult(
                spec.id,
                spec.title,
                Status.ERROR,
                f"not run: the run's --deadline {given:g} s passed",
                0.0,
            )
            continue
        budget = timeout_s
        if deadline_s is not None:
            budget = min(budget, max(0.0, deadline_s - (start - run_start)))

        def call(spec: CheckSpec[Any] = spec, params: Any = item.params) -> Verdict:
            reason = gate(spec, inv, expects_gpus, expects_nics)
            if reason is not None:
                return Verdict.skip(reason)
            return spec.func(inv, params)

        blocked: list[str] = []

        def abandon(thread_id: int, blocked: list[str] = blocked) -> None:
            inv.abandon(thread_id)
            path = inv.host.blocked_in(thread_id)
            if path is not None:
                blocked.append(path)

        outcome = run_with_timeout(call, budget, abandon)
        elapsed = time.monotonic() - start
        if outcome.error is not None:
            err = outcome.error
            msg = describe_error(err)
            if blocked:
                msg += f" (blocked reading {blocked[0]})"
            results[index] = CheckResult(
                spec.id, spec.title, Status.ERROR, msg, elapsed, traceback=outcome.trace
            )
            continue
        verdict = outcome.verdict
        if not isinstance(verdict, Verdict):
            results[index] = CheckResult(
                spec.id,
                spec.title,
                Status.ERROR,
                f"check returned {type(verdict).__name__}, not a Verdict",
                elapsed,
            )
            continue
        results[index] = judged(spec, verdict, elapsed, item.override)
    return [results[i] for i in range(len(plan))]
