"""The site's config file: what every `preflight run` on this site's nodes should assume, so
nodes need no flags (a RoCE site pins `baseline = "dgx-h100-roce"`).

Read from $PREFLIGHT_CONFIG, else /etc/preflight/config.toml; PREFLIGHT_CONFIG set but empty
means no config file. A missing default file is no config; a missing named one is an error.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from preflight import safeio
from preflight.errors import ConfigError
from preflight.suggest import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_PATH = "/etc/preflight/config.toml"
ENV = "PREFLIGHT_CONFIG"
MAX_BYTES = 64 * 1024  # a few settings: anything larger is not a config file
KEYS = {"baseline", "max_drained", "max_drained_scope", "state_dir"}


@dataclass(frozen=True)
class SiteConfig:
    """Settings a site pins; None where it pins nothing."""

    baseline: str | None = None
    source: str | None = None
    max_drained: str | None = None  # `5` or `10%`, as --max-drained takes it
    max_drained_scope: str | None = None
    state_dir: str | None = None


def load(env: Mapping[str, str]) -> SiteConfig:
    """The site config named by the environment, or the default file; empty when none."""
    named = env.get(ENV)
    if named == "":
        return SiteConfig()
    path = named or DEFAULT_PATH
    try:
        data = safeio.read_regular(path, MAX_BYTES)
    except OSError as exc:
        if named is None and exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return SiteConfig()
        raise ConfigError(f"config {path}: {exc.strerror or exc}") from None
    except safeio.InputRefused as exc:
        raise ConfigError(f"config {path}: {exc}") from None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: invalid TOML: {exc}") from None
    for key in doc:
        if key not in KEYS:
            raise ConfigError(f"config {path}: unknown key {key!r}" + did_you_mean(key, KEYS))
    baseline = doc.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline):
        raise ConfigError(f"config {path}: baseline must be a baseline name or a .toml path")
    if baseline is not None and "/" in baseline and not Path(baseline).is_absolute():
        baseline = str(Path(path).parent / baseline)  # relative to the config file
    max_drained = doc.get("max_drained")
    if isinstance(max_drained, int) and not isinstance(max_drained, bool) and max_drained >= 0:
        max_drained = str(max_drained)
    if max_drained is not None and not isinstance(max_drained, str):
        raise ConfigError(f"config {path}: max_drained must be a number of nodes or 'P%'")
    scope = doc.get("max_drained_scope")
    if scope is not None and scope not in ("partition", "cluster"):
        raise ConfigError(f"config {path}: max_drained_scope must be 'partition' or 'cluster'")
    state_dir = doc.get("state_dir")
    if state_dir is not None and (not isinstance(state_dir, str) or not state_dir.startswith("/")):
        raise ConfigError(f"config {path}: state_dir must be an absolute directory path")
    return SiteConfig(
        baseline=baseline,
        source=path,
        max_drained=max_drained,
        max_drained_scope=scope,
        state_dir=state_dir,
    )
