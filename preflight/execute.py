"""What `preflight run` does, apart from parsing its options: host, baseline, checks, report."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight import __version__
from preflight.baseline import Baseline, builtin_names, detect, load, parse_set_options
from preflight.bench.measurement import (
    BENCH_TAG,
    RDMA_TAG,
    check_bench_options,
)
from preflight.capabilities import Capabilities, Provider
from preflight.errors import ConfigError, ProfileError
from preflight.hints import link_layers, roce_hint
from preflight.host import Host
from preflight.inventory import Inventory
from preflight.inventory.facts import node_facts
from preflight.model import CheckResult, Report, Scalar, Status
from preflight.profile import host_from_profile
from preflight.registry import CheckSpec, Registry, discover
from preflight.runner import (
    Collector,
    Planned,
    counter_window,
    describe_error,
    run_checks,
    run_with_timeout,
)
from preflight.sources.nvml import DEFAULT_TIMEOUT_S, LiveNvml
from preflight.stages import FACTS

if TYPE_CHECKING:  # a run with --state hands one in: the module is imported by runflags then
    from preflight.state import RunState


@dataclass
class RunOptions:
    """Everything `preflight run` can be told."""

    profile: str | None = None
    baseline: str | None = None
    only: Sequence[str] = ()
    skip: Sequence[str] = ()
    sets: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    deadline_s: float | None = None
    nvml_timeout_s: float = 5.0  # the NVML child process is killed after this
    bench: bool = False  # run the all-reduce benchmark for the bench.* checks
    bench_backend: str | None = None
    bench_nproc: int | None = None
    level: int = 1  # checks of tier <= level run, and deeper ones --only names by id
    strict: bool = False  # warnings, and essential checks that could not run, fail the run
    bench_rdma: bool = False  # run perftest loopback for bench.rdma_loopback
    state: RunState | None = None  # --state DIR: earlier runs' counters and Xid acks


def bench_selection(
    selected: Sequence[CheckSpec[Any]],
    registry: Registry,
    enabled: bool,
    only: Sequence[str],
    skip: Sequence[str],
    rdma: bool = False,
) -> list[CheckSpec[Any]]:
    """--bench adds the bench checks (--bench-rdma the RDMA ones); without it they run only
    when --only names them.

    Named without --bench, they SKIP with a hint, so asking for one never silently drops it.
    """
    chosen = list(selected)
    if rdma:  # --bench-rdma adds the perftest loopback check, with or without --bench
        kept = {s.id for s in registry.select(skip=skip)}
        chosen += [s for s in registry if RDMA_TAG in s.tags and s not in chosen and s.id in kept]
    elif not only:
        chosen = [s for s in chosen if RDMA_TAG not in s.tags]
    if enabled:
        kept = {s.id for s in registry.select(skip=skip)}
        for spec in registry:
            if BENCH_TAG in spec.tags and spec not in chosen and spec.id in kept:
                chosen.append(spec)
        return chosen
    if only:
        return chosen
    return [s for s in chosen if BENCH_TAG not in s.tags]


def parse_env_options(items: Sequence[str]) -> dict[str, str]:
    """--env NAME=VALUE options."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--env {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def make_host(
    profile: str | None, env: Mapping[str, str], nvml_timeout_s: float = DEFAULT_TIMEOUT_S
) -> Host:
    """The live machine, or a profile's sysroot; --env entries override what checks see."""
    if profile:
        try:
            return host_from_profile(profile, env, nvml_timeout_s)
        except (OSError, ValueError) as exc:  # ValueError: a NUL or surrogate in a path
            raise ProfileError(f"profile {profile}: cannot be materialized: {exc}") from None
    merged = dict(os.environ)
    merged.update(env)
    return Host(env=merged, nvml=LiveNvml(nvml_timeout_s))


def collect_nvml(host: Host) -> None:
    """Collect NVML when there is a driver to ask (a profile, or /proc/driver/nvidia on a live
    node); without one the NVML checks say there is no GPU."""
    if not host.is_live or host.exists("/proc/driver/nvidia"):
        host.nvml()


def collectors(options: RunOptions) -> list[Collector]:
    """What the run collects before its checks, for the checks that read it."""
    out = [
        counter_window(options.timeout_s),
        Collector(
            "nvml",
            needed_by=lambda item: "nvml" in item.spec.needs,
            collect=lambda inv, items: collect_nvml(inv.host),
            # the child is killed at its deadline; the watcher then reaps it (preflight.nvml)
            deadline_s=lambda items: options.nvml_timeout_s + 10.0,
        ),
    ]
    if options.bench:
        out.append(
            Collector(
                "allreduce-benchmark",
                needed_by=lambda item: BENCH_TAG in item.spec.tags,
                collect=lambda inv, items: _measure(inv, items, options),
                deadline_s=_params_deadline,
                exclusive=True,
            )
        )
    out.append(
        Collector(
            "active-tests",
            needed_by=lambda item: isinstance(getattr(type(item.params), "TEST", None), str),
            collect=_collect_active,
            deadline_s=_params_deadline,
            exclusive=True,
        )
    )
    if options.bench_rdma:
        out.append(
            Collector(
                "rdma-loopback",
                needed_by=lambda item: RDMA_TAG in item.spec.tags,
                collect=_measure_rdma,
                deadline_s=_params_deadline,
                exclusive=True,
            )
        )
    return out


def _params_deadline(items: Sequence[Planned]) -> float:
    """What the planned checks' parameters allow their measurements: each stops its own
    processes at its timeouts (timeout_s, or a perftest run's listen and run timeouts)."""
    total = 0.0
    for item in items:
        p = item.params
        total += float(getattr(p, "timeout_s", 0.0)) + float(getattr(p, "listen_timeout_s", 0.0))
        total += float(getattr(p, "run_timeout_s", 0.0))
    return total


def _measure(inv: Inventory, items: Sequence[Planned], options: RunOptions) -> None:
    from preflight.bench.run_bench import measure_planned

    measure_planned(items, inv, options.bench_backend, options.bench_nproc)


def _collect_active(inv: Inventory, items: Sequence[Planned]) -> None:
    from preflight.active.collect import collect_planned  # imports no torch: the workers do

    collect_planned(items, inv)


def _measure_rdma(inv: Inventory, items: Sequence[Planned]) -> None:
    from preflight.bench.run_bench import measure_planned_rdma

    measure_planned_rdma(items, inv)


def choose_baseline(
    name: str | None, inv: Inventory, registry: Registry, timeout_s: float = 10.0
) -> Baseline:
    """The named baseline, or the one that fits the node's DMI product and GPUs (`generic` when
    detection fails or takes longer than timeout_s)."""
    if name:
        return load(name, registry)
    outcome = run_with_timeout(lambda: detect_for(inv, registry), timeout_s, inv.abandon)  # type: ignore[arg-type,return-value]
    if outcome.error is not None or not isinstance(outcome.verdict, Baseline):
        return load("generic", registry)
    return outcome.verdict


def detect_for(inv: Inventory, registry: Registry) -> Baseline:
    """Auto-detection from what the node reports."""
    ids = [g.ids for g in inv.pci.gpus()]
    return detect(inv.dmi.values.get("product_name"), ids, registry)


def execute(
    options: RunOptions, registry: Registry | None = None, host: Host | None = None
) -> Report:
    """Run the selected checks and build the report (on `host` when given: a snapshot's
    recording Host)."""
    registry = registry or discover()
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    selected = registry.select(options.only, options.skip, options.level)
    check_bench_options(options.bench, options.bench_backend, options.bench_nproc)
    selected = bench_selection(
        selected, registry, options.bench, options.only, options.skip, options.bench_rdma
    )
    overrides = parse_set_options(options.sets, registry)
    host = host or make_host(options.profile, options.env, options.nvml_timeout_s)
    inv = Inventory(host)
    if options.state is not None:
        options.state.attach(inv)
    pinned = options.baseline
    if pinned is None and options.profile is None:  # a profile is not one of the site's nodes
        from preflight import siteconfig

        pinned = siteconfig.load(os.environ).baseline
    baseline = choose_baseline(pinned, inv, registry, min(10.0, options.timeout_s))
    plan = [
        Planned(s, baseline.params_for(s, overrides.get(s.id)), baseline.remediation.get(s.id))
        for s in selected
    ]
    capabilities = Capabilities(inv, providers(baseline, registry, overrides))
    results = run_checks(
        plan,
        inv,
        timeout_s=options.timeout_s,
        # The deadline counts from the start of the run: baseline detection spent some of it.
        deadline_s=(
            None
            if options.deadline_s is None
            else max(0.0, options.deadline_s - (time.monotonic() - t0))
        ),
        capabilities=capabilities,
        deadline_given_s=options.deadline_s,
        collectors=collectors(options),
    )
    facts, facts_error = gather_facts(inv, options.timeout_s)
    if facts_error:
        results.append(CheckResult(FACTS.id, FACTS.title, Status.ERROR, facts_error, 0.0))
    hints = _hints(results, facts, baseline, registry)
    return Report(
        tool_version=__version__,
        hostname=host.hostname,
        started_at=started.isoformat(timespec="seconds"),
        duration_s=time.monotonic() - t0,
        baseline=baseline.name,
        baseline_source=baseline.source,
        profile=options.profile,
        results=tuple(results),
        facts=facts,
        unchecked=tuple(
            (r.id, r.summary)
            for r in results
            if r.status is Status.SKIP and r.id in baseline.essential
        ),
        unchecked_fails=baseline.unchecked_fails or options.strict,
        hints=hints,
    )


LINK_LAYER_CHECK = "rdma.link_layer"


def _hints(
    results: Sequence[CheckResult],
    facts: Mapping[str, Scalar],
    baseline: Baseline,
    registry: Registry,
) -> tuple[str, ...]:
    """A RoCE node judged by an InfiniBand baseline fails rdma.link_layer on every port: say
    which baseline fits."""
    failed = any(r.id == LINK_LAYER_CHECK and r.status is Status.FAIL for r in results)
    if not failed or LINK_LAYER_CHECK not in registry.specs:
        return ()
    spec = registry.specs[LINK_LAYER_CHECK]
    ethernet = [
        name
        for name in builtin_names()
        if getattr(load(name, registry).params_for(spec), "expected", "") == "Ethernet"
    ]
    expected = str(getattr(baseline.params_for(spec), "expected", ""))
    hint = roce_hint(link_layers(facts), expected, baseline.name, ethernet)
    return (hint,) if hint else ()


def providers(
    baseline: Baseline, registry: Registry, overrides: Mapping[str, Mapping[str, Any]]
) -> dict[str, Provider]:
    """The check that provides each capability, and whether the baseline expects it there:
    params that define `expects()` say (node counts: expected > 0); others always expect it."""
    out: dict[str, Provider] = {}
    for spec in registry:
        if not spec.provides:
            continue
        params: Any = baseline.params_for(spec, overrides.get(spec.id))
        expects = getattr(params, "expects", None)
        for name in spec.provides:
            out.setdefault(name, Provider(spec.id, bool(expects()) if callable(expects) else True))
    return out


def gather_facts(inv: Inventory, timeout_s: float) -> tuple[dict[str, Scalar], str | None]:
    """The node's facts, bounded in time like a check: what was gathered is kept when a group's
    part was abandoned or the time ran out, and the error names what is missing."""
    facts: dict[str, Scalar] = {}
    missing: list[str] = []

    def collect() -> Any:
        node_facts(inv, facts, missing)
        return None

    outcome = run_with_timeout(collect, timeout_s, inv.abandon)
    if outcome.error is not None:
        missing.append(describe_error(outcome.error))
    if missing:
        return dict(facts), f"facts could not all be gathered: {'; '.join(missing)}"
    return dict(facts), None
