"""Meta-tests over the registry: ids, docs, params, purity of check modules."""

from __future__ import annotations

import ast
import dataclasses
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest

import preflight.checks
from preflight.registry import ID_RE, discover

REGISTRY = discover(include_plugins=False)
SPECS = list(REGISTRY)
SECTIONS = ("## Why", "## Reads", "## Verdicts", "## Fix")
CHECK_DIR = Path(preflight.checks.__file__).parent


def test_ids_are_unique_and_well_formed() -> None:
    ids = [s.id for s in SPECS]
    assert len(ids) == len(set(ids))
    assert all(ID_RE.match(i) for i in ids)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_docstring_is_user_documentation(spec) -> None:  # type: ignore[no-untyped-def]
    doc = spec.doc
    assert doc.splitlines()[0].endswith("."), "first line states the healthy state"
    for section in SECTIONS:
        assert section in doc, f"{spec.id} lacks {section}"
    verdicts = doc.split("## Verdicts", 1)[1].split("## Fix", 1)[0]
    assert re.search(r"- (pass|skip|fail|warn)", verdicts)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_params_are_frozen_with_defaults(spec) -> None:  # type: ignore[no-untyped-def]
    assert dataclasses.is_dataclass(spec.params)
    params: Any = spec.params
    assert params.__dataclass_params__.frozen
    params()  # every field has a default


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_function_name_is_the_property(spec) -> None:  # type: ignore[no-untyped-def]
    assert spec.func.__name__ == spec.id.split(".", 1)[1]
    assert spec.func.__module__ == f"preflight.checks.{spec.area}" or spec.area in (
        "numa",
        "node",
        "host",
        "iommu",
        "cpu",
        "pcie",
    )


FORBIDDEN_CALLS = {"open", "exec", "eval", "__import__"}
FORBIDDEN_MODULES = {
    "os",
    "subprocess",
    "pynvml",
    "pathlib",
    "shutil",
    "socket",
    "resource",
    "glob",
}


@pytest.mark.parametrize("module", [m.name for m in pkgutil.iter_modules([str(CHECK_DIR)])])
def test_check_modules_never_touch_the_machine(module: str) -> None:
    """Checks read through the inventory only: no files, processes, NVML or environment."""
    tree = ast.parse((CHECK_DIR / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] not in FORBIDDEN_MODULES, alias.name
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in FORBIDDEN_MODULES, node.module
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{module}: {node.func.id}()"
        elif isinstance(node, ast.Attribute) and node.attr in ("environ", "host"):
            # inv.host would hand a check the raw machine
            assert not (isinstance(node.value, ast.Name) and node.value.id == "inv"), module
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert not re.match(r"^/(sys|proc)/\S*$", node.value), (
                f"{module}: literal path {node.value!r}: read it through the inventory"
            )
