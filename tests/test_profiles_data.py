"""The built-in hardware profiles (preflight/profiles/*.json): generated, well-formed, coherent."""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from preflight.nvml.schema import validate_section
from preflight.profile import PROFILE_KEYS as LOADER_KEYS
from preflight.profile import merge

ROOT = Path(__file__).resolve().parent.parent
PROFILE_DIR = ROOT / "preflight" / "profiles"
GENERATOR = "tools.make_profiles"  # run as `python -m tools.make_profiles` from ROOT

# Built-in profiles never need empty directories (`dirs` is for snapshots).
PROFILE_KEYS = LOADER_KEYS - {"dirs"}
EXPECTED = {
    "dgx-h100",
    "hgx-h200",
    "dgx-h100-acs-enabled",
    "dgx-h100-iommu-translated",
    "dgx-h100-gpu-link-x8",
    "dgx-h100-unprivileged",
    # GPU faults (tools/make_profiles/nvml.py)
    "dgx-h100-row-remap-pending",
    "dgx-h100-xid-79",
    "dgx-h100-nvlink-down",
    "dgx-h100-ecc-uncorrected",
    "dgx-h100-gpu-missing",
    "dgx-h100-nvml-hang",
    "dgx-h100-gpu-lost-no-xid",
    # network variants (tools/make_profiles/network.py)
    "dgx-h100-ib-port-down",
    "dgx-h100-ib-rate-hdr",
    "dgx-h100-ib-symbol-errors",
    "dgx-h100-nic-fw-mismatch",
    "dgx-h100-no-peermem",
    "dgx-h100-gpu-nic-cross-socket",
    "dgx-h100-roce",
}
NAMES = sorted(path.stem for path in PROFILE_DIR.glob("*.json"))

PCI_CAPABILITY_LIST, PCI_CAP_ID_EXP, PCI_EXP_LNKSTA = 0x34, 0x10, 0x12


@cache
def raw(name: str) -> dict[str, Any]:
    with (PROFILE_DIR / f"{name}.json").open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@cache
def resolved(name: str) -> dict[str, Any]:
    profile = dict(raw(name))
    parent = profile.pop("extends", None)
    return merge(resolved(parent), profile) if parent else profile


def config_bytes(entry: dict[str, Any]) -> bytes:
    return bytes.fromhex(entry["hex"]).ljust(entry["size"], b"\0")


def config_entries(profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p: v for p, v in profile["files"].items() if p.endswith("/config")}


def link_width(config: bytes) -> int:
    """Negotiated width from LnkSta, found by walking the standard capability list."""
    pos = config[PCI_CAPABILITY_LIST] & 0xFC
    for _ in range(48):
        if pos < 0x40:
            break
        if config[pos] == PCI_CAP_ID_EXP:
            return (
                int.from_bytes(config[pos + PCI_EXP_LNKSTA : pos + PCI_EXP_LNKSTA + 2], "little")
                >> 4
                & 0x3F
            )
        pos = config[pos + 1] & 0xFC
    raise AssertionError("no PCI Express capability")


def gpu_dirs(profile: dict[str, Any]) -> list[str]:
    """Device directories of the GPUs (class 0x0302xx), in bus order."""
    files = profile["files"]
    dirs = [
        posixpath.dirname(path)
        for path, value in files.items()
        if path.startswith("/sys/devices/pci")
        and path.endswith("/class")
        and value.startswith("0x0302")
    ]
    return sorted(dirs, key=posixpath.basename)


def test_generator_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", GENERATOR, "--check"],
        cwd=ROOT,
        # -m imports `tools` from the working directory, which PYTHONSAFEPATH would drop.
        env={k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_all_built_in_profiles_present() -> None:
    assert set(NAMES) == EXPECTED


@pytest.mark.parametrize("name", NAMES)
def test_profile_has_only_known_keys(name: str) -> None:
    profile = raw(name)
    assert set(profile) <= PROFILE_KEYS
    if "extends" in profile:
        assert profile["extends"] in NAMES
    full = resolved(name)
    assert set(full) == PROFILE_KEYS - {"extends"}
    assert isinstance(full["privileged"], bool)
    validate_section(full["nvml"])  # the documented nvml format (preflight/nvml/schema.py)
    assert all(isinstance(line, str) for line in full["kernel_log"])
    for soft_hard in full["limits"].values():
        assert len(soft_hard) == 2
        assert all(v == "unlimited" or isinstance(v, int) for v in soft_hard)


@pytest.mark.parametrize("name", NAMES)
def test_paths_are_absolute_and_text_files_end_in_newline(name: str) -> None:
    full = resolved(name)
    for path, value in full["files"].items():
        assert path.startswith("/") and posixpath.normpath(path) == path
        if isinstance(value, str) and path.startswith(("/sys/", "/proc/")):
            assert value.endswith("\n"), path
    for path in full["symlinks"]:
        assert path.startswith("/") and path not in full["files"]


@pytest.mark.parametrize("name", NAMES)
def test_symlink_targets_exist(name: str) -> None:
    full = resolved(name)
    entries = set(full["files"]) | set(full["symlinks"])
    dirs = {"/"}
    for path in entries:
        parent = posixpath.dirname(path)
        while parent not in dirs:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    for link, target in full["symlinks"].items():
        assert not target.startswith("/"), f"{link}: sysfs links are relative"
        where = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
        assert where in entries or where in dirs, f"{link} -> {target}: {where} missing"


@pytest.mark.parametrize("name", NAMES)
def test_config_hex_decodes_to_declared_size(name: str) -> None:
    full = resolved(name)
    configs = config_entries(full)
    assert configs
    expected_size = 4096 if full["privileged"] else 64
    for path, entry in configs.items():
        assert set(entry) == {"hex", "size"}, path
        data = bytes.fromhex(entry["hex"])
        assert len(data) <= entry["size"] == expected_size, path
        assert not entry["hex"].endswith("00"), f"{path}: trailing zeros are trimmed"


@pytest.mark.parametrize("name", NAMES)
def test_config_header_matches_sysfs_ids(name: str) -> None:
    full = resolved(name)
    files = full["files"]
    for path, entry in config_entries(full).items():
        d = posixpath.dirname(path)
        config = config_bytes(entry)
        assert int(files[f"{d}/vendor"], 16) == int.from_bytes(config[0:2], "little"), d
        assert int(files[f"{d}/device"], 16) == int.from_bytes(config[2:4], "little"), d
        assert int(files[f"{d}/class"], 16) == int.from_bytes(config[9:12], "little"), d
        assert int(files[f"{d}/revision"], 16) == config[8], d


def test_x8_variant_changes_only_the_third_gpu_link() -> None:
    base, variant = resolved("dgx-h100"), resolved("dgx-h100-gpu-link-x8")
    gpus = gpu_dirs(base)
    assert gpus == gpu_dirs(variant)
    assert len(gpus) == 8
    for index, d in enumerate(gpus):
        for profile in (base, variant):
            assert profile["files"][f"{d}/max_link_width"] == "16\n"
        expected = 8 if index == 2 else 16
        assert variant["files"][f"{d}/current_link_width"] == f"{expected}\n"
        assert base["files"][f"{d}/current_link_width"] == "16\n"
        assert link_width(config_bytes(variant["files"][f"{d}/config"])) == expected
        assert link_width(config_bytes(base["files"][f"{d}/config"])) == 16
    assert posixpath.basename(gpus[2]) == "0000:3a:00.0"
