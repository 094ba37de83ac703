"""Unprivileged live run: as root, install preflight into a world-readable venv and run it on this
machine as `nobody`: root-only checks SKIP with "needs root", exit 0, no traceback."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from preflight.cli import app
from preflight.registry import discover

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"  # pyenv's python under /root is not readable by others


def unlimited_memlock() -> None:
    """In the child before exec: root may raise the hard limit (this VM's memlock is 8 MiB)."""
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def can_raise_memlock() -> bool:
    """Root without CAP_SYS_RESOURCE (some containers) cannot raise a hard limit."""
    probe = subprocess.run(["sh", "-c", "ulimit -l unlimited"], capture_output=True, timeout=10)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create the venv for nobody and su")
@pytest.mark.skipif(
    shutil.which("runuser") is None or not os.path.exists(SYSTEM_PYTHON),
    reason="needs runuser and /usr/bin/python3",
)
def test_live_run_as_nobody_skips_root_checks() -> None:
    folder = Path(tempfile.mkdtemp(prefix="preflight-nobody-"))
    try:
        folder.chmod(0o755)
        venv = folder / "venv"
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, timeout=60)
        pip = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir", str(ROOT)],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=folder,
        )
        assert pip.returncode == 0, pip.stderr[-2000:]
        command = [str(venv / "bin" / "preflight"), "run", "--format", "json", "--timeout", "20"]
        raise_memlock = can_raise_memlock()
        if not raise_memlock:
            # The node's real memlock limit would fail host.memlock: not what this test is about.
            command += ["--skip", "host.memlock"]
        proc = subprocess.run(
            ["runuser", "-u", "nobody", "--", *command],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=folder,
            preexec_fn=unlimited_memlock if raise_memlock else None,
        )
        out = folder / "out"
        out.mkdir()
        out.chmod(0o777)
        take = [str(venv / "bin" / "preflight"), "snapshot", "--output", str(out / "nobody.json")]
        snap = subprocess.run(
            ["runuser", "-u", "nobody", "--", *take],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=folder,
            preexec_fn=unlimited_memlock if raise_memlock else None,
        )
        assert snap.returncode == 0, snap.stderr
        profile = json.loads((out / "nobody.json").read_text())
        replay = CliRunner().invoke(
            app, ["run", "--profile", str(out / "nobody.json"), *command[2:]]
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert "Traceback" not in proc.stderr + proc.stdout
    doc = json.loads(proc.stdout)
    bad = {r["id"]: r["summary"] for r in doc["results"] if r["status"] in ("fail", "error")}
    assert proc.returncode == 0, bad
    root_only = {"pcie.acs", "pcie.devctl"}
    statuses = {r["id"]: (r["status"], r["summary"]) for r in doc["results"]}
    for check in root_only:
        status, summary = statuses[check]
        assert status == "skip" and summary.startswith("needs root"), (check, summary)
    # A snapshot taken as nobody replays (here, as root) to what nobody saw.
    assert profile["privileged"] is False
    # nobody's venv holds preflight alone: check plugins installed here (the example site checks
    # of checks/, in CI) are not part of what nobody ran.
    builtin = {s.id for s in discover(include_plugins=False)}
    results = json.loads(replay.stdout)["results"]
    replayed = {r["id"]: r["status"] for r in results if r["id"] in builtin}
    assert replayed == {r["id"]: r["status"] for r in doc["results"]}
