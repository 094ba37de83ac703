"""Tests for preflight.profile: merge, resolve (extends, validation), materialize, Host."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from preflight import profile
from preflight.errors import ConfigError, ProfileError
from preflight.host import FsUsage, Limit
from preflight.profile import host_from_profile, materialize, merge, resolve, validate
from preflight.sources.nvml import AbsentNvml, ProfileNvml
from preflight.sources.profile_files import ProfileFiles

# ----------------------------------------------------------------------------- helpers


def write(path: Path, data: Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """host_from_profile materializes under tempfile's folder: keep it inside tmp_path."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# ----------------------------------------------------------------------------- merge


def test_merge_recursive() -> None:
    base = {"a": 1, "env": {"X": "1", "Y": "2"}, "nvml": {"gpu": {"clock": 1, "temp": 30}}}
    over = {"env": {"Y": "3", "Z": "4"}, "nvml": {"gpu": {"temp": 40}}}
    assert merge(base, over) == {
        "a": 1,
        "env": {"X": "1", "Y": "3", "Z": "4"},
        "nvml": {"gpu": {"clock": 1, "temp": 40}},
    }


def test_merge_null_deletes() -> None:
    base = {"a": 1, "b": 2, "env": {"X": "1", "Y": "2"}}
    assert merge(base, {"b": None, "env": {"X": None}, "gone": None}) == {
        "a": 1,
        "env": {"Y": "2"},
    }


def test_merge_scalars_and_lists_replace() -> None:
    base = {"hostname": "a", "kernel_log": ["x", "y"], "privileged": True, "env": {"A": "1"}}
    over = {"hostname": "b", "kernel_log": ["z"], "privileged": False, "env": "scalar"}
    assert merge(base, over) == {
        "hostname": "b",
        "kernel_log": ["z"],
        "privileged": False,
        "env": "scalar",
    }


def test_merge_does_not_mutate_inputs() -> None:
    base = {"env": {"X": "1"}}
    over = {"env": {"X": None, "Y": "2"}}
    merge(base, over)
    assert base == {"env": {"X": "1"}}
    assert over == {"env": {"X": None, "Y": "2"}}


def test_merge_non_dict_replaces() -> None:
    assert merge({"a": 1}, [1, 2]) == [1, 2]
    assert merge([1], {"a": 1}) == {"a": 1}
    assert merge(1, 2) == 2


# ----------------------------------------------------------------------------- resolve


def test_resolve_plain_file(tmp_path: Path) -> None:
    data = {"hostname": "n1", "files": {"/etc/hostname": "n1\n"}}
    assert resolve(write(tmp_path / "p.json", data)) == data


def test_resolve_extends_relative_path(tmp_path: Path) -> None:
    write(
        tmp_path / "base/base.json",
        {
            "hostname": "base",
            "privileged": True,
            "env": {"A": "1", "B": "2"},
            "files": {"/sys/a": "a", "/sys/b": "b"},
        },
    )
    child = write(
        tmp_path / "child/child.json",
        {
            "extends": "../base/base.json",
            "hostname": "child",
            "env": {"B": None, "C": "3"},
            "files": {"/sys/b": None, "/sys/c": "c"},
        },
    )
    data = resolve(child)
    assert "extends" not in data
    assert data["hostname"] == "child"
    assert data["privileged"] is True
    assert data["env"] == {"A": "1", "C": "3"}
    assert data["files"] == {"/sys/a": "a", "/sys/c": "c"}


def test_resolve_extends_chain_of_three(tmp_path: Path) -> None:
    write(tmp_path / "a.json", {"hostname": "a", "env": {"A": "1"}})
    write(tmp_path / "b.json", {"extends": "a.json", "env": {"B": "2"}})
    c = write(tmp_path / "sub/c.json", {"extends": "../b.json", "env": {"C": "3"}})
    data = resolve(c)
    assert data == {"hostname": "a", "env": {"A": "1", "B": "2", "C": "3"}}


def test_resolve_extends_cycle(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", {"extends": "b.json"})
    write(tmp_path / "b.json", {"extends": "a.json"})
    with pytest.raises(ProfileError, match="cycle") as exc:
        resolve(a)
    msg = str(exc.value)
    assert "a.json" in msg
    assert "b.json" in msg


def test_resolve_self_extends_cycle(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", {"extends": "./a.json"})
    with pytest.raises(ProfileError, match="cycle"):
        resolve(a)


def test_resolve_extends_not_a_string(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="extends must be"):
        resolve(write(tmp_path / "a.json", {"extends": ["b.json"]}))


def test_resolve_extends_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"missing\.json"):
        resolve(write(tmp_path / "a.json", {"extends": "missing.json"}))


def test_resolve_invalid_json_line_column(tmp_path: Path) -> None:
    p = write(tmp_path / "bad.json", '{\n  "hostname": "x",\n  "env": {,}\n}\n')
    with pytest.raises(ProfileError, match=r"invalid JSON at line 3 column \d+") as exc:
        resolve(p)
    assert "\n" not in str(exc.value)
    assert exc.value.exit_code == 3
    assert isinstance(exc.value, ConfigError)


def test_resolve_top_level_not_object(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="JSON object"):
        resolve(write(tmp_path / "list.json", [1, 2]))


def test_resolve_unknown_key_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="unknown key 'symlink'") as exc:
        resolve(write(tmp_path / "p.json", {"symlink": {}}))
    assert "did you mean 'symlinks'" in str(exc.value)


def test_resolve_unknown_builtin_with_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile, "builtin_names", lambda: ["dgx-h100", "hgx-h200"])
    with pytest.raises(ProfileError, match="unknown profile 'dgx-h10'") as exc:
        resolve("dgx-h10")
    assert "did you mean 'dgx-h100'" in str(exc.value)


def test_resolve_unknown_name_without_close_match() -> None:
    with pytest.raises(ProfileError, match="unknown profile 'zzzzzz'"):
        resolve("zzzzzz")


def test_resolve_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"nothere\.json"):
        resolve(str(tmp_path / "nothere.json"))


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"files": {"/x": {"hex": "zz"}}}, "not valid hexadecimal"),
        ({"files": {"/x": {"hex": "0102", "size": 1}}}, "size must be an integer"),
        ({"files": {"/x": {"hex": "01", "size": "4"}}}, "size must be an integer"),
        ({"files": {"/x": {"size": 4}}}, "must be a string, "),
        ({"files": {"/x": 5}}, "must be a string, "),
        ({"files": {"sys/x": "a"}}, "must be absolute"),
        ({"files": {"/sys/../etc/x": "a"}}, "must not contain '..'"),
        ({"symlinks": {"rel/link": "/x"}}, "must be absolute"),
        ({"symlinks": {"/link": ""}}, "non-empty string"),
        ({"symlinks": {"/link": 3}}, "non-empty string"),
        ({"limits": {"memlock": [1]}}, r"limits\.memlock must be \[soft, hard\]"),
        ({"limits": {"memlock": 5}}, r"limits\.memlock must be"),
        ({"limits": {"memlock": [1, "lots"]}}, r"limits\.memlock must be"),
        ({"limits": {"memlock": [-2, 1]}}, r"limits\.memlock must be"),
        ({"limits": {"memlock": [True, 1]}}, r"limits\.memlock must be"),
        ({"limits": {"cores": [1, 1]}}, "unknown limit 'cores'"),
        ({"limits": [1, 2]}, "limits must be a JSON object"),
        ({"kernel_log": "one line"}, "kernel_log must be a list of strings, or false"),
        ({"kernel_log": ["ok", 3]}, "kernel_log must be a list of strings"),
        ({"env": ["A=1"]}, "env must be a JSON object"),
        ({"privileged": "yes"}, "privileged must be true or false"),
        ({"statvfs": {"/dev/shm": {"free_bytes": 1}}}, "size_bytes"),
    ],
)
def test_resolve_rejects_bad_shapes(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    path = write(tmp_path / "p.json", data)
    with pytest.raises(ProfileError, match=message) as exc:
        resolve(path)
    assert str(exc.value).startswith(f"profile {path}: ")
    assert "\n" not in str(exc.value)


def test_validate_accepts_good_shapes() -> None:
    validate(
        {
            "files": {"/a": "text", "/b": {"hex": "01 02"}, "/c": {"hex": "", "size": 4}},
            "symlinks": {"/d/l": "../x"},
            "limits": {"memlock": ["unlimited", "unlimited"], "nofile": [1024, 4096]},
            "statvfs": {"/dev/shm": {"size_bytes": 10}},
            "kernel_log": [],
            "privileged": False,
        },
        "good",
    )


def test_statvfs_bad_free_bytes_is_profile_error(tmp_path: Path, private_tmp: Path) -> None:
    path = write(
        tmp_path / "p.json", {"statvfs": {"/dev/shm": {"size_bytes": 10, "free_bytes": "lots"}}}
    )
    with pytest.raises(ProfileError, match="free_bytes"):
        host_from_profile(path)


# ----------------------------------------------------------------------------- materialize


def test_materialize_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    materialize(
        {
            "files": {
                "/sys/bus/pci/devices/x/vendor": "0x10de\n",
                "/proc/cmdline": "quiet iommu=pt\n",
                "/sys/x/config": {"hex": "de10 3023", "size": 8},
                "/sys/x/raw": {"hex": "ff"},
                "/sys/x/empty": {"hex": "", "size": 3},
            }
        },
        str(root),
    )
    assert (root / "sys/bus/pci/devices/x/vendor").read_text() == "0x10de\n"
    assert (root / "proc/cmdline").read_text() == "quiet iommu=pt\n"
    assert (root / "sys/x/config").read_bytes() == bytes([0xDE, 0x10, 0x30, 0x23, 0, 0, 0, 0])
    assert (root / "sys/x/raw").read_bytes() == b"\xff"
    assert (root / "sys/x/empty").read_bytes() == b"\0\0\0"


def test_materialize_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    dev = "/sys/devices/pci0000:00/0000:01:00.0"
    materialize(
        {
            "files": {f"{dev}/vendor": "0x10de\n"},
            "symlinks": {
                "/sys/bus/pci/devices/0000:01:00.0": "../../../devices/pci0000:00/0000:01:00.0",
                "/sys/class/x/abs": dev,
                f"{dev}/driver": "/sys/bus/pci/drivers/nvidia",
            },
        },
        str(root),
    )
    rel = root / "sys/bus/pci/devices/0000:01:00.0"
    assert rel.is_symlink()
    assert os.readlink(rel) == "../../../devices/pci0000:00/0000:01:00.0"
    assert (rel / "vendor").read_text() == "0x10de\n"

    absolute = root / "sys/class/x/abs"
    target = os.readlink(absolute)
    assert not target.startswith("/"), "absolute targets are rewritten relative to the root"
    assert absolute.resolve() == (root / dev.lstrip("/")).resolve()
    assert (absolute / "vendor").read_text() == "0x10de\n"

    dangling = root / dev.lstrip("/") / "driver"  # target does not exist: still inside root
    assert dangling.is_symlink()
    assert not os.readlink(dangling).startswith("/")
    resolved = dangling.resolve()
    assert resolved.is_relative_to(root.resolve())
    assert resolved == (root / "sys/bus/pci/drivers/nvidia").resolve()


def test_materialize_refuses_entries_below_a_symlink(tmp_path: Path) -> None:
    """A link-then-file pair would write through the link: refused before anything is made."""
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ProfileError, match="lies below the link '/s/a/b/c/d'"):
        materialize(
            {
                "files": {"/x/f": "f", "/target/t": "t"},
                "symlinks": {"/s/a/b/c/d": "/x", "/s/a/b/c/d/link": "/target"},
            },
            str(root),
        )
    assert list(root.iterdir()) == []


def test_materialize_symlink_collision(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ProfileError, match="both a file and a symlink"):
        materialize({"files": {"/sys/a": "x"}, "symlinks": {"/sys/a": "b"}}, str(root))


# ----------------------------------------------------------------------------- host_from_profile


def test_host_from_profile(tmp_path: Path, private_tmp: Path) -> None:
    dev = "/sys/devices/pci0000:00/0000:01:00.0"
    path = write(
        tmp_path / "node.json",
        {
            "hostname": "gpu-node-7",
            "privileged": False,
            "env": {"NCCL_DEBUG": "INFO", "KEEP": "1"},
            "limits": {"memlock": ["unlimited", "unlimited"], "nofile": [1024, 4096]},
            "statvfs": {
                "/dev/shm": {"size_bytes": 1000, "free_bytes": 600},
                "/": {"size_bytes": 50},
            },
            "kernel_log": ["NVRM: loading", "mlx5_core: ok"],
            "files": {f"{dev}/vendor": "0x10de\n"},
            "symlinks": {"/sys/bus/pci/devices/0000:01:00.0": dev},
            "nvml": {"driver_version": "550.54"},
        },
    )
    host = host_from_profile(path, env_overrides={"NCCL_DEBUG": "WARN", "NEW": "x"})
    assert isinstance(host.files, ProfileFiles)
    assert list(private_tmp.iterdir()) == []  # answered from memory: nothing written
    on_disk = host_from_profile(path, sysroot=True)
    assert Path(on_disk.root).name.startswith("preflight-profile-")
    assert on_disk.read_line("/sys/bus/pci/devices/0000:01:00.0/vendor") == "0x10de"
    profile.remove_sysroots()
    assert host.privileged is False
    assert host.hostname == "gpu-node-7"
    assert host.env == {"NCCL_DEBUG": "WARN", "KEEP": "1", "NEW": "x"}
    assert host.limits() == {"memlock": Limit(-1, -1), "nofile": Limit(1024, 4096)}
    assert host.statvfs("/dev/shm") == FsUsage(1000, 600)
    assert host.statvfs("/") == FsUsage(50, 50)  # free defaults to size
    assert host.statvfs("/tmp") is None
    assert host.kernel_log() == ["NVRM: loading", "mlx5_core: ok"]
    assert isinstance(host.nvml_source, ProfileNvml)
    assert host.nvml_source.section == {"driver_version": "550.54"}
    assert host.profile_name == path
    assert not host.is_live
    assert host.read_line("/sys/bus/pci/devices/0000:01:00.0/vendor") == "0x10de"
    assert host.realpath("/sys/bus/pci/devices/0000:01:00.0") == dev


def test_host_from_profile_defaults(tmp_path: Path, private_tmp: Path) -> None:
    path = write(tmp_path / "empty.json", {})
    host = host_from_profile(path)
    assert host.privileged is True
    assert host.hostname == path
    assert host.env == {}
    assert host.limits() == {}  # no live limits leak into a profile
    assert host.statvfs("/") is None
    assert host.kernel_log() == []
    assert isinstance(host.nvml_source, AbsentNvml)
    assert host.listdir("/") == []


def test_host_from_profile_inherits_through_extends(tmp_path: Path, private_tmp: Path) -> None:
    write(tmp_path / "base.json", {"privileged": False, "env": {"A": "1"}, "kernel_log": ["x"]})
    child = write(tmp_path / "child.json", {"extends": "base.json", "env": {"B": "2"}})
    host = host_from_profile(child, {"A": "override"})
    assert host.privileged is False
    assert host.env == {"A": "override", "B": "2"}
    assert host.kernel_log() == ["x"]
