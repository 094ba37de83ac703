"""Run selected checks against an Inventory: gating, timeouts, crash isolation, timing."""

from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from preflight import result_figures
from preflight.capabilities import Capabilities
from preflight.errors import PreflightError
from preflight.inventory import Inventory
from preflight.inventory.inventory import PartHung
from preflight.model import CheckResult, Status, Verdict
from preflight.registry import CheckSpec
from preflight.remediation import Override, judged


@dataclass(frozen=True)
class Planned:
    """A check with its resolved parameters."""

    spec: CheckSpec[Any]
    params: Any
    override: Override | None = None  # the baseline's change to its findings' class/severity


@dataclass(frozen=True)
class Collector:
    """Something measured or sampled once, before the checks that read it from the inventory
    (NVML, the RDMA counter window, a benchmark, the active GPU tests).

    `needed_by` says which planned checks need it (it runs only when one is planned); `collect`
    gets those and stores its result in the inventory; `deadline_s` bounds it. Shared collectors
    run side by side in threads and are abandoned at their deadline; an `exclusive` one (it keeps
    the GPUs or NICs busy, and stops its processes on a signal) runs alone in the calling thread,
    after the shared ones, and stops its own work at its deadline.
    """

    name: str
    needed_by: Callable[[Planned], bool]
    collect: Callable[[Inventory, Sequence[Planned]], None]
    deadline_s: Callable[[Sequence[Planned]], float]
    exclusive: bool = False


@dataclass
class _Outcome:
    verdict: Verdict | None = None
    error: BaseException | None = None
    trace: str | None = None


def gate(spec: CheckSpec[Any], capabilities: Capabilities) -> str | None:
    """Why a check cannot run on this node, or None when it can."""
    return capabilities.gate(spec.needs, spec.provides)


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


def _open_window(inv: Inventory, items: Sequence[Planned]) -> None:
    inv.open_window()


def counter_window(timeout_s: float) -> Collector:
    """The first sample of the counters that `final` checks compare with the end of the run,
    bounded like a check."""
    return Collector(
        "counter-window",
        needed_by=lambda item: item.spec.final,
        collect=_open_window,
        deadline_s=lambda items: timeout_s,
    )


class Collection:
    """The collectors of one run: shared ones in threads beside the checks, exclusive ones
    already done. `failure` waits (bounded) for one and says why it failed, or None."""

    def __init__(
        self, collectors: Sequence[Collector], plan: Sequence[Planned], inv: Inventory
    ) -> None:
        self.inv = inv
        self.collectors = [c for c in collectors if any(c.needed_by(p) for p in plan)]
        self._failures: dict[str, str] = {}
        self._running: dict[str, tuple[threading.Thread, _Outcome, float, float]] = {}
        for collector in self.collectors:
            if collector.exclusive:
                continue
            items = [p for p in plan if collector.needed_by(p)]
            outcome = _Outcome()
            thread = threading.Thread(
                target=_collect_into,
                args=(collector, inv, items, outcome),
                name=f"preflight-collect-{collector.name}",
                daemon=True,
            )
            thread.start()
            limit = collector.deadline_s(items)
            self._running[collector.name] = (thread, outcome, time.monotonic() + limit, limit)
        for collector in self.collectors:
            if collector.exclusive:
                outcome = _Outcome()
                _collect_into(collector, inv, [p for p in plan if collector.needed_by(p)], outcome)
                self._settle(collector.name, outcome)

    def _settle(self, name: str, outcome: _Outcome) -> None:
        if outcome.error is not None:
            _raise_if_fatal(outcome.error)
            self._failures[name] = describe_error(outcome.error)

    def failure(self, name: str, until: float | None = None) -> str | None:
        """Why the collector failed, once it has finished or passed its deadline; None when it
        stored its result, or when `until` (a monotonic time) came first."""
        running = self._running.get(name)
        if running is not None:
            thread, outcome, ends, limit = running
            thread.join(max(0.0, min(ends, until or ends) - time.monotonic()))
            if not thread.is_alive():
                del self._running[name]
                self._settle(name, outcome)
            elif time.monotonic() >= ends:
                del self._running[name]
                self._failures[name] = _abandoned(self.inv, thread, limit)
        return self._failures.get(name)

    def failures_for(self, item: Planned, until: float | None = None) -> list[str]:
        """`collector NAME why` for each collector this check needs that failed."""
        out = []
        for collector in self.collectors:
            if collector.needed_by(item):
                why = self.failure(collector.name, until)
                if why is not None:
                    out.append(f"collector {collector.name} {why}")
        return out


def _collect_into(
    collector: Collector, inv: Inventory, items: Sequence[Planned], outcome: _Outcome
) -> None:
    try:
        collector.collect(inv, items)
    except BaseException as exc:
        outcome.error = exc
        outcome.trace = traceback.format_exc()


def _abandoned(inv: Inventory, thread: threading.Thread, deadline_s: float) -> str:
    path = inv.host.blocked_in(thread.ident)
    if thread.ident is not None:
        inv.abandon(thread.ident)
    where = f" (blocked reading {path})" if path else ""
    return f"did not finish within {deadline_s:g} s; abandoned{where}"


def _raise_if_fatal(err: BaseException) -> None:
    if isinstance(err, (PreflightError, SystemExit, KeyboardInterrupt)):
        raise err


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
    capabilities: Capabilities | None = None,
    deadline_given_s: float | None = None,
    collectors: Sequence[Collector] | None = None,
) -> list[CheckResult]:
    """Run every planned check; each gets its own time budget and never crashes the run.

    `capabilities` (one per run) gate the checks by what they need. `deadline_s` is what is
    left of the run's deadline; `deadline_given_s` the --deadline the
    operator gave, which is what a message names.

    `collectors` (by default the counter window) run first (run_collectors); a check that
    needs one that failed is an error naming it. `final` checks run last (results keep the
    plan's order).
    """
    results: dict[int, CheckResult] = {}
    run_start = time.monotonic()
    order = sorted(range(len(plan)), key=lambda i: plan[i].spec.final)
    if collectors is None:
        collectors = (counter_window(timeout_s),)
    collection = Collection(collectors, plan, inv)
    caps = Capabilities(inv) if capabilities is None else capabilities
    given = deadline_s if deadline_given_s is None else deadline_given_s
    run_ends = None if deadline_s is None else run_start + deadline_s
    for index in order:
        item = plan[index]
        spec = item.spec
        failed = collection.failures_for(item, run_ends)  # waits for what this check reads
        if failed:
            results[index] = CheckResult(
                spec.id, spec.title, Status.ERROR, f"not judged: {'; '.join(failed)}", 0.0
            )
            continue
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
            reason = gate(spec, caps)
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
        result = judged(spec, verdict, elapsed, item.override)
        if spec.figures is not None:
            measured = tuple(result_figures.of(spec.figures, result.to_dict()))
            result = dataclasses.replace(result, figures=measured)
        results[index] = result
    return [results[i] for i in range(len(plan))]
