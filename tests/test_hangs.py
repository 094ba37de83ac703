"""A file read that never returns (a FIFO with no writer): abandoned at the check timeout, later
users of the same inventory part fail at once naming the path, and the run still reports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from preflight.errors import ProfileError
from preflight.inventory import Inventory
from preflight.inventory.inventory import PartHung
from preflight.profile import host_from_profile
from preflight.runner import run_with_timeout

GPU0_CLASS = "/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/0000:18:00.0/class"


def hanging_profile(tmp_path: Path) -> Path:
    path = tmp_path / "hang.json"
    doc = {"extends": "dgx-h100", "files": {GPU0_CLASS: {"fifo": True}}}
    path.write_text(json.dumps(doc))
    return path


def test_abandoned_part_fails_later_users_at_once(tmp_path: Path) -> None:
    inv = Inventory(host_from_profile(str(hanging_profile(tmp_path))))
    waited: list[BaseException] = []

    def second_user() -> None:
        try:
            inv.pci  # noqa: B018 - waits on the first builder's lock
        except PartHung as exc:
            waited.append(exc)

    first = run_with_timeout(lambda: inv.pci, 0.5, inv.abandon)  # type: ignore[arg-type,return-value]
    assert isinstance(first.error, TimeoutError)
    t0 = time.monotonic()
    with pytest.raises(
        PartHung, match=re.escape("reading /sys/bus/pci/devices/0000:18:00.0/class")
    ):
        inv.pci  # noqa: B018
    assert time.monotonic() - t0 < 0.5
    waiter = threading.Thread(target=second_user, daemon=True)
    waiter.start()
    waiter.join(2)
    assert waited and "pci inventory was abandoned" in str(waited[0])
    assert inv.dmi.values  # other parts are built under their own locks


@pytest.mark.parametrize("baseline", [[], ["--baseline", "dgx-h100"]], ids=["detected", "named"])
def test_hung_pci_read_run_ends_within_the_deadline_with_a_report(
    tmp_path: Path, baseline: list[str]
) -> None:
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "preflight",
            "run",
            "--profile",
            str(hanging_profile(tmp_path)),
            "--timeout",
            "1",
            "--deadline",
            "5",
            "--format",
            "json",
            *baseline,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    wall = time.monotonic() - t0
    assert wall < 8, wall
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    errors = {r["id"]: r["summary"] for r in doc["results"] if r["status"] == "error"}
    assert any("abandoned" in s for s in errors.values())
    assert not any("PartHung" in s for s in errors.values())  # no internal class names
    assert any(
        "blocked reading /sys/bus/pci/devices/0000:18:00.0/class" in s for s in errors.values()
    )
    if baseline:  # no detection read the PCI tree first: a check was abandoned, naming the file
        assert any(
            s.startswith("did not finish within 1 s; abandoned (blocked reading /sys/")
            for s in errors.values()
        ), errors
    statuses = {r["id"]: r["status"] for r in doc["results"]}
    assert statuses["host.memlock"] == "pass"  # checks that do not need PCI still ran


def test_fifo_marker_must_be_exactly_true(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"extends": "dgx-h100", "files": {GPU0_CLASS: {"fifo": 1}}}))
    with pytest.raises(ProfileError, match="fifo"):
        host_from_profile(str(path))


MLX5_0_COUNTER = (
    "/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:01.0/0000:19:00.0/infiniband/"
    "mlx5_0/ports/1/counters/link_downed"
)


def test_a_hung_counter_window_is_reported_by_name_and_keeps_the_other_facts(
    tmp_path: Path,
) -> None:
    """The collection stage opens the counter window before the checks; a counter read that
    never returns is that collector's failure, named on the check that needed it, and every
    fact but the network's is still reported."""
    path = tmp_path / "hung-counter.json"
    path.write_text(json.dumps({"extends": "dgx-h100", "files": {MLX5_0_COUNTER: {"fifo": True}}}))
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "preflight", "run", "--profile", str(path)),
            *("--timeout", "1", "--baseline", "dgx-h100", "--format", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    rows = {r["id"]: r for r in doc["results"]}
    counters = rows["rdma.counters"]
    assert counters["status"] == "error"
    assert counters["summary"].startswith(
        "not judged: collector counter-window did not finish within 1 s; abandoned (blocked "
        "reading /sys/"
    ), counters["summary"]
    assert "counters/link_downed" in counters["summary"]
    assert rows["host.memlock"]["status"] == "pass"
    assert rows["gpu.ecc"]["status"] == "pass"  # NVML, collected beside it, is untouched
    facts = doc["facts"]
    assert facts["pci.gpu_count"] == 8 and facts["kernel.release"]
    assert not any(k.startswith("rdma.") for k in facts)  # the hung part's group is left out
    assert rows["preflight.facts"]["summary"].startswith(
        "facts could not all be gathered: network: the rdma inventory was abandoned"
    )
