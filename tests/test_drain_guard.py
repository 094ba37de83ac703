"""The drain circuit breaker's parts: the limit, the sinfo parser (on real sinfo output and on
hostile text), the count per scope, the decision, and `carry_out` with a fake runner."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preflight import drain_guard
from preflight.cli import app
from preflight.drain_guard import DrainLimit, SinfoUnreadable, parse_limit, parse_sinfo
from preflight.errors import UsageError
from preflight.slurm import CallResult, carry_out
from tests.harness import assert_one_line_error

REAL = Path(__file__).parent / "data" / "real" / "slurm"
CAPTURE = (REAL / "sinfo-node-partition-state-reason_slurm-22.05.8.txt").read_text()
SHOW_IDLE = "NodeName=g2 Arch=x86_64\n   State=IDLE ThreadsPerCore=1 TmpDisk=0\n"

LIMITS = [
    ("5", DrainLimit(count=5)),
    (" 0 ", DrainLimit(count=0)),
    ("10%", DrainLimit(percent=10)),
    ("100%", DrainLimit(percent=100)),
]
BAD_LIMITS = ["", "-1", "5.5", "101%", "10 %", "ten", "%", "1e3", "9999999999", "5%%"]


@pytest.mark.parametrize(("text", "limit"), LIMITS)
def test_parse_limit(text: str, limit: DrainLimit) -> None:
    assert parse_limit(text) == limit


@pytest.mark.parametrize("text", BAD_LIMITS)
def test_parse_limit_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="--max-drained"):
        parse_limit(text)


@pytest.mark.parametrize(
    ("limit", "total", "nodes"),
    [(DrainLimit(count=2), 5, 2), (DrainLimit(percent=60), 5, 3), (DrainLimit(percent=10), 9, 0)],
)
def test_limit_in_nodes_rounds_down(limit: DrainLimit, total: int, nodes: int) -> None:
    assert limit.nodes(total) == nodes


def test_real_capture_parses_to_its_ground_truth() -> None:
    rows = parse_sinfo(CAPTURE)
    assert [(r.name, r.partition) for r in rows] == [
        ("c1", "debug"),
        ("c2", "hidden"),
        ("g1", "gpu"),
        ("g2", "gpu"),
        ("g3", "gpu"),
        ("g4", "gpu"),
        ("g4", "debug"),
    ]
    by_preflight = [r.name for r in rows if drain_guard.by_preflight(r, "preflight:")]
    assert by_preflight == ["c2", "g1", "g3"]  # g2: an operator; g4: down, not drained
    assert rows[3].reason == "maintenance: PSU swap | ticket 42"  # a `|` in the reason stays
    assert rows[4].state == "draining"


COUNTS = [
    # node, scope, partitions, nodes in scope, drained others
    ("g2", "partition", ("gpu",), 4, ("g1", "g3")),
    ("g3", "partition", ("gpu",), 4, ("g1",)),  # itself left out
    ("g4", "partition", ("debug", "gpu"), 5, ("g1", "g3")),  # in two partitions
    ("c1", "partition", ("debug",), 2, ()),
    ("c1", "cluster", (), 6, ("c2", "g1", "g3")),
]


@pytest.mark.parametrize(("node", "scope", "partitions", "total", "drained"), COUNTS)
def test_count_per_scope(
    node: str, scope: str, partitions: tuple[str, ...], total: int, drained: tuple[str, ...]
) -> None:
    counted = drain_guard.count(parse_sinfo(CAPTURE), node, scope, "preflight:")
    assert counted.partitions == partitions
    assert (counted.total, counted.drained_nodes) == (total, drained)


def test_a_node_in_no_listed_partition_is_not_counted() -> None:
    with pytest.raises(SinfoUnreadable, match="node x9 is in no partition"):
        drain_guard.count(parse_sinfo(CAPTURE), "x9", "partition", "preflight:")


EXTENDED_STATES = [
    ("drained", True),
    ("drained*", True),  # not responding
    ("draining", True),
    ("idle+drain", True),
    ("down*", False),
    ("idle", False),
    ("mixed", False),
    ("allocated", False),
]


@pytest.mark.parametrize(("state", "drained"), EXTENDED_STATES)
def test_extended_states(state: str, drained: bool) -> None:
    row = drain_guard.NodeRow("n1", "p", state, "preflight: x.y")
    assert drain_guard.by_preflight(row, "preflight:") is drained


HOSTILE = [
    ("", "no node listed"),
    ("\n\n", "no node listed"),
    ("g1|gpu|drained\n", "does not have 4 fields"),
    ("g1 gpu drained preflight: x\n", "does not have 4 fields"),
    ("|gpu|drained|preflight: x\n", "names no node"),
    ("g1|gpu||preflight: x\n", "names no node"),
    ("g1\x00|gpu|drained|x\n", "NUL"),
    ("\ufffd\ufffd|\ufffd|drained|preflight:\n", "names no node"),  # binary decoded with replace
    ("g1|gpu|drained|" + "x" * (drain_guard.MAX_LINE + 1), "over 65536 characters"),
    ("sinfo: error: Unable to contact slurm controller\n", "does not have 4 fields"),
    (CAPTURE + "garbage\n", "line 8 does not have 4 fields"),
]


@pytest.mark.parametrize(("text", "why"), HOSTILE)
def test_hostile_output_is_refused_not_half_counted(text: str, why: str) -> None:
    with pytest.raises(SinfoUnreadable, match=why):
        parse_sinfo(text)


def test_huge_output_is_refused_quickly() -> None:
    line = "g1|gpu|idle|none\n"
    with pytest.raises(SinfoUnreadable, match="over 32 MiB"):
        parse_sinfo(line * (drain_guard.MAX_OUTPUT // len(line) + 1))


def test_a_large_real_shaped_fleet_counts() -> None:
    text = "".join(
        f"gpu-{i:05d}|p{i % 4}|{'drained' if i % 50 == 0 else 'idle'}|"
        f"{'preflight: xid.events' if i % 50 == 0 else 'none'}\n"
        for i in range(100_000)
    )
    counted = drain_guard.count(parse_sinfo(text), "gpu-00001", "partition", "preflight:")
    assert (counted.partitions, counted.total, counted.drained) == (("p1",), 25_000, 0)
    counted = drain_guard.count(parse_sinfo(text), "gpu-00001", "cluster", "preflight:")
    assert (counted.total, counted.drained) == (100_000, 2_000)


class Fake:
    """scontrol and sinfo answers, and the calls made."""

    def __init__(self, sinfo: CallResult) -> None:
        self.sinfo = sinfo
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout_s: float) -> CallResult:
        self.calls.append(list(argv))
        if argv[0] == "sinfo":
            return self.sinfo
        return CallResult(True, SHOW_IDLE) if argv[1] == "show" else CallResult(True, "")


def drain(fake: Fake, limit: str, scope: str = "partition", dry_run: bool = False) -> object:
    said: list[str] = []
    outcome = carry_out(
        "g2",
        False,
        ["node.gpu_count"],
        drain=True,
        resume=False,
        dry_run=dry_run,
        runner=fake,
        say=said.append,
        max_drained=parse_limit(limit),
        scope=scope,
    )
    assert said[-1].startswith("preflight: slurm: ") and len(said) == 1, said
    return outcome


def test_carry_out_drains_within_the_limit_and_holds_above() -> None:
    fake = Fake(CallResult(True, CAPTURE))
    outcome = drain(fake, "3")
    assert outcome.action == "drain" and outcome.ok  # type: ignore[attr-defined]
    assert [c[:2] for c in fake.calls] == [
        ["scontrol", "show"],
        ["sinfo", "--all"],
        ["scontrol", "update"],
    ]
    fake = Fake(CallResult(True, CAPTURE))
    outcome = drain(fake, "2")
    assert outcome.action == "held"  # type: ignore[attr-defined]
    assert outcome.message == (  # type: ignore[attr-defined]
        "node g2: not drained: 2 of 4 nodes in partition gpu already drained by preflight, "
        "limit 2 (2 nodes)"
    )
    assert all(c[1] != "update" for c in fake.calls)
    outcome = drain(Fake(CallResult(True, CAPTURE)), "75%")  # 3 of 4
    assert outcome.action == "drain"  # type: ignore[attr-defined]
    outcome = drain(Fake(CallResult(True, CAPTURE)), "3", "cluster")  # c2, g1, g3
    assert outcome.action == "held"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (CallResult(False, "", "sinfo did not answer within 5 s; abandoned"), "within 5 s"),
        (CallResult(False, "", "cannot run sinfo: No such file or directory"), "cannot run"),
        (CallResult(True, "\x00\x01binary"), "NUL"),
        (CallResult(True, ""), "no node listed"),
    ],
)
def test_a_count_that_fails_holds_the_drain(answer: CallResult, why: str) -> None:
    fake = Fake(answer)
    outcome = drain(fake, "1000")
    assert outcome.action == "held" and not outcome.ok  # type: ignore[attr-defined]
    assert why in outcome.guard.error  # type: ignore[attr-defined]
    assert all(c[1] != "update" for c in fake.calls)


def test_dry_run_still_asks_the_breaker() -> None:
    fake = Fake(CallResult(True, CAPTURE))
    outcome = drain(fake, "2", dry_run=True)
    assert outcome.action == "held"  # type: ignore[attr-defined]
    outcome = drain(Fake(CallResult(True, CAPTURE)), "5", dry_run=True)
    assert outcome.action == "none" and "would run" in outcome.message  # type: ignore[attr-defined]


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--max-drained", "2"], "need --slurm-drain"),
        (["--slurm-drain", "--node-name", "n1", "--max-drained", "2x"], "--max-drained '2x'"),
        (
            ["--slurm-drain", "--node-name", "n1", "--max-drained-scope", "cluster"],
            "--max-drained-scope needs --max-drained",
        ),
        (
            [
                "--slurm-drain",
                "--node-name",
                "n1",
                "--max-drained",
                "2",
                "--max-drained-scope",
                "rack",
            ],
            "expected partition or cluster",
        ),
    ],
)
def test_run_refuses_bad_breaker_options(args: list[str], needle: str) -> None:
    result = runner.invoke(
        app, ["run", "--profile", "dgx-h100", *args], env={"PREFLIGHT_CONFIG": ""}
    )
    assert_one_line_error(result, 2, needle)


def test_site_config_max_drained(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('max_drained = "12.5%"\n')
    result = runner.invoke(
        app,
        ["run", "--profile", "dgx-h100", "--slurm-drain", "--node-name", "n1", "--dry-run"],
        env={"PREFLIGHT_CONFIG": str(config)},
    )
    assert_one_line_error(result, 3, "max_drained")
    config.write_text('max_drained_scope = "rack"\n')
    result = runner.invoke(
        app,
        ["run", "--profile", "dgx-h100", "--slurm-drain", "--node-name", "n1", "--dry-run"],
        env={"PREFLIGHT_CONFIG": str(config)},
    )
    assert_one_line_error(result, 3, "max_drained_scope")


def test_run_bounded_stops_a_command_that_prints_too_much() -> None:
    """A sinfo that floods its output is killed at the cap, not read into memory."""
    from preflight.slurm import run_bounded

    t0 = time.monotonic()
    result = run_bounded(["sh", "-c", "yes preflight-flood; sleep 30"], 20.0, max_output=1 << 20)
    assert not result.ok and result.error == "sh printed more than 1 MiB; abandoned"
    assert time.monotonic() - t0 < 15
    result = run_bounded(["sh", "-c", "exec >&- 2>&-; sleep 30"], 0.5)  # pipes closed, no exit
    assert not result.ok and result.error == "sh did not answer within 0.5 s; abandoned"
    result = run_bounded(["printf", "g1|gpu|idle|\\377\\n"], 5.0)  # not UTF-8: replaced
    assert result.ok and result.output == "g1|gpu|idle|\ufffd\n"
