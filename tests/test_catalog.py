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
    # a check lives in the module of its area, or in that area's package (checks/gpu/thermal.py)
    module = spec.func.__module__
    in_area = module == f"preflight.checks.{spec.area}" or module.startswith(
        f"preflight.checks.{spec.area}."
    )
    assert in_area or spec.area in (
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


# Every source file under preflight/checks/, subpackages included: a check moved into a
# subpackage (checks/gpu/) must not escape the purity rules below.
CHECK_FILES = sorted(str(p.relative_to(CHECK_DIR)) for p in CHECK_DIR.rglob("*.py"))


def test_check_files_include_subpackages() -> None:
    assert "gpu/thermal.py" in CHECK_FILES
    prefix = "preflight.checks."
    walked = {
        m.name.removeprefix(prefix)
        for m in pkgutil.walk_packages(preflight.checks.__path__, prefix=prefix)
    }
    as_modules = {f.removesuffix(".py").removesuffix("/__init__") for f in CHECK_FILES}
    assert {m.replace("/", ".") for m in as_modules} - {"__init__"} == walked


def test_discovery_finds_checks_in_subpackages() -> None:
    modules = {spec.func.__module__ for spec in SPECS}
    assert {"preflight.checks.gpu.thermal", "preflight.checks.gpu.active"} <= modules
    # every file that declares a check is one the registry imported
    declaring = {f for f in CHECK_FILES if "@check(" in (CHECK_DIR / f).read_text(encoding="utf-8")}
    found = {m.removeprefix("preflight.checks.").replace(".", "/") + ".py" for m in modules}
    assert declaring <= found


@pytest.mark.parametrize("module", CHECK_FILES)
def test_check_modules_never_touch_the_machine(module: str) -> None:
    """Checks read through the inventory only: no files, processes, NVML or environment."""
    tree = ast.parse((CHECK_DIR / module).read_text())
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
