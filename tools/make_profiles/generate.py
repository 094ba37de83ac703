"""Diff, merge, output: variants as minimal `extends` overlays; write or check the JSON files."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

import tools.make_profiles
from preflight.profile import merge  # the loader's own `extends` rule
from tools.make_profiles import PROFILE_DIR
from tools.make_profiles import nvml as profile_nvml
from tools.make_profiles.assembly import build_node
from tools.make_profiles.nodes import DGX_H100, HGX_H200, VARIANTS

ATOMIC_SECTIONS = ("files", "symlinks", "statvfs", "limits", "env")


def diff(base: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    """The smallest `extends` overlay turning base into variant. Entries of the path-keyed
    sections are replaced whole (a binary file is never half-merged); lists replace."""
    out: dict[str, Any] = {}
    for key in sorted(base.keys() | variant.keys()):
        if key not in variant:
            out[key] = None
        elif key not in base or base[key] != variant[key]:
            old, new = base.get(key), variant[key]
            if key == "nvml":
                out[key] = profile_nvml.diff(old, new)
            elif key in ATOMIC_SECTIONS and isinstance(old, dict):
                out[key] = {
                    k: new.get(k)
                    for k in sorted(old.keys() | new.keys())
                    if old.get(k) != new.get(k)
                }
            else:
                out[key] = new
    return out


def build_all() -> dict[str, dict[str, Any]]:
    profiles = {spec.name: build_node(spec) for spec in (DGX_H100, HGX_H200)}
    base = profiles[DGX_H100.name]
    for name, description, faults in VARIANTS:
        full = build_node(replace(DGX_H100, faults=faults))
        full["description"] = description
        overlay = {"extends": DGX_H100.name, **diff(base, full)}
        assert merge(base, {k: v for k, v in overlay.items() if k != "extends"}) == full
        profiles[name] = overlay
    return profiles


def render(profile: dict[str, Any]) -> str:
    return json.dumps(profile, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.make_profiles",
        description=(tools.make_profiles.__doc__ or "").splitlines()[0],
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed profile is not up to date"
    )
    args = parser.parse_args(argv)
    rendered = {f"{name}.json": render(profile) for name, profile in build_all().items()}
    if args.check:
        stale = [
            name
            for name, text in rendered.items()
            if not (PROFILE_DIR / name).is_file()
            or (PROFILE_DIR / name).read_text(encoding="utf-8") != text
        ]
        stale += sorted(p.name for p in PROFILE_DIR.glob("*.json") if p.name not in rendered)
        for name in stale:
            print(f"out of date: preflight/profiles/{name}", file=sys.stderr)
        if stale:
            print("run: python -m tools.make_profiles", file=sys.stderr)
        return 1 if stale else 0
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (PROFILE_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote preflight/profiles/{name} ({len(text.encode()) / 1024:.0f} KiB)")
    return 0
