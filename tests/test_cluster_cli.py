"""`preflight compare` and `preflight baselines generate` end to end (Typer's CliRunner)."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from preflight.baseline import load
from preflight.cli import app
from preflight.registry import discover
from tests.cluster_reports import report, write_fleet

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

runner = CliRunner()
SCHEMA = json.loads((resources.files("preflight") / "schema" / "compare.schema.json").read_text())


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "reports"
    docs = write_fleet(folder)
    # drift no check judges: node03 on an older BIOS
    doc = docs["node03"]
    doc["facts"]["dmi.bios_version"] = "1.5.1"
    (folder / "node03.json").write_text(json.dumps(doc, indent=2))
    return folder


def compare_json(*args: str, stdin: str | None = None) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["compare", *args, "--format", "json"], input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    return result.exit_code, doc


def drift_of(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["group"], d["fact"]): d for d in doc["drift"]["items"]}


def test_table_names_the_failing_node_and_the_drift(fleet_dir: Path) -> None:
    result = runner.invoke(app, ["compare", str(fleet_dir)])
    assert result.exit_code == 1
    out = result.stdout
    assert "9 nodes from 9 reports" in out and "dgx-h100 7, hgx-h200 2" in out
    assert "pcie.acs" in out and "node07" in out
    assert "dmi.bios_version" in out and "1.5.1 → node03 (1)" in out
    assert "pci.*.acs_ctl (24 keys)" in out  # one row for the 24 bridges of node07
    assert out.rstrip().splitlines()[-1].startswith("FAIL: 1 of 9 nodes fail")


def test_json_failures_and_drift(fleet_dir: Path) -> None:
    code, doc = compare_json(str(fleet_dir))
    assert code == 1 and doc["status"] == "fail"
    assert doc["nodes"] == 9 and doc["groups"] == {"dgx-h100": 7, "hgx-h200": 2}
    assert doc["failures"]["by_node"] == [
        {
            "hostname": "node07",
            "source": str(fleet_dir / "node07.json"),
            "action": "fix-config",
            "checks": [{"check": "pcie.acs", "status": "fail"}],
        }
    ]
    assert doc["failures"]["by_action"] == [{"action": "fix-config", "nodes": ["node07"]}]
    drift = drift_of(doc)
    bios = drift[("dgx-h100", "dmi.bios_version")]
    assert bios["expected"] == {"value": "1.6.7", "absent": False, "nodes": 6}
    assert bios["differs"] == [{"value": "1.5.1", "absent": False, "nodes": ["node03"]}]
    assert doc["drift"]["items"][0]["differs"][0]["nodes"] in (["node03"], ["node07"])
    # the H200s are compared with each other, not with the H100 majority
    assert not any(g == "hgx-h200" for g, _ in drift)
    assert "pcie.acs" in [c["check"] for c in doc["failures"]["by_check"]]


def test_root_uuid_on_the_command_line_is_not_drift(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    docs = write_fleet(folder, [("a1", "dgx-h100"), ("a2", "dgx-h100")])
    doc = docs["a2"]
    doc["facts"]["kernel.cmdline"] = doc["facts"]["kernel.cmdline"].replace(
        "root=UUID=2c09fbb2", "root=UUID=11111111"
    )
    doc["facts"]["dmi.product_serial"] = "SN-2"
    (folder / "a2.json").write_text(json.dumps(doc))
    code, out = compare_json(str(folder))
    assert code == 0 and out["status"] == "ok" and out["drift"]["items"] == []
    assert "dmi.product_serial" in out["left_out"]["unique"]


def test_fail_on_levels(fleet_dir: Path) -> None:
    drift_only = [str(fleet_dir / f"node0{i}.json") for i in range(1, 7)]
    assert compare_json(*drift_only)[0] == 1
    assert compare_json(*drift_only, "--fail-on", "fail")[0] == 0
    assert compare_json(str(fleet_dir), "--fail-on", "fail")[0] == 1
    assert compare_json(str(fleet_dir), "--fail-on", "none")[0] == 0
    code, doc = compare_json(*drift_only, "--ignore-fact", "dmi.bios_*")
    assert code == 0 and doc["status"] == "ok"
    assert doc["left_out"]["ignored"] == ["dmi.bios_date", "dmi.bios_vendor", "dmi.bios_version"]


def test_golden_node(fleet_dir: Path) -> None:
    dgx = [str(fleet_dir / f"node0{i}.json") for i in range(1, 8)]
    code, doc = compare_json(*dgx, "--golden", str(fleet_dir / "node03.json"))
    assert code == 1 and doc["golden"]["hostname"] == "node03"
    bios = drift_of(doc)[("all", "dmi.bios_version")]
    assert bios["expected"]["value"] == "1.5.1"
    assert bios["differs"][0]["nodes"] == [
        "node01",
        "node02",
        "node04",
        "node05",
        "node06",
        "node07",
    ]
    result = runner.invoke(app, ["compare", *dgx, "--golden", str(fleet_dir / "node03.json")])
    assert "Golden value" in result.stdout and "golden node node03" in result.stdout


def test_stdin_and_output_file(fleet_dir: Path, tmp_path: Path) -> None:
    lines = "".join(json.dumps(json.loads(p.read_text())) + "\n" for p in fleet_dir.glob("*.json"))
    out = tmp_path / "compare.json"
    result = runner.invoke(
        app, ["compare", "-", "--format", "json", "--output", str(out)], input=lines
    )
    assert result.exit_code == 1 and result.stdout == ""
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["nodes"] == 9


def test_unreadable_and_duplicate_reports_are_listed(fleet_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    again = json.loads((fleet_dir / "node01.json").read_text())
    again["started_at"] = "1999-01-01T00:00:00+00:00"
    (tmp_path / "node01-old.json").write_text(json.dumps(again))
    code, doc = compare_json(str(fleet_dir / "node01.json"), str(tmp_path), "--fail-on", "fail")
    assert code == 1 and doc["status"] == "fail" and doc["nodes"] == 1 and doc["reports"] == 3
    assert doc["unreadable"] == [
        {
            "source": str(tmp_path / "notes.json"),
            "error": "not a preflight run report (no tool.name 'preflight')",
        }
    ]
    assert doc["duplicates"] == [
        {
            "hostname": "node01",
            "kept": str(fleet_dir / "node01.json"),
            "dropped": str(tmp_path / "node01-old.json"),
        }
    ]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["/nonexistent/reports"], 2, "no such file"),
        (["--format", "xml", "."], 2, "unknown --format 'xml' (choose from table, json, html)"),
        (["--fail-on", "warn", "."], 2, "unknown --fail-on 'warn' (choose from drift, fail, none)"),
        # One message per bad option: two bad options still give one line, naming one.
        (["--fail-on", "warn", "--format", "xml", "."], 2, "unknown --format 'xml'"),
        (["--golden", "/nonexistent.json", "."], 2, "/nonexistent.json"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], code: int, needle: str) -> None:
    result = runner.invoke(app, ["compare", *args])
    assert result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("preflight: error:") and needle in lines[0]


def test_golden_that_is_no_report_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "golden.json"
    bad.write_text("[]")
    result = runner.invoke(app, ["compare", str(bad), "--golden", str(bad)])
    assert result.exit_code == 3 and "not a preflight run report" in result.stderr


def test_empty_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", str(tmp_path)])
    assert result.exit_code == 2 and "no report found" in result.stderr


# -- baselines generate ------------------------------------------------------------------


def test_generate_from_the_majority_pins_what_the_fleet_shows(
    fleet_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fleet.toml"
    result = runner.invoke(
        app, ["baselines", "generate", str(fleet_dir), "--group", "dgx-h100", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = tomllib.loads(out.read_text())
    assert data["baseline"]["name"] == "fleet-dgx-h100"
    assert data["host"]["bios"]["bios_version"] == "1.6.7"  # 6 of 7, not node03's 1.5.1
    assert data["node"]["gpu_count"] == {"expected": 8, "models": ["10de:2330"]}
    assert data["pcie"]["link"]["gpu_width"] == 16 and data["pcie"]["link"]["nic_speed_gts"] == 32.0
    assert data["pcie"]["devctl"]["nic_max_read_request"] == 4096
    assert data["rdma"]["fw_version"]["pinned"] == ["MT4129=28.41.1000"]
    assert "iommu=pt" in data["host"]["kernel_cmdline"]["required"]
    assert not any("UUID" in t for t in data["host"]["kernel_cmdline"]["required"])
    assert "# dmi.bios_version: 6 of 7 nodes" in out.read_text()
    baseline = load(str(out), discover())
    assert baseline.params["numa.nodes"] == {"expected": 2}
    # the generated baseline passes a healthy node and fails the faulty ones
    ok = runner.invoke(app, ["run", "--profile", "dgx-h100", "--baseline", str(out)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(
        app, ["run", "--profile", "dgx-h100-iommu-translated", "--baseline", str(out)]
    )
    assert bad.exit_code == 1 and "host.kernel_cmdline" in bad.output


def test_generate_from_one_report_and_the_singular_alias(tmp_path: Path) -> None:
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(report("hgx-h200", "golden-1", tmp_path)))
    result = runner.invoke(
        app, ["baseline", "generate", str(path), "--name", "h200-golden", "--extends", "hgx-h200"]
    )
    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.stdout)
    assert data["baseline"] == {
        "name": "h200-golden",
        "description": f"Pinned from the report of golden-1 ({path})",
        "extends": "hgx-h200",
        "match": {"product_names": ["SYS-821GE-TNHR"], "gpu_ids": ["10de:2335"], "gpu_count": 8},
    }
    assert data["pcie"]["bar1"]["min_bar1_gib"] == 256.0


def test_generate_asks_which_group(fleet_dir: Path) -> None:
    result = runner.invoke(app, ["baselines", "generate", str(fleet_dir)])
    assert result.exit_code == 2
    assert "several groups: dgx-h100 (7 nodes), hgx-h200 (2 nodes)" in result.stderr
    result = runner.invoke(app, ["baselines", "generate", str(fleet_dir), "--group", "x"])
    assert result.exit_code == 2 and "no group 'x'" in result.stderr
