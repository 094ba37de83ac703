"""Tiers: each check's depth, `run --level N`, and how `list` and `explain` show it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from preflight.model import Verdict
from preflight.registry import CheckSpec, Registry, check, discover
from tests.harness import assert_one_line_error, cli


def _ok(inv: Any, params: Any) -> Verdict:
    return Verdict.skip("test")


def spec(check_id: str, tier: int = 1) -> CheckSpec[Any]:
    return check(check_id, title=check_id, tier=tier)(_ok)


@pytest.fixture
def registry() -> Registry:
    specs = [spec("pcie.link"), spec("gpu.copy", 2), spec("gpu.gemm", 2), spec("dcgm.r3", 3)]
    return Registry(specs)


def ids(specs: list[CheckSpec[Any]]) -> list[str]:
    return [s.id for s in specs]


def test_tier_defaults_to_1_and_must_be_known() -> None:
    assert spec("a.b").tier == 1
    with pytest.raises(ValueError, match="tier must be one of"):
        spec("a.b", tier=4)


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (1, ["pcie.link"]),
        (2, ["gpu.copy", "gpu.gemm", "pcie.link"]),
        (3, ["dcgm.r3", "gpu.copy", "gpu.gemm", "pcie.link"]),
    ],
)
def test_level_selects_tiers_up_to_it(registry: Registry, level: int, expected: list[str]) -> None:
    assert ids(registry.select(level=level)) == expected


def test_only_naming_a_deeper_check_selects_it_at_level_1(registry: Registry) -> None:
    assert ids(registry.select(only=["dcgm.r3"], level=1)) == ["dcgm.r3"]
    assert ids(registry.select(only=["gpu.copy", "pcie.*"], level=1)) == ["gpu.copy", "pcie.link"]


def test_a_glob_or_tag_keeps_the_level(registry: Registry) -> None:
    assert ids(registry.select(only=["gpu.*", "pcie.*"], level=1)) == ["pcie.link"]
    assert ids(registry.select(only=["gpu.*"], level=2)) == ["gpu.copy", "gpu.gemm"]


def test_skip_applies_at_every_level(registry: Registry) -> None:
    assert ids(registry.select(skip=["gpu.gemm"], level=2)) == ["gpu.copy", "pcie.link"]


def test_builtin_active_checks_are_deeper_than_level_1() -> None:
    tiers = {s.id: s.tier for s in discover(include_plugins=False)}
    assert tiers["gpu.copy_bandwidth"] == tiers["gpu.gemm"] == tiers["gpu.p2p_bandwidth"] == 2
    assert tiers["gpu.burn"] == 2 and tiers["dcgm.diag"] == 3
    assert tiers["pcie.link"] == 1


def test_run_at_level_1_leaves_active_checks_out() -> None:
    result = cli("run", "--profile", "dgx-h100", "--format", "json")
    ran = {r["id"] for r in json.loads(result.stdout)["results"]}
    assert "pcie.link" in ran and "gpu.gemm" not in ran and "gpu.burn" not in ran


@pytest.mark.parametrize("bad", ["0", "4", "-1"])
def test_run_rejects_an_unknown_level(bad: str) -> None:
    assert_one_line_error(cli("run", "--level", bad), 2, "--level must be 1, 2 or 3")


def test_list_shows_each_checks_tier() -> None:
    rows = {r["id"]: r for r in json.loads(cli("list", "--format", "json").stdout)}
    assert rows["pcie.link"]["tier"] == 1 and rows["gpu.burn"]["tier"] == 2
    table = cli("list").stdout
    assert "Tier" in table
    line = next(x for x in table.splitlines() if "gpu.gemm" in x)
    assert "│ 2 " in line


def test_explain_says_the_tier() -> None:
    out = cli("explain", "gpu.gemm").stdout
    assert "tier: 2 (runs with `preflight run --level 2` or deeper)" in out
