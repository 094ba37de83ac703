"""`preflight.facts`, the row a run reports when the node's facts cannot be gathered, is what an
operator can look up: the same row in every format, `explain` explains it, `list` lists it, and
a completion offers it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from preflight.completion import check_ids
from preflight.inventory import Inventory
from preflight.registry import discover
from preflight.stages import FACTS, STAGES, Stage
from tests.harness import assert_one_line_error, cli

DMI = "/sys/class/dmi/id/bios_version"


@pytest.fixture
def facts_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Facts gathering meets an I/O error, as on a node whose DMI read fails."""

    def broken(inv: Inventory, *into: object) -> dict[str, object]:
        raise OSError(5, "Input/output error", DMI)

    monkeypatch.setattr("preflight.execute.node_facts", broken)


def run(fmt: str) -> tuple[int, str]:
    result = cli("run", "--profile", "dgx-h100", "--only", "pcie.acs", "--format", fmt)
    return result.exit_code, result.stdout


@pytest.mark.usefixtures("facts_fail")
def test_a_facts_error_is_the_same_row_in_every_format() -> None:
    code, table = run("table")
    assert code == 1
    row = next(line for line in table.splitlines() if "preflight.facts" in line)
    assert row.split("│")[1].strip() == "ERROR" and "facts could not all be gathered" in row
    assert "could not run: preflight.facts" in table

    _, text = run("json")
    doc = json.loads(text)
    result = next(r for r in doc["results"] if r["id"] == FACTS.id)
    assert (result["status"], result["title"]) == ("error", FACTS.title)
    assert f"OSError: [Errno 5] Input/output error: '{DMI}'" in result["summary"]
    assert doc["facts"] == {}

    _, xml = run("junit")
    case = next(c for c in ET.fromstring(xml).iter("testcase") if c.get("name") == FACTS.id)
    assert [child.tag for child in case] == ["error"]

    _, prom = run("prometheus")
    assert f'check="{FACTS.id}"' in prom


def test_gathered_facts_make_no_row() -> None:
    _, text = run("json")
    doc = json.loads(text)
    assert [r["id"] for r in doc["results"]] == ["pcie.acs"] and doc["facts"]


@pytest.mark.parametrize("step", STAGES, ids=[s.id for s in STAGES])
def test_explain_explains_the_row(step: Stage) -> None:
    result = cli("explain", step.id)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(f"{step.id} — {step.title}")
    assert f"a step of {step.runs}, not a check: it reports a row {step.row}" in out
    for section in ("Why", "Reads", "Verdicts", "Fix"):
        assert f"\n{section}\n" in out
    assert all(line == line.rstrip() for line in out.splitlines())


def test_list_shows_it_as_a_stage() -> None:
    rows = {r["id"]: r for r in json.loads(cli("list", "--format", "json").stdout)}
    for step in STAGES:
        assert rows[step.id]["kind"] == "stage" and rows[step.id]["params"] == {}
    assert rows["pcie.acs"]["kind"] == "check"
    table = cli("list").stdout
    assert all(step.id in table for step in STAGES)


def test_stages_are_not_checks() -> None:
    # --only selects checks: a stage always runs, so naming it is the usual unknown pattern.
    assert_one_line_error(
        cli("run", "--profile", "dgx-h100", "--only", FACTS.id), 2, "no check matches"
    )
    ids = {s.id for s in discover()}
    assert not ids & {s.id for s in STAGES}
    assert (FACTS.id, FACTS.title) in check_ids("preflight.")
