"""Tests for preflight.registry: the @check decorator, parameter coercion, selection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from preflight.errors import ConfigError, UsageError
from preflight.model import Verdict
from preflight.registry import (
    ID_RE,
    CheckSpec,
    NoParams,
    Registry,
    check,
    coerce,
    discover,
)
from preflight.suggest import did_you_mean

# ----------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class LinkParams:
    gpu_width: int = 16
    gpu_speed_gts: float = 32.0
    relaxed: bool = False
    label: str = "x"
    models: tuple[str, ...] = ()
    limit: int | None = None


def _ok(inv: Any, params: Any) -> Verdict:
    return Verdict.skip("test")


def spec(check_id: str, tags: tuple[str, ...] = (), params: type[Any] = NoParams) -> CheckSpec[Any]:
    return check(check_id, title=check_id.upper(), tags=tags, params=params)(_ok)


@pytest.fixture
def registry() -> Registry:
    return Registry(
        [
            spec("pcie.link", ("gpu", "nic"), LinkParams),
            spec("pcie.aer", ("gpu",)),
            spec("pcie.acs"),
            spec("host.memlock", ("limits",)),
            spec("cpu.governor"),
        ]
    )


# ----------------------------------------------------------------------------- @check


@pytest.mark.parametrize(
    "bad_id", ["pcie", "PCIe.link", "pcie.link.speed", "1pcie.link", "pcie.", ".link", "pcie-x.y"]
)
def test_check_rejects_bad_ids(bad_id: str) -> None:
    with pytest.raises(ValueError, match=r"area\.property"):
        check(bad_id, title="t")


def test_check_rejects_unknown_capability() -> None:
    with pytest.raises(ValueError, match="unknown capability 'fpga'"):
        check("a.b", title="t", needs=("gpu", "fpga"))


def test_check_rejects_non_dataclass_params() -> None:
    class NotADataclass:
        pass

    with pytest.raises(TypeError, match="dataclass"):
        check("a.b", title="t", params=NotADataclass)


def test_check_builds_spec() -> None:
    def func(inv: Any, params: Any) -> Verdict:
        """Docs of the check.

        Second paragraph.
        """
        return Verdict.skip("x")

    s = check("pcie.link", title="Link", tags=["gpu"], needs=["root", "gpu"], params=LinkParams)(
        func
    )
    assert isinstance(s, CheckSpec)
    assert (s.id, s.title, s.tags, s.needs, s.params) == (
        "pcie.link",
        "Link",
        ("gpu",),
        ("root", "gpu"),
        LinkParams,
    )
    assert s.func is func
    assert s.area == "pcie"
    assert s.doc == "Docs of the check.\n\nSecond paragraph."
    assert s.defaults() == {
        "gpu_width": 16,
        "gpu_speed_gts": 32.0,
        "relaxed": False,
        "label": "x",
        "models": (),
        "limit": None,
    }


# ----------------------------------------------------------------------------- make_params


def test_make_params_defaults_and_overrides() -> None:
    s = spec("pcie.link", params=LinkParams)
    assert s.make_params({}, "t") == LinkParams()
    p = s.make_params(
        {"gpu_width": "8", "relaxed": "yes", "models": "10de:2330, 10de:2335", "limit": "none"},
        "t",
    )
    assert p == LinkParams(gpu_width=8, relaxed=True, models=("10de:2330", "10de:2335"))


def test_make_params_unknown_key_did_you_mean() -> None:
    s = spec("pcie.link", params=LinkParams)
    with pytest.raises(ConfigError, match="did you mean 'gpu_width'") as exc:
        s.make_params({"gpu_widht": 8}, "baseline x")
    assert "baseline x" in str(exc.value)
    assert "pcie.link" in str(exc.value)


def test_make_params_no_params_check() -> None:
    s = spec("pcie.acs")
    with pytest.raises(ConfigError, match="takes none"):
        s.make_params({"anything": 1}, "t")


def test_make_params_wrong_type_names_param() -> None:
    s = spec("pcie.link", params=LinkParams)
    with pytest.raises(ConfigError, match=r"pcie\.link\.gpu_width"):
        s.make_params({"gpu_width": "wide"}, "t")


# ----------------------------------------------------------------------------- coerce


@pytest.mark.parametrize(
    ("value", "expected"), [(5, 5), ("5", 5), ("0x10", 16), (" 7 ", 7), ("-3", -3), (0, 0)]
)
def test_coerce_int(value: Any, expected: int) -> None:
    assert coerce(value, int, "w") == expected


@pytest.mark.parametrize("value", [True, False, 1.5, "1.5", "abc", "", None, [1]])
def test_coerce_int_rejects(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^w: expected an integer"):
        coerce(value, int, "w")


@pytest.mark.parametrize(("value", "expected"), [(1, 1.0), (2.5, 2.5), ("2.5", 2.5), ("8", 8.0)])
def test_coerce_float(value: Any, expected: float) -> None:
    out = coerce(value, float, "w")
    assert out == expected
    assert isinstance(out, float)


@pytest.mark.parametrize("value", [True, "fast", None, [1.0]])
def test_coerce_float_rejects(value: Any) -> None:
    with pytest.raises(ConfigError, match="expected a number"):
        coerce(value, float, "w")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("Yes", True),
        ("1", True),
        ("on", True),
        ("false", False),
        ("NO", False),
        ("0", False),
        ("off", False),
    ],
)
def test_coerce_bool(value: Any, expected: bool) -> None:
    assert coerce(value, bool, "w") is expected


@pytest.mark.parametrize("value", ["maybe", "", None, 2.0, "2"])
def test_coerce_bool_rejects(value: Any) -> None:
    with pytest.raises(ConfigError, match="expected true or false"):
        coerce(value, bool, "w")


@pytest.mark.parametrize(("value", "expected"), [("abc", "abc"), (5, "5"), (1.5, "1.5")])
def test_coerce_str(value: Any, expected: str) -> None:
    assert coerce(value, str, "w") == expected


@pytest.mark.parametrize("value", [True, None, ["a"], {"a": 1}])
def test_coerce_str_rejects(value: Any) -> None:
    with pytest.raises(ConfigError, match="expected a string"):
        coerce(value, str, "w")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a,b, c", ("a", "b", "c")),
        ("a,,b,", ("a", "b")),
        ("", ()),
        ("single", ("single",)),
        (["x", "y"], ("x", "y")),
        (("x",), ("x",)),
        ([], ()),
    ],
)
def test_coerce_tuple_of_str(value: Any, expected: tuple[str, ...]) -> None:
    assert coerce(value, tuple[str, ...], "w") == expected


def test_coerce_tuple_of_int() -> None:
    assert coerce("1, 0x2", tuple[int, ...], "w") == (1, 2)
    with pytest.raises(ConfigError, match="expected an integer"):
        coerce(["1", "x"], tuple[int, ...], "w")


@pytest.mark.parametrize("value", [5, True, {"a": "b"}])
def test_coerce_tuple_rejects_non_list(value: Any) -> None:
    with pytest.raises(ConfigError, match="expected a list"):
        coerce(value, tuple[str, ...], "w")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("none", None), ("None", None), ("null", None), ("12", 12), (3, 3)],
)
def test_coerce_optional_int(value: Any, expected: int | None) -> None:
    assert coerce(value, int | None, "w") == expected


def test_coerce_optional_int_rejects() -> None:
    with pytest.raises(ConfigError, match="expected an integer"):
        coerce("many", int | None, "w")


def test_coerce_none_without_optional_rejected() -> None:
    with pytest.raises(ConfigError):
        coerce("none", int, "w")


def test_coerce_unsupported_type() -> None:
    with pytest.raises(ConfigError, match="unsupported parameter type"):
        coerce({"a": 1}, dict, "w")


# ----------------------------------------------------------------------------- did_you_mean


def test_did_you_mean() -> None:
    assert did_you_mean("pcie.lnk", ["pcie.link", "cpu.smt"]) == " (did you mean 'pcie.link'?)"
    assert did_you_mean("zzzz", ["pcie.link"]) == ""


# ----------------------------------------------------------------------------- Registry


def ids(specs: list[CheckSpec[Any]]) -> list[str]:
    return [s.id for s in specs]


def test_registry_iterates_sorted(registry: Registry) -> None:
    assert len(registry) == 5
    assert ids(list(registry)) == [
        "cpu.governor",
        "host.memlock",
        "pcie.acs",
        "pcie.aer",
        "pcie.link",
    ]


def test_registry_duplicate_ids() -> None:
    with pytest.raises(ValueError, match=r"pcie\.aer is declared twice"):
        Registry([spec("pcie.aer"), spec("pcie.link"), spec("pcie.aer")])


def test_registry_get(registry: Registry) -> None:
    assert registry.get("pcie.aer").id == "pcie.aer"
    with pytest.raises(UsageError, match=r"did you mean 'pcie\.aer'"):
        registry.get("pcie.aerr")


def test_select_all_when_no_patterns(registry: Registry) -> None:
    assert ids(registry.select()) == ids(list(registry))


def test_select_by_ids(registry: Registry) -> None:
    assert ids(registry.select(["pcie.link", "cpu.governor"])) == ["cpu.governor", "pcie.link"]


def test_select_by_glob(registry: Registry) -> None:
    assert ids(registry.select(["pcie.*"])) == ["pcie.acs", "pcie.aer", "pcie.link"]
    assert ids(registry.select(["*.a*"])) == ["pcie.acs", "pcie.aer"]


def test_select_by_tag(registry: Registry) -> None:
    assert ids(registry.select(["tag:gpu"])) == ["pcie.aer", "pcie.link"]
    assert ids(registry.select(["tag:limits", "tag:nic"])) == ["host.memlock", "pcie.link"]


def test_select_with_skip(registry: Registry) -> None:
    assert ids(registry.select(["pcie.*"], ["pcie.aer"])) == ["pcie.acs", "pcie.link"]
    assert ids(registry.select(skip=["pcie.*"])) == ["cpu.governor", "host.memlock"]
    assert ids(registry.select(["pcie.*"], ["tag:gpu"])) == ["pcie.acs"]


def test_select_only_and_skip_that_leave_nothing_are_a_usage_error(registry: Registry) -> None:
    # A run of zero checks would read as a pass: the operator asked for something else.
    with pytest.raises(UsageError, match="--skip tag:gpu leaves no check to run of --only"):
        registry.select(["pcie.link"], ["tag:gpu"])


def test_select_takes_comma_lists(registry: Registry) -> None:
    assert ids(registry.select(["pcie.link,cpu.governor,"])) == ["cpu.governor", "pcie.link"]
    assert ids(registry.select(["pcie.*"], ["pcie.acs, pcie.aer"])) == ["pcie.link"]


@pytest.mark.parametrize(
    ("only", "skip", "suggestion"),
    [
        (["pcie.lnk"], [], "did you mean 'pcie.link'"),
        (["pcie.link"], ["cpu.governer"], "did you mean 'cpu.governor'"),
        (["gpu.*"], [], None),
        (["tag:nothing"], [], None),
    ],
)
def test_select_pattern_matching_nothing(
    registry: Registry, only: list[str], skip: list[str], suggestion: str | None
) -> None:
    with pytest.raises(UsageError, match="no check matches") as exc:
        registry.select(only, skip)
    if suggestion:
        assert suggestion in str(exc.value)
    assert exc.value.exit_code == 2


# ----------------------------------------------------------------------------- discover


def test_discover_builtin_checks() -> None:
    reg = discover(include_plugins=False)
    assert len(reg) >= 15
    all_ids = [s.id for s in reg]
    assert len(all_ids) == len(set(all_ids))
    assert all(ID_RE.match(i) for i in all_ids)


@pytest.mark.parametrize(
    ("value", "hint", "message"),
    [
        ("nan", float, "finite"),
        ("inf", float, "finite"),
        (float("-inf"), float, "finite"),
        (10**400, float, "expected a number"),
        ("x" * 10_000, float, "expected a number"),
        ("1e400", int, "expected an integer"),
        (2**64, int, "out of range"),
        ("0x" + "f" * 40, int, "expected an integer"),
    ],
)
def test_parameter_values_that_would_judge_nothing_are_refused(
    value: object, hint: type, message: str
) -> None:
    # nan compares false with every threshold, and an unbounded number is no threshold: a
    # `--set` or baseline value like that would make a check pass silently.
    with pytest.raises(ConfigError, match=message) as info:
        coerce(value, hint, "x.y")
    assert len(str(info.value)) < 120  # a hostile value is not echoed whole
