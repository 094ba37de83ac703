"""Tests for preflight.runner: timeouts, crash isolation, capability gating, the run deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from preflight.capabilities import NEEDS_ROOT, Capabilities, Provider
from preflight.host import Host
from preflight.inventory import Inventory
from preflight.model import Finding, Status, Verdict
from preflight.registry import CheckSpec, NoParams, check
from preflight.runner import (
    Planned,
    gate,
    run_checks,
    run_with_timeout,
)

GPU_COUNT_CHECK = "site.gpus"  # a provider declared by a test, not a built-in id
NIC_COUNT_CHECK = "site.nics"


def caps(inv: Inventory, expects: bool = True) -> Capabilities:
    providers = {
        "gpu": Provider(GPU_COUNT_CHECK, expects),
        "nic": Provider(NIC_COUNT_CHECK, expects),
    }
    return Capabilities(inv, providers)


# ----------------------------------------------------------------------------- helpers


def make_inv(root: Path, privileged: bool = False) -> Inventory:
    return Inventory(Host(root=str(root), privileged=privileged, env={}, hostname="t"))


def make_spec(
    func: Callable[[Any, Any], Any],
    check_id: str = "test.check",
    needs: tuple[str, ...] = (),
    params: type[Any] = NoParams,
) -> CheckSpec[Any]:
    return check(check_id, title=f"Title of {check_id}", needs=needs, params=params)(func)


def plan(*specs: CheckSpec[Any]) -> list[Planned]:
    return [Planned(s, s.params()) for s in specs]


def passing(inv: Any, params: Any) -> Verdict:
    return Verdict(Status.PASS, "all good", (Finding("node", Status.PASS, "ok"),))


def add_gpu(root: Path, bdf: str = "0000:01:00.0") -> None:
    """A minimal sysfs entry for one NVIDIA 3D controller."""
    real = root / "sys/devices/pci0000:00" / bdf
    real.mkdir(parents=True)
    (real / "vendor").write_text("0x10de\n")
    (real / "device").write_text("0x2330\n")
    (real / "class").write_text("0x030200\n")
    links = root / "sys/bus/pci/devices"
    links.mkdir(parents=True, exist_ok=True)
    (links / bdf).symlink_to(f"../../../devices/pci0000:00/{bdf}")


@pytest.fixture
def blocker() -> Iterator[threading.Event]:
    """An event the blocking checks wait on; set at teardown so abandoned threads end."""
    event = threading.Event()
    yield event
    event.set()


# ----------------------------------------------------------------------------- run_with_timeout


def test_run_with_timeout_returns_verdict() -> None:
    v = Verdict.skip("x")
    out = run_with_timeout(lambda: v, 1.0)
    assert out.verdict is v
    assert out.error is None
    assert out.trace is None


def test_run_with_timeout_abandons_blocked_function(blocker: threading.Event) -> None:
    def blocked() -> Verdict:
        blocker.wait()
        return Verdict.skip("never")

    start = time.monotonic()
    out = run_with_timeout(blocked, 0.2)
    elapsed = time.monotonic() - start
    assert isinstance(out.error, TimeoutError)
    assert "0.2 s" in str(out.error)
    assert "abandoned" in str(out.error)
    assert out.verdict is None
    assert 0.15 <= elapsed < 1.0


def test_run_with_timeout_captures_exception() -> None:
    def boom() -> Verdict:
        raise KeyError("k")

    out = run_with_timeout(boom, 1.0)
    assert isinstance(out.error, KeyError)
    assert out.trace is not None
    assert "KeyError" in out.trace


# ----------------------------------------------------------------------------- run_checks


def test_passing_check_result(tmp_path: Path) -> None:
    [r] = run_checks(plan(make_spec(passing, "a.ok")), make_inv(tmp_path))
    assert r.id == "a.ok"
    assert r.title == "Title of a.ok"
    assert r.status is Status.PASS
    assert r.summary == "all good"
    assert len(r.findings) == 1
    assert r.traceback is None
    assert r.duration_s >= 0


def test_params_are_passed(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class P:
        limit: int = 3

    seen = []

    def func(inv: Any, params: P) -> Verdict:
        seen.append((inv, params))
        return Verdict.skip("x")

    inv = make_inv(tmp_path)
    run_checks([Planned(make_spec(func, params=P), P(limit=7))], inv)
    assert seen == [(inv, P(limit=7))]


def test_check_that_raises_is_error_with_traceback(tmp_path: Path) -> None:
    def crash(inv: Any, params: Any) -> Verdict:
        raise ValueError("bad sysfs value")

    results = run_checks(
        plan(make_spec(crash, "a.crash"), make_spec(passing, "a.after")), make_inv(tmp_path)
    )
    crashed, after = results
    assert crashed.status is Status.ERROR
    assert crashed.summary == "ValueError: bad sysfs value"
    assert crashed.traceback is not None
    assert "Traceback" in crashed.traceback
    assert "bad sysfs value" in crashed.traceback
    assert "traceback" in crashed.to_dict()
    assert after.status is Status.PASS  # one crash never stops the run


@pytest.mark.parametrize("value", [None, "pass", Status.PASS, {"status": "pass"}])
def test_check_returning_non_verdict_is_error(tmp_path: Path, value: Any) -> None:
    [r] = run_checks(plan(make_spec(lambda inv, p: value)), make_inv(tmp_path))
    assert r.status is Status.ERROR
    assert r.summary == f"check returned {type(value).__name__}, not a Verdict"


def test_check_timeout_is_error(tmp_path: Path, blocker: threading.Event) -> None:
    def blocked(inv: Any, params: Any) -> Verdict:
        blocker.wait()
        return Verdict.skip("never")

    start = time.monotonic()
    blocked_r, after = run_checks(
        plan(make_spec(blocked, "a.hang"), make_spec(passing, "a.next")),
        make_inv(tmp_path),
        timeout_s=0.2,
    )
    assert time.monotonic() - start < 1.5
    assert blocked_r.status is Status.ERROR
    assert "did not finish within 0.2 s" in blocked_r.summary
    assert after.status is Status.PASS


# ----------------------------------------------------------------------------- gating


def test_needs_root_unprivileged_skips(tmp_path: Path) -> None:
    called = []

    def func(inv: Any, params: Any) -> Verdict:
        called.append(1)
        return passing(inv, params)

    [r] = run_checks(plan(make_spec(func, needs=("root",))), make_inv(tmp_path))
    assert r.status is Status.SKIP
    assert r.summary.startswith("needs root")
    assert r.summary == NEEDS_ROOT
    assert called == []


def test_needs_root_privileged_runs(tmp_path: Path) -> None:
    [r] = run_checks(plan(make_spec(passing, needs=("root",))), make_inv(tmp_path, True))
    assert r.status is Status.PASS


@pytest.mark.parametrize(("expects", "pointer"), [(False, False), (True, True)])
def test_needs_gpu_without_gpus_skips(tmp_path: Path, expects: bool, pointer: bool) -> None:
    inv = make_inv(tmp_path)
    [r] = run_checks(plan(make_spec(passing, needs=("gpu",))), inv, capabilities=caps(inv, expects))
    assert r.status is Status.SKIP
    assert r.summary.startswith("no NVIDIA GPU on this node")
    assert (GPU_COUNT_CHECK in r.summary) is pointer


@pytest.mark.parametrize("expects", [False, True])
def test_needs_nic_without_nics_skips(tmp_path: Path, expects: bool) -> None:
    inv = make_inv(tmp_path)
    [r] = run_checks(plan(make_spec(passing, needs=("nic",))), inv, capabilities=caps(inv, expects))
    assert r.status is Status.SKIP
    assert r.summary.startswith("no RDMA NIC on this node")
    assert (NIC_COUNT_CHECK in r.summary) is expects


def test_needs_gpu_with_gpu_runs(tmp_path: Path) -> None:
    add_gpu(tmp_path)
    inv = make_inv(tmp_path)
    assert [d.bdf for d in inv.pci.gpus()] == ["0000:01:00.0"]
    [r] = run_checks(plan(make_spec(passing, needs=("gpu",))), inv)
    assert r.status is Status.PASS


def test_gate_root_checked_before_gpu(tmp_path: Path) -> None:
    spec = make_spec(passing, needs=("gpu", "root"))
    inv = make_inv(tmp_path)
    assert gate(spec, caps(inv)) == NEEDS_ROOT
    assert gate(make_spec(passing), caps(inv)) is None


def test_a_provider_runs_when_what_it_provides_is_missing(tmp_path: Path) -> None:
    inv = make_inv(tmp_path)
    counts = check("site.gpus", title="GPUs counted", provides=("gpu",))(passing)
    needs = make_spec(passing, needs=("gpu",))
    assert gate(counts, caps(inv)) is None  # it judges the missing GPUs itself
    assert gate(needs, caps(inv)) == "no NVIDIA GPU on this node (see site.gpus)"
    judged_elsewhere = check("site.other", title="t", needs=("gpu", "root"), provides=("gpu",))
    assert gate(judged_elsewhere(passing), caps(inv)) == NEEDS_ROOT  # root is nobody's to judge


# ----------------------------------------------------------------------------- deadline


def test_deadline_marks_unstarted_checks_error(tmp_path: Path, blocker: threading.Event) -> None:
    started = []

    def blocked(inv: Any, params: Any) -> Verdict:
        started.append("hang")
        blocker.wait()
        return Verdict.skip("never")

    def later(inv: Any, params: Any) -> Verdict:
        started.append("later")
        return Verdict.skip("x")

    start = time.monotonic()
    results = run_checks(
        plan(make_spec(blocked, "a.hang"), make_spec(later, "a.b"), make_spec(later, "a.c")),
        make_inv(tmp_path),
        timeout_s=5.0,
        deadline_s=0.2,
    )
    assert time.monotonic() - start < 1.5  # the deadline capped the 5 s timeout
    hang, b, c = results
    assert hang.status is Status.ERROR
    assert "did not finish" in hang.summary
    for r in (b, c):
        assert r.status is Status.ERROR
        assert r.summary == "not run: the run's --deadline 0.2 s passed"
        assert r.duration_s == 0.0
    assert started == ["hang"]


def test_deadline_not_reached_runs_everything(tmp_path: Path) -> None:
    results = run_checks(
        plan(make_spec(passing, "a.a"), make_spec(passing, "a.b")),
        make_inv(tmp_path),
        deadline_s=30.0,
    )
    assert [r.status for r in results] == [Status.PASS, Status.PASS]


# ----------------------------------------------------------------------------- collectors


def test_a_failed_collector_is_named_on_the_checks_that_need_it(tmp_path: Path) -> None:
    from preflight.errors import ConfigError
    from preflight.runner import Collector

    def broken(inv: Inventory, items: Any) -> None:
        raise OSError("the sampler's device is gone")

    def stores(inv: Inventory, items: Any) -> None:
        inv.store("sample", [item.spec.id for item in items])

    def reads(inv: Inventory, params: Any) -> Verdict:
        return Verdict(Status.PASS, f"read {inv.collected('sample')}")

    needy = make_spec(passing, "a.needs_broken")
    reader = make_spec(reads, "a.reads_sample")
    collectors = [
        Collector("sampler", lambda p: p.spec is needy, broken, lambda items: 5.0),
        Collector("store", lambda p: p.spec is reader, stores, lambda items: 5.0),
    ]
    inv = make_inv(tmp_path)
    failed, read, other = run_checks(
        plan(needy, reader, make_spec(passing, "a.other")), inv, collectors=collectors
    )
    assert failed.status is Status.ERROR
    assert failed.summary == "not judged: collector sampler OSError: the sampler's device is gone"
    assert (read.status, read.summary) == (Status.PASS, "read ['a.reads_sample']")
    assert other.status is Status.PASS

    def misconfigured(inv: Inventory, items: Any) -> None:
        raise ConfigError("bench.allreduce: bad dtype")

    with pytest.raises(ConfigError):  # a configuration error ends the run as without collectors
        run_checks(
            plan(needy),
            make_inv(tmp_path),
            collectors=[Collector("c", lambda p: True, misconfigured, lambda i: 1.0, True)],
        )


def test_a_collector_past_its_deadline_is_abandoned_and_named(tmp_path: Path) -> None:
    from preflight.runner import Collector

    release = threading.Event()
    needy = make_spec(passing, "a.needs_slow")

    def hangs(inv: Inventory, items: Any) -> None:
        release.wait()

    slow = Collector("slow", lambda p: p.spec is needy, hangs, lambda i: 0.2)
    start = time.monotonic()
    try:
        [r] = run_checks(plan(needy), make_inv(tmp_path), collectors=[slow])
    finally:
        release.set()
    assert time.monotonic() - start < 2.0
    assert r.summary == "not judged: collector slow did not finish within 0.2 s; abandoned"
