"""preflight.cli_values answers each option value as typer's own (pydantic) coercion does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

typer_coercion = pytest.importorskip("typer._coercion")  # typer 0.2x: the pydantic layer

import typer.main  # noqa: E402
from typer._click import Context  # noqa: E402

from preflight import cli_values  # noqa: E402
from preflight.cli import app  # noqa: E402

# What options receive: defaults, command-line strings (numbers, blanks, a surrogate from
# undecodable argv bytes, control characters), typed defaults, a repeatable option's tuple.
VALUES: list[Any] = [
    None,
    "",
    "x",
    "dgx-h100",
    "2",
    "07",
    "12345678901234567890",
    "\uff12",
    " 2",
    "1.5",
    "-1",
    "0",
    "1e9",
    "abc",
    "\udcff",
    "a\x01b",
    "-",
    0,
    1,
    80,
    -1,
    0.0,
    10.0,
    -1.0,
    True,
    False,
    (),
    ("a", "b"),
    ["gpu.*"],
    ("a", 1),
    Path("out.json"),
]


def _params() -> Iterator[tuple[str, Any, Any]]:
    """(command path and option name, the click parameter, a context) for every option."""
    root = typer.main.get_command(app)

    def walk(command: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
        ctx = Context(command)
        for param in command.params:
            if hasattr(param, "type_descriptor"):
                yield f"{path} {param.name}", param, ctx
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    yield from walk(root, "preflight")


PARAMS = list(_params())


def _answer(coerce: Any) -> tuple[str, Any]:
    """("value", the value and its type) or ("error", the exception's type and message)."""
    try:
        value = coerce()
    except Exception as exc:
        return "error", (type(exc), str(exc))
    return "value", (value, type(value))


def test_every_command_option_is_covered() -> None:
    names = {name for name, _, _ in PARAMS}
    assert "preflight run profile" in names
    assert "preflight run timeout" in names  # a parser
    assert "preflight run only" in names  # repeatable
    assert len(names) > 100


@pytest.mark.parametrize(("name", "param", "ctx"), PARAMS, ids=[p[0] for p in PARAMS])
def test_same_answer_as_typer(name: str, param: Any, ctx: Any) -> None:
    runtime = typer_coercion.build_runtime_param(param.type_descriptor)
    for value in [param.default, *VALUES]:
        ours = _answer(lambda v=value: cli_values._Coercion(param).coerce(v, param, ctx))
        theirs = _answer(lambda v=value: runtime.coerce(v, param=param, ctx=ctx))
        assert ours == theirs, f"{name} given {value!r}"


def test_a_profile_run_never_imports_pydantic() -> None:
    code = (
        "import sys\n"
        "from preflight.cli import main\n"
        "sys.argv = ['preflight', 'run', '--profile', 'dgx-h100', '--format', 'json',\n"
        "            '--only', 'pcie.*', '--timeout', '30', '--level', '1']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    sys.stderr.write(f'exit {exc.code}\\n')\n"
        "sys.stderr.write(f\"pydantic {'pydantic' in sys.modules}\\n\")\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.splitlines()[-2:] == ["exit 0", "pydantic False"], out.stderr


def test_a_value_typer_must_coerce_still_gets_its_error() -> None:
    """A number typed on the command line goes through typer's coercion, with its words."""
    out = subprocess.run(
        [sys.executable, "-m", "preflight", "run", "--profile", "dgx-h100", "--level", "x"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr == (
        "preflight: error: Invalid value for '--level': Input should be a valid integer, "
        "unable to parse string as an integer\n"
    )
