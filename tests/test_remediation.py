"""Remediation classes: every failing or warning finding says what to do (a class and a text),
the node's class is the strongest, a baseline may change a check's class or severity, and the
class reaches every output (table, JSON, JUnit, Prometheus, the Slurm drain reason, compare)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from preflight.baseline import builtin_names, load
from preflight.checks.xid import judge_xids
from preflight.cluster import aggregate, html, sources
from preflight.cluster import compare as comparison
from preflight.cluster.failures import by_action
from preflight.cluster.record import from_document
from preflight.errors import ConfigError
from preflight.execute import RunOptions, execute
from preflight.inventory.xid import parse_xids
from preflight.model import (
    ACTIONS,
    Action,
    CheckResult,
    Evidence,
    Finding,
    Report,
    Status,
    Verdict,
    strongest,
)
from preflight.output import RenderOptions, renderers
from preflight.profile import builtin_names as builtin_profiles
from preflight.registry import NoParams, Registry, check, discover
from preflight.remediation import Override, judged, readme_table
from preflight.slurm import CallResult, carry_out, drain_reason, failing_action, failing_checks
from tests.cluster_reports import write_fleet
from tests.harness import cli, run_json

NEEDS_ACTION = (Status.FAIL, Status.WARN)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def registry() -> Registry:
    return discover(include_plugins=False)


# -- the classes ------------------------------------------------------------------------------


def test_classes_weakest_first_and_strongest_wins() -> None:
    assert [a.value for a in ACTIONS] == [
        "none",
        "monitor",
        "restart-job",
        "fix-config",
        "reset-gpu",
        "reboot",
        "replace",
    ]
    assert strongest([Action.MONITOR, Action.REPLACE, Action.FIX_CONFIG]) is Action.REPLACE
    assert strongest([Action.RESTART_JOB, Action.FIX_CONFIG]) is Action.FIX_CONFIG
    assert strongest([None, Action.NONE]) is Action.NONE
    assert strongest([]) is None


def test_every_check_declares_its_class(registry: Registry) -> None:
    missing = [s.id for s in registry if s.action is None]
    assert not missing, missing
    for spec in registry:
        assert spec.actions[0] is spec.action, spec.id
        assert spec.fix, f"{spec.id}: no default action text (Fix section or action_text)"


def test_readme_lists_the_classes_of_every_check(registry: Registry) -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme_table(registry)
    assert table in readme, "README's action class table is stale: paste readme_table()"


def test_list_shows_the_classes(registry: Registry) -> None:
    result = cli("list", "--format", "json")
    assert result.exit_code == 0
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert rows["xid.events"]["action"] == "reset-gpu"
    assert rows["xid.events"]["actions"][0] == "replace"  # strongest first
    assert rows["pcie.acs"]["actions"] == ["fix-config"]


# -- every failing or warning finding is classed, on every built-in profile ------------------


def assert_classed(result: CheckResult, registry: Registry) -> None:
    """A failing or warning result has a class, and so has each such finding, one the check
    declares, with a text."""
    spec = registry.specs[result.id]
    if result.status not in NEEDS_ACTION:
        assert result.action is None, result.id
        return
    assert result.action in spec.actions, (result.id, result.action)
    assert result.action_text, result.id
    for f in result.findings:
        if f.status in NEEDS_ACTION:
            assert f.action in spec.actions, (result.id, f.subject, f.action)
            assert f.action_text, (result.id, f.subject)


PROFILES = sorted(builtin_profiles())


@pytest.mark.parametrize("profile", PROFILES)
def test_every_failing_or_warning_finding_of_a_profile_run_is_classed(
    profile: str, registry: Registry
) -> None:
    report = execute(RunOptions(profile=profile, nvml_timeout_s=10.0), registry)
    for r in report.results:
        if r.id in registry.specs:
            assert_classed(r, registry)
    bad = [r for r in report.results if r.status in NEEDS_ACTION and r.id in registry.specs]
    assert (report.action is None) == (not bad), profile
    if bad:
        assert report.action is strongest(r.action for r in bad)
        assert report.action_checks and all(
            next(r for r in bad if r.id == i).action is report.action for i in report.action_checks
        )


@pytest.mark.parametrize(
    ("profile", "check_id", "action", "words"),
    [
        # The switch port first, then the GPU it feeds.
        (
            "dgx-h100-gpu-link-x8",
            "pcie.link",
            Action.REPLACE,
            "downstream port 0000:39:00.0 to GPU2 0000:3a:00.0",
        ),
        ("dgx-h100-acs-enabled", "pcie.acs", Action.FIX_CONFIG, "ACS"),
        # Xid 79 (fallen off the bus): NVIDIA's catalogue says reboot.
        ("dgx-h100-xid-79", "xid.events", Action.REBOOT, "reboot the node (GPU3 0000:5d:00.0"),
        # phys_state 3: Disabled (by the switch or ibportstate): enable it, no part to swap.
        ("dgx-h100-ib-port-down", "rdma.port_state", Action.FIX_CONFIG, "enable mlx5_3/1"),
        ("dgx-h100-ib-symbol-errors", "rdma.counters", Action.MONITOR, "watch mlx5_"),
        ("dgx-h100-nic-fw-mismatch", "rdma.fw_version", Action.FIX_CONFIG, "mlxfwmanager"),
    ],
)
def test_the_action_names_what_to_do_on_this_device(
    profile: str, check_id: str, action: Action, words: str, registry: Registry
) -> None:
    report = execute(RunOptions(profile=profile, only=(check_id,)), registry)
    (result,) = report.results
    assert result.action is action, (result.action, result.action_text)
    assert result.action_text and words in result.action_text, result.action_text


# -- the runner's classing (default, warning class, a finding's own, a findingless verdict) ---


@check(
    "demo.thing",
    title="demo",
    action=Action.REPLACE,
    warn_action=Action.MONITOR,
    actions=(Action.REBOOT,),
)
def _demo(inv: object, params: NoParams) -> Verdict:
    """Demo.

    ## Fix
    Reseat the thing. Then more.
    """
    return Verdict.skip("never run")


def _f(status: Status, action: Action | None = None, text: str | None = None) -> Finding:
    return Finding("dev0", status, "bad", (Evidence("x", 1, "0"),), action, text)


def test_judged_fills_the_check_default_and_keeps_a_findings_own() -> None:
    verdict = Verdict.from_findings(
        [
            _f(Status.FAIL),
            _f(Status.WARN),
            _f(Status.FAIL, Action.REBOOT, "reboot it"),
            _f(Status.PASS),
        ],
        ok="ok",
    )
    r = judged(_demo, verdict, 0.1)
    fail, warn, own, ok = r.findings
    assert (fail.action, fail.action_text) == (Action.REPLACE, "Reseat the thing")
    assert warn.action is Action.MONITOR and "watch dev0" in (warn.action_text or "")
    assert (own.action, own.action_text) == (Action.REBOOT, "reboot it")
    assert ok.action is None and "action" not in ok.to_dict()
    assert r.action is Action.REPLACE and r.action_text == "Reseat the thing"
    assert r.to_dict()["action"] == "replace"


def test_a_verdict_without_findings_takes_the_check_class() -> None:
    r = judged(_demo, Verdict(Status.FAIL, "the benchmark failed"), 0.1)
    assert (r.action, r.action_text) == (Action.REPLACE, "Reseat the thing")
    assert judged(_demo, Verdict(Status.ERROR, "boom"), 0.1).action is None
    assert judged(_demo, Verdict.skip("no"), 0.1).action is None


def test_an_override_changes_class_and_severity_and_says_so() -> None:
    verdict = Verdict.from_findings(
        [_f(Status.FAIL), _f(Status.FAIL, Action.REBOOT, "reboot it")], ok="ok"
    )
    r = judged(
        _demo, verdict, 0.1, Override(Action.MONITOR, Status.WARN, Action.REPLACE, "baseline s")
    )
    changed, kept = r.findings
    assert (changed.status, changed.action) == (Status.WARN, Action.MONITOR)
    assert "baseline s made it warn/monitor, was fail/replace" in (changed.action_text or "")
    assert (kept.status, kept.action) == (Status.FAIL, Action.REBOOT)  # `when` left it
    assert r.status is Status.FAIL and r.action is Action.REBOOT
    everything = judged(_demo, verdict, 0.1, Override(None, Status.WARN, None, "baseline s"))
    assert everything.status is Status.WARN
    assert everything.summary.startswith("2 of 2 warn")  # the summary follows the new status
    assert {f.action for f in everything.findings} == {Action.REPLACE, Action.REBOOT}


# -- baseline [remediation."ID"] --------------------------------------------------------------


def _baseline(text: str, registry: Registry, tmp_path: Path) -> object:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return load(str(path), registry)


def test_baseline_remediation_tables_quoted_or_nested(registry: Registry, tmp_path: Path) -> None:
    b = _baseline(
        '[baseline]\nextends = "dgx-h100"\n'
        '[remediation."xid.events"]\naction = "monitor"\nwhen = "restart-job"\n'
        '[remediation.pcie.acs]\nseverity = "warn"\n',
        registry,
        tmp_path,
    )
    assert b.remediation["xid.events"].action is Action.MONITOR  # type: ignore[attr-defined]
    assert b.remediation["xid.events"].when is Action.RESTART_JOB  # type: ignore[attr-defined]
    assert b.remediation["pcie.acs"].severity is Status.WARN  # type: ignore[attr-defined]
    child = tmp_path / "child.toml"
    child.write_text('[baseline]\nextends = "site.toml"\n')
    assert set(load(str(child), registry).remediation) == {"xid.events", "pcie.acs"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[remediation."pcie.acss"]\naction = "monitor"', "did you mean 'pcie.acs'"),
        ('[remediation."pcie.acs"]\naction = "reset_gpu"', "did you mean 'reset-gpu'"),
        ('[remediation."pcie.acs"]\nsevrity = "warn"', "did you mean 'severity'"),
        ('[remediation."pcie.acs"]\nseverity = "warning"', "did you mean 'warn'"),
        ('[remediation."pcie.acs"]\nseverity = "pass"', "severity must be one of warn, fail"),
        ('[remediation."pcie.acs"]\nwhen = "fix-config"', "give an action, a severity"),
        (
            '[remediation."pcie.acs"]\naction = "none"\nwhen = "replace"',
            "pcie.acs never gives that class (it gives: fix-config)",
        ),
        ('[remediation."pcie.acs"]\naction = 3', "unknown action class 3"),
        ('remediation = "x"', "[remediation] must be a table"),
        ('[remediation]\n"pcie.acs" = "monitor"', "must be a table (action, severity, when)"),
    ],
)
def test_baseline_remediation_errors(
    table: str, message: str, registry: Registry, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as err:
        _baseline(table + "\n", registry, tmp_path)
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_builtin_baselines_change_nothing(registry: Registry) -> None:
    assert all(not load(n, registry).remediation for n in builtin_names())


def test_a_site_baseline_turns_a_failure_into_a_warning_end_to_end(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        '[baseline]\nextends = "dgx-h100"\n'
        '[remediation."rdma.port_state"]\nseverity = "warn"\naction = "monitor"\n'
    )
    code, doc = run_json("--profile", "dgx-h100-ib-port-down", "--only", "rdma.port_state")
    assert code == 1 and doc["summary"]["action"] == "fix-config"
    code, doc = run_json(
        "--profile",
        "dgx-h100-ib-port-down",
        "--only",
        "rdma.port_state",
        "--baseline",
        str(site),
    )
    (result,) = doc["results"]
    assert code == 0 and result["status"] == "warn" and result["action"] == "monitor"
    assert doc["summary"]["action"] == "monitor"
    assert f"baseline {site} made it warn/monitor, was fail/fix-config" in result["action_text"]


# -- outputs ------------------------------------------------------------------------------------


def _report() -> Report:
    results = (
        judged(
            _demo,
            Verdict.from_findings([_f(Status.WARN)], ok="ok"),
            0.01,
        ),
        CheckResult(
            "pcie.acs",
            "ACS",
            Status.FAIL,
            "bridge 0000:00:01.0: ReqRedir on",
            0.01,
            (_f(Status.FAIL, Action.FIX_CONFIG, "disable ACS on bridge 0000:00:01.0"),),
            action=Action.FIX_CONFIG,
            action_text="disable ACS on bridge 0000:00:01.0",
        ),
    )
    return Report("0.1.0", "n1", "2026-11-29T12:00:00+00:00", 1.0, "b", "built-in:b", None, results)


def _render(fmt: str, report: Report, **kw: bool) -> str:
    out = io.StringIO()
    renderers()[fmt](report, out, RenderOptions(width=200, **kw))
    return out.getvalue()


def test_table_shows_row_actions_the_node_action_and_explain() -> None:
    text = _render("table", _report())
    assert "→ fix-config: disable ACS on bridge 0000:00:01.0" in text
    assert "→ monitor: keep the node in service and watch dev0" in text
    assert "action: fix-config (pcie.acs): disable ACS on bridge 0000:00:01.0" in text
    assert "why and how to fix: preflight explain pcie.acs" in text
    assert text.rstrip().splitlines()[-1] == "failed: pcie.acs"  # the Prolog's tail still works
    verbose = _render("table", _report(), verbose=True)
    assert "        → fix-config: disable ACS on bridge 0000:00:01.0" in verbose


def test_junit_and_prometheus_carry_the_class() -> None:
    xml = _render("junit", _report())
    assert 'message="bridge 0000:00:01.0: ReqRedir on [action: fix-config]"' in xml
    assert "action: fix-config: disable ACS on bridge 0000:00:01.0" in xml
    assert "why and how to fix: preflight explain pcie.acs" in xml
    assert '<property name="action" value="fix-config" />' in xml
    prom = _render("prometheus", _report())
    assert 'preflight_node_action{action="fix-config"} 1' in prom
    assert 'preflight_node_action{action="replace"} 0' in prom
    assert 'preflight_check_action{check="pcie.acs",action="fix-config"} 1' in prom
    assert 'preflight_check_action{check="demo.thing",action="monitor"} 1' in prom


def test_json_summary_names_the_action_and_its_checks() -> None:
    doc = json.loads(_render("json", _report()))
    assert doc["summary"]["action"] == "fix-config"
    assert doc["summary"]["action_checks"] == ["pcie.acs"]
    finding = doc["results"][1]["findings"][0]
    assert finding["action"] == "fix-config" and finding["action_text"].startswith("disable")


# -- Slurm ------------------------------------------------------------------------------------


def test_drain_reason_starts_with_the_class_and_names_its_checks_first() -> None:
    report = _report()
    failing = failing_checks(report.results, strict=True)
    assert failing == ["pcie.acs", "demo.thing"]  # fix-config outranks monitor
    action = failing_action(report.results, failing)
    assert drain_reason(failing, action) == "preflight: fix-config pcie.acs,demo.thing"
    many = [f"area.check_number_{i}" for i in range(40)]
    cut = drain_reason(many, Action.RESET_GPU)
    assert len(cut) <= 200 and cut.startswith("preflight: reset-gpu area.check_number_0,")


def test_carry_out_drains_with_the_class(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def runner(argv: object, timeout_s: float) -> CallResult:
        calls.append(list(argv))  # type: ignore[call-overload]
        return CallResult(True, "NodeName=n1 State=IDLE\n")

    said: list[str] = []
    carry_out(
        "n1",
        False,
        ["gpu.row_remap"],
        drain=True,
        resume=False,
        dry_run=False,
        runner=runner,
        say=said.append,
        remedy=Action.RESET_GPU,
    )
    assert calls[-1][-1] == "Reason=preflight: reset-gpu gpu.row_remap"


@pytest.mark.parametrize(
    ("xid", "status", "action", "words"),
    [
        (
            48,
            Status.FAIL,
            Action.RESET_GPU,
            "reset GPU2 0000:3a:00.0 (`nvidia-smi -r -i 0000:3a:00.0`)",
        ),
        (79, Status.FAIL, Action.REBOOT, "reboot the node (GPU2 0000:3a:00.0 logged it)"),
        (45, Status.WARN, Action.RESTART_JOB, "restart the job; GPU2 0000:3a:00.0 stays usable"),
        (999, Status.WARN, Action.MONITOR, "watch GPU2 0000:3a:00.0"),
    ],
)
def test_an_xid_takes_the_class_of_its_catalogue_action(
    xid: int, status: Status, action: Action, words: str
) -> None:
    events = parse_xids([f"NVRM: Xid (PCI:0000:3a:00): {xid}, pid=1234, name=python, details"])
    (finding,) = judge_xids(events, {"0000:3a:00.0": "GPU2 0000:3a:00.0"}, ())
    assert (finding.status, finding.action) == (status, action)
    assert words in (finding.action_text or ""), finding.action_text


def test_the_readme_row_remap_example_watches_a_pending_remap(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        '[baseline]\nextends = "dgx-h100"\n'
        '[remediation."gpu.row_remap"]\nwhen = "reset-gpu"\naction = "monitor"\n'
        'severity = "warn"\n'
    )
    args = ("--profile", "dgx-h100-row-remap-pending", "--only", "gpu.row_remap")
    code, doc = run_json(*args)
    assert code == 1 and doc["summary"]["action"] == "reset-gpu"
    (pending,) = [f for f in doc["results"][0]["findings"] if f["status"] == "fail"]
    assert pending["action"] == "reset-gpu"
    assert pending["action_text"].startswith("drain the node, reset GPU")
    code, doc = run_json(*args, "--baseline", str(site))
    (result,) = doc["results"]
    assert code == 0 and result["status"] == "warn" and result["action"] == "monitor"
    assert result["summary"].startswith("GPU"), result["summary"]


# -- compare ------------------------------------------------------------------------------------

ACTION_FLEET = [
    ("n1", "dgx-h100"),
    ("n2", "dgx-h100-acs-enabled"),
    ("n3", "dgx-h100-row-remap-pending"),
    ("n4", "dgx-h100-gpu-missing"),
    ("n5", "dgx-h100-acs-enabled"),
]


def test_compare_groups_failing_nodes_by_action_strongest_first(tmp_path: Path) -> None:
    write_fleet(tmp_path / "r", ACTION_FLEET)
    result = cli("compare", str(tmp_path / "r"), "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    schema = json.loads((ROOT / "preflight" / "schema" / "compare.schema.json").read_text())
    jsonschema.validate(doc, schema)
    groups = doc["failures"]["by_action"]
    ranks = [Action(g["action"]).rank for g in groups]
    assert ranks == sorted(ranks, reverse=True)
    assert groups == [
        {"action": "reboot", "nodes": ["n4"]},  # a GPU the driver did not initialise
        {"action": "reset-gpu", "nodes": ["n3"]},  # row remap pending
        {"action": "fix-config", "nodes": ["n2", "n5"]},  # ACS redirect: a BIOS setting
    ]
    nodes = {n["hostname"]: n["action"] for n in doc["failures"]["by_node"]}
    assert nodes == {"n2": "fix-config", "n3": "reset-gpu", "n4": "reboot", "n5": "fix-config"}
    table = cli("compare", str(tmp_path / "r")).stdout
    section = table.split("Failing nodes by action")[1].split("\nFailing nodes")[0]
    rows = [line.split("│")[1:4] for line in section.splitlines() if line.startswith("│")]
    assert [[c.strip() for c in r] for r in rows] == [
        ["reboot", "1", "n4"],
        ["reset-gpu", "1", "n3"],
        ["fix-config", "2", "n[2,5]"],
    ]


def test_the_fleet_page_groups_by_action_and_keeps_each_findings_text(tmp_path: Path) -> None:
    write_fleet(tmp_path / "r", ACTION_FLEET)
    fleet = aggregate.collect(sources.expand([str(tmp_path / "r")], None), jobs=1, detail=True)
    m = html.model(comparison.compare(fleet, "baseline"))
    names = [n[0] for n in m["nodes"]]
    assert [(a["action"], [names[k] for k in a["nodes"]]) for a in m["by_action"]] == [
        ("reboot", ["n4"]),
        ("reset-gpu", ["n3"]),
        ("fix-config", ["n2", "n5"]),
    ]
    remap = m["checks"].index("gpu.row_remap")
    (detail,) = [d for d in m["details"][names.index("n3")] if d[0] == remap]
    assert detail[3] == "reset-gpu"
    (pending,) = [f for f in detail[4] if f["status"] == "fail"]
    assert pending["action"] == "reset-gpu"
    assert pending["action_text"].startswith("drain the node, reset GPU1 0000:2a:00.0")


def test_nodes_without_a_class_come_last_and_unknown_names_are_ignored() -> None:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "tool": {"name": "preflight", "version": "x"},
        "host": {"hostname": "n9", "profile": None},
        "summary": {"status": "fail"},
        "results": [
            {"id": "a.b", "status": "error", "summary": "boom", "findings": []},
            {"id": "c.d", "status": "fail", "summary": "x", "action": "rm -rf /", "findings": []},
        ],
        "facts": {},
    }
    unclassed, _ = from_document(doc, "n9.json")
    assert unclassed.action is None
    doc["host"] = {"hostname": "n8", "profile": None}
    doc["results"][1]["findings"] = [{"status": "fail", "action": "reboot"}]
    classed, _ = from_document(doc, "n8.json")
    assert classed.action == "reboot"
    assert [(a, [r.name for r in rs]) for a, rs in by_action([unclassed, classed])] == [
        ("reboot", ["n8"]),
        (None, ["n9"]),
    ]
