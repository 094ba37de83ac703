"""`--mask`: nothing that identifies a node, a network or a person survives, and a masked
profile replays to the same verdicts as the original."""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from preflight.cli import app
from preflight.execute import RunOptions, execute
from preflight.inventory.pci_config import parse_config_space
from preflight.mask import Masker, mask
from preflight.profile import builtin_names, resolve
from tests.pci_dump import normalize_bdf, parse_lspci_hex_dump

DATA = Path(__file__).parent / "data"
REAL = DATA / "real" / "mask"
CUSTOMER = DATA / "mask" / "customer-node.json"
TRUTH: dict[str, dict[str, Any]] = json.loads((REAL / "truth.json").read_text())
PROFILES = [*builtin_names(), str(CUSTOMER)]

runner = CliRunner()


def statuses(profile: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Per check: its status and its findings' (subject, status)."""
    report = execute(RunOptions(profile=profile))
    return [
        (r.id, r.status.value, [(f.subject, f.status.value) for f in r.findings])
        for r in report.results
    ]


@functools.cache
def masked_text(profile: str) -> str:
    return json.dumps(mask(resolve(profile)))


def masked_copy(profile: str, tmp_path: Path) -> Path:
    path = tmp_path / "masked.json"
    path.write_text(masked_text(profile))
    return path


# -- replay ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: Path(p).name)
def test_a_masked_profile_replays_to_the_same_statuses(profile: str, tmp_path: Path) -> None:
    assert statuses(str(masked_copy(profile, tmp_path))) == statuses(profile)


# -- nothing identifying survives -------------------------------------------------------------


def _lines(files: dict[str, Any], name: str) -> list[tuple[str, str]]:
    return [
        (path, content.strip())
        for path, content in files.items()
        if path.rsplit("/", 1)[-1] == name and isinstance(content, str) and content.strip()
    ]


def _dsn_values(files: dict[str, Any]) -> dict[str, int]:
    """{config path: Device Serial Number} of every config space, by its own parser."""
    out = {}
    for path, content in files.items():
        if not (path.endswith("/config") and isinstance(content, dict)):
            continue
        data = bytes.fromhex(content["hex"]).ljust(content["size"], b"\0")
        for cap in parse_config_space(data).extended_capabilities:
            if cap.id == 0x0003:
                at = cap.offset + 4
                out[path] = int.from_bytes(data[at : at + 8], "little")
    return out


def identifying_values(profile: dict[str, Any]) -> dict[str, set[str]]:
    """Every identifying value of a profile, by category, in each form it is written in:
    read from the places that hold them, independently of the masker."""
    files: dict[str, Any] = profile["files"]
    found: dict[str, set[str]] = {k: set() for k in ("host", "guid", "mac", "ip", "serial", "user")}
    host = profile["hostname"]
    found["host"] |= {host, host.split(".")[0], host.partition(".")[2]} - {""}
    for name in ("node_guid", "sys_image_guid"):
        for _, guid in _lines(files, name):
            if int(guid.replace(":", ""), 16):
                found["guid"] |= {guid, "0x" + guid.replace(":", "")}
    for path, gid in [pair for i in "0123" for pair in _lines(files, i)]:
        if "/gids/" not in path or not int(gid.replace(":", ""), 16):
            continue
        groups = gid.split(":")
        if groups[:6] == ["0000"] * 5 + ["ffff"]:  # IPv4-mapped: the IPv4 address
            v4 = ipaddress.IPv4Address(int(groups[6] + groups[7], 16))
            found["ip"] |= {str(v4), ":".join(groups[6:])}
        else:
            iid = "".join(groups[4:])
            found["guid"] |= {":".join(groups[4:]), "0x" + iid}
            if iid[6:10] == "fffe":  # EUI-64 from a MAC, U/L bit flipped
                mac = f"{int(iid[:2], 16) ^ 2:02x}" + iid[2:6] + iid[10:]
                found["mac"].add(":".join(mac[i : i + 2] for i in range(0, 12, 2)))
    for path, address in _lines(files, "address"):
        parts = address.split(":")
        if "/net/" in path and len(parts) == 6 and address not in ("00:00:00:00:00:00",):
            found["mac"] |= {address, "-".join(parts)}
        elif "/net/" in path and len(parts) == 20:  # IPoIB: QPN, then the port GID
            found["guid"].add(":".join(parts[12:]))
    for name in ("product_serial", "board_serial", "chassis_asset_tag"):
        found["serial"] |= {v.strip(".") for _, v in _lines(files, name)}
    for gpu in profile["nvml"]["gpus"].values():
        if isinstance(gpu.get("serial"), str):  # a GPU that fell off the bus has none
            found["serial"].add(gpu["serial"])
    for value in _dsn_values(files).values():
        found["serial"].add("-".join(f"{value:016x}"[i : i + 2] for i in range(0, 16, 2)))
    cmdline = files.get("/proc/cmdline", "")
    for m in re.finditer(r"(?<!\S)(ip|nfsroot|BOOTIF)=(\S+)", cmdline):
        key, arg = m.group(1), m.group(2)
        if key == "BOOTIF":
            found["mac"].add(arg[3:])
        else:
            found["ip"] |= set(re.findall(r"\d+\.\d+\.\d+\.\d+", arg))
    home = profile["env"].get("HOME", "")
    if home.startswith("/home/"):
        found["user"].add(home.split("/")[2])
    for line in profile.get("kernel_log") or []:
        found["ip"] |= set(re.findall(r"\b\d+\.\d+\.\d+\.\d+\b|\b2a02:[0-9a-f:]+::\d+\b", line))
        found["mac"] |= set(re.findall(r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b", line))
    found["ip"] -= {"255.255.255.0"}  # a netmask names no network
    return found


def _appears(value: str, text: str) -> bool:
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", text, re.I) is not None


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: Path(p).name)
def test_no_identifying_value_survives_masking(profile: str) -> None:
    original = resolve(profile)
    text = masked_text(profile)
    masked = json.loads(text)
    found = identifying_values(original)
    assert found["host"] and found["guid"] and found["serial"]
    left = {kind: {v for v in values if _appears(v, text)} for kind, values in found.items()}
    assert not any(left.values()), left
    before, after = _dsn_values(original["files"]), _dsn_values(masked["files"])
    assert before.keys() == after.keys()
    assert before or not original["privileged"]  # a non-root read has no extended space
    assert not set(after.values()) & set(before.values())


def test_the_customer_node_shows_each_kind_masked_in_its_format() -> None:
    original = resolve(str(CUSTOMER))
    found = identifying_values(original)
    assert {"10.20.30.40", "10.20.0.5", "10.20.4.7", "2a02:6b8:4a:17::25"} <= found["ip"]
    assert {"jdoe"} == found["user"] and "3c-ec-ef-12-34-56" in found["mac"]
    assert "0x58a2e103001b9999" in found["guid"]  # a port GUID that is not the node GUID
    masked = mask(original)
    cmdline = masked["files"]["/proc/cmdline"]
    assert " BOOTIF=01-02-00-00-00-00-01 " in cmdline
    assert re.search(
        r" ip=10\.\d+\.\d+\.40:10\.\d+\.\d+\.5:10\.\d+\.\d+\.254:255\.255\.255\.0:", cmdline
    )
    assert ":node-0001.site-0001.example:eno1:off " in cmdline
    assert re.search(r" nfsroot=10(?:\.\d+){3}:/export/dir-\d{4}/roots/node-0001,vers=3 ", cmdline)
    env = masked["env"]
    assert env["HOME"] == "/home/user-0001"
    assert env["NCCL_DEBUG_FILE"] == "/home/user-0001/logs/nccl.%h.%p.log"
    assert env["NCCL_CONF_FILE"] in masked["files"]  # the file moved with the path naming it
    assert masked["files"]["/home/user-0001/.nccl.conf"] == "NCCL_DEBUG=INFO\n"
    names = [p["name"] for p in masked["nvml"]["gpus"]["0000:18:00.0"]["processes"]]
    assert names[0].startswith("/home/user-0001/venvs/dir-") and names[0].endswith("/bin/python3")
    assert re.fullmatch(r"/opt/dir-\d{4}/dir-\d{4}/bin/trainer", names[1])
    assert masked["files"]["/etc/hostname"] == "NODE-0001\n"  # the case is kept
    log = "\n".join(masked["kernel_log"])
    assert "ff12:401b:ffff:0000:0000:0000:ffff:ffff" in log  # a multicast GID names nobody
    assert "NVRM: Xid (PCI:0000:18:00): 79, pid=2345, name=python3" in log
    assert re.search(r"port 1 GUID 0x[0-9a-f]{16} node GUID 0x[0-9a-f]{16}", log)
    assert re.search(r"IPv6 fe80::[0-9a-f:]+ and ::ffff:10\.\d+\.\d+\.7 on NODE-0001", log)


def test_masking_a_masked_profile_keeps_it_valid_and_its_verdicts(tmp_path: Path) -> None:
    once = masked_copy(str(CUSTOMER), tmp_path)
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps(mask(resolve(str(once)))))
    assert statuses(str(twice)) == statuses(str(once))


# -- the snapshot command ---------------------------------------------------------------------


def test_snapshot_masks_a_builtin_profile_for_sharing(tmp_path: Path) -> None:
    out = tmp_path / "shared.json.gz"
    result = runner.invoke(
        app, ["snapshot", "--profile", "dgx-h100-roce", "--mask", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"wrote {out}: ")
    replay = runner.invoke(app, ["run", "--profile", str(out), "--format", "json"])
    doc = json.loads(replay.stdout)
    assert doc["host"]["hostname"] == "node-0001"
    assert [(r["id"], r["status"]) for r in doc["results"]] == [
        (check, status) for check, status, _ in statuses("dgx-h100-roce")
    ]


def test_snapshot_of_an_unknown_profile_is_one_line_exit_3(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["snapshot", "--profile", "nope-h100", "--mask", "--output", str(tmp_path / "x")]
    )
    assert result.exit_code == 3
    assert result.stderr.startswith("preflight: error: unknown profile 'nope-h100'")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


# -- real tool output and config spaces -------------------------------------------------------


def _shape(text: str) -> str:
    return re.sub(r"[0-9a-fA-F]", "h", text)


def mask_text(text: str) -> str:
    masker = Masker()
    masker.collect(text)
    return masker.apply(text)


@pytest.mark.parametrize("name", [n for n in TRUTH if "dsn" not in TRUTH[n]])
def test_real_tool_output_loses_every_guid_and_mac_and_keeps_its_shape(name: str) -> None:
    text = (REAL / name).read_text()
    masked = mask_text(text)
    assert _shape(masked) == _shape(text)
    truth = TRUTH[name]
    for value in (*truth.get("guids", ()), *truth.get("gids", ())):
        assert value in text and value not in masked
    for mac in truth.get("macs", ()):  # the EUI-64 interface id that carries it
        b = [int(x, 16) for x in mac.split(":")]
        iid = f"{b[0] ^ 2:02x}{b[1]:02x}:{b[2]:02x}ff:fe{b[3]:02x}:{b[4]:02x}{b[5]:02x}"
        assert iid in text and iid not in masked
    for gid in re.findall(r"fe80(?::[0-9a-f]{4}){7}", masked):  # still EUI-64, a local MAC
        assert gid[27:32] == "ff:fe" and (int(gid[20:22], 16) ^ 2) & 0x02


@pytest.mark.parametrize("name", [n for n in TRUTH if "dsn" in TRUTH[n]])
def test_device_serial_numbers_of_real_config_spaces_are_replaced(name: str) -> None:
    devices = parse_lspci_hex_dump((REAL / name).read_text())
    files = {
        f"/sys/bus/pci/devices/0000:{normalize_bdf(bdf)}/config": {
            "hex": data.hex(),
            "size": len(data),
        }
        for bdf, data in devices.items()
    }
    masked = mask({"files": files})["files"]
    for bdf, dsn in TRUTH[name]["dsn"].items():
        path = f"/sys/bus/pci/devices/0000:{bdf}/config"
        before = bytes.fromhex(str(files[path]["hex"]))
        after = bytes.fromhex(masked[path]["hex"]).ljust(len(before), b"\0")
        caps = parse_config_space(before).extended_capabilities
        assert parse_config_space(after).extended_capabilities == caps
        (cap,) = [c for c in caps if c.id == 0x0003]
        at = cap.offset + 4
        printed = int(dsn.replace("-", ""), 16)  # lspci prints the upper dword first
        assert int.from_bytes(before[at : at + 8], "little") == printed
        assert int.from_bytes(after[at : at + 8], "little") != printed
        assert before[:at] == after[:at] and before[at + 8 :] == after[at + 8 :]


# -- the masker on random values --------------------------------------------------------------

_FORMATS = {
    "ipv4": re.compile(r"(?:\d{1,3}\.){3}\d{1,3}"),
    "gid4": re.compile(r"0000:0000:0000:0000:0000:ffff:[0-9a-f]{4}:[0-9a-f]{4}"),
    "mapped": re.compile(r"::ffff:(?:\d{1,3}\.){3}\d{1,3}"),
    "eui64": re.compile(
        r"fe80:0000:0000:0000:[0-9a-f]{2}[0-9a-f]{2}:[0-9a-f]{2}ff:fe[0-9a-f]{2}:[0-9a-f]{4}"
    ),
    "mac": re.compile(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}"),
    "guid": re.compile(r"[0-9a-f]{4}(?::[0-9a-f]{4}){3}"),
    "ipv6": re.compile(r"[0-9a-f:]+"),
}

_unicast_v4 = st.integers(0x01000000, 0xDFFFFFFF).filter(lambda v: v >> 24 != 127)
_unicast_mac = st.integers(1, (1 << 48) - 2).filter(lambda v: not (v >> 40) & 1)


def _v4(v: int) -> str:
    return str(ipaddress.IPv4Address(v))


def _groups(value: int, width: int) -> str:
    digits = f"{value:0{width}x}"
    return ":".join(digits[i : i + 4] for i in range(0, width, 4))


@st.composite
def identifier(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(sorted(_FORMATS)))
    if kind == "ipv4":
        return kind, _v4(draw(_unicast_v4))
    if kind == "gid4":
        return kind, "0000:0000:0000:0000:0000:ffff:" + _groups(draw(_unicast_v4), 8)
    if kind == "mapped":
        return kind, "::ffff:" + _v4(draw(_unicast_v4))
    mac = draw(_unicast_mac)
    if kind == "mac":
        return kind, ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big"))
    if kind == "eui64":
        iid = ((mac >> 24) ^ 0x020000) << 40 | 0xFFFE << 24 | mac & 0xFFFFFF
        return kind, "fe80:0000:0000:0000:" + _groups(iid, 16)
    guid = draw(st.integers(1, (1 << 64) - 2))
    if kind == "guid":
        return kind, _groups(guid, 16)
    prefix = draw(st.integers(1, (1 << 48) - 1)) | 0x2001 << 48
    return kind, str(ipaddress.IPv6Address(prefix << 64 | guid))


_filler = st.text(alphabet="ghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_filler, identifier()), min_size=1, max_size=8), _filler)
def test_every_identifier_in_text_is_replaced_in_its_format(
    parts: list[tuple[str, tuple[str, str]]], tail: str
) -> None:
    text = " ".join(f"{word} {value}" for word, (_, value) in parts) + " " + tail
    masked = mask_text(text).split(" ")
    originals = {value for _, (_, value) in parts}
    for i, (word, (kind, value)) in enumerate(parts):
        assert masked[2 * i] == word
        new = masked[2 * i + 1]
        assert _FORMATS[kind].fullmatch(new), (kind, value, new)
        assert new not in originals, (kind, value, new)
    assert masked[-1] == tail


# -- what stays ---------------------------------------------------------------------------------

KEPT = [
    ("loopback and unspecified", "127.0.0.1 0.0.0.0 ::1 ::"),
    ("netmask and broadcast", "255.255.255.0 255.255.255.255"),
    ("multicast", "224.0.0.251 ff02::1 01:00:5e:00:00:fb 33:33:00:00:00:01"),
    ("IPoIB broadcast GID", "ff12:401b:ffff:0000:0000:0000:ffff:ffff"),
    ("zero values", "00:00:00:00:00:00 0000:0000:0000:0000 00000000-0000-0000-0000-000000000000"),
    ("PCI addresses", "0000:18:00.0 PCI:0000:18:00 pci0000:15"),
    ("versions and times", "28.41.1000 5.15.0-1067.68 12:24:51 96.00.74.00.01"),
    ("C++ and Rust paths", "std::vector core::fmt"),
]


@pytest.mark.parametrize(("what", "text"), KEPT, ids=[k for k, _ in KEPT])
def test_what_names_nobody_stays(what: str, text: str) -> None:
    assert mask_text(text) == text


def test_a_four_part_version_stays_where_a_version_is_written() -> None:
    masked = mask({"files": {"/sys/class/dmi/id/bios_version": "1.2.3.4\n", "/x": "1.2.3.4"}})
    assert masked["files"]["/sys/class/dmi/id/bios_version"] == "1.2.3.4\n"
    assert masked["files"]["/x"] != "1.2.3.4"


def test_a_hostname_that_is_a_plain_word_is_masked_only_as_written() -> None:
    masker = Masker()
    masker.hostname("gpu")
    assert masker.apply("gpu: GPU at gpus, gpu-1") == "node-0001: GPU at gpus, gpu-1"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
_keys = st.sampled_from(["hostname", "env", "files", "symlinks", "dirs", "kernel_log", "nvml"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=7))
def test_mask_takes_any_json_without_an_exception(profile: dict[str, Any]) -> None:
    masked = mask(profile)
    assert masked["description"] == "masked snapshot"
    assert masked.keys() == {*profile, "description"}
