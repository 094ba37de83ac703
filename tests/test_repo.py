"""The repository's own promises: the README's test command is what CI runs, one torch pin, the
pre-commit hooks run CI's linters."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def readme_test_command() -> str:
    lines = [line for line in README.splitlines() if "python3 -m pytest" in line]
    assert len(lines) == 1, lines
    return lines[0]


def ci_installs() -> list[str]:
    """The arguments of every `pip install` in .ci/run, -q dropped."""
    found = re.findall(r"^python3 -m pip install (.+)$", CI, re.M)
    return [arg for line in found for arg in shlex.split(line) if arg != "-q"]


def test_readme_test_command_is_what_ci_runs() -> None:
    command = readme_test_command()
    checks = CI.strip().splitlines()[-1]
    assert command.endswith(" && " + checks)
    install = command.removesuffix(" && " + checks)
    readme_installs = [
        arg
        for part in install.split(" && ")
        for arg in shlex.split(part.removeprefix("pip install "))
    ]
    assert readme_installs == ci_installs()


def test_ci_lints_formats_type_checks_and_tests() -> None:
    checks = CI.strip().splitlines()[-1].split(" && ")
    assert checks == [
        "python3 -m ruff check .",
        "python3 -m ruff format --check .",
        "python3 -m mypy",
        "python3 -m pytest -q",
    ]


def test_one_torch_pin_inside_the_bench_extra() -> None:
    pins = set(re.findall(r"torch==([0-9.]+)", README + CI))
    assert len(pins) == 1, pins
    (pin,) = pins
    (bench,) = (Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["bench"])
    assert bench.name == "torch" and bench.specifier.contains(pin)


def test_dev_extra_holds_the_tools_ci_runs() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    dev = {Requirement(r).name for r in extras["dev"]}
    assert {"ruff", "mypy", "pre-commit", "gpu-preflight"} <= dev
    assert "gpu-preflight[test]" in extras["dev"]


def test_pre_commit_runs_what_ci_runs() -> None:
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    entries = re.findall(r"entry: (python3 -m \S+(?: \S+)?)", config)
    assert entries == ["python3 -m ruff check", "python3 -m ruff format", "python3 -m mypy"]
