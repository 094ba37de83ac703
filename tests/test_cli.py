"""The command line, end to end on built-in and hand-made profiles (Typer's CliRunner)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from tests.harness import SCHEMA, assert_one_line_error, by_id, cli, run_json

ROOT = Path(__file__).resolve().parent.parent
run = cli


# -- built-in profiles -----------------------------------------------------------------------


def test_healthy_dgx_h100_passes_everything() -> None:
    code, doc = run_json("--profile", "dgx-h100")
    assert code == 0
    assert doc["baseline"]["name"] == "dgx-h100"  # auto-detected from DMI + GPU ids
    bad = {
        r["id"]: r["summary"] for r in doc["results"] if r["status"] in ("fail", "error", "warn")
    }
    assert bad == {}
    statuses = {r["id"]: r["status"] for r in doc["results"]}
    assert statuses["pcie.acs"] == "pass" and statuses["pcie.link"] == "pass"


def test_healthy_hgx_h200_passes_with_its_baseline() -> None:
    code, doc = run_json("--profile", "hgx-h200")
    assert doc["baseline"]["name"] == "hgx-h200"
    assert code == 0, [r for r in doc["results"] if r["status"] in ("fail", "error", "warn")]


def test_acs_enabled_fails_naming_bridge_and_evidence() -> None:
    code, doc = run_json("--profile", "dgx-h100-acs-enabled")
    assert code == 1
    acs = by_id(doc)["pcie.acs"]
    assert acs["status"] == "fail"
    failing = [f for f in acs["findings"] if f["status"] == "fail"]
    assert failing and all(
        re.search(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", f["subject"]) for f in failing
    )
    evidence = failing[0]["evidence"][0]
    assert "config" in evidence["source"]
    assert "ReqRedir" in evidence["observed"] and "CmpltRedir" in evidence["observed"]
    assert evidence["expected"] == "ReqRedir- CmpltRedir- EgressCtrl-"
    others = {r["id"]: r["status"] for r in doc["results"] if r["id"] != "pcie.acs"}
    assert "fail" not in others.values()
    assert any(v != "0x0000" for k, v in doc["facts"].items() if k.endswith(".acs_ctl"))


def test_iommu_translated_fails() -> None:
    code, doc = run_json("--profile", "dgx-h100-iommu-translated")
    assert code == 1
    iommu = by_id(doc)["iommu.mode"]
    assert iommu["status"] == "fail" and "DMA" in iommu["summary"]
    assert doc["facts"]["iommu.cmdline_mode"] == "translated"


def test_gpu_link_x8_fails_on_that_gpu_only() -> None:
    code, doc = run_json("--profile", "dgx-h100-gpu-link-x8")
    assert code == 1
    link = by_id(doc)["pcie.link"]
    assert link["status"] == "fail"
    failing = [f for f in link["findings"] if f["status"] == "fail"]
    assert any(f["subject"].startswith("GPU2 ") for f in failing)
    assert all("x8" in f["message"] for f in failing)


def test_unprivileged_skips_root_checks_and_passes() -> None:
    code, doc = run_json("--profile", "dgx-h100-unprivileged")
    results = by_id(doc)
    for check_id in ("pcie.acs", "pcie.devctl"):
        assert results[check_id]["status"] == "skip"
        assert "needs root" in results[check_id]["summary"]
    assert code == 0, [r for r in doc["results"] if r["status"] in ("fail", "error")]


def test_table_output_and_verbose_evidence() -> None:
    result = run("run", "--profile", "dgx-h100-acs-enabled", "--only", "pcie.acs", "-v")
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "pcie.acs" in result.stdout
    flat = " ".join(re.sub(r"[│┃]", " ", result.stdout).split())
    assert "(expected ReqRedir- CmpltRedir- EgressCtrl-)" in flat


def test_only_and_skip_select_checks() -> None:
    _, doc = run_json("--profile", "dgx-h100", "--only", "pcie.*", "--skip", "pcie.aer")
    ids = {r["id"] for r in doc["results"]}
    assert ids and all(i.startswith("pcie.") for i in ids) and "pcie.aer" not in ids
    _, doc = run_json("--profile", "dgx-h100", "--only", "tag:bios")
    assert {"pcie.acs", "host.bios"} <= {r["id"] for r in doc["results"]}


def test_junit_output_to_file(tmp_path: Path) -> None:
    out = tmp_path / "report.xml"
    result = run(
        "run", "--profile", "dgx-h100-acs-enabled", "--format", "junit", "--output", str(out)
    )
    assert result.exit_code == 1
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    case = next(c for c in suite.iter("testcase") if c.get("name") == "pcie.acs")
    assert case.find("failure") is not None


def test_set_overrides_a_parameter() -> None:
    _, doc = run_json(
        "--profile", "dgx-h100", "--only", "host.shm", "--set", "host.shm.min_gib=100000"
    )
    assert by_id(doc)["host.shm"]["status"] == "warn"


def test_strict_turns_warn_into_failure() -> None:
    args = (
        "run",
        "--profile",
        "dgx-h100",
        "--only",
        "host.shm",
        "--set",
        "host.shm.min_gib=100000",
    )
    assert run(*args).exit_code == 0
    assert run(*args, "--strict").exit_code == 1


def test_expected_gpus_missing_fails_once(tmp_path: Path) -> None:
    profile = tmp_path / "empty.json"
    profile.write_text(
        json.dumps({"description": "no devices", "files": {"/proc/cmdline": "ro\n"}})
    )
    code, doc = run_json("--profile", str(profile), "--baseline", "dgx-h100")
    results = by_id(doc)
    assert code == 1
    assert results["node.gpu_count"]["status"] == "fail"
    assert results["pcie.bar1"]["status"] == "skip"
    assert "node.gpu_count" in results["pcie.bar1"]["summary"]
    failed = {r["id"] for r in doc["results"] if r["status"] == "fail"}
    assert {"node.gpu_count", "node.nic_count"} <= failed
    assert not {i for i in failed if i.startswith(("pcie.", "iommu.")) or i.endswith("affinity")}


def test_garbage_in_one_device_file_is_that_device_error(tmp_path: Path) -> None:
    from preflight.profile import resolve

    base = resolve("dgx-h100")
    gpu_link = (
        next(
            p
            for p in base["files"]
            if p.endswith("/max_link_width") and "/0000:18:00.0/max_link_width" in p
        )
        if any("/0000:18:00.0/max_link_width" in p for p in base["files"])
        else next(p for p in sorted(base["files"]) if p.endswith("/max_link_width"))
    )
    profile = tmp_path / "garbage.json"
    profile.write_text(
        json.dumps({"extends": "dgx-h100", "files": {gpu_link: "\x00\xffgarbage\n"}})
    )
    code, doc = run_json("--profile", str(profile))
    link = by_id(doc)["pcie.link"]
    assert code == 1
    assert link["status"] == "error"
    errors = [f for f in link["findings"] if f["status"] == "error"]
    assert len(errors) == 1 and "max_link_width" in errors[0]["message"]
    assert sum(f["status"] == "pass" for f in link["findings"]) > 10
    assert "Traceback" not in json.dumps(doc)


# -- other commands --------------------------------------------------------------------------


def test_list_and_explain() -> None:
    result = run("list", "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    acs = next(r for r in rows if r["id"] == "pcie.acs")
    assert acs["needs"] == ["root"] and acs["params"] == {"allow_redirect": False}
    assert run("list").exit_code == 0
    explained = run("explain", "pcie.acs")
    assert explained.exit_code == 0
    for word in ("Why", "Reads", "Verdicts", "Fix", "allow_redirect"):
        assert word in explained.stdout
    assert "table [pcie.acs]" in explained.stdout  # not eaten as rich markup


def test_profiles_list_and_show_resolved() -> None:
    listed = run("profiles", "list")
    assert listed.exit_code == 0
    for name in ("dgx-h100", "hgx-h200", "dgx-h100-acs-enabled", "dgx-h100-unprivileged"):
        assert name in listed.stdout
    shown = run("profiles", "show", "dgx-h100-acs-enabled")
    data = json.loads(shown.stdout)
    assert "extends" not in data and data["files"]["/proc/cmdline"]


def test_baselines_list_and_show() -> None:
    assert "dgx-h100" in run("baselines", "list").stdout
    data = json.loads(run("baselines", "show", "hgx-h200").stdout)
    assert data["params"]["pcie.bar1"]["min_bar1_gib"] == 256
    assert data["params"]["pcie.link"]["gpu_width"] == 16  # inherited from dgx-h100


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.startswith("preflight ")


# -- bad input: one line on stderr, the right exit code ----------------------------------------


def test_unknown_check_id_in_only_is_usage_error() -> None:
    assert_one_line_error(run("run", "--profile", "dgx-h100", "--only", "pcie.acss"), 2, "pcie.acs")


def test_unknown_explain_id() -> None:
    assert_one_line_error(run("explain", "pcie.asc"), 2, "did you mean")


def test_bad_format_is_usage_error() -> None:
    assert_one_line_error(run("run", "--profile", "dgx-h100", "--format", "xml"), 2, "--format")


def test_missing_profile_path(tmp_path: Path) -> None:
    assert_one_line_error(run("run", "--profile", str(tmp_path / "nope.json")), 3, "nope.json")


def test_unknown_profile_name_suggests() -> None:
    assert_one_line_error(run("run", "--profile", "dgx-h10"), 3, "did you mean")


def test_malformed_profile_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"files": {"/proc/cmdline": "x"')
    assert_one_line_error(run("run", "--profile", str(bad)), 3, "invalid JSON")


def test_extends_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"extends": "b.json"}))
    (tmp_path / "b.json").write_text(json.dumps({"extends": "a.json"}))
    assert_one_line_error(run("run", "--profile", str(tmp_path / "a.json")), 3, "cycle")


def test_malformed_baseline_toml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[pcie.link\ngpu_width = 16\n")
    assert_one_line_error(
        run("run", "--profile", "dgx-h100", "--baseline", str(bad)), 3, "invalid TOML"
    )


def test_baseline_unknown_check_and_param(tmp_path: Path) -> None:
    bad = tmp_path / "typo.toml"
    bad.write_text("[pcie.lnk]\ngpu_width = 16\n")
    assert_one_line_error(
        run("run", "--profile", "dgx-h100", "--baseline", str(bad)), 3, "pcie.link"
    )
    bad.write_text("[pcie.link]\ngpu_widht = 16\n")
    assert_one_line_error(
        run("run", "--profile", "dgx-h100", "--baseline", str(bad)), 3, "gpu_width"
    )


def test_missing_baseline_path(tmp_path: Path) -> None:
    assert_one_line_error(
        run("run", "--profile", "dgx-h100", "--baseline", str(tmp_path / "x.toml")), 3
    )


def test_bad_set_values() -> None:
    assert_one_line_error(
        run("run", "--profile", "dgx-h100", "--set", "pcie.aer.max_correctable=lots"), 3, "integer"
    )
    assert_one_line_error(
        run("run", "--profile", "dgx-h100", "--set", "pcie.aerr.max_correctable=1"), 3, "pcie.aer"
    )
    assert_one_line_error(
        run("run", "--profile", "dgx-h100", "--set", "nonsense"), 3, "CHECK_ID.PARAM=VALUE"
    )


def test_bad_env_option() -> None:
    assert_one_line_error(run("run", "--profile", "dgx-h100", "--env", "NOEQUALS"), 3, "NAME=VALUE")


def test_unwritable_output(tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "r.json"
    assert_one_line_error(
        run("run", "--profile", "dgx-h100", "--output", str(out)), 2, "cannot write"
    )


# -- this machine, as a real process -----------------------------------------------------------


def test_live_run_as_a_process_reports_valid_json() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "preflight", "run", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["host"]["profile"] is None
    assert not [r for r in doc["results"] if r["status"] == "error"]


@pytest.mark.parametrize("argv", [["run", "--timeout", "0"], ["run", "--deadline", "-1"]])
def test_nonpositive_time_bounds_are_usage_errors(argv: list[str]) -> None:
    assert_one_line_error(run(*argv, "--profile", "dgx-h100"), 2, "positive")


def test_list_and_explain_show_which_check_provides_a_capability() -> None:
    rows = json.loads(cli("list", "--format", "json").stdout)
    provides = {r["id"]: r["provides"] for r in rows if r["provides"]}
    assert provides == {
        "gpu.nvml_available": ["nvml"],
        "node.gpu_count": ["gpu"],
        "node.nic_count": ["nic"],
    }
    assert "provides: gpu" in cli("explain", "node.gpu_count").stdout
    assert "provides:" not in cli("explain", "pcie.acs").stdout
