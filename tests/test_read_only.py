"""Read-only proof: every check, against a built-in profile's materialized sysroot, attempts no
write anywhere. An audit hook (sys.addaudithook, via sitecustomize so the NVML child process has
it too) is armed after materialization and logs every event that writes, creates, removes or
changes a file, and every process started."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SITECUSTOMIZE = textwrap.dedent(
    """
    import os, sys

    _LOG = os.open(os.environ["PREFLIGHT_AUDIT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _EVENTS = {
        "os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.chmod", "os.chown", "os.symlink",
        "os.link", "os.truncate", "os.utime", "os.mkfifo", "os.mknod", "shutil.rmtree",
        "shutil.copyfile", "shutil.move", "os.chflags", "os.setxattr", "os.removexattr",
        "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.kill",
    }
    _armed = [os.environ.get("PREFLIGHT_AUDIT_ARMED") == "1"]

    def arm():
        _armed[0] = True

    def _hook(event, args):
        if not _armed[0]:
            return
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return  # a file object over an fd already open (a pipe to the NVML child)
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            ):
                os.write(_LOG, f"{os.getpid()} open {path!r} {mode!r} {flags!r}\\n".encode())
        elif event in _EVENTS:
            os.write(_LOG, f"{os.getpid()} {event} {args!r}\\n".encode())

    sys.addaudithook(_hook)
    if _armed[0]:
        os.write(_LOG, f"{os.getpid()} armed at start\\n".encode())
    sys.modules["preflight_audit"] = sys.modules[__name__]
    """
)

DRIVER = textwrap.dedent(
    """
    import os, sys
    from preflight.execute import RunOptions, execute
    from preflight.profile import host_from_profile
    import preflight_audit

    host = host_from_profile(sys.argv[1], nvml_timeout_s=20)
    os.environ["PREFLIGHT_AUDIT_ARMED"] = "1"  # the NVML child arms at its start
    preflight_audit.arm()
    report = execute(RunOptions(profile=sys.argv[1], nvml_timeout_s=20), host=host)
    preflight_audit._armed[0] = False  # the sysroot's removal at exit is not a check's doing
    print(len(report.results), sum(r.status.value == "error" for r in report.results))
    """
)


@pytest.mark.parametrize("profile", ["dgx-h100", "dgx-h100-roce"])
def test_every_check_is_read_only(tmp_path: Path, profile: str) -> None:
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "audit.log"
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]),
        PYTHONDONTWRITEBYTECODE="1",
        PREFLIGHT_AUDIT_LOG=str(log),
    )
    env.pop("PREFLIGHT_AUDIT_ARMED", None)
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, profile],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    checks, errors = (int(x) for x in proc.stdout.split())
    assert checks >= 50 and errors == 0, proc.stdout
    events = log.read_text().splitlines() if log.exists() else []
    # The one process a run starts is the NVML collector (itself audited: its lines would show).
    started = [e for e in events if " subprocess.Popen " in e]
    assert len(started) == 1 and "preflight.nvml.child" in started[0], events
    assert sum(e.endswith(" armed at start") for e in events) == 1, events  # the NVML child
    writes = [e for e in events if " subprocess.Popen " not in e and " armed " not in e]
    assert writes == []
