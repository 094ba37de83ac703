"""benchmarks/compare_scale.py at a small size: compare finds what it plants (it cannot rot)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from preflight.cluster.aggregate import collect
from preflight.cluster.compare import compare
from preflight.cluster.sources import expand

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "compare_scale.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_scale", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through it
    spec.loader.exec_module(module)
    return module


def test_planted_faults_and_drift_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_bench()
    # two healthy and two faulty profiles keep it quick; the bench itself uses every one
    subset = ["dgx-h100", "hgx-h200", "dgx-h100-acs-enabled", "dgx-h100-unprivileged"]
    monkeypatch.setattr(bench, "builtin_names", lambda: subset)
    planted = bench.generate(tmp_path, 300, seed=7)
    fleet = collect(expand([str(tmp_path)]), jobs=2)
    result = compare(fleet, "baseline")
    assert len(fleet.nodes) == 300 and not fleet.unreadable and not fleet.duplicates
    assert len(result.failing) == planted["failing"] > 0
    drifted: dict[str, set[str]] = {}
    for d in result.drift:
        for _, ids in d.differs:
            drifted.setdefault(d.key, set()).update(fleet.name(i) for i in ids)
    bios = drifted.get("dmi.bios_version", set())
    assert len(bios) == planted["variations"].get("older_bios", 0)
    assert len(drifted.get("nvidia.driver_version", set())) == planted["variations"].get(
        "older_driver", 0
    )
    # every node's root-disk UUID and GPU UUIDs differ, and none of that is drift
    assert not any(k.endswith(".uuid") for k in drifted)
