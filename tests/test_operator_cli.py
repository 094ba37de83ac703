"""The command line as an operator scanning many nodes meets it (issue 13): failures first,
what was not checked, one error style, precise messages."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from preflight.cli import app
from preflight.hints import roce_hint
from preflight.inventory.inventory import PartHung
from preflight.runner import describe_error
from preflight.suggest import ranked
from preflight.wording import count as plural
from tests.harness import SCHEMA, assert_one_line_error, by_id, cli, run_json, runner

ROW_STATUSES = ("ERROR", "FAIL", "WARN", "PASS", "SKIP")


@pytest.fixture(autouse=True)
def _restore_safepath(monkeypatch: pytest.MonkeyPatch) -> None:
    # `compare` in this process sets PYTHONSAFEPATH for its workers; undone after each test so
    # later tests' subprocesses (tools/*.py importing their neighbours) start as they would.
    monkeypatch.setenv("PYTHONSAFEPATH", "")


def row_statuses(text: str) -> list[str]:
    cells = [line.split()[1] for line in text.splitlines() if line.startswith("│")]
    return [c for c in cells if c != "│"]  # continuation lines of a folded summary


def test_the_failing_check_is_the_first_row() -> None:
    result = cli("run", "--profile", "dgx-h100-acs-enabled")
    assert result.exit_code == 1
    statuses = row_statuses(result.stdout)
    assert statuses[0] == "FAIL"
    assert statuses == sorted(statuses, key=ROW_STATUSES.index)
    assert "failed: pcie.acs" in result.stdout


@pytest.mark.parametrize("flag", ["--problems", "--quiet", "-q"])
def test_problems_shows_only_what_is_not_passing(flag: str) -> None:
    result = cli("run", "--profile", "dgx-h100-acs-enabled", flag)
    assert result.exit_code == 1
    assert row_statuses(result.stdout) == ["FAIL"]
    assert "pcie.acs" in result.stdout


def test_problems_on_a_healthy_node_says_so_in_one_line() -> None:
    result = cli("run", "--profile", "dgx-h100", "-q")
    assert result.exit_code == 0
    assert row_statuses(result.stdout) == []
    assert "no problems" in result.stdout.splitlines()[0]


# -- unchecked is not healthy ----------------------------------------------------------------

UNPRIVILEGED = ("run", "--profile", "dgx-h100-unprivileged")


def test_essential_checks_that_could_not_run_are_named_in_the_footer() -> None:
    result = cli(*UNPRIVILEGED)
    assert result.exit_code == 0  # as before: a warning to read, not a failure
    assert result.stdout.splitlines()[-1] == "not checked: pcie.acs, pcie.devctl: needs root"


def test_strict_turns_unchecked_essential_checks_into_a_failure() -> None:
    result = cli(*UNPRIVILEGED, "--strict", "-q")
    assert result.exit_code == 1
    assert row_statuses(result.stdout) == ["SKIP", "SKIP"]  # -q keeps what was not checked
    assert result.stdout.splitlines()[-2].startswith("FAIL: ")


def test_the_json_report_carries_what_was_not_checked() -> None:
    code, doc = run_json("--profile", "dgx-h100-unprivileged", "--strict")
    assert code == 1
    assert [u["id"] for u in doc["summary"]["unchecked"]] == ["pcie.acs", "pcie.devctl"]
    assert doc["summary"]["unchecked_fails"] is True and doc["summary"]["status"] == "fail"
    code, doc = run_json("--profile", "dgx-h100")  # as root: everything essential ran
    assert code == 0 and doc["summary"]["unchecked"] == []


def test_a_baseline_can_make_unchecked_essential_checks_fail(tmp_path: Path) -> None:
    toml = tmp_path / "site.toml"
    toml.write_text('[baseline]\nextends = "dgx-h100"\nunchecked_fails = true\n')
    result = cli(*UNPRIVILEGED, "--baseline", str(toml))
    assert result.exit_code == 1
    assert "not checked: pcie.acs, pcie.devctl: needs root" in result.stdout
    toml.write_text('[baseline]\nextends = "dgx-h100"\nessential = ["pcie.acs", "xid.events"]\n')
    result = cli(*UNPRIVILEGED, "--baseline", str(toml), "--strict")
    assert result.exit_code == 1
    assert "not checked: pcie.acs: needs root" in result.stdout  # devctl no longer essential


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ('essential = ["pcie.acss"]', "unknown check 'pcie.acss' (did you mean 'pcie.acs'?)"),
        ('essential = "pcie.acs"', "baseline.essential must be a list of check ids"),
        ('unchecked_fails = "yes"', "baseline.unchecked_fails must be true or false"),
    ],
)
def test_a_bad_essential_setting_is_a_config_error(tmp_path: Path, meta: str, needle: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(f"[baseline]\n{meta}\n")
    assert_one_line_error(cli(*UNPRIVILEGED, "--baseline", str(toml)), 3, needle)


# -- precise messages ------------------------------------------------------------------------


def test_an_ignored_xid_is_said_not_hidden() -> None:
    code, doc = run_json(
        "--profile", "dgx-h100-xid-79", "--only", "xid.events", "--set", "xid.events.ignore=79"
    )
    assert code == 0
    summary = by_id(doc)["xid.events"]["summary"]
    assert re.fullmatch(r"1 Xid ignored \(79\) in \d+ kernel log lines since boot", summary)


def test_the_deadline_message_names_the_deadline_given() -> None:
    code, doc = run_json("--profile", "dgx-h100", "--deadline", "0.001")
    assert code == 1
    summaries = {r["summary"] for r in doc["results"] if r["status"] == "error"}
    assert "not run: the run's --deadline 0.001 s passed" in summaries


@pytest.mark.parametrize(
    ("n", "noun", "text"),
    [(0, "node", "0 nodes"), (1, "node", "1 node"), (90473, "report", "90,473 reports")],
)
def test_counted_nouns(n: int, noun: str, text: str) -> None:
    assert plural(n, noun) == text


def test_an_abandoned_part_is_described_without_its_class_name() -> None:
    err = PartHung("the pci inventory was abandoned: an earlier reader hung building it")
    assert describe_error(err) == str(err)
    assert describe_error(KeyError("x")) == "KeyError: 'x'"  # a bug keeps its class


def test_compare_counts_in_the_singular(tmp_path: Path) -> None:
    result = cli("run", "--profile", "dgx-h100", "--format", "json")
    doc = json.loads(result.stdout)
    (tmp_path / "a.json").write_text(json.dumps(doc))
    older = dict(doc, started_at="2020-01-01T00:00:00+00:00")
    (tmp_path / "b.json").write_text(json.dumps(older))
    (tmp_path / "c.json").write_text("{")
    out = cli("compare", *(str(tmp_path / n) for n in ("a.json", "b.json", "c.json"))).stdout
    assert "preflight compare: 1 node from 3 reports" in out
    assert "1 older duplicate report left out" in out
    assert ": 0 of 1 node fail, 1 report unreadable; 0 facts drift on 0 nodes" in out


# -- one error style -------------------------------------------------------------------------

USAGE_ERRORS = [
    (("list", "--format", "xml"), 2, "unknown --format 'xml' (choose from table, json)"),
    (("run", "--profile", "dgx-h100", "--skip", "*"), 2, "--skip * leaves no check to run"),
    (
        ("run", "--profile", "dgx-h100", "--only", "pcie.acs", "--skip", "pcie.*"),
        2,
        "--skip pcie.* leaves no check to run of --only pcie.acs",
    ),
    (("run", "--bogus"), 2, "No such option: --bogus"),
    (("run", "--only", "pcie.acs,pcie.lnk"), 2, "no check matches 'pcie.lnk'"),
    (("profiles", "show", "dgx-h100-acs"), 3, "did you mean 'dgx-h100-acs-enabled'?"),
    (("baselines", "show", "dgx-h10"), 3, "did you mean 'dgx-h100'?"),
    (("explain", "pcie.acss"), 2, "did you mean 'pcie.acs'?"),
]


@pytest.mark.parametrize(("args", "code", "needle"), USAGE_ERRORS)
def test_usage_errors_are_one_line(args: tuple[str, ...], code: int, needle: str) -> None:
    assert_one_line_error(cli(*args), code, needle)


def test_only_and_skip_take_comma_lists() -> None:
    code, doc = run_json(
        "--profile", "dgx-h100", "--only", "pcie.acs,pcie.link,", "--only", "cpu.*"
    )
    assert code == 0
    ids = [r["id"] for r in doc["results"]]
    assert "pcie.acs" in ids and "pcie.link" in ids and "cpu.governor" in ids
    assert "pcie.aer" not in ids
    code, doc = run_json("--profile", "dgx-h100", "--only", "pcie.*", "--skip", "pcie.acs,pcie.aer")
    assert {"pcie.acs", "pcie.aer"}.isdisjoint(r["id"] for r in doc["results"])


@pytest.mark.parametrize(
    ("word", "choices", "best"),
    [
        (
            "dgx-h100-acs",
            ["dgx-h100", "dgx-h100-roce", "dgx-h100-acs-enabled"],
            "dgx-h100-acs-enabled",
        ),
        ("pcie.acss", ["pcie.acs", "pcie.aer"], "pcie.acs"),
        ("dgx-h10", ["dgx-h100", "hgx-h200"], "dgx-h100"),
        ("xyz", ["dgx-h100"], None),
    ],
)
def test_suggestions_rank_the_name_the_word_begins_first(
    word: str, choices: list[str], best: str | None
) -> None:
    assert next(iter(ranked(word, choices)), None) == best


# -- terminal conventions --------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """`preflight ARGS` with stdout on a real pseudo-terminal: what the terminal received."""
    main, child = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    full_env.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "preflight", *args],
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
        cwd=ROOT,
        env=full_env,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    return b"".join(chunks).decode("utf-8", "replace")


TERMINAL_RUN = ["run", "--profile", "dgx-h100-acs-enabled", "--only", "pcie.acs"]


@pytest.mark.parametrize(
    ("env", "colored"),
    [({}, True), ({"NO_COLOR": "1"}, False), ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, False)],
)
def test_colour_on_a_terminal_unless_no_color(env: dict[str, str], colored: bool) -> None:
    text = on_a_terminal(TERMINAL_RUN, {"COLUMNS": "100", **env})
    assert "pcie.acs" in text
    assert ("\x1b[" in text) is colored


def test_force_color_colours_a_pipe() -> None:
    result = cli(*TERMINAL_RUN)
    assert "\x1b[" not in result.stdout
    forced = runner.invoke(app, TERMINAL_RUN, env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert "\x1b[" in forced.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["explain", "pcie.acs"],
        ["run", "--profile", "dgx-h100-acs-enabled", "--only", "pcie.*"],
        ["run", "--help"],
        ["--help"],
    ],
)
@pytest.mark.parametrize("columns", [80, 60])
def test_every_command_fits_columns(args: list[str], columns: int) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": str(columns)})
    assert result.exit_code in (0, 1), result.output
    lines = result.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= columns, result.stdout
    if args[0] != "run" or "--help" in args:
        return
    assert all(line == line.rstrip() for line in lines)


def test_compare_fits_columns(tmp_path: Path) -> None:
    doc = cli("run", "--profile", "dgx-h100-acs-enabled", "--format", "json").stdout
    (tmp_path / "a.json").write_text(doc)
    result = runner.invoke(app, ["compare", str(tmp_path / "a.json")], env={"COLUMNS": "72"})
    assert result.exit_code == 1
    assert max(len(line) for line in result.stdout.splitlines()) <= 72


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(flag: str) -> None:
    result = cli(flag)
    assert result.exit_code == 0 and re.fullmatch(r"preflight \d+\.\d+\.\d+\S*\n", result.stdout)


def test_help_shows_flags_without_a_type_and_values_by_their_word() -> None:
    text = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "100"}).stdout
    assert "<bool>" not in text and "<str>" not in text and "<float>" not in text
    assert re.search(r"--profile\s+TEXT\s", text)
    assert re.search(r"--strict\s+--no-strict\s{3,}Warnings", text)


COMPARE_SCHEMA = json.loads((ROOT / "preflight/schema/compare.schema.json").read_text())


# -- automation round trips ------------------------------------------------------------------


def node_report(profile: str, hostname: str, fmt: str = "json") -> str:
    result = cli("run", "--profile", profile, "--format", fmt)
    assert result.exit_code in (0, 1), result.output
    return result.stdout.replace('"dgx-h100-01"', json.dumps(hostname))


def test_jsonl_is_one_line_per_report_and_the_same_document() -> None:
    line = node_report("dgx-h100", "n001", "jsonl")
    assert line.count("\n") == 1 and line.endswith("\n")
    doc = json.loads(line)
    jsonschema.validate(doc, SCHEMA)
    assert doc["host"]["hostname"] == "n001"


def test_compare_reads_concatenated_json_documents_and_json_lines_mixed() -> None:
    stream = (
        node_report("dgx-h100", "n001")  # indented, as `run --format json` writes
        + node_report("dgx-h100-acs-enabled", "n002")
        + node_report("dgx-h100", "n003", "jsonl")
        + "\n"
        + node_report("dgx-h100-ib-symbol-errors", "n004", "jsonl")
    )
    result = runner.invoke(app, ["compare", "-", "--format", "json"], input=stream)
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, COMPARE_SCHEMA)
    assert doc["nodes"] == 4 and doc["unreadable"] == []
    assert [n["hostname"] for n in doc["failures"]["by_node"]] == ["n002"]
    assert [n["hostname"] for n in doc["warnings"]["nodes"]] == ["n004"]


def test_an_unfinished_document_costs_only_itself() -> None:
    whole = node_report("dgx-h100", "n001")
    cut = whole[: len(whole) // 2].rsplit("\n", 1)[0] + "\n"
    stream = cut + node_report("dgx-h100", "n002") + "not json\n"
    result = runner.invoke(app, ["compare", "-"], input=stream)
    assert result.exit_code == 1
    assert "UNREADABLE <stdin>:1: cannot read: a JSON document that never ends" in result.stdout
    assert "2 nodes" not in result.stdout and "1 node from 3 reports" in result.stdout


def test_compare_names_the_nodes_with_warnings() -> None:
    stream = node_report("dgx-h100-ib-symbol-errors", "n004") + node_report("dgx-h100", "n001")
    result = runner.invoke(app, ["compare", "-"], input=stream, env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "warnings on 1 node: n004 (`run -q` there says which)" in result.stdout


# -- RoCE nodes ------------------------------------------------------------------------------

ROCE_CASES = [
    # (link layers, expected, baseline, Ethernet baselines, hint or None)
    (
        ["Ethernet"] * 8,
        "InfiniBand",
        "dgx-h100",
        ["dgx-h100-roce"],
        "--baseline dgx-h100-roce fits",
    ),
    (["Ethernet"] * 8, "InfiniBand", "hgx-h200", ["dgx-h100-roce"], 'expected = "Ethernet"'),
    (["Ethernet", "InfiniBand"], "InfiniBand", "dgx-h100", ["dgx-h100-roce"], None),
    (["Ethernet"] * 2, "Ethernet", "dgx-h100-roce", ["dgx-h100-roce"], None),
    ([], "InfiniBand", "dgx-h100", ["dgx-h100-roce"], None),
]


@pytest.mark.parametrize(("layers", "expected", "baseline", "ethernet", "hint"), ROCE_CASES)
def test_roce_hint(
    layers: list[str], expected: str, baseline: str, ethernet: list[str], hint: str | None
) -> None:
    said = roce_hint(layers, expected, baseline, ethernet)
    assert (said is None) == (hint is None)
    assert hint is None or (said is not None and said.endswith(hint))


def test_a_roce_node_on_the_detected_infiniband_baseline_is_told_which_fits() -> None:
    result = cli("run", "--profile", "dgx-h100-roce", "-q")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == (
        "hint: every RDMA port (8) is Ethernet (RoCE) and baseline dgx-h100 expects "
        "InfiniBand: --baseline dgx-h100-roce fits"
    )
    code, doc = run_json("--profile", "dgx-h100-roce")
    assert doc["summary"]["hints"] and "dgx-h100-roce" in doc["summary"]["hints"][0]
    code, doc = run_json("--profile", "dgx-h100-roce", "--baseline", "dgx-h100-roce")
    assert code == 0 and doc["summary"]["hints"] == []
