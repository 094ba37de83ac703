"""Every registered check, end to end through `execute()`: the case table in tests/data/cases/
(one TOML file per area, format in its README.md) holds at least one passing and one failing case
per check, on the built-in profiles or on small edits of one.

A failing case expects FAIL, or WARN for a check whose docstring's "## Verdicts" section has no
fail line. `EXEMPT` lists the few (check, side) pairs a profile cannot show, each with the test
that covers it instead; the meta-tests keep the table and the registry in step.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from preflight.execute import RunOptions, execute
from preflight.model import Status
from preflight.registry import Registry, discover
from tests.paths import DATA

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

TESTS = Path(__file__).parent
CASE_DIR = DATA / "cases"
PASS, WARN, FAIL = Status.PASS, Status.WARN, Status.FAIL
GPU0 = "0000:18:00.0"  # the first GPU of dgx-h100 (and of the profiles that extend it)
FIELDS = {"check", "expect", "profile", "set", "env", "baseline", "edit", "remove", "nvml_gpu0"}
FIELDS |= {"summary_has", "summary_starts", "bench_rdma"}
STANDINS = Path(__file__).parent / "standins"  # bench_rdma cases run the perftest STAND-IN
NVML_TIMEOUT_S = 10.0
"""Only a hung NVML child waits this long; the profiles answer at once, but a loaded machine
may take seconds to start the child."""


@dataclass(frozen=True)
class Case:
    """One run of one check; `edit` (when not empty) is written to a JSON profile that `extends`
    `profile` and is run instead of it."""

    where: str
    check_id: str
    expect: Status
    profile: str
    sets: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    baseline: str | None = None
    edit: Mapping[str, Any] = field(default_factory=dict)
    summary_has: str | None = None
    summary_starts: str | None = None
    bench_rdma: Mapping[str, str] | None = None  # run --bench-rdma; the stand-in's variables

    @property
    def label(self) -> str:
        return f"{self.where}-{self.check_id}-{self.expect.value}"


def _edit(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The profile overlay of a case: edit, remove (null deletes in a profile merge), nvml_gpu0."""
    edit: dict[str, Any] = json.loads(json.dumps(raw.get("edit", {})))
    for dotted in raw.get("remove", []):
        section, _, key = dotted.partition(".")
        edit.setdefault(section, {})[key] = None
    if "nvml_gpu0" in raw:
        edit.setdefault("nvml", {}).setdefault("gpus", {})[GPU0] = raw["nvml_gpu0"]
    return edit


def load_cases(folder: Path = CASE_DIR) -> list[Case]:
    cases = []
    for path in sorted(folder.glob("*.toml")):
        for n, raw in enumerate(tomllib.loads(path.read_text())["case"], 1):
            unknown = set(raw) - FIELDS
            assert not unknown, f"{path.name} case {n}: unknown fields {sorted(unknown)}"
            cases.append(
                Case(
                    where=f"{path.stem}:{n}",
                    check_id=raw["check"],
                    expect=Status(raw["expect"]),
                    profile=raw["profile"],
                    sets=tuple(raw.get("set", ())),
                    env=raw.get("env", {}),
                    baseline=raw.get("baseline"),
                    edit=_edit(raw),
                    summary_has=raw.get("summary_has"),
                    summary_starts=raw.get("summary_starts"),
                    bench_rdma=raw.get("bench_rdma"),
                )
            )
    return cases


CASES = load_cases()

# (check id, "pass" or "fail") that no profile run can show, each with the test covering it.
EXEMPT: dict[tuple[str, str], str] = {
    # The all-reduce benchmark never runs on a profile (it skips there): its verdicts are judged
    # on synthetic measurements.
    ("bench.allreduce", "pass"): (
        "tests/test_bench_check.py::TestJudge::test_pass_says_share_of_theoretical"
    ),
    ("bench.allreduce", "fail"): "tests/test_bench_check.py::TestJudge::test_below_floor_fails",
    # dcgm.diag runs dcgmi, which a profile cannot; judged on real dcgmi outputs (stand-in).
    ("dcgm.diag", "pass"): "tests/test_dcgm.py::test_v3_pass_with_banner_and_nulls",
    ("dcgm.diag", "fail"): "tests/test_dcgm.py::test_end_to_end_through_run",
    # Only real perftest on real HCAs can pass; the stand-in's replays warn (tests/data/cases/
    # bench.toml has its warn and fail cases).
    ("bench.rdma_loopback", "pass"): (
        "tests/test_bench_rdma_check.py::test_a_run_at_its_floor_passes"
    ),
    # FAIL means a counter grew between the runner's first sample and the check's: a profile's
    # files do not change during a run.
    ("rdma.counters", "fail"): (
        "tests/test_rdma_checks.py::test_counters_growing_during_the_run_fail"
    ),
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return discover(include_plugins=False)


def profile_for(case: Case, tmp_path: Path) -> str:
    if not case.edit:
        return case.profile
    base = case.profile
    if base.endswith(".json"):  # a profile in the repository, by its path from the root
        base = str(TESTS.parent / base)
    path = tmp_path / "case-profile.json"
    path.write_text(json.dumps({"extends": base, **case.edit}))
    return str(path)


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_case(
    case: Case, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.bench_rdma is not None:  # perftest loopback with the stand-in first on PATH
        monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ.get('PATH', '')}")
        for name, value in case.bench_rdma.items():
            monkeypatch.setenv(name, value)
    options = RunOptions(
        bench_rdma=case.bench_rdma is not None,
        profile=profile_for(case, tmp_path),
        only=(case.check_id,),
        sets=case.sets,
        env=dict(case.env),
        baseline=case.baseline,
        nvml_timeout_s=NVML_TIMEOUT_S,
    )
    report = execute(options, registry)
    results = {r.id: r for r in report.results}
    assert case.check_id in results, sorted(results)
    result = results[case.check_id]
    assert result.status is case.expect, (
        f"{case.where}: {case.check_id} on {case.profile}: {result.status.value}, expected "
        f"{case.expect.value}: {result.summary}"
    )
    if case.summary_has is not None:
        assert case.summary_has in result.summary, f"{case.where}: {result.summary}"
    if case.summary_starts is not None:
        assert result.summary.startswith(case.summary_starts), f"{case.where}: {result.summary}"
    # Every failing or warning finding says what to do: a class the check declares, and a text.
    classes = registry.specs[case.check_id].actions
    for f in (x for x in result.findings if x.status in (WARN, FAIL)):
        assert f.action in classes and f.action_text, f"{case.where}: {f.subject}: {f.action}"
    if result.status in (WARN, FAIL):
        assert result.action in classes and result.action_text, f"{case.where}: no action"


def has_fail_verdict(doc: str) -> bool:
    """Whether the docstring's "## Verdicts" section has a `- fail:` line."""
    match = re.search(r"^## Verdicts\n(.*?)(?=^## |\Z)", doc, re.S | re.M)
    assert match, "no '## Verdicts' section"
    return re.search(r"^\s*- fail:", match.group(1), re.M) is not None


def failing_status(registry: Registry, check_id: str) -> Status:
    return FAIL if has_fail_verdict(registry.specs[check_id].doc or "") else WARN


def test_every_check_has_a_passing_and_a_failing_case(registry: Registry) -> None:
    covered = {(c.check_id, "pass") for c in CASES if c.expect is PASS}
    covered |= {
        (c.check_id, "fail") for c in CASES if c.expect is failing_status(registry, c.check_id)
    }
    needed = {(i, side) for i in registry.specs for side in ("pass", "fail")}
    missing = needed - covered - EXEMPT.keys()
    assert not missing, sorted(missing)
    redundant = covered & EXEMPT.keys()
    assert not redundant, f"exempt but covered here, drop from EXEMPT: {sorted(redundant)}"


def test_cases_name_known_checks_and_statuses(registry: Registry) -> None:
    unknown = {c.check_id for c in CASES} - registry.specs.keys()
    assert not unknown, sorted(unknown)
    assert not {i for i, _ in EXEMPT} - registry.specs.keys()
    odd = [c.label for c in CASES if c.expect not in (PASS, WARN, FAIL)]
    assert not odd
    labels = [c.label for c in CASES]
    assert len(labels) == len(set(labels)), "duplicate cases"


def test_exemptions_name_existing_tests() -> None:
    for node in EXEMPT.values():
        path, *names = node.split("::")
        tree = ast.parse((TESTS.parent / path).read_text())
        scope: list[ast.stmt] = tree.body
        for name in names:
            found = next(
                (
                    n
                    for n in scope
                    if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name
                ),
                None,
            )
            assert found is not None, f"{node}: no {name}"
            scope = found.body


def test_every_nvml_check_has_a_fault_on_one_gpu(registry: Registry) -> None:
    """Each NVML check finds a fault confined to the first GPU (and names it, where its summary
    is per GPU): the path profile -> child -> fake NVML -> collector -> inventory -> check."""
    nvml_checks = {s.id for s in registry if "nvml" in s.needs}
    faulted = {
        c.check_id
        for c in CASES
        if c.expect is not PASS and GPU0 in c.edit.get("nvml", {}).get("gpus", {})
        if c.summary_has
    }
    assert nvml_checks <= faulted, sorted(nvml_checks - faulted)


def test_the_loader_rejects_unknown_fields(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text(
        '[[case]]\ncheck = "cpu.smt"\nexpect = "pass"\nprofile = "p"\nsets = []\n'
    )
    with pytest.raises(AssertionError, match=r"x.toml case 1: unknown fields \['sets'\]"):
        load_cases(tmp_path)
