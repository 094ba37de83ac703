"""`preflight snapshot`: a capture of this machine replays to the same results as the live run."""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from preflight.cli import app
from preflight.execute import RunOptions, execute
from preflight.mask import Masker, mask, masked_patterns
from preflight.model import Report
from preflight.output import RenderOptions, renderers
from preflight.profile import host_from_profile
from preflight.snapshot import capture, profile_from, write
from tests import harness

runner = CliRunner()


def run_json(*args: str) -> dict[str, Any]:
    return harness.run_json(*args)[1]


def outcome(doc: dict[str, Any]) -> list[Any]:
    """What must be equal: ids, statuses, summaries, findings (no durations, no host.profile)."""
    return [
        (
            r["id"],
            r["status"],
            r["summary"],
            [(f["subject"], f["status"], f["message"]) for f in r["findings"]],
        )
        for r in doc["results"]
    ]


def without_masked(value: Any) -> Any:
    text = json.dumps(value)
    for pattern in masked_patterns():
        text = pattern.sub("<masked>", text)
    return json.loads(text)


def snapshot(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    result = runner.invoke(app, ["snapshot", "--output", str(out), *extra])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr
    return out


def as_json(report: Report) -> dict[str, Any]:
    out = io.StringIO()
    renderers()["json"](report, out, RenderOptions())
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def without_counts(value: Any) -> Any:
    """Kernel messages logged between two live reads change the line count xid.events names."""
    return json.loads(re.sub(r"\d+ kernel log lines", "N kernel log lines", json.dumps(value)))


def without_times(value: Any) -> Any:
    """NVML's answer time is in gpu.nvml_available's summary."""
    return json.loads(re.sub(r"in \d+(?:\.\d+)? s\b", "in T s", json.dumps(value)))


def test_capture_replays_to_the_results_of_its_own_live_run(tmp_path: Path) -> None:
    profile, report = capture()
    assert profile["files"] and profile["limits"] and "/dev/shm" in profile["statvfs"]
    path = tmp_path / "node.json"
    write(profile, path)
    replay = run_json("--profile", str(path))
    live = as_json(report)
    assert outcome(replay) == outcome(live)
    assert replay["facts"] == live["facts"]


def test_snapshot_replays_to_the_live_results(tmp_path: Path) -> None:
    live = run_json()
    path = snapshot(tmp_path, "node.json")
    replay = run_json("--profile", str(path))
    assert without_counts(outcome(replay)) == without_counts(outcome(live))


def test_masked_gzip_snapshot_replays_to_the_live_results(tmp_path: Path) -> None:
    live = run_json()
    path = snapshot(tmp_path, "node.json.gz", "--mask")
    profile = json.loads(gzip.decompress(path.read_bytes()))
    assert profile["hostname"] == "node-0001"
    replay = run_json("--profile", str(path))
    assert replay["host"]["hostname"] == "node-0001"
    assert [o[:2] for o in outcome(replay)] == [o[:2] for o in outcome(live)]
    assert without_counts(without_masked(outcome(replay))) == without_counts(
        without_masked(outcome(live))
    )


def test_mask_is_stable_and_keeps_formats() -> None:
    mac, uuid = "b8:ce:f6:a1:b2:c3", "4c4c4544-0042-3510-8051-b4c04f4e3332"
    gid = "fe80:0000:0000:0000:b8ce:f603:00a1:b2c3"
    profile = {
        "hostname": "gpu-017",
        "files": {
            "/sys/class/dmi/id/product_serial": "7XK2Q93\n",
            "/sys/class/infiniband/mlx5_0/node_guid": "b8ce:f603:00a1:b2c3\n",
            "/sys/class/net/eth0/address": mac + "\n",
            "/sys/class/dmi/id/product_uuid": uuid + "\n",
            "/proc/cmdline": f"root=UUID={uuid} hostname=gpu-017 ro\n",
            "/sys/class/infiniband/mlx5_0/ports/1/gids/0": gid + "\n",
        },
        "nvml": {"gpus": {"0000:18:00.0": {"serial": "1654423001593", "uuid": f"GPU-{uuid}"}}},
    }
    once, twice = mask(profile), mask(profile)
    assert once == twice
    text = json.dumps(once)
    for secret in ("7XK2Q93", "b8ce:f603:00a1:b2c3", mac, uuid, "gpu-017", "1654423001593"):
        assert secret not in text
    files = once["files"]
    assert re.fullmatch(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\n", files["/sys/class/net/eth0/address"])
    assert files["/sys/class/infiniband/mlx5_0/ports/1/gids/0"].startswith("fe80:0000:0000:0000:")
    uuid_mask = files["/sys/class/dmi/id/product_uuid"].strip()
    assert uuid_mask in files["/proc/cmdline"]  # one secret, one placeholder everywhere
    assert once["nvml"]["gpus"]["0000:18:00.0"]["uuid"] == f"GPU-{uuid_mask}"


def test_hostname_is_masked_as_a_whole_word_only() -> None:
    masker = Masker()
    masker.hostname("vm")
    assert masker.apply("nested_vm=1 host vm") == "nested_vm=1 host node-0001"


@pytest.mark.parametrize("bad", [b"\x1f\x8b\x08garbage", b"\xff\xfe"])
def test_bad_gzip_or_encoding_is_one_line_exit_3(tmp_path: Path, bad: bytes) -> None:
    path = tmp_path / "bad.json.gz"
    path.write_bytes(bad)
    result = runner.invoke(app, ["run", "--profile", str(path)])
    assert result.exit_code == 3
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("preflight: error: profile"), result.stderr


def test_snapshot_to_an_unwritable_path_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["snapshot", "--output", str(tmp_path / "no" / "x.json")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("preflight: error: cannot write")


def test_unreadable_kernel_log_replays_as_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"extends": "dgx-h100", "kernel_log": False}))
    doc = run_json("--profile", str(path), "--only", "xid.events")
    assert doc["results"][0]["status"] == "skip"
    assert "not readable" in doc["results"][0]["summary"]


@pytest.mark.parametrize(
    "name", ["dgx-h100", "dgx-h100-acs-enabled", "dgx-h100-roce", "dgx-h100-xid-79", "hgx-h200"]
)
def test_recording_a_profile_replays_to_the_same_results(tmp_path: Path, name: str) -> None:
    """The GPU node shape this machine lacks: PCI config spaces, RDMA, NVML, Xids, captured
    from a profile's sysroot and replayed."""
    host = host_from_profile(name).recorded()
    report = execute(RunOptions(profile=name), host=host)
    profile = profile_from(host)
    assert profile["nvml"]["gpus"] and profile["privileged"] is True
    path = tmp_path / "captured.json.gz"
    write(profile, path)
    replay = run_json("--profile", str(path))
    live = as_json(report)
    assert without_times(outcome(replay)) == without_times(outcome(live))
    assert replay["facts"] == live["facts"]


def test_masked_capture_of_a_gpu_node_replays_to_the_same_findings(tmp_path: Path) -> None:
    host = host_from_profile("dgx-h100-roce").recorded()
    report = execute(RunOptions(profile="dgx-h100-roce"), host=host)
    masked = mask(profile_from(host))
    text = json.dumps(masked)
    for gpu in masked["nvml"]["gpus"].values():
        assert gpu["serial"].startswith("SERIAL") and gpu["uuid"].startswith("GPU-00000000-")
    assert "GPU-b42dd28e" not in text
    path = tmp_path / "masked.json"
    write(masked, path)
    replay = run_json("--profile", str(path))
    live = as_json(report)
    assert [o[:2] for o in outcome(replay)] == [o[:2] for o in outcome(live)]
    assert without_masked(without_times(outcome(replay))) == without_masked(
        without_times(outcome(live))
    )
    differ = {k for k, v in replay["facts"].items() if v != live["facts"].get(k)}
    assert differ and all(k.endswith(".uuid") or k == "kernel.cmdline" for k in differ), differ
    assert without_masked(replay["facts"]) == without_masked(live["facts"])
