"""The NVML child process: record over a pipe, deadline, kill, naming the hung call."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from preflight.execute import collect_nvml
from preflight.host import Host
from preflight.nvml import probe
from preflight.nvml.probe import NvmlFailure, NvmlProbe, NvmlRecord, last_call
from preflight.profile import host_from_profile, resolve

DGX = resolve("dgx-h100")["nvml"]


def test_child_returns_the_record_of_a_profile_section() -> None:
    result = NvmlProbe(DGX, timeout_s=20).result()
    assert isinstance(result, NvmlRecord)
    assert result.data == DGX
    assert result.source == "profile"


def test_hung_call_is_killed_at_the_deadline_and_named() -> None:
    data = copy.deepcopy(DGX)
    data["gpus"]["0000:9a:00.0"]["remapped_rows"] = {"hang": True}
    start = time.monotonic()
    result = NvmlProbe(data, timeout_s=1.0).result()
    elapsed = time.monotonic() - start
    assert isinstance(result, NvmlFailure)
    assert result.kind == "timeout"
    assert result.call == "nvmlDeviceGetRemappedRows"
    assert result.where == "GPU4 0000:9a:00.0"
    assert "did not return within 1 s" in result.message
    assert elapsed < 1.0 + probe.REAP_S + 1.0


def test_hang_in_init_is_named() -> None:
    result = NvmlProbe({"init": {"hang": True}}, timeout_s=1.0).result()
    assert isinstance(result, NvmlFailure) and result.call == "nvmlInit"


def test_a_crashing_collector_is_reported_with_its_last_words() -> None:
    # A section the fake cannot serve (not validated on this path): the child dies with a trace.
    result = NvmlProbe({"gpus": ["not", "an", "object"]}, timeout_s=20).result()
    assert isinstance(result, NvmlFailure)
    assert result.kind == "crash"
    assert "exit status 1" in result.message


def test_unreapable_child_is_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child stuck in the kernel cannot be reaped; the parent waits REAP_S and moves on."""

    class Stuck:
        stdin = stdout = stderr = None

        def kill(self) -> None:
            pass

        def wait(self, timeout: float) -> int:
            raise subprocess.TimeoutExpired("child", timeout)

    start = time.monotonic()
    probe._kill(Stuck())  # type: ignore[arg-type]
    assert time.monotonic() - start < 0.1  # wait() itself returned at once here


def test_last_call_reads_the_progress_lines() -> None:
    err = "@call nvmlInit \n@call nvmlDeviceGetName GPU0 0000:18:00.0\nsome warning\n"
    assert last_call(err) == ("nvmlDeviceGetName", "GPU0 0000:18:00.0")
    assert last_call("") == (None, "")


def test_live_child_without_the_library_reports_it() -> None:
    """This CI machine has no libnvidia-ml: the child says so instead of failing."""
    pytest.importorskip("pynvml")
    result = NvmlProbe(None, timeout_s=20).result()
    assert isinstance(result, NvmlRecord)
    if "init" in result.data:  # no driver here
        assert result.data["init"]["error"] in ("LibraryNotFound", "DriverNotLoaded")


def test_host_collects_once_and_profile_without_section_is_absent(tmp_path: Any) -> None:
    host = host_from_profile("dgx-h100")
    assert not host.nvml_started
    first = host.nvml()
    assert host.nvml_started and host.nvml() is first
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"files": {"/proc/cmdline": "ro\n"}}))
    absent = host_from_profile(str(bare)).nvml()
    assert isinstance(absent, NvmlFailure) and absent.kind == "absent"


def test_nvml_is_collected_only_where_a_driver_is(tmp_path: Any) -> None:
    host = Host(root=str(tmp_path), profile_name=None)
    collect_nvml(host)
    assert not host.nvml_started  # no /proc/driver/nvidia under this root


def test_parent_process_never_imports_pynvml() -> None:
    code = (
        "import sys\n"
        "from preflight.execute import RunOptions, execute\n"
        "r = execute(RunOptions(profile='dgx-h100', only=('gpu.*',)))\n"
        "assert any(x.id == 'gpu.ecc' and x.status.value == 'pass' for x in r.results), r\n"
        "print('pynvml' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_child_when_no_nvml_check_is_selected() -> None:
    code = (
        "from preflight.execute import RunOptions, execute\n"
        "import preflight.nvml.probe as p\n"
        "started = []\n"
        "orig = p.NvmlProbe.start\n"
        "p.NvmlProbe.start = lambda self: (started.append(1), orig(self))[1]\n"
        "execute(RunOptions(profile='dgx-h100', skip=('gpu.*',)))\n"
        "print(len(started))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
