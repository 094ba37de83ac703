"""Baselines: what a healthy node of one type looks like, as check parameters in TOML."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from preflight import safeio
from preflight.errors import ConfigError
from preflight.registry import CheckSpec, Registry
from preflight.remediation import Override, parse_override
from preflight.suggest import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

META_KEYS = {"name", "description", "extends", "match", "essential", "unchecked_fails"}
REMEDIATION = "remediation"
"""The top-level table of per-check remediation changes (no check area has this name)."""
MATCH_KEYS = {"product_names", "gpu_ids", "gpu_count"}


@dataclass
class Baseline:
    """Parameters per check id, plus how to recognise the node type."""

    name: str
    description: str = ""
    source: str = "built-in"
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    product_names: tuple[str, ...] = ()
    gpu_ids: tuple[str, ...] = ()
    gpu_count: int | None = None
    # Checks whose SKIP must not read as healthy (the footer names them; with unchecked_fails
    # or --strict the run fails): ACS and DevCtl are what a bad BIOS setting shows in.
    essential: tuple[str, ...] = ()
    unchecked_fails: bool = False
    # [remediation."ID"]: the site's class or severity for a check's failing/warning findings.
    remediation: dict[str, Override] = field(default_factory=dict)

    def params_for(self, spec: CheckSpec[Any], overrides: Mapping[str, Any] | None = None) -> Any:
        """The check's params: defaults < baseline < command-line overrides."""
        merged = dict(self.params.get(spec.id, {}))
        merged.update(overrides or {})
        return spec.make_params(merged, f"baseline {self.name}")

    def match_score(self, product_name: str | None, gpu_ids: Sequence[str]) -> int:
        """How well a node fits: 2 for the DMI product name, 1 for the GPU model. 0 = no fit."""
        score = 0
        if product_name and any(p.lower() in product_name.lower() for p in self.product_names):
            score += 2
        if gpu_ids and self.gpu_ids and all(g.lower() in self.gpu_ids for g in gpu_ids):
            score += 1
        return score


def builtin_names() -> list[str]:
    """Names of the baselines shipped with preflight."""
    folder = resources.files("preflight") / "baselines"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_toml(text: str, origin: str) -> dict[str, Any]:
    too_deep = ConfigError(f"baseline {origin}: nested deeper than {safeio.MAX_NESTING} levels")
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"baseline {origin}: invalid TOML: {exc}") from None
    except RecursionError:
        raise too_deep from None
    if safeio.nesting(data) > safeio.MAX_NESTING:
        raise too_deep
    return data


def load(name_or_path: str, registry: Registry, _seen: tuple[str, ...] = ()) -> Baseline:
    """A built-in baseline by name, or a TOML file by path; validated against the registry."""
    path = Path(name_or_path)
    if name_or_path in builtin_names():
        text = (resources.files("preflight") / "baselines" / f"{name_or_path}.toml").read_text()
        source = f"built-in:{name_or_path}"
    elif path.suffix == ".toml" or "/" in name_or_path or path.exists():
        try:
            text = safeio.read_regular(path, safeio.BASELINE_MAX_BYTES).decode("utf-8")
        except OSError as exc:
            raise ConfigError(f"baseline {name_or_path}: {exc.strerror or exc}") from None
        except safeio.InputRefused as exc:
            raise ConfigError(f"baseline {name_or_path}: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"baseline {name_or_path}: not UTF-8 text") from None
        source = str(path)
    else:
        raise ConfigError(
            f"unknown baseline {name_or_path!r}"
            + did_you_mean(name_or_path, builtin_names())
            + f" (built-in: {', '.join(builtin_names())}; or give a path to a .toml file)"
        )
    if source in _seen:
        raise ConfigError(f"baseline {name_or_path}: extends cycle {' -> '.join([*_seen, source])}")
    return parse(_read_toml(text, name_or_path), registry, source, (*_seen, source))


def parse(
    data: Mapping[str, Any], registry: Registry, source: str, _seen: tuple[str, ...] = ()
) -> Baseline:
    """Build a Baseline from parsed TOML, rejecting unknown checks and parameters."""
    meta = data.get("baseline", {})
    if not isinstance(meta, dict):
        raise ConfigError(f"baseline {source}: [baseline] must be a table")
    for key in meta:
        if key not in META_KEYS:
            raise ConfigError(
                f"baseline {source}: unknown key baseline.{key}" + did_you_mean(key, META_KEYS)
            )
    if "extends" in meta:
        parent = str(meta["extends"])
        here = None if source.startswith("built-in:") else Path(source).parent
        if here is not None and parent not in builtin_names() and not Path(parent).is_absolute():
            parent = str(here / parent)
        base = load(parent, registry, _seen)
        params = {k: dict(v) for k, v in base.params.items()}
        essential, unchecked_fails = base.essential, base.unchecked_fails
        remediation = dict(base.remediation)
    else:
        params = {}
        essential, unchecked_fails = (), False
        remediation = {}
    if "essential" in meta:
        essential = _essential(meta["essential"], registry, source)
    if "unchecked_fails" in meta:
        if not isinstance(meta["unchecked_fails"], bool):
            raise ConfigError(f"baseline {source}: baseline.unchecked_fails must be true or false")
        unchecked_fails = meta["unchecked_fails"]
    remediation.update(_remediation(data.get(REMEDIATION, {}), registry, source))
    for area, checks in data.items():
        if area in ("baseline", REMEDIATION):
            continue
        if not isinstance(checks, dict):
            raise ConfigError(f"baseline {source}: {area!r} must be a table of checks")
        for prop, values in checks.items():
            check_id = f"{area}.{prop}"
            if check_id not in registry.specs:
                raise ConfigError(
                    f"baseline {source}: unknown check [{check_id}]"
                    + did_you_mean(check_id, registry.specs)
                )
            if not isinstance(values, dict):
                raise ConfigError(f"baseline {source}: [{check_id}] must be a table")
            spec = registry.specs[check_id]
            merged = {**params.get(check_id, {}), **values}
            spec.make_params(merged, f"baseline {source}")  # validate now, before running
            params[check_id] = merged
    match = meta.get("match", {})
    if not isinstance(match, dict):
        raise ConfigError(f"baseline {source}: baseline.match must be a table")
    for key in match:
        if key not in MATCH_KEYS:
            raise ConfigError(
                f"baseline {source}: unknown key baseline.match.{key}"
                + did_you_mean(key, MATCH_KEYS)
            )
    name = str(meta.get("name") or Path(source.split(":", 1)[-1]).stem)
    return Baseline(
        name=name,
        description=str(meta.get("description", "")),
        source=source,
        params=params,
        product_names=tuple(str(x) for x in match.get("product_names", ())),
        gpu_ids=tuple(str(x).lower() for x in match.get("gpu_ids", ())),
        gpu_count=match.get("gpu_count"),
        essential=essential,
        unchecked_fails=unchecked_fails,
        remediation=remediation,
    )


def _remediation(table: object, registry: Registry, source: str) -> dict[str, Override]:
    """`[remediation."gpu.row_remap"]` tables: action/severity/when per check id."""
    if not isinstance(table, dict):
        raise ConfigError(f"baseline {source}: [{REMEDIATION}] must be a table of check ids")
    out = {}
    items: list[tuple[str, object]] = []
    for key, values in table.items():
        # [remediation.gpu.row_remap] without quotes: TOML nests it under "gpu".
        nested = isinstance(values, dict) and values and key not in registry.specs
        if nested and all(isinstance(v, dict) for v in values.values()):
            items.extend((f"{key}.{prop}", v) for prop, v in values.items())
            continue
        items.append((key, values))
    for check_id, values in items:
        where = f'baseline {source}: [{REMEDIATION}."{check_id}"]'
        if check_id not in registry.specs:
            raise ConfigError(
                f"{where}: unknown check {check_id!r}" + did_you_mean(check_id, registry.specs)
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{where} must be a table (action, severity, when)")
        out[check_id] = parse_override(
            values, registry.specs[check_id], where, f"baseline {source}"
        )
    return out


def _essential(value: object, registry: Registry, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConfigError(f"baseline {source}: baseline.essential must be a list of check ids")
    for check_id in value:
        if check_id not in registry.specs:
            raise ConfigError(
                f"baseline {source}: baseline.essential: unknown check {check_id!r}"
                + did_you_mean(check_id, registry.specs)
            )
    return tuple(dict.fromkeys(value))


def detect(product_name: str | None, gpu_ids: Sequence[str], registry: Registry) -> Baseline:
    """The built-in baseline that best fits the node; `generic` when none does."""
    best, best_score = None, 0
    for name in builtin_names():
        candidate = load(name, registry)
        score = candidate.match_score(product_name, gpu_ids)
        if candidate.gpu_count is not None and len(gpu_ids) != candidate.gpu_count:
            score = min(score, 2 if score >= 2 else 0)
        if score > best_score:
            best, best_score = candidate, score
    return best or load("generic", registry)


def parse_set_options(items: Sequence[str], registry: Registry) -> dict[str, dict[str, Any]]:
    """--set ID.PARAM=VALUE options, grouped by check id; unknown ids/params raise ConfigError."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key.count(".") < 2:
            raise ConfigError(
                f"--set {item!r}: expected CHECK_ID.PARAM=VALUE, e.g. pcie.aer.max_correctable=10"
            )
        check_id, _, param = key.rpartition(".")
        if check_id not in registry.specs:
            raise ConfigError(
                f"--set {item!r}: unknown check {check_id!r}"
                + did_you_mean(check_id, registry.specs)
            )
        spec = registry.specs[check_id]
        spec.make_params({param: value}, "--set")
        out.setdefault(check_id, {})[param] = value
    return out
