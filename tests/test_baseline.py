"""Tests for preflight.baseline: TOML parsing and validation, extends, --set, detection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from preflight import baseline
from preflight.baseline import Baseline, builtin_names, detect, load, parse_set_options
from preflight.errors import ConfigError
from preflight.model import Verdict
from preflight.registry import Registry, check, discover

# ----------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class LinkParams:
    gpu_width: int = 16
    gpu_speed_gts: float = 32.0
    relaxed: bool = False


@dataclass(frozen=True)
class CountParams:
    expected: int = 0
    models: tuple[str, ...] = ()


def _func(inv: Any, params: Any) -> Verdict:
    return Verdict.skip("test")


@pytest.fixture
def registry() -> Registry:
    return Registry(
        [
            check("pcie.link", title="Link", params=LinkParams)(_func),
            check("node.gpu_count", title="GPUs", params=CountParams)(_func),
            check("cpu.smt", title="SMT")(_func),
        ]
    )


@pytest.fixture(scope="module")
def real_registry() -> Registry:
    return discover(include_plugins=False)


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# ----------------------------------------------------------------------------- load / parse


def test_load_file(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path / "site.toml",
        """
[baseline]
name = "site"
description = "our nodes"

[baseline.match]
product_names = ["ACME 9000"]
gpu_ids = ["10DE:2330"]
gpu_count = 4

[pcie.link]
gpu_width = 8
relaxed = true

[node.gpu_count]
expected = 4
models = ["10de:2330"]
""",
    )
    b = load(path, registry)
    assert b.name == "site"
    assert b.description == "our nodes"
    assert b.source == path
    assert b.params == {
        "pcie.link": {"gpu_width": 8, "relaxed": True},
        "node.gpu_count": {"expected": 4, "models": ["10de:2330"]},
    }
    assert b.product_names == ("ACME 9000",)
    assert b.gpu_ids == ("10de:2330",)  # lower-cased
    assert b.gpu_count == 4


def test_name_defaults_to_file_stem(tmp_path: Path, registry: Registry) -> None:
    b = load(write(tmp_path / "rack-12.toml", "[cpu.smt]\n"), registry)
    assert b.name == "rack-12"
    assert b.params == {"cpu.smt": {}}


def test_params_for_precedence(tmp_path: Path, registry: Registry) -> None:
    b = load(write(tmp_path / "b.toml", "[pcie.link]\ngpu_width = 8\nrelaxed = true\n"), registry)
    spec = registry.get("pcie.link")
    assert b.params_for(spec) == LinkParams(gpu_width=8, relaxed=True)
    assert b.params_for(spec, {"gpu_width": "4"}) == LinkParams(gpu_width=4, relaxed=True)
    assert b.params_for(registry.get("node.gpu_count")) == CountParams()


def test_unknown_check_did_you_mean(tmp_path: Path, registry: Registry) -> None:
    path = write(tmp_path / "b.toml", "[pcie.lnk]\ngpu_width = 8\n")
    with pytest.raises(ConfigError, match=r"unknown check \[pcie\.lnk\]") as exc:
        load(path, registry)
    assert "did you mean 'pcie.link'" in str(exc.value)
    assert exc.value.exit_code == 3


def test_unknown_parameter(tmp_path: Path, registry: Registry) -> None:
    path = write(tmp_path / "b.toml", "[pcie.link]\ngpu_widht = 8\n")
    with pytest.raises(ConfigError, match="no parameter 'gpu_widht'") as exc:
        load(path, registry)
    assert "did you mean 'gpu_width'" in str(exc.value)


def test_parameter_of_check_without_params(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ConfigError, match="takes none"):
        load(write(tmp_path / "b.toml", "[cpu.smt]\nexpected = true\n"), registry)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[pcie.link]\ngpu_width = "wide"\n', "expected an integer"),
        ("[pcie.link]\ngpu_width = 8.5\n", "expected an integer"),
        ("[pcie.link]\nrelaxed = 3\n", "expected true or false"),
        ('[pcie.link]\ngpu_speed_gts = "fast"\n', "expected a number"),
        ("[node.gpu_count]\nmodels = 5\n", "expected a list"),
    ],
)
def test_wrong_type(tmp_path: Path, registry: Registry, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path / "b.toml", body), registry)


def test_invalid_toml_one_line(tmp_path: Path, registry: Registry) -> None:
    path = write(tmp_path / "b.toml", "[pcie.link\ngpu_width = 8\n")
    with pytest.raises(ConfigError, match="invalid TOML") as exc:
        load(path, registry)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[baseline]\nnmae = "x"\n', "unknown key baseline.nmae (did you mean 'name'?)"),
        ("[baseline.match]\ngpu_cnt = 8\n", "unknown key baseline.match.gpu_cnt"),
        ("baseline = 5\n", "[baseline] must be a table"),
        ('[baseline]\nmatch = "x"\n', "baseline.match must be a table"),
        ("pcie = 5\n", "'pcie' must be a table of checks"),
        ("[pcie]\nlink = 5\n", "[pcie.link] must be a table"),
    ],
)
def test_structure_errors(tmp_path: Path, registry: Registry, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(write(tmp_path / "b.toml", body), registry)
    assert message in str(exc.value)


def test_unknown_name(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="unknown baseline 'dgx-h10'") as exc:
        load("dgx-h10", registry)
    assert "did you mean 'dgx-h100'" in str(exc.value)


def test_missing_file(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ConfigError, match="nope"):
        load(str(tmp_path / "nope.toml"), registry)


# ----------------------------------------------------------------------------- extends


def test_extends_merges_params(tmp_path: Path, registry: Registry) -> None:
    base = write(
        tmp_path / "base.toml",
        """
[baseline]
description = "base"

[pcie.link]
gpu_width = 8
relaxed = true

[node.gpu_count]
expected = 8
""",
    )
    child = write(
        tmp_path / "child.toml",
        f"""
[baseline]
name = "child"
extends = "{base}"

[pcie.link]
gpu_width = 16

[cpu.smt]
""",
    )
    b = load(child, registry)
    assert b.name == "child"
    assert b.params == {
        "pcie.link": {"gpu_width": 16, "relaxed": True},
        "node.gpu_count": {"expected": 8},
        "cpu.smt": {},
    }
    # the base file is not changed by its child
    assert load(base, registry).params["pcie.link"] == {"gpu_width": 8, "relaxed": True}


def test_extends_validates_merged_params(tmp_path: Path, registry: Registry) -> None:
    base = write(tmp_path / "base.toml", "[pcie.link]\ngpu_width = 8\n")
    child = write(tmp_path / "c.toml", f'[baseline]\nextends = "{base}"\n[pcie.link]\nx = 1\n')
    with pytest.raises(ConfigError, match="no parameter 'x'"):
        load(child, registry)


def test_extends_cycle(tmp_path: Path, registry: Registry) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    write(a, f'[baseline]\nextends = "{b}"\n')
    write(b, f'[baseline]\nextends = "{a}"\n')
    with pytest.raises(ConfigError, match="extends cycle") as exc:
        load(str(a), registry)
    assert "a.toml" in str(exc.value)
    assert "b.toml" in str(exc.value)


def test_extends_self_cycle(tmp_path: Path, registry: Registry) -> None:
    a = tmp_path / "a.toml"
    write(a, f'[baseline]\nextends = "{a}"\n')
    with pytest.raises(ConfigError, match="extends cycle"):
        load(str(a), registry)


def test_extends_relative_to_file(tmp_path: Path, registry: Registry) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    write(folder / "base.toml", "[pcie.link]\ngpu_width = 8\n")
    child = write(folder / "child.toml", '[baseline]\nextends = "base.toml"\n')
    assert load(child, registry).params == {"pcie.link": {"gpu_width": 8}}


def test_extends_builtin_by_name(tmp_path: Path, real_registry: Registry) -> None:
    child = write(
        tmp_path / "c.toml", '[baseline]\nextends = "dgx-h100"\n[numa.nodes]\nexpected = 4\n'
    )
    b = load(child, real_registry)
    assert b.params["numa.nodes"] == {"expected": 4}
    assert b.params["node.gpu_count"]["expected"] == 8


# ----------------------------------------------------------------------------- --set


def test_set_options_good(registry: Registry) -> None:
    out = parse_set_options(
        ["pcie.link.gpu_width=8", "pcie.link.relaxed=yes", "node.gpu_count.models=a,b"],
        registry,
    )
    assert out == {
        "pcie.link": {"gpu_width": "8", "relaxed": "yes"},
        "node.gpu_count": {"models": "a,b"},
    }
    assert parse_set_options([], registry) == {}


def test_set_options_value_may_contain_equals(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="expected an integer"):
        parse_set_options(["pcie.link.gpu_width=8=9"], registry)
    # a later --set for the same key wins
    out = parse_set_options(["pcie.link.gpu_width=8", "pcie.link.gpu_width=4"], registry)
    assert out == {"pcie.link": {"gpu_width": "4"}}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("pcie.link.gpu_width", "expected CHECK_ID.PARAM=VALUE"),
        ("gpu_width=8", "expected CHECK_ID.PARAM=VALUE"),
        ("pcie.link=8", "expected CHECK_ID.PARAM=VALUE"),
        ("pcie.lnk.gpu_width=8", "unknown check 'pcie.lnk' (did you mean 'pcie.link'?)"),
        ("pcie.link.gpu_widht=8", "no parameter 'gpu_widht' (did you mean 'gpu_width'?)"),
        ("pcie.link.gpu_width=wide", "expected an integer"),
        ("cpu.smt.expected=1", "takes none"),
    ],
)
def test_set_options_bad(registry: Registry, item: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_set_options([item], registry)
    assert message in str(exc.value)
    assert exc.value.exit_code == 3


# ----------------------------------------------------------------------------- match_score


def test_match_score() -> None:
    b = Baseline(name="x", product_names=("DGXH100",), gpu_ids=("10de:2330",), gpu_count=8)
    assert b.match_score("NVIDIA DGXH100", ["10de:2330"] * 8) == 3
    assert b.match_score("dgxh100", []) == 2  # case-insensitive substring
    assert b.match_score(None, ["10de:2330"]) == 1
    assert b.match_score("Other", ["10de:2330", "10de:2335"]) == 0  # all GPUs must fit
    assert Baseline(name="g").match_score("DGXH100", ["10de:2330"]) == 0


# ----------------------------------------------------------------------------- built-ins


def test_builtin_names() -> None:
    assert {"generic", "dgx-h100", "hgx-h200"} <= set(builtin_names())


@pytest.mark.parametrize("name", ["generic", "dgx-h100", "hgx-h200"])
def test_builtin_baselines_load(name: str, real_registry: Registry) -> None:
    b = load(name, real_registry)
    assert b.name == name
    assert b.source == f"built-in:{name}"
    assert b.description
    for check_id in b.params:
        b.params_for(real_registry.get(check_id))  # every value fits its check


def test_hgx_h200_extends_dgx_h100(real_registry: Registry) -> None:
    b = load("hgx-h200", real_registry)
    assert b.params["node.gpu_count"] == {"expected": 8, "models": ["10de:2335"]}
    assert b.params["pcie.bar1"]["min_bar1_gib"] == 256
    assert b.params["node.nic_count"] == load("dgx-h100", real_registry).params["node.nic_count"]
    assert b.gpu_ids == ("10de:2335",)
    assert b.gpu_count == 8


@pytest.mark.parametrize(
    ("product", "gpus", "expected"),
    [
        ("DGXH100", ["10de:2330"] * 8, "dgx-h100"),
        ("DGX H100", [], "dgx-h100"),
        (None, ["10de:2330"] * 8, "dgx-h100"),
        (None, ["10de:2335"] * 8, "hgx-h200"),
        ("PowerEdge XE9680", ["10de:2335"] * 8, "hgx-h200"),
        ("Standard PC (Q35 + ICH9, 2009)", [], "generic"),
        (None, [], "generic"),
        (None, ["10de:2330"] * 4, "generic"),  # wrong count: the GPU model alone is not enough
        ("Standard PC", ["10de:1db6"], "generic"),
    ],
)
def test_detect(
    product: str | None, gpus: list[str], expected: str, real_registry: Registry
) -> None:
    assert detect(product, gpus, real_registry).name == expected


def test_detect_uses_builtin_folder(monkeypatch: pytest.MonkeyPatch, registry: Registry) -> None:
    # With no built-in matching, detect falls back to generic (which needs no checks).
    monkeypatch.setattr(baseline, "builtin_names", lambda: ["generic"])
    assert detect("DGXH100", ["10de:2330"] * 8, registry).name == "generic"
