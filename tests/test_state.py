"""Memory across runs (`run --state DIR`, `preflight ack`): counters become rates, Xids can be
acknowledged, a node that fails again after a repair is flagged; and DIR is hostile: corrupt,
oversized, symlinked, foreign, locked or unwritable state is one warning and never blocks a run."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner, Result

from preflight import state
from preflight.cli import app
from preflight.inventory.memory import XidMark
from preflight.inventory.xid import parse_xids
from preflight.profile import resolve
from tests.harness import SCHEMA, assert_one_line_error, by_id

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent
BOOT = "6a1c4b0e-2f0d-4a57-9e62-3f0e4b3c8d11\n"
PORT = (
    "/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:01.0/0000:19:00.0/infiniband/"
    "mlx5_0/ports/1/counters/"
)
GPU0_AER = (
    "/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/0000:18:00.0/"
    "aer_dev_correctable"
)
AER = (
    "RxErr {n}\nBadTLP 0\nBadDLLP 0\nRollover 0\nTimeout 0\nNonFatalErr 0\nCorrIntErr 0\n"
    "HeaderOF 0\nTOTAL_ERR_COR {n}\n"
)


def write_profile(path: Path, extends: str, boot: str = BOOT, **extra: Any) -> Path:
    files = {"/proc/sys/kernel/random/boot_id": boot, **extra.pop("files", {})}
    path.write_text(json.dumps({"extends": extends, "files": files, **extra}))
    return path


def run(profile: Path | str, state_dir: Path, *only: str) -> tuple[Result, dict[str, Any]]:
    args = ["run", "--profile", str(profile), "--state", str(state_dir), "--format", "json"]
    for check_id in only:
        args += ["--only", check_id]
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 1), result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    return result, doc


def warnings(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def saved(state_dir: Path) -> dict[str, Any]:
    return state.validate(json.loads((state_dir / "state.json").read_text()))


# -- rates across two runs -------------------------------------------------------------------


def test_counters_become_rates_across_two_runs(tmp_path: Path) -> None:
    profile = tmp_path / "node.json"
    files = {PORT + "symbol_error": "40\n", PORT + "link_downed": "0\n", GPU0_AER: AER.format(n=3)}
    write_profile(profile, "dgx-h100", files=files)
    dir_ = tmp_path / "state"
    result, doc = run(profile, dir_, "rdma.counters", "pcie.aer")
    assert warnings(result) == []
    # the first run has nothing to compare with: since-boot thresholds only
    assert by_id(doc)["pcie.aer"]["status"] == "pass"
    first = saved(dir_)["counters"]
    assert first["rdma"]["mlx5_0/1 symbol_error"] == 40
    assert first["aer_correctable"]["0000:18:00.0"] == 3

    # between the runs: 500,000 symbol errors (far above 10/s), one link flap, 400 AER
    time.sleep(1.1)
    files = {
        PORT + "symbol_error": "500040\n",
        PORT + "link_downed": "1\n",
        GPU0_AER: AER.format(n=403),
    }
    write_profile(profile, "dgx-h100", files=files)
    result, doc = run(profile, dir_, "rdma.counters", "pcie.aer")
    results = by_id(doc)
    findings = {f["subject"]: f for f in results["rdma.counters"]["findings"]}
    assert results["rdma.counters"]["status"] == "fail"
    flap = findings["mlx5_0/1 link_downed"]
    assert flap["status"] == "fail" and flap["message"].startswith("link went down 1 times since")
    rate = findings["mlx5_0/1 symbol_error rate"]
    assert rate["status"] == "warn"
    per_s = float(rate["message"].split(": ", 1)[1].split("/s")[0])
    assert 500_000 / 60 < per_s < 500_000 / 1.0  # elapsed between 1 s and a minute
    assert rate["evidence"][0]["observed"] == "40 → 500040"
    aer = {f["subject"]: f for f in results["pcie.aer"]["findings"]}
    gpu0 = [s for s in aer if s.endswith("correctable rate")]
    assert len(gpu0) == 1 and "0000:18:00.0" in gpu0[0] and aer[gpu0[0]]["status"] == "warn"
    assert "400 correctable PCIe errors since the last run" in aer[gpu0[0]]["message"]

    # a third run with nothing new: no rate finding, the link flap is not counted twice
    result, doc = run(profile, dir_, "rdma.counters", "pcie.aer")
    assert by_id(doc)["rdma.counters"]["status"] == "warn"  # since-boot thresholds only
    subjects = {f["subject"] for f in by_id(doc)["rdma.counters"]["findings"]}
    assert "mlx5_0/1 link_downed" in subjects  # the since-boot WARN (1 > 0)
    assert not any(s.endswith("rate") for s in subjects)


def test_a_new_boot_resets_the_counters(tmp_path: Path) -> None:
    profile = tmp_path / "node.json"
    write_profile(profile, "dgx-h100", files={PORT + "link_downed": "0\n"})
    dir_ = tmp_path / "state"
    run(profile, dir_, "rdma.counters")
    write_profile(
        profile, "dgx-h100", boot="0f9d6c52-0000-4000-8000-000000000000\n",
        files={PORT + "link_downed": "1\n"},
    )  # fmt: skip
    _, doc = run(profile, dir_, "rdma.counters")
    messages = [f["message"] for f in by_id(doc)["rdma.counters"]["findings"]]
    assert not any("since the last run" in m for m in messages)


# -- Xid acknowledgement ---------------------------------------------------------------------

XID_GPU = "0000:5d:00.0"


def test_ack_suppresses_the_acknowledged_xid_and_names_who_and_when(tmp_path: Path) -> None:
    log = resolve("dgx-h100-xid-79")["kernel_log"]
    profile = write_profile(tmp_path / "node.json", "dgx-h100-xid-79", kernel_log=log)
    dir_ = tmp_path / "state"
    _, doc = run(profile, dir_, "xid.events")
    assert by_id(doc)["xid.events"]["status"] == "fail"

    # acknowledging another GPU changes nothing for this one
    other = runner.invoke(
        app, ["ack", "--profile", str(profile), "--state", str(dir_), "--gpu", "18:00.0"]
    )
    assert other.exit_code == 0, other.output
    assert "no Xid logged on GPU 0000:18:00.0" in other.stderr
    _, doc = run(profile, dir_, "xid.events")
    assert by_id(doc)["xid.events"]["status"] == "fail"

    acked = runner.invoke(
        app,
        ["ack", "--profile", str(profile), "--state", str(dir_), "--gpu", XID_GPU, "--by", "alice"],
    )
    assert acked.exit_code == 0, acked.output
    assert f"acknowledged by alice: Xids so far on {XID_GPU}" in acked.stderr
    _, doc = run(profile, dir_, "xid.events")
    xid = by_id(doc)["xid.events"]
    assert xid["status"] == "pass"
    (finding,) = xid["findings"]
    assert finding["status"] == "pass" and "acknowledged by alice at 2" in finding["message"]
    assert XID_GPU in finding["subject"]

    # a newer Xid on the same GPU fails again
    newer = (
        "[90000.000001] NVRM: Xid (PCI:0000:5d:00): 79, pid='<unknown>', name=<unknown>, "
        "GPU has fallen off the bus."
    )
    write_profile(profile, "dgx-h100-xid-79", kernel_log=[*log, newer])
    _, doc = run(profile, dir_, "xid.events")
    xid = by_id(doc)["xid.events"]
    assert xid["status"] == "fail"
    statuses = sorted(f["status"] for f in xid["findings"])
    assert statuses == ["fail", "pass"]  # the new one fails, the acknowledged ones are named

    # after a reboot the acknowledgement no longer applies (its log is gone)
    write_profile(profile, "dgx-h100-xid-79", boot="another-boot\n", kernel_log=log)
    _, doc = run(profile, dir_, "xid.events")
    assert by_id(doc)["xid.events"]["status"] == "fail"


def test_ack_needs_a_state_and_a_valid_gpu(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ack", "--profile", "dgx-h100"], env={"PREFLIGHT_CONFIG": ""})
    assert result.exit_code == 2 and "ack needs --state DIR" in result.stderr
    result = runner.invoke(
        app, ["ack", "--profile", "dgx-h100", "--state", str(tmp_path), "--gpu", "gpu3"]
    )
    assert result.exit_code == 2 and "expected a PCI address" in result.stderr
    result = runner.invoke(
        app, ["ack", "--profile", "dgx-h100", "--state", str(tmp_path), "--by", "a\x1bb"]
    )
    assert result.exit_code == 2 and "--by" in result.stderr
    (tmp_path / "state.json").symlink_to("/etc/passwd")
    result = runner.invoke(app, ["ack", "--profile", "dgx-h100", "--state", str(tmp_path)])
    assert_one_line_error(result, 2, "state.json is a symlink (not followed): nothing acknowledged")


WATERMARKS = [
    # (timestamps of one GPU's lines, mark stamp, mark count) → acknowledged per line
    ([1.0, 2.0, 3.0], 2.0, 2, [True, True, False]),
    ([None, None, None], None, 2, [True, True, False]),
    ([5.0], 4.0, 5, [False]),  # a stamp newer than the mark is new, whatever the count
]


@pytest.mark.parametrize(("stamps", "mark_ts", "mark_count", "expected"), WATERMARKS)
def test_watermark(
    stamps: list[float | None], mark_ts: float | None, mark_count: int, expected: list[bool]
) -> None:
    from preflight.checks.xid import acknowledged

    lines = [
        (f"[{s:12.6f}] " if s is not None else "")
        + "NVRM: Xid (PCI:0000:5d:00): 79, GPU has fallen off the bus."
        for s in stamps
    ]
    events = parse_xids(lines)
    marks = {XID_GPU: XidMark("2026-11-29T00:00:00+00:00", "alice", mark_ts, mark_count)}
    assert acknowledged(events, marks) == expected


# -- lemon node ------------------------------------------------------------------------------


def test_a_node_that_fails_again_after_a_repair_is_flagged(tmp_path: Path) -> None:
    profile = tmp_path / "node.json"
    dir_ = tmp_path / "state"
    seen = []
    for extends in ("dgx-h100-acs-enabled", "dgx-h100", "dgx-h100-acs-enabled"):
        write_profile(profile, extends)
        _, doc = run(profile, dir_, "pcie.acs")
        seen.append(by_id(doc)["node.history"])
    assert [r["status"] for r in seen] == ["pass", "pass", "warn"]
    (finding,) = seen[-1]["findings"]
    assert finding["subject"] == "pcie.acs"
    assert finding["message"].startswith("failed again: it failed at ")
    history = saved(dir_)["history"]
    assert [h["failing"] for h in history] == [["pcie.acs"], [], ["pcie.acs"]]
    assert [h["passing"] for h in history] == [[], ["pcie.acs"], []]


def test_a_run_that_did_not_judge_the_check_is_no_repair(tmp_path: Path) -> None:
    profile = tmp_path / "node.json"
    dir_ = tmp_path / "state"
    write_profile(profile, "dgx-h100-acs-enabled")
    run(profile, dir_, "pcie.acs")
    run(profile, dir_, "cpu.smt")  # pcie.acs not run: nothing says it was repaired
    _, doc = run(profile, dir_, "pcie.acs")
    assert by_id(doc)["node.history"]["status"] == "pass"


LEMON_CASES = [
    ([["a"], [], ["a"]], ["a"], ["a"]),  # entries without `passing`: not failing was a pass
    ([["a"], ["a"]], ["a"], []),  # failing all along: broken, not repaired
    ([[], []], ["a"], []),  # a first failure
    ([["a"], [], [], ["b"]], ["a", "b"], ["a"]),
]


@pytest.mark.parametrize(("failing", "now", "lemons"), LEMON_CASES)
def test_lemon_cases(failing: list[list[str]], now: list[str], lemons: list[str]) -> None:
    history = [{"at": f"t{i}", "status": "x", "failing": f} for i, f in enumerate(failing)]
    assert [f.subject for f in state.lemon(history, now)] == lemons


RECORDED_CASES = [
    # (failing, passing) per earlier run, failing now, lemons
    ([(["a"], []), ([], ["a"])], ["a"], ["a"]),
    ([(["a"], []), ([], ["b"])], ["a"], []),  # a not judged in between (--only, a skip)
    ([(["a"], []), ([], []), ([], ["a"])], ["a"], ["a"]),
    ([(["a"], []), ([], ["a"]), (["a"], [])], ["a"], ["a"]),
]


@pytest.mark.parametrize(("runs", "now", "lemons"), RECORDED_CASES)
def test_lemon_cases_with_passing_recorded(
    runs: list[tuple[list[str], list[str]]], now: list[str], lemons: list[str]
) -> None:
    history = [
        {"at": f"t{i}", "status": "x", "failing": f, "passing": p} for i, (f, p) in enumerate(runs)
    ]
    assert [f.subject for f in state.lemon(history, now)] == lemons


# -- hostile state ---------------------------------------------------------------------------


def state_dir(tmp_path: Path) -> Path:
    dir_ = tmp_path / "state"
    dir_.mkdir(mode=0o700)
    return dir_


def run_warned(dir_: Path, *needles: str) -> dict[str, Any]:
    """A run that warns once (each needle in the line) and otherwise goes on as usual."""
    result, doc = run("dgx-h100", dir_, "pcie.acs")
    lines = warnings(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"preflight: warning: state {dir_}: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.exit_code == 0 and by_id(doc)["pcie.acs"]["status"] == "pass"
    return doc


HOSTILE_FILES: list[tuple[str, bytes]] = [
    ("not JSON", b"{not json"),
    ("not JSON", b"\xff\xfe\x00binary"),
    ("not a preflight state file", b"[]"),
    ("version 99 is not 1", json.dumps({"format": "preflight-state", "version": 99}).encode()),
    ("over 1024 KiB", b" " * (state.MAX_BYTES + 1)),
    ("history is not a list", json.dumps({**state.empty(), "history": {}}).encode()),
    ("not a counter value", json.dumps(
        {**state.empty(), "counters": {"at": "x", "time": 1, "boot_id": None, "rdma": {"a": -1}}}
    ).encode()),
    ("ack marks", json.dumps({**state.empty(), "acks": [{"marks": list(range(5))}]}).encode()),
    ("history passing", json.dumps(
        {**state.empty(), "history": [{"at": "x", "status": "pass", "failing": [], "passing": 3}]}
    ).encode()),
    ("not a short string", json.dumps(
        {**state.empty(), "history": [{"at": "x" * 10_000, "status": "pass", "failing": []}]}
    ).encode()),
    ("not JSON", b"[" * 100_000),
]  # fmt: skip


@pytest.mark.parametrize(("why", "content"), HOSTILE_FILES, ids=[w for w, _ in HOSTILE_FILES])
def test_a_corrupt_state_warns_and_is_replaced(tmp_path: Path, why: str, content: bytes) -> None:
    dir_ = state_dir(tmp_path)
    (dir_ / "state.json").write_bytes(content)
    doc = run_warned(dir_, why, "replaced after this run")
    assert "node.history" in by_id(doc)
    assert len(saved(dir_)["history"]) == 1  # the next run has a sound state again


def test_a_symlinked_state_file_is_neither_followed_nor_replaced(tmp_path: Path) -> None:
    dir_ = state_dir(tmp_path)
    outside = tmp_path / "precious"
    outside.write_text("do not touch\n")
    (dir_ / "state.json").symlink_to(outside)
    run_warned(dir_, "state.json is a symlink (not followed)")
    assert outside.read_text() == "do not touch\n"
    assert (dir_ / "state.json").is_symlink()


def test_a_symlinked_directory_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "state"
    link.symlink_to(target)
    run_warned(link, "not a directory (a symlink is not followed)")
    assert list(target.iterdir()) == []


def test_state_file_not_regular_and_lock_not_regular(tmp_path: Path) -> None:
    dir_ = state_dir(tmp_path)
    (dir_ / "state.json").mkdir()
    run_warned(dir_, "state.json is not a regular file")
    shutil.rmtree(dir_ / "state.json")
    (dir_ / "state.lock").unlink()
    os.mkfifo(dir_ / "state.lock")
    run_warned(dir_, "state.lock is not a regular file")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
def test_a_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    dir_ = state_dir(tmp_path)
    os.chown(dir_, 65534, 65534)
    run_warned(dir_, "owned by uid 65534")
    assert list(dir_.iterdir()) == []


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """A directory nothing can be created in (chattr +i for root, who ignores modes)."""
    if os.geteuid() != 0:
        path.chmod(0o500)
        try:
            yield
        finally:
            path.chmod(0o700)
        return
    chattr = shutil.which("chattr")
    done = subprocess.run([chattr or "chattr", "+i", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i not supported here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_unwritable_state_warns_and_keeps_the_old_one(tmp_path: Path) -> None:
    dir_ = tmp_path / "state"
    run("dgx-h100", dir_, "pcie.acs")
    before = (dir_ / "state.json").read_bytes()
    with immutable(dir_):
        run_warned(dir_, "cannot write state.json")
    assert (dir_ / "state.json").read_bytes() == before


def test_a_held_lock_is_waited_for_then_the_run_goes_on(tmp_path: Path) -> None:
    dir_ = state_dir(tmp_path)
    fd = os.open(dir_ / "state.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        t0 = time.monotonic()
        run_warned(dir_, f"another run holds state.lock for more than {state.LOCK_WAIT_S:g} s")
        assert state.LOCK_WAIT_S <= time.monotonic() - t0 < state.LOCK_WAIT_S + 20
    finally:
        os.close(fd)
    assert not (dir_ / "state.json").exists()


def test_modes_and_nothing_written_without_state(tmp_path: Path) -> None:
    dir_ = tmp_path / "state"
    run("dgx-h100", dir_, "pcie.acs")
    assert stat.S_IMODE(dir_.stat().st_mode) == 0o700
    assert stat.S_IMODE((dir_ / "state.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((dir_ / "state.lock").stat().st_mode) == 0o600
    dir_.chmod(0o755)
    run("dgx-h100", dir_, "pcie.acs")
    assert stat.S_IMODE(dir_.stat().st_mode) == 0o700  # put back
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, ["run", "--profile", "dgx-h100", "--only", "pcie.acs"])
    assert result.exit_code == 0 and "node.history" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# -- concurrent runs -------------------------------------------------------------------------

CONCURRENT = 6


def test_concurrent_runs_leave_a_valid_state(tmp_path: Path) -> None:
    dir_ = tmp_path / "state"
    env = {**os.environ, "PREFLIGHT_CONFIG": ""}
    argv = [sys.executable, "-m", "preflight", "run", "--profile", "dgx-h100", "--only", "pcie.*"]
    argv += ["--only", "rdma.counters", "--state", str(dir_), "--format", "json"]
    procs = [
        subprocess.Popen(
            [*argv, "--output", str(tmp_path / f"r{i}.json")],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(CONCURRENT)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * CONCURRENT, [e for _, e in outs]
    assert all(err == b"" for _, err in outs), [e for _, e in outs]
    doc = saved(dir_)
    assert len(doc["history"]) == CONCURRENT  # every run recorded, none lost
    assert doc["counters"]["rdma"]  # the last writer's counters
    leftovers = sorted(p.name for p in dir_.iterdir())
    assert leftovers == ["state.json", "state.lock"]  # no temporary files left


def test_site_config_state_dir_is_for_live_runs_only(tmp_path: Path) -> None:
    dir_ = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{dir_}"\n')
    env = {"PREFLIGHT_CONFIG": str(config)}
    result = runner.invoke(app, ["run", "--profile", "dgx-h100", "--only", "pcie.acs"], env=env)
    assert result.exit_code == 0 and not dir_.exists()  # a profile is not this node
    result = runner.invoke(app, ["run", "--only", "host.kernel_cmdline"], env=env)
    assert result.exit_code == 0, result.output
    assert [h["failing"] for h in saved(dir_)["history"]] == [[]]
    config.write_text('state_dir = "relative/state"\n')
    result = runner.invoke(app, ["run", "--only", "host.kernel_cmdline"], env=env)
    assert_one_line_error(result, 3, "state_dir must be an absolute directory path")
