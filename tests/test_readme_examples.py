"""The README's example outputs are what the current code prints.

Every fenced block in README.md that starts with `$ preflight …` (optionally `COLUMNS=N`
before it) is run, in a terminal 100 columns wide unless the block says otherwise, and must
print the block's text, durations aside: `12 ms` and `0.08 s` vary from run to run, and the
column they sit in may be a character wider or narrower. The `compare` example reads a sweep of
ten DGX H100 nodes built here from the built-in profiles: gpu-004 on an older BIOS, gpu-009 with
ACS redirect on.

After an intended change, print the new output with `python -m tests.test_readme_examples` and
paste it into README.md.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.harness import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```\n(\$ [^\n]+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
EXAMPLES = {m.group(1): m.group(2) for m in BLOCK.finditer(README)}

# The sweep behind `preflight compare sweep/`: hostname -> (profile, files it overrides).
SWEEP: dict[str, tuple[str, dict[str, str]]] = {
    f"gpu-{i:03d}": ("dgx-h100", {}) for i in range(1, 11)
} | {
    "gpu-004": ("dgx-h100", {"/sys/class/dmi/id/bios_version": "1.5.1\n"}),
    "gpu-009": ("dgx-h100-acs-enabled", {}),
}


def build_sweep(where: Path) -> None:
    """One `run --format json` report per node in where/sweep/, as a fleet sweep leaves them."""
    (where / "profiles").mkdir()
    (where / "sweep").mkdir()
    for hostname, (profile, files) in SWEEP.items():
        path = where / "profiles" / f"{hostname}.json"
        path.write_text(json.dumps({"extends": profile, "hostname": hostname, "files": files}))
        out = where / "sweep" / f"{hostname}.json"
        done = cli("run", "--profile", str(path), "--format", "json", "--output", str(out))
        assert done.exit_code in (0, 1), done.output


def output_of(command: str) -> str:
    """What `$ COMMAND` prints, run as the README shows it."""
    words = shlex.split(command.removeprefix("$ "))
    env = {"COLUMNS": "100", "NO_COLOR": "1"}
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[0] == "preflight", command
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # terminal.width() reads COLUMNS from the process environment
    try:
        return cli(*words[1:]).stdout
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def durations_aside(text: str) -> str:
    """The text with every duration as N, and runs of padding and rules as one character."""
    text = re.sub(r"\b\d+ ms\b", "N ms", text)
    text = re.sub(r"\b\d+\.\d+ s\b", "N s", text)
    return re.sub(r"([ ━─])\1+", r"\1", text)


def test_the_readme_has_the_examples_this_test_runs() -> None:
    assert len(EXAMPLES) >= 3 and "$ preflight compare sweep/" in EXAMPLES


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_readme_example_is_the_real_output(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "compare sweep/" in command:
        build_sweep(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert durations_aside(output_of(command)) == durations_aside(EXAMPLES[command])


def test_durations_aside_keeps_everything_else() -> None:
    assert durations_aside("│ PASS │ 10 ms │\nFAIL: 1 fail; 0.08 s") == durations_aside(
        "│ PASS │ 1 ms  │\nFAIL: 1 fail; 3.01 s"
    )
    assert durations_aside("4 pass, 1 fail") != durations_aside("4 pass, 2 fail")


if __name__ == "__main__":  # print every example's current output, to paste into README.md
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        build_sweep(Path(work))
        os.chdir(work)
        for example in sorted(EXAMPLES):
            sys.stdout.write(f"```\n{example}\n{output_of(example)}```\n\n")
