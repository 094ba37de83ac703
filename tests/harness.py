"""The CLI harness every test uses: one in-process runner, one JSON-report reader, one check of
the one-line error contract (README "Exit codes")."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
from typer.testing import CliRunner, Result

from preflight.cli import app

runner = CliRunner()
SCHEMA = json.loads((resources.files("preflight") / "schema" / "report.schema.json").read_text())


def cli(*args: str) -> Result:
    """`preflight ARGS` in this process (stdout and stderr kept apart)."""
    return runner.invoke(app, list(args))


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    """`preflight run ARGS --format json`: the exit code and the report, schema-validated."""
    result = cli("run", *args, "--format", "json")
    assert result.exit_code in (0, 1), result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    return result.exit_code, doc


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A report's results keyed by check id."""
    return {r["id"]: r for r in doc["results"]}


def assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    """The error contract: the documented exit code, one `preflight: error:` line, no trace."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("preflight: error:") or "Usage" in result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
