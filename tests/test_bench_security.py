"""Children that import only the installed package, and a rendezvous store strangers cannot steer.

Real processes throughout: the NVML child and the benchmark ranks started from a working
directory holding a hostile `preflight/` package, and a stranger process that connects to a
running job's store, lists its keys and writes an abort message of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from preflight import isolated
from preflight.bench.env import TOKEN_ENV
from preflight.bench.hooks import HOLD
from preflight.bench.launch import free_port
from tests.bench_procs import ROOT, clean_env, error_lines, python_c, start_ranks, wait_all

pytest.importorskip("torch")

SWEEP = ["bench", "allreduce", "--backend", "gloo", "--sizes", "1K,4K", "--iters", "2"]
HOSTILE = "import pathlib\npathlib.Path({marker!r}).write_text('imported from the cwd')\n"
# The real command line, as the `preflight` console script runs it: the package from the
# repository, not from the working directory (which `python -c` would put first).
PREFLIGHT = (
    f"import sys; sys.path[0] = {str(ROOT)!r}; import runpy; "
    "runpy.run_module('preflight', run_name='__main__')"
)


def hostile_cwd(tmp: Path) -> tuple[Path, Path]:
    """A working directory with a `preflight/` package (and `json/`) that leaves a marker."""
    cwd, marker = tmp / "cwd", tmp / "marker"
    for package in ("preflight", "preflight/nvml", "preflight/bench", "json"):
        (cwd / package).mkdir(parents=True)
        (cwd / package / "__init__.py").write_text(HOSTILE.format(marker=str(marker)))
    for module in ("preflight/__main__.py", "preflight/nvml/child.py"):
        (cwd / module).write_text(HOSTILE.format(marker=str(marker)))
    return cwd, marker


def run_from(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PREFLIGHT, *args],
        env=clean_env({"PYTHONPATH": ""}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def test_the_nvml_child_never_imports_from_the_working_directory(tmp_path: Path) -> None:
    cwd, marker = hostile_cwd(tmp_path)
    proc = run_from(
        cwd, "run", "--profile", "dgx-h100", "--only", "gpu.nvml_available", "--format", "json"
    )
    assert not marker.exists(), "the NVML child imported preflight from the working directory"
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    results = {r["id"]: r for r in report["results"]}
    assert results["gpu.nvml_available"]["status"] == "pass", results  # NVML answered


def test_the_ranks_never_import_from_the_working_directory(tmp_path: Path) -> None:
    cwd, marker = hostile_cwd(tmp_path)
    proc = run_from(cwd, *SWEEP, "--nproc", "2", "--warmup", "0", "--no-chart")
    assert not marker.exists(), "a rank imported preflight from the working directory"
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout


def test_the_child_command_line_is_isolated_and_keeps_the_parents_path(tmp_path: Path) -> None:
    # PYTHONPATH reaches the child through the parent's sys.path (-I ignores the variable).
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "only_on_pythonpath.py").write_text("VALUE = 42\n")
    code = (
        "import sys, subprocess; from preflight import isolated; "
        "cmd = isolated.command('only_on_pythonpath_main'); "
        "print(cmd[1]); sys.exit(subprocess.run(cmd).returncode)"
    )
    (extra / "only_on_pythonpath_main.py").write_text(
        "import sys, os, only_on_pythonpath\n"
        "print(only_on_pythonpath.VALUE, os.getcwd() in sys.path, '' in sys.path)\n"
    )
    proc = python_c(code, env={"PYTHONPATH": f"{ROOT}:{extra}"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["-I", "42", "False", "False"]


def test_a_child_whose_parent_is_already_gone_exits(tmp_path: Path) -> None:
    cmd = isolated.command("preflight", ["--help"])
    at = cmd.index(str(Path(isolated.__file__).resolve())) + 1
    config = json.loads(cmd[at])
    config["parent"] = 1  # not this test's pid: as if the parent died before the child ran
    cmd[at] = json.dumps(config)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == isolated.PARENT_GONE_STATUS
    assert "Usage" not in proc.stdout


STRANGER = r"""
import datetime as dt, json, socket, sys, time
from pathlib import Path
from torch.distributed import TCPStore

port, done, other = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
seen = {}
deadline = time.monotonic() + 60
store = None
while store is None:
    try:
        store = TCPStore("127.0.0.1", port, is_master=False, timeout=dt.timedelta(seconds=2),
                         wait_for_workers=False)
    except Exception:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
keys = []
while not any(k.endswith("rank/0") for k in keys) and time.monotonic() < deadline:
    keys = store.list_keys()
    time.sleep(0.05)
seen["keys"] = keys
# An abort as the old store layout had it, and one forged inside the job's namespace.
store.set("preflight/abort", "stranger: abort the job")
namespace = [k for k in keys if k.endswith("rank/0")][0][: -len("rank/0")]
store.set(namespace + "abort", "stranger: forged abort " + "x" * 40)
seen["rank0"] = store.get(namespace + "rank/0").decode(errors="replace")[:40]
try:
    socket.create_connection((other, port), timeout=3).close()
    seen["other_interface"] = "connected"
except OSError as exc:
    seen["other_interface"] = type(exc).__name__
time.sleep(1.0)  # rank 0 polls the abort key meanwhile
print(json.dumps(seen))
done.write_text("done")
"""


def other_address() -> str | None:
    """A global IPv4 address of this machine, if it has one (`ip -4 addr`)."""
    try:
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "scope", "global"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except OSError:
        return None
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return None


def test_a_stranger_on_the_store_neither_aborts_nor_steers_the_job(tmp_path: Path) -> None:
    port = free_port()
    done = tmp_path / "stranger-done"
    other = other_address()
    ranks = start_ranks(
        2, [0, 1], [*SWEEP, "--init-timeout", "90"], env={HOLD: f"1:{done}"}, port=port
    )
    stranger = subprocess.Popen(
        [sys.executable, "-c", STRANGER, str(port), str(done), other or "127.0.0.2"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        wait_all(ranks, timeout=150)
        out, err = stranger.communicate(timeout=30)
    finally:
        stranger.kill()
    assert stranger.returncode == 0, err
    seen = json.loads(out)
    zero, one = ranks
    assert zero.proc.returncode == 0 and one.proc.returncode == 0, zero.err + one.err
    assert "stranger" not in zero.out + zero.err + one.out + one.err
    assert "PASS" in zero.out
    # Everything the job wrote is under one namespace; the stranger's keys are named, ignored.
    assert all(k.startswith("preflight/") for k in seen["keys"])
    assert "ignored a value of 63 bytes under 'abort' in the store" in zero.err
    assert "keys outside this job's namespace ('preflight/abort')" in zero.err
    # Served on loopback only: the machine's other address refuses the connection.
    if other is not None:
        assert seen["other_interface"] == "ConnectionRefusedError"


def test_ranks_without_the_token_refuse_to_start() -> None:
    ranks = start_ranks(2, [0, 1], SWEEP, env={TOKEN_ENV: ""})
    wait_all(ranks, timeout=90)
    for r in ranks:
        assert r.proc.returncode == 3, r.err
        [line] = error_lines(r.err)
        assert f"{TOKEN_ENV} is not set" in line


def test_ranks_with_different_tokens_never_trust_each_other() -> None:
    port = free_port()
    zero = start_ranks(2, [0], [*SWEEP, "--init-timeout", "4"], port=port)
    one = start_ranks(2, [1], [*SWEEP, "--init-timeout", "4"], env={TOKEN_ENV: "f" * 32}, port=port)
    wait_all(zero + one, timeout=90)
    assert zero[0].proc.returncode == 1
    assert "missing: rank 1" in zero[0].err
    assert "keys outside this job's namespace" in zero[0].err  # rank 1's, under its token
    assert one[0].proc.returncode == 1
