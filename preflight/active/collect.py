"""Measure the planned active tests before the checks run, and hand the records to them.

A collector of the run's collection stage (preflight.runner.Collector, declared by
preflight.execute) calls collect_planned with the planned checks; each whose params name a
`TEST` gets that test run once, with its parameters, and the outcome stored in the run's
Inventory. A check only reads it back (outcome()) and judges it. Workers run all GPUs at once,
one process each (the P2P matrix: one process for every GPU), each killed at the test's
deadline.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preflight.active import hooks
from preflight.inventory import Inventory

if TYPE_CHECKING:  # what runs a test is imported when one runs: most runs plan none
    from preflight.active.child import ChildFailure, ChildRecord
    from preflight.active.dcgm import DcgmRun, DcgmUnavailable

MEASURED, SKIPPED, UNAVAILABLE = "measured", "skipped", "unavailable"
TORCH_MISSING = "torch is not installed: pip install 'gpu-preflight[bench]'"
PROFILE_SKIP = "a profile describes a mocked node; active tests run only on this machine"
NO_GPU = "no NVIDIA GPU on this node: nothing to test"


@dataclass(frozen=True)
class GpuRun:
    """One device's worker: its record, or why there is none."""

    index: int
    name: str  # "GPU3 0000:9a:00.0" (or "cpu:1" on the test device)
    record: dict[str, Any] | None = None
    failure: str | None = None
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class ActiveOutcome:
    """What happened when a test ran on this node."""

    test: str
    outcome: str  # measured, skipped, unavailable
    reason: str = ""
    kind: str = "cuda"  # cuda, or cpu (the test-only device)
    runs: tuple[GpuRun, ...] = ()
    nvml_samples: tuple[dict[str, Any], ...] = ()
    nvml_problems: tuple[str, ...] = ()
    duration_s: float = 0.0
    dcgm: DcgmRun | DcgmUnavailable | None = None  # dcgmi diag's answer (test "dcgm")


def attach(inv: Inventory, outcome: ActiveOutcome) -> None:
    """Hand the test's outcome to the checks of this run."""
    inv.store(f"active.{outcome.test}", outcome)


def outcome(inv: Inventory, test: str) -> ActiveOutcome | None:
    """The test's outcome in this run, or None when nothing collected it."""
    found = inv.collected(f"active.{test}")
    return found if isinstance(found, ActiveOutcome) else None


def collect_planned(plan: Sequence[Any], inv: Inventory) -> None:
    """Run each planned active test once (in plan order) and attach the outcomes."""
    for item in plan:
        test = getattr(type(item.params), "TEST", None)
        if isinstance(test, str) and outcome(inv, test) is None:
            attach(inv, collect(test, item.params, inv))


def devices(inv: Inventory) -> tuple[str, list[str]] | str:
    """(kind, a name per device) to test, or why there is nothing to test."""
    env = inv.host.env
    gpus = [g.bdf for g in inv.pci.gpus()]
    if hooks.test_device(env) == "cpu":
        n = hooks.test_device_count(env)
        return "cpu", [f"GPU{i} {gpus[i]}" if i < len(gpus) else f"cpu:{i}" for i in range(n)]
    if not inv.host.is_live:
        return PROFILE_SKIP
    if not gpus:
        return NO_GPU
    return "cuda", [f"GPU{i} {bdf}" for i, bdf in enumerate(gpus)]


def collect(test: str, params: Any, inv: Inventory) -> ActiveOutcome:
    """Run `test` on every device as params say (timeout_s bounds every worker)."""
    if test == "dcgm":
        return collect_dcgm(params, inv)

    from concurrent.futures import ThreadPoolExecutor  # ~10 ms with logging: for active tests only

    from preflight.active.child import run_worker

    planned = devices(inv)
    if isinstance(planned, str):
        return ActiveOutcome(test, SKIPPED, planned)
    kind, names = planned
    if importlib.util.find_spec("torch") is None:
        return ActiveOutcome(test, UNAVAILABLE, TORCH_MISSING, kind)
    worker_params = params.worker_params(kind)
    base = {"test": test, "kind": kind, "params": worker_params}
    base["hooks"] = hooks.for_worker(inv.host.env)
    timeout_s = float(params.timeout_s)
    start = time.monotonic()
    if test == "p2p":
        if len(names) < 2:
            return ActiveOutcome(test, SKIPPED, "fewer than 2 GPUs: no pair to measure", kind)
        result = run_worker({**base, "index": 0, "devices": len(names)}, timeout_s)
        runs: tuple[GpuRun, ...] = (_run(0, "all GPUs", result),)
        return ActiveOutcome(test, MEASURED, "", kind, runs, duration_s=time.monotonic() - start)
    sampler = _NvmlSampler(inv, float(getattr(params, "sample_s", 0.0))) if test == "burn" else None
    if sampler is not None:
        sampler.start()
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="preflight-active") as pool:
        futures = [
            pool.submit(run_worker, {**base, "index": i}, timeout_s) for i in range(len(names))
        ]
        runs = tuple(_run(i, names[i], f.result()) for i, f in enumerate(futures))
    samples, problems = sampler.stop() if sampler is not None else ((), ())
    return ActiveOutcome(
        test, MEASURED, "", kind, runs, samples, problems, time.monotonic() - start
    )


def collect_dcgm(params: Any, inv: Inventory) -> ActiveOutcome:
    """`dcgmi diag -r params.level -j`, bounded by params.timeout_s (a stand-in named by the
    test-only PREFLIGHT_ACTIVE_TEST_DCGMI runs on any machine)."""
    env = inv.host.env
    standin = env.get(hooks.DCGMI) or None
    from preflight.active.dcgm import DcgmUnavailable, trusted_program

    refused = trusted_program(standin) if standin else None
    if standin and refused:
        reason = f"{hooks.DCGMI}={standin[:200]!r} refused: {refused}"
        return ActiveOutcome("dcgm", MEASURED, dcgm=DcgmUnavailable("error", reason))
    if standin is None:
        if not inv.host.is_live:
            return ActiveOutcome("dcgm", SKIPPED, PROFILE_SKIP)
        if not inv.pci.gpus():
            return ActiveOutcome("dcgm", SKIPPED, NO_GPU)
    from preflight.active.dcgm import run_diag

    start = time.monotonic()
    answer = run_diag(int(params.level), float(params.timeout_s), standin)
    return ActiveOutcome("dcgm", MEASURED, duration_s=time.monotonic() - start, dcgm=answer)


def _run(index: int, name: str, result: ChildRecord | ChildFailure) -> GpuRun:
    from preflight.active.child import ChildFailure

    if isinstance(result, ChildFailure):
        return GpuRun(index, name, None, result.message, result.elapsed_s)
    return GpuRun(index, name, result.data, None, result.elapsed_s)


class _NvmlSampler:
    """NVML records taken every `interval_s` while the burn runs (each one a collector child,
    bounded by the run's --nvml-timeout); a profile's NVML section answers on a profile."""

    def __init__(self, inv: Inventory, interval_s: float) -> None:
        self.host = inv.host
        self.interval_s = interval_s
        self.enabled = interval_s > 0 and (bool(inv.pci.gpus()) or not self.host.is_live)
        self.samples: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="preflight-burn-nvml", daemon=True)

    def start(self) -> None:
        if self.enabled:
            self._thread.start()

    def _sample(self) -> None:
        from preflight.nvml.probe import NvmlFailure

        result = self.host.nvml_source.sample()
        if isinstance(result, NvmlFailure):
            self.problems.append(result.message)
        else:
            self.samples.append(result.data)

    def _loop(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.interval_s):
                return

    def stop(self) -> tuple[tuple[dict[str, Any], ...], tuple[str, ...]]:
        if self.enabled:
            self._stop.set()
            self._thread.join(self.host.nvml_source.timeout_s + 10.0)
        return tuple(self.samples), tuple(self.problems)
