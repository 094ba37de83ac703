"""Shell completion, as a shell runs it: `preflight --install-completion` writes bash's script
under $HOME, a real bash sources it and calls the completion function with COMP_WORDS/COMP_CWORD
set, and COMPREPLY must hold the candidates (check ids, patterns, profiles, baselines, formats).
zsh and fish (not installed here) are asked through the same environment protocol their
generated scripts use."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from preflight.baseline import builtin_names as baseline_names
from preflight.registry import discover

PCIE_IDS = sorted(s.id for s in discover() if s.area == "pcie")

# (words typed, index of the word being completed, the candidates COMPREPLY must hold exactly)
BASH_CASES: list[tuple[list[str], list[str]]] = [
    (
        ["preflight", ""],
        ["ack", "baselines", "bench", "compare", "explain", "list", "profiles", "run", "snapshot"],
    ),
    (["preflight", "run", "--pro"], ["--problems", "--profile"]),
    (["preflight", "explain", "pcie."], PCIE_IDS),
    (["preflight", "explain", "preflight."], ["preflight.facts"]),
    (["preflight", "run", "--only", "pcie.acs,pcie.l"], ["pcie.acs,pcie.link"]),
    (["preflight", "run", "--skip", "tag:rd"], ["tag:rdma"]),
    (["preflight", "run", "--skip", "iommu"], ["iommu.*", "iommu.mode"]),
    (["preflight", "run", "--profile", "dgx-h100-acs"], ["dgx-h100-acs-enabled"]),
    (["preflight", "run", "--baseline", "dgx-h100-r"], ["dgx-h100-roce"]),
    (["preflight", "baselines", "show", ""], baseline_names()),
    (["preflight", "profiles", "show", "hgx"], ["hgx-h200"]),
    (["preflight", "compare", "sweep/", "--fail-on", ""], ["drift", "fail", "none"]),
    (["preflight", "run", "--format", "j"], ["json", "jsonl", "junit"]),
    (["preflight", "list", "--format", ""], ["json", "table"]),
]


@pytest.fixture(scope="module")
def shell_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A HOME of its own and a `preflight` on PATH that is this checkout under this Python."""
    root = tmp_path_factory.mktemp("completion")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "preflight"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec {shlex.quote(sys.executable)} -c "
        '\'import sys; from preflight.cli import app; sys.argv[0] = "preflight"; '
        'app(prog_name="preflight")\' "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_PREFLIGHT", "_TYPER"))}
    env.update(HOME=str(root / "home"), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    (root / "home").mkdir()
    return env


@pytest.fixture(scope="module")
def bashrc(shell_env: dict[str, str]) -> Path:
    """`preflight --install-completion` run from bash (which it detects as the shell)."""
    done = subprocess.run(
        ["bash", "--norc", "-c", "preflight --install-completion; exit $?"],
        env=shell_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "bash completion installed in" in done.stdout
    rc = Path(shell_env["HOME"]) / ".bashrc"
    assert "source" in rc.read_text() and ".bash_completions/preflight.sh" in rc.read_text()
    return rc


def bash_complete(env: dict[str, str], rc: Path, words: list[str]) -> list[str]:
    """COMPREPLY after the installed function completes the last of words."""
    script = (
        f"source {shlex.quote(str(rc))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_preflight_completion preflight\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.parametrize(("words", "expected"), BASH_CASES, ids=lambda v: " ".join(v))
def test_bash_completes_from_the_installed_script(
    shell_env: dict[str, str], bashrc: Path, words: list[str], expected: list[str]
) -> None:
    assert sorted(bash_complete(shell_env, bashrc, words)) == sorted(expected)


def protocol(env: dict[str, str], shell: str, line: str, **extra: str) -> str:
    """What `preflight` answers to the completion request the shell's generated script sends."""
    done = subprocess.run(
        ["preflight"],
        env={**env, "_PREFLIGHT_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line}
        | extra,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_zsh_gets_ids_with_their_titles(shell_env: dict[str, str]) -> None:
    out = protocol(shell_env, "zsh", "preflight explain pcie.a")
    assert out.startswith("_arguments")
    assert '"pcie.acs":"No ACS redirect' in out and '"pcie.aer":' in out and "pcie.link" not in out


def test_fish_gets_ids_with_their_titles(shell_env: dict[str, str]) -> None:
    out = protocol(
        shell_env,
        "fish",
        "preflight run --profile dgx-h100-ib",
        _TYPER_COMPLETE_FISH_ACTION="get-args",
    )
    names = [line.split("\t")[0] for line in out.splitlines()]
    assert names == ["dgx-h100-ib-port-down", "dgx-h100-ib-rate-hdr", "dgx-h100-ib-symbol-errors"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_a_script_that_calls_back(
    shell_env: dict[str, str], shell: str
) -> None:
    done = subprocess.run(
        ["preflight", "--show-completion", shell],
        env={**shell_env, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"_PREFLIGHT_COMPLETE=complete_{shell}" in done.stdout


def test_the_generated_bash_script_is_valid_bash(shell_env: dict[str, str]) -> None:
    script = subprocess.run(
        ["bash", "--norc", "-c", "preflight --show-completion; exit $?"],
        env=shell_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert script.returncode == 0, script.stderr
    checked = subprocess.run(
        ["bash", "--norc", "-n"], input=script.stdout, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr
