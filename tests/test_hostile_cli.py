"""The command line under hostile values, signals, closed pipes, full disks and lying reports.

Issue 10 items 5-8, 10 and 11: a drain never waits on the report, a report is replaced whole or
not at all, an interrupted run is not a failed node, node text never reaches the terminal as
markup or escape sequences, compare does not believe a report's counts, and nothing ends in a
traceback. Signals, pipes and locales are tried on real processes.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from preflight import options as opt
from preflight.cli import app
from preflight.safetext import clean, clean_line

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

FAKE_SCONTROL = """#!/bin/sh
echo "$*" >> "{log}"
if [ "$1" = show ]; then cat "{state}"; fi
exit 0
"""
SHOW_IDLE = "NodeName=n1 Arch=x86_64\n   State=IDLE ThreadsPerCore=1\n"
SHOW_OURS = "NodeName=n1\n   State=IDLE+DRAIN\n   Reason=preflight: pcie.acs [root@2026-11-23]\n"


def one_error_line(stderr: str, code: int, result_code: int, *needles: str) -> str:
    """The single `preflight: error:` line of a command that exited with code."""
    assert result_code == code, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("preflight: error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def env_for(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "PREFLIGHT_BENCH"))}
    env.update(extra or {})
    return env


def start(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
    """`python -m preflight ARGS` as a real process."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "preflight", *args], env=env or env_for(), cwd=ROOT, text=True, **kw
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out or "", err or ""


@pytest.fixture
def scontrol(tmp_path: Path) -> dict[str, Any]:
    """A stand-in scontrol on PATH that logs its calls (Slurm itself: test_slurm_integration)."""
    paths = {"log": tmp_path / "calls.log", "state": tmp_path / "state.txt"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "scontrol"
    script.write_text(FAKE_SCONTROL.format(**paths))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    paths["state"].write_text(SHOW_IDLE)
    paths["log"].write_text("")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURMD_NODENAME": "n1"}
    return {**paths, "env": env}


def calls(paths: dict[str, Any]) -> list[str]:
    return Path(paths["log"]).read_text().splitlines()


# -- 5. the drain does not depend on writing the report ----------------------------------------

UNWRITABLE: dict[str, Callable[[Path], str]] = {
    "missing directory": lambda tmp: str(tmp / "no-such-dir" / "r.json"),
    "full disk": lambda tmp: "/dev/full",
    "a directory": lambda tmp: str(tmp),
}


@pytest.mark.parametrize("where", sorted(UNWRITABLE))
def test_failing_node_is_drained_though_the_report_cannot_be_written(
    scontrol: dict[str, Any], tmp_path: Path, where: str
) -> None:
    output = UNWRITABLE[where](tmp_path)
    result = runner.invoke(
        app,
        ["run", "--profile", "dgx-h100-acs-enabled", "--slurm-drain", "--output", output],
        env=scontrol["env"],
    )
    assert result.exit_code == 1, result.output  # the run's verdict, not the write error's 2
    drained = "update NodeName=n1 State=DRAIN Reason=preflight: fix-config pcie.acs"
    assert calls(scontrol)[-1] == drained
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("preflight: error:")]
    assert len(errors) == 1 and "cannot write" in errors[0], result.stderr
    assert "Traceback" not in result.output


def test_passing_node_is_resumed_though_the_report_cannot_be_written(
    scontrol: dict[str, Any], tmp_path: Path
) -> None:
    scontrol["state"].write_text(SHOW_OURS)
    result = runner.invoke(
        app,
        ["run", "--profile", "dgx-h100", "--slurm-resume", "--output", "/dev/full"],
        env=scontrol["env"],
    )
    assert calls(scontrol)[-1] == "update NodeName=n1 State=RESUME"
    assert result.exit_code == 2, result.output  # passed, but the report is missing
    assert "preflight: error: cannot write /dev/full: No space left on device" in result.stderr


def test_snapshot_to_a_full_disk_is_one_line(tmp_path: Path) -> None:
    code, out, err = finish(start("snapshot", "--output", "/dev/full"))
    one_error_line(err, 2, code, "cannot write /dev/full: No space left on device")
    assert out == ""


# -- 6. atomic reports; - is stdout -------------------------------------------------------------


def test_a_failed_write_leaves_the_last_good_report_whole(tmp_path: Path) -> None:
    """A file-size limit (EFBIG, as a full disk gives ENOSPC) mid-write: the previous report
    stays byte for byte, and no temporary file is left beside it."""
    report = tmp_path / "report.json"
    report.write_text('{"last": "good"}\n')
    report.chmod(0o640)

    def limit_file_size() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    proc = start(
        "run", "--profile", "dgx-h100", "--format", "json", "--output", str(report),
        preexec_fn=limit_file_size,
    )  # fmt: skip
    code, _, err = finish(proc)
    one_error_line(err, 2, code, f"cannot write {report}", "File too large")
    assert report.read_text() == '{"last": "good"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_report_replaces_the_old_one_keeping_its_mode_and_links(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("old")
    report.chmod(0o640)
    link = tmp_path / "latest.json"
    link.symlink_to(report.name)
    result = runner.invoke(
        app, ["run", "--profile", "dgx-h100", "--format", "json", "--output", str(link)]
    )
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and json.loads(report.read_text())["host"]["hostname"]
    assert stat.S_IMODE(report.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.json"
    old_mask = os.umask(0o027)
    try:
        runner.invoke(
            app, ["run", "--profile", "dgx-h100", "--format", "json", "--output", str(fresh)]
        )
        result = runner.invoke(
            app, ["run", "--profile", "dgx-h100", "--format", "json", "--output", str(fresh)]
        )
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640  # 0666 less the umask, as open() gives
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fresh.json",
        "latest.json",
        "report.json",
    ]
    # A device is written in place, never renamed over.
    result = runner.invoke(app, ["run", "--profile", "dgx-h100", "--output", os.devnull])
    assert result.exit_code == 0 and stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_dash_is_stdout_for_every_command_that_writes(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["run", "--profile", "dgx-h100-acs-enabled", "--format", "json", "--output", "-"]
    )
    assert result.exit_code == 1 and json.loads(result.stdout)["summary"]["status"] == "fail"
    assert not (Path.cwd() / "-").exists()
    report = tmp_path / "r.json"
    report.write_text(result.stdout)
    result = runner.invoke(app, ["compare", str(report), "--format", "json", "--output", "-"])
    assert result.exit_code == 1 and json.loads(result.stdout)["status"] == "fail"
    result = runner.invoke(app, ["baselines", "generate", str(report), "--output", "-"])
    assert result.exit_code == 0 and "[pcie.link]" in result.stdout, result.output
    code, out, err = finish(start("snapshot", "--output", "-"))
    assert code == 0, err
    assert json.loads(out)["files"] and err.startswith("wrote -")


# -- 7. an interrupted run is not a failed node ---------------------------------------------------


def _sysroot_with(marker: str) -> list[Path]:
    return list(Path("/dev/shm").glob(f"preflight-profile-*/etc/{marker}")) + list(
        Path(os.environ.get("TMPDIR", "/tmp")).glob(f"preflight-profile-*/etc/{marker}")
    )


def _nvml_child_of(pid: int) -> bool:
    """Whether `pid` has started its NVML collector (the run is past loading the profile)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat_line = Path(f"/proc/{entry}/stat").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat_line[stat_line.rfind(b")") + 2 :].split()[1])
        if parent == pid and b"preflight.nvml.child" in cmdline:
            return True
    return False


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_drains_nothing_reports_nothing_and_leaves_no_sysroot(
    scontrol: dict[str, Any], tmp_path: Path, sig: int, code: int
) -> None:
    """A run held up by a hung NVML (up to 60 s): the signal ends it at once, with 128+N. The
    profile is answered from memory: no sysroot is written, so none is left."""
    marker = f"marker-{uuid.uuid4().hex}"
    profile = tmp_path / "hang.json"
    profile.write_text(
        json.dumps({"extends": "dgx-h100-nvml-hang", "files": {f"/etc/{marker}": "x"}})
    )
    report = tmp_path / "report.json"
    proc = start(
        "run", "--profile", str(profile), "--nvml-timeout", "60", "--timeout", "60",
        "--slurm-drain", "--slurm-resume", "--format", "json", "--output", str(report),
        env=env_for(scontrol["env"]),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _nvml_child_of(proc.pid):
        assert proc.poll() is None and time.monotonic() < deadline, finish(proc)
        time.sleep(0.05)
    time.sleep(1.0)  # the checks are running, NVML is hung
    assert _sysroot_with(marker) == []
    t0 = time.monotonic()
    proc.send_signal(sig)
    returncode, out, err = finish(proc, timeout=30)
    assert returncode == code, err
    assert time.monotonic() - t0 < 10
    assert err.strip().splitlines() == [
        f"preflight: interrupted by {signal.Signals(sig).name}: "
        "nothing drained, resumed or reported"
    ]
    assert out == "" and not report.exists() and calls(scontrol) == []
    assert _sysroot_with(marker) == []


@pytest.mark.slow
def test_sigterm_during_run_bench_is_not_a_bench_failure(
    scontrol: dict[str, Any], tmp_path: Path
) -> None:
    """The benchmark launcher handles the signal itself (it stops its ranks); the run still
    knows it was interrupted: no drain of `preflight: bench.allreduce`, exit 143."""
    pytest.importorskip("torch")
    report = tmp_path / "report.json"
    proc = start(
        "run", "--bench", "--bench-backend", "gloo", "--bench-nproc", "2",
        "--only", "bench.allreduce", "--set", "bench.allreduce.iters=1000000",
        "--set", "bench.allreduce.min_bytes=65536", "--set", "bench.allreduce.max_bytes=65536",
        "--set", "bench.allreduce.gate_bytes=65536", "--set", "bench.allreduce.timeout_s=300",
        "--slurm-drain", "--format", "json", "--output", str(report),
        env=env_for(scontrol["env"]),
    )  # fmt: skip
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 90
    while len(children.read_text().split()) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, finish(proc)
        time.sleep(0.1)
    time.sleep(3.0)  # the ranks import torch and start measuring
    proc.send_signal(signal.SIGTERM)
    returncode, out, err = finish(proc, timeout=60)
    assert returncode == 143, err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    assert out == "" and not report.exists() and calls(scontrol) == []


# -- 8. text from a node never breaks output -------------------------------------------------------

HOSTILE_HOST = "node[/b]\x1b]0;owned\x07[node7]:smile:\u202e"
HOSTILE_IFNAME = "[/eth]\x1b[2J[bold]"


@pytest.fixture
def hostile_profile(tmp_path: Path) -> Path:
    path = tmp_path / "hostile[b]x[i].json"
    path.write_text(
        json.dumps(
            {
                "extends": "dgx-h100-acs-enabled",
                "hostname": HOSTILE_HOST,
                "env": {"NCCL_SOCKET_IFNAME": HOSTILE_IFNAME},
            }
        )
    )
    return path


def assert_literal(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert clean(HOSTILE_HOST) in text.replace("\n", "") or "node[/b]" in text


def test_table_prints_brackets_literally_and_escapes_control_characters(
    hostile_profile: Path,
) -> None:
    for verbose in ([], ["-v"]):
        result = runner.invoke(app, ["run", "--profile", str(hostile_profile), *verbose])
        assert result.exit_code == 1, result.output
        assert "node[/b]\\x1b]0;owned\\x07[node7]:smile:\\u202e" in result.stdout
        assert f"profile {hostile_profile}" in result.stdout
        assert "'[/eth]\\x1b[2J[bold]'" in result.stdout
        assert "\x1b" not in result.stdout and "\u202e" not in result.stdout


def test_compare_prints_hostile_values_literally(hostile_profile: Path, tmp_path: Path) -> None:
    reports = []
    for name, profile in (("a", str(hostile_profile)), ("b", "dgx-h100")):
        out = tmp_path / f"{name}.json"
        runner.invoke(app, ["run", "--profile", profile, "--format", "json", "--output", str(out)])
        reports.append(str(out))
    result = runner.invoke(app, ["compare", *reports, "-v"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "\x1b" not in result.stdout
    flat = result.stdout.replace("\n", "")
    assert "[/eth]\\x1b[2J[bold]" in flat and "[node7]" in flat


@pytest.mark.parametrize("fmt", ["junit", "prometheus", "json"])
def test_machine_formats_carry_no_control_characters(hostile_profile: Path, fmt: str) -> None:
    result = runner.invoke(app, ["run", "--profile", str(hostile_profile), "--format", fmt])
    assert result.exit_code == 1, result.output
    assert not any(ch in result.stdout for ch in "\x1b\x07\u202e")
    if fmt == "junit":
        suite = ET.fromstring(result.stdout).find("testsuite")
        assert suite is not None and suite.get("hostname") == clean(HOSTILE_HOST)
    if fmt == "json":  # JSON keeps the value exactly (escaped as \\u001b by the encoder)
        assert json.loads(result.stdout)["host"]["hostname"] == HOSTILE_HOST


def test_error_lines_escape_what_the_user_or_a_node_typed() -> None:
    result = runner.invoke(app, ["explain", "pcie.\x1b[2Jacs"])
    line = one_error_line(result.stderr, 2, result.exit_code)
    assert "\\x1b[2J" in line and "\x1b" not in line
    assert clean_line("a\nb\tc\udcff") == "a\\nb\\tc\\udcff"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--profile", "dgx-h100-acs-enabled", "-v"],
        ["explain", "pcie.acs"],
        ["list"],
        ["run", "--profile", "HOSTILE"],
        ["compare", "REPORT", "REPORT2"],
    ],
)
def test_an_ascii_locale_prints_without_crashing(
    argv: list[str], hostile_profile: Path, tmp_path: Path
) -> None:
    argv = [str(hostile_profile) if a == "HOSTILE" else a for a in argv]
    if "REPORT" in argv:
        for name, profile in (("REPORT", str(hostile_profile)), ("REPORT2", "dgx-h100")):
            out = tmp_path / f"{name}.json"
            runner.invoke(
                app, ["run", "--profile", profile, "--format", "json", "--output", str(out)]
            )
        argv = [str(tmp_path / f"{a}.json") if a.startswith("REPORT") else a for a in argv]
    env = env_for({"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": "ascii", "PYTHONUTF8": "0"})
    proc = subprocess.run(
        [sys.executable, "-m", "preflight", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert b"Traceback" not in proc.stderr and proc.stdout.isascii() and proc.stdout.strip()


# -- 10. compare does not believe a report's counts ------------------------------------------------


def _lying(tmp_path: Path, how: str) -> Path:
    result = runner.invoke(
        app, ["run", "--profile", "dgx-h100-acs-enabled", "--only", "pcie.*", "--format", "json"]
    )
    doc = json.loads(result.stdout)
    doc["summary"] = {"status": "pass", "counts": {**doc["summary"]["counts"], "fail": 0}}
    text = json.dumps(doc, indent=2)
    if how == "escaped status":  # "f\u0061il" decodes to "fail"; no byte search sees it
        text = text.replace('"status": "fail"', '"status": "f\\u0061il"')
    if how == "duplicate key":  # the last of two keys wins in every JSON decoder
        text = text.replace('"status": "fail"', '"status": "pass", "status": "fail"')
    path = tmp_path / f"lying-{how.replace(' ', '-')}.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize("how", ["counts", "escaped status", "duplicate key"])
def test_a_report_whose_counts_lie_is_listed_as_failing(tmp_path: Path, how: str) -> None:
    lying = _lying(tmp_path, how)
    result = runner.invoke(app, ["compare", str(lying), "--format", "json"])
    assert result.exit_code == 1, result.output
    failures = json.loads(result.stdout)["failures"]
    assert failures["nodes"] == 1
    assert "pcie.acs" in [c["check"] for c in failures["by_check"]]


# -- 11. no traceback, ever ----------------------------------------------------------------------

RUN_LATER_ERROR = ["--format", "nonsense"]
BENCH_LATER_ERROR = ["--format", "xml"]
NUMERIC_OPTIONS = [
    # (command, option, the parser it must use, arguments that fail after parsing)
    *((["run"], o, opt.SECONDS, RUN_LATER_ERROR) for o in ("--timeout", "--deadline")),
    *((["run"], o, opt.SECONDS, RUN_LATER_ERROR) for o in ("--nvml-timeout", "--slurm-timeout")),
    (["run"], "--bench-nproc", opt.RANKS, RUN_LATER_ERROR),
    (["snapshot"], "--timeout", opt.SECONDS, []),  # then: --output is missing
    (["snapshot"], "--nvml-timeout", opt.SECONDS, []),
    (["compare"], "--jobs", opt.JOBS, [*RUN_LATER_ERROR, "x.json"]),
    (["baselines", "generate"], "--jobs", opt.JOBS, ["/nonexistent/report.json"]),
    *(
        (["bench", cmd], o, opt.SECONDS, BENCH_LATER_ERROR)
        for cmd in ("allreduce", "locate")
        for o in ("--init-timeout", "--op-timeout", "--deadline")
    ),
    *(
        (["bench", cmd], o, p, BENCH_LATER_ERROR)
        for cmd in ("allreduce", "locate")
        for o, p in (
            ("--nproc", opt.RANKS),
            ("--iters", opt.ITERATIONS),
            ("--warmup", opt.WARMUP),
            ("--min-busbw", opt.GBPS),
        )
    ),
    (["bench", "allreduce"], "--step-factor", opt.STEP_FACTOR, BENCH_LATER_ERROR),
    (["bench", "allreduce"], "--theoretical-gbps", opt.POSITIVE_GBPS, BENCH_LATER_ERROR),
    (["bench", "locate"], "--slow-ratio", opt.RATIO, BENCH_LATER_ERROR),
    (["bench", "locate"], "--rounds", opt.ROUNDS, BENCH_LATER_ERROR),
]
VALUES = st.one_of(
    st.sampled_from(["nan", "-nan", "inf", "-inf", "1e308", "-1", "0", "1e-320", "", " 5 "]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(max_size=12),
)


@pytest.mark.parametrize(
    ("command", "option", "parser", "later"),
    NUMERIC_OPTIONS,
    ids=[f"{' '.join(c)} {o}" for c, o, _, _ in NUMERIC_OPTIONS],
)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES)
def test_every_numeric_option_rejects_what_it_cannot_use_in_one_line(
    command: list[str], option: str, parser: opt.Bounded, later: list[str], value: str
) -> None:
    result = runner.invoke(app, [*command, f"{option}={value}", *later])
    line = one_error_line(result.stderr, 2, result.exit_code)
    assert "Traceback" not in result.output
    try:
        parser(value)
    except ValueError:
        assert line.startswith(f"preflight: error: {option} must be "), line


@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "-1", "0"])
def test_time_bounds_name_the_option(value: str) -> None:
    for option in ("--timeout", "--deadline", "--nvml-timeout", "--slurm-timeout"):
        result = runner.invoke(app, ["run", "--profile", "dgx-h100", option, value])
        one_error_line(result.stderr, 2, result.exit_code, f"{option} must be positive")


@pytest.mark.parametrize("fact", ["a string", None, [1, 2], {"a": 1}])
def test_golden_with_any_fact_value_is_one_line_or_a_verdict(tmp_path: Path, fact: Any) -> None:
    good = tmp_path / "good.json"
    runner.invoke(app, ["run", "--profile", "dgx-h100", "--format", "json", "--output", str(good)])
    doc = json.loads(good.read_text())
    doc["facts"]["cpu.count"] = fact
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps(doc))
    result = runner.invoke(app, ["compare", "--golden", str(golden), str(good)])
    assert "Traceback" not in result.output
    if isinstance(fact, (list, dict)):
        one_error_line(result.stderr, 3, result.exit_code, "fact 'cpu.count' is a")
    else:
        assert result.exit_code in (0, 1), result.output


def test_a_profile_entry_that_cannot_be_materialized_is_exit_3(tmp_path: Path) -> None:
    profile = tmp_path / "p.json"
    profile.write_text(
        json.dumps({"extends": "dgx-h100", "files": {"/sys/zz": "a file", "/sys/zz/b": "x"}})
    )
    result = runner.invoke(app, ["run", "--profile", str(profile)])
    one_error_line(result.stderr, 3, result.exit_code, "profile")


@pytest.mark.parametrize(
    "argv", [["list"], ["explain", "pcie.acs"], ["run", "--profile", "dgx-h100"]]
)
def test_stdout_on_a_full_disk_is_one_line_exit_2(argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        code, _, err = finish(start(*argv, stdout=full))
    one_error_line(err, 2, code, "cannot write standard output: No space left on device")


@pytest.mark.parametrize(
    "argv", [["list"], ["explain", "pcie.acs"], ["profiles", "show", "dgx-h100"]]
)
def test_a_closed_pipe_ends_quietly_with_141(argv: list[str]) -> None:
    """`preflight list | head -1`: the reader is gone before the output is written."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        proc = start(*argv, stdout=write_fd)
    finally:
        os.close(write_fd)
    code, _, err = finish(proc)
    assert (code, err) == (141, "")


def test_a_real_head_sees_the_first_line_and_nothing_complains() -> None:
    shell = (
        f"{sys.executable} -m preflight profiles show dgx-h100 | head -c 1; echo ${{PIPESTATUS[0]}}"
    )
    out = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert out.stdout[0] == "{" and out.stdout.strip()[1:] in ("0", "141"), out
    assert out.stderr == ""
