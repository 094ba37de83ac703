"""Check declarations: the @check decorator, parameter handling and discovery of check modules."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import importlib
import inspect
import math
import pkgutil
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from preflight import result_figures
from preflight.capabilities import NAMES
from preflight.errors import ConfigError, UsageError
from preflight.model import Action, Verdict
from preflight.suggest import did_you_mean

if TYPE_CHECKING:
    from preflight.inventory import Inventory

ID_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
CAPABILITIES = NAMES
"""What a check may need or provide (preflight.capabilities): root (full PCI config space),
GPUs or RDMA NICs present on the node, NVML answering (collected in a child process; implies
GPUs)."""

TIERS = (1, 2, 3)
"""Check depths: 1 static state, 2 short active tests, 3 deep tests (see CheckSpec.tier)."""

P = TypeVar("P")


@dataclass(frozen=True)
class NoParams:
    """For checks without thresholds."""


def param(default: P, doc: str, *, unset: bool = False) -> P:
    """A params dataclass field with its user documentation, which `explain` and `list` show.

    `unset=True` says the default means "not set" (no expectation: the check only records, or
    falls back to what the node itself reports), so `explain` prints it commented out, the one
    spelling of unset a baseline has; a default of None always means that.
    """
    meta = {"doc": doc, "unset": unset}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class CheckSpec(Generic[P]):
    """A declared check: metadata plus the function that judges."""

    id: str
    title: str
    tags: tuple[str, ...]
    needs: tuple[str, ...]
    params: type[P]
    func: Callable[[Inventory, P], Verdict]
    final: bool = False
    """Runs after every other check, so it can compare a sample the runner took at the start of
    the run (Inventory.open_window) with the node's state at the end (error counters)."""
    provides: tuple[str, ...] = ()
    """Capabilities this check judges: it runs when one is missing (to say so), and the checks
    that need one skip pointing at it."""
    tier: int = 1
    """The depth that runs it: 1 reads state (seconds), 2 adds active tests that fit a job
    prolog (about 2 minutes for 8 GPUs), 3 adds deep tests (minutes). `run --level N` selects
    tiers up to N."""
    action: Action | None = None
    """Remediation class of its failing and warning findings, unless a finding names its own."""
    warn_action: Action | None = None
    """Class of its warning findings when it differs from `action` (a count to watch)."""
    actions: tuple[Action, ...] = ()
    """Every class its findings may carry, the default first (README and `list` show them)."""

    default_text: str | None = None
    """The default action text when the Fix section's first sentence is about one case only."""
    figures: str | None = None
    """How its results carry measured numbers (result_figures.EACH or GPU_MEDIAN), if they do."""

    @property
    def fix(self) -> str:
        """The default action text: given, or the first sentence of the Fix section."""
        return self.default_text or fix_sentence(self.doc)

    @property
    def doc(self) -> str:
        """The user documentation (the function's docstring)."""
        return inspect.cleandoc(self.func.__doc__ or "")

    @property
    def area(self) -> str:
        """The part of the id before the dot (pcie, host, cpu…)."""
        return self.id.split(".", 1)[0]

    def defaults(self) -> dict[str, Any]:
        """Parameter names and default values."""
        return {f.name: _default(f) for f in dataclasses.fields(self.params)}  # type: ignore[arg-type]

    def make_params(self, overrides: Mapping[str, Any], origin: str) -> P:
        """Params with overrides applied; unknown keys or wrong types raise ConfigError."""
        fields = {f.name: f for f in dataclasses.fields(self.params)}  # type: ignore[arg-type]
        hints = _type_hints(self.params)
        values: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key not in fields:
                raise ConfigError(
                    f"{origin}: check {self.id} has no parameter {key!r}"
                    + did_you_mean(key, fields)
                    + (f" (parameters: {', '.join(fields)})" if fields else " (it takes none)")
                )
            values[key] = coerce(raw, hints[key], f"{origin}: {self.id}.{key}")
        return self.params(**values)


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _type_hints(params: type[Any]) -> dict[str, Any]:
    """A params class's field types, evaluated once (every baseline loaded validates with them)."""
    hints = _HINTS.get(params)
    if hints is None:
        hints = _HINTS[params] = typing.get_type_hints(params)
    return hints


FIX_TEXT_MAX = 200


def fix_sentence(doc: str) -> str:
    """First sentence of a `## Fix` section, on one line (empty when there is none)."""
    _, sep, rest = doc.partition("## Fix")
    if not sep:
        return ""
    body = " ".join(rest.split("\n## ", 1)[0].split())
    match = re.match(r"(.+?\.)(?:\s|$)", body)
    text = (match.group(1) if match else body).rstrip(".")
    return text if len(text) <= FIX_TEXT_MAX else text[: FIX_TEXT_MAX - 1] + "…"


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _short(value: Any) -> str:
    """A value for an error message, bounded (a hostile --set may be megabytes long)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a TOML or --set value to a parameter's declared type, or raise ConfigError."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: cannot use {value!r}")
    if origin in (tuple, list):
        inner = args[0] if args else str
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(coerce(v, inner, where) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and len(value) <= 32:
            with contextlib.suppress(ValueError):
                number = int(value, 0)
        if number is None:
            raise ConfigError(f"{where}: expected an integer, got {_short(value)}")
        # A threshold or a count: what fits a 64-bit counter (sysfs counters are u64).
        if not -(2**63) <= number < 2**64:
            raise ConfigError(f"{where}: {_short(value)} is out of range for an integer setting")
        return number
    if hint is float:
        real: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            with contextlib.suppress(OverflowError):
                real = float(value)
        elif isinstance(value, str) and len(value) <= 64:
            with contextlib.suppress(ValueError):
                real = float(value)
        if real is None:
            raise ConfigError(f"{where}: expected a number, got {_short(value)}")
        if not math.isfinite(real):  # nan compares false with every threshold: a silent pass
            raise ConfigError(f"{where}: expected a finite number, got {_short(value)}")
        return real
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported parameter type {hint!r}")


def check(
    id: str,
    *,
    title: str,
    tags: Sequence[str] = (),
    needs: Sequence[str] = (),
    provides: Sequence[str] = (),
    params: type[Any] = NoParams,
    final: bool = False,
    tier: int = 1,
    action: Action | None = None,
    warn_action: Action | None = None,
    actions: Sequence[Action] = (),
    action_text: str | None = None,
    figures: str | None = None,
) -> Callable[[Callable[[Inventory, Any], Verdict]], CheckSpec[Any]]:
    """Declare a check. The decorated function's docstring is its user documentation.

    `action` is the remediation class of its failing and warning findings (a finding may name
    its own: an Xid's class comes from NVIDIA's catalogue); `warn_action` that of its warning
    findings when it differs (correctable errors to watch); `actions` lists the other classes
    its findings may carry. `figures` says how its results carry measured numbers (see
    result_figures: EACH or GPU_MEDIAN), which the report lists as its `figures`.
    """
    if not ID_RE.match(id):
        raise ValueError(f"check id {id!r} must look like 'area.property'")
    for need in (*needs, *provides):
        if need not in CAPABILITIES:
            raise ValueError(f"check {id}: unknown capability {need!r}")
    if not dataclasses.is_dataclass(params):
        raise TypeError(f"check {id}: params must be a dataclass")
    if figures is not None and figures not in result_figures.KINDS:
        raise ValueError(f"check {id}: figures must be one of {result_figures.KINDS}")
    if tier not in TIERS:
        raise ValueError(f"check {id}: tier must be one of {TIERS}, got {tier!r}")
    given = [a for a in (action, warn_action) if a is not None]
    classes = tuple(dict.fromkeys([*given, *actions]))
    for cls in classes:
        if not isinstance(cls, Action):
            raise TypeError(f"check {id}: action {cls!r} is not an Action")

    def wrap(func: Callable[[Inventory, Any], Verdict]) -> CheckSpec[Any]:
        return CheckSpec(
            id=id,
            title=title,
            tags=tuple(tags),
            needs=tuple(needs),
            provides=tuple(provides),
            params=params,
            func=func,
            final=final,
            tier=tier,
            action=action,
            warn_action=warn_action,
            actions=classes,
            default_text=action_text,
            figures=figures,
        )

    return wrap


class Registry:
    """All known checks, by id."""

    def __init__(self, specs: Iterable[CheckSpec[Any]]) -> None:
        self.specs: dict[str, CheckSpec[Any]] = {}
        for spec in specs:
            if spec.id in self.specs:
                raise ValueError(f"check id {spec.id} is declared twice")
            self.specs[spec.id] = spec

    def __iter__(self) -> typing.Iterator[CheckSpec[Any]]:
        return iter(sorted(self.specs.values(), key=lambda s: s.id))

    def __len__(self) -> int:
        return len(self.specs)

    def get(self, check_id: str) -> CheckSpec[Any]:
        """The spec for an id, or UsageError with a suggestion."""
        try:
            return self.specs[check_id]
        except KeyError:
            raise UsageError(
                f"unknown check id {check_id!r}" + did_you_mean(check_id, self.specs)
            ) from None

    def select(
        self, only: Sequence[str] = (), skip: Sequence[str] = (), level: int | None = None
    ) -> list[CheckSpec[Any]]:
        """Checks matching any --only pattern (all when none) and no --skip pattern.

        Patterns are ids, globs (`pcie.*`) or tags (`tag:gpu`), also as comma lists
        (`pcie.acs,pcie.link`); a pattern that matches nothing, or patterns that leave no check
        to run, are a usage error, so a typo never silently runs zero checks. `level` keeps the
        checks of tier ≤ level, and the deeper ones --only names by id (a glob or tag keeps the
        level).
        """
        only, skip = _split(only), _split(skip)
        for pattern in [*only, *skip]:
            if not self._matching(pattern):
                raise UsageError(
                    f"no check matches {pattern!r}" + did_you_mean(pattern, self.specs)
                )
        chosen = [s for s in self if not only or any(self._match(s, p) for p in only)]
        if level is not None:  # a deeper check runs only when --only names its id
            chosen = [s for s in chosen if s.tier <= level or s.id in only]
        chosen = [s for s in chosen if not any(self._match(s, p) for p in skip)]
        if not chosen and skip and self.specs:
            raise UsageError(
                f"--skip {','.join(skip)} leaves no check to run"
                + (f" of --only {','.join(only)}" if only else "")
            )
        return chosen

    def _matching(self, pattern: str) -> list[CheckSpec[Any]]:
        return [s for s in self if self._match(s, pattern)]

    @staticmethod
    def _match(spec: CheckSpec[Any], pattern: str) -> bool:
        if pattern.startswith("tag:"):
            return pattern[4:] in spec.tags
        return fnmatch.fnmatchcase(spec.id, pattern)


def _split(patterns: Sequence[str]) -> list[str]:
    """`--only a,b --only c` as [a, b, c]; empty items (a trailing comma) are dropped."""
    return [p.strip() for item in patterns for p in item.split(",") if p.strip()]


def specs_in_module(module: types.ModuleType) -> list[CheckSpec[Any]]:
    """Every CheckSpec defined at module level."""
    return [v for v in vars(module).values() if isinstance(v, CheckSpec)]


def discover(include_plugins: bool = True) -> Registry:
    """Built-in checks (preflight.checks.*) and those of the preflight.checks entry points."""
    import preflight.checks as builtin

    specs: list[CheckSpec[Any]] = []
    # walk_packages recurses: a check in a subpackage (checks/gpu/) is found like any other.
    for info in pkgutil.walk_packages(builtin.__path__, prefix="preflight.checks."):
        specs.extend(specs_in_module(importlib.import_module(info.name)))
    if include_plugins:
        for ep in metadata.entry_points(group="preflight.checks"):
            try:
                loaded = ep.load()
            except Exception as exc:
                raise ConfigError(f"check plugin {ep.name!r} failed to load: {exc}") from exc
            if isinstance(loaded, types.ModuleType):
                specs.extend(specs_in_module(loaded))
            elif isinstance(loaded, CheckSpec):
                specs.append(loaded)
    return Registry(specs)
