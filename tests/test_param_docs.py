"""Every parameter of every registered check is documented, and what `explain` prints of them is
baseline TOML: it parses, and read back into the check's params it gives the defaults."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import pytest

from preflight import paramtoml
from preflight.registry import CheckSpec, discover, param
from tests.harness import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the backport baseline.py reads TOML with
    import tomli as tomllib

SPECS = [s for s in discover() if dataclasses.fields(s.params)]
HEADER = "Parameters (baseline TOML table ["


def test_the_registry_has_parameters_to_document() -> None:
    assert len(SPECS) > 40 and sum(len(dataclasses.fields(s.params)) for s in SPECS) > 100


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_every_parameter_has_a_doc(spec: CheckSpec[Any]) -> None:
    undocumented = [f.name for f in dataclasses.fields(spec.params) if not paramtoml.doc(f)]
    assert not undocumented, f"{spec.id}: give these fields param(default, doc): {undocumented}"


def explained_toml(check_id: str) -> str:
    """The parameter block `preflight explain ID` prints."""
    result = cli("explain", check_id)
    assert result.exit_code == 0, result.output
    after = result.stdout.split(HEADER, 1)[1]
    return after[after.index(f"\n[{check_id}]\n") + 1 :]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_explain_prints_toml_that_round_trips(spec: CheckSpec[Any]) -> None:
    text = explained_toml(spec.id)
    area, name = spec.id.split(".")
    table = tomllib.loads(text)[area][name]  # `[pcie.acs]`; a TOMLDecodeError fails the test
    assert spec.make_params(table, "explain") == spec.params()
    fields = {f.name: f for f in dataclasses.fields(spec.params)}
    for name, f in fields.items():
        unset = paramtoml.is_unset(f, paramtoml.default_of(f))
        # Unset has one spelling: the line commented out, never a 0 here and "" there.
        assert (name not in table) is unset, name
        assert (f"# {name} = (unset)" in text.splitlines()) is unset, name
    for line in text.splitlines():
        if not line.startswith("#"):
            assert not {"True", "False", "None", "()"} & set(line.replace(",", " ").split())


def test_list_shows_parameters_in_toml() -> None:
    result = cli("list")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "allow_redirect = false" in text
    assert "gpu_width (unset)" in text and "'" not in text.split("ignore")[1][:8]


def test_list_json_carries_each_parameters_doc() -> None:
    import json

    rows = {r["id"]: r for r in json.loads(cli("list", "--format", "json").stdout)}
    assert rows["pcie.acs"]["param_docs"]["allow_redirect"].startswith("Accept ACS redirect")


VALUES = [
    (True, "true"),
    (False, "false"),
    (0, "0"),
    (1 << 30, "1073741824"),
    (0.9, "0.9"),
    (60.0, "60.0"),
    ("performance", '"performance"'),
    ('a "quoted" \\ ü\t', '"a \\"quoted\\" \\\\ ü\\t"'),
    ((), "[]"),
    (("symbol_error", "link_downed"), '["symbol_error", "link_downed"]'),
    ((79, 94), "[79, 94]"),
    ({"a": 1, "b c": "d"}, '{ "a" = 1, "b c" = "d" }'),
]


@pytest.mark.parametrize(("value", "toml"), VALUES, ids=[t for _, t in VALUES])
def test_values_are_written_in_toml(value: Any, toml: str) -> None:
    assert paramtoml.value(value) == toml
    back = tomllib.loads(f"v = {toml}")["v"]
    assert back == (list(value) if isinstance(value, tuple) else value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), object()])
def test_values_toml_cannot_spell_are_refused(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        paramtoml.value(bad)


def test_unset_is_none_or_a_declared_sentinel() -> None:
    @dataclasses.dataclass(frozen=True)
    class Example:
        floor: float = param(0.0, "a floor; unset: none", unset=True)
        count: int = param(0, "a real zero")
        pin: str | None = param(None, "a pin")

    by_name = {f.name: f for f in dataclasses.fields(Example)}
    assert paramtoml.is_unset(by_name["floor"], 0.0)
    assert not paramtoml.is_unset(by_name["floor"], 2.5)
    assert not paramtoml.is_unset(by_name["count"], 0)
    assert paramtoml.is_unset(by_name["pin"], None)
    assert paramtoml.snippet("x.y", Example) == (
        "[x.y]\n# a floor; unset: none\n# floor = (unset)\n# a real zero\ncount = 0\n"
        "# a pin\n# pin = (unset)\n"
    )


@pytest.mark.parametrize("width", [40, 60])
def test_narrow_snippets_still_round_trip(width: int) -> None:
    # Comments wrap and long arrays go one item per line; the TOML stays the same.
    for spec in SPECS:
        text = paramtoml.snippet(spec.id, spec.params, width)
        area, name = spec.id.split(".")
        table = tomllib.loads(text)[area][name]
        assert spec.make_params(table, "explain") == spec.params(), spec.id
        too_long = [line for line in text.splitlines() if len(line) > width]
        assert all(line.startswith('    "') or " = " in line for line in too_long), too_long
