"""ACS done by kernel quirks (preflight.inventory.pci_acs_quirks) and pcie.acs judging them: the
kernel's id tables, real kernel logs of Intel PCH root ports, the real config space of a Sunrise
Point root port, and a sysroot node end to end."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight.checks import pcie
from preflight.host import Host
from preflight.inventory import Inventory
from preflight.inventory.pci_acs_quirks import (
    INTEL_PCH_ACS_IDS,
    INTEL_PCH_QUIRK_CONTROL,
    KIND_INTEL_PCH,
    KIND_INTEL_SPT,
    PCH_ENABLED,
    acs_quirk_kind,
    quirk_acs,
    quirk_log,
)
from preflight.inventory.pci_config import ACS_CR, ACS_RR, ACS_SV, ACS_UF, parse_config_space
from preflight.model import Status
from preflight.sources.kernel_log import ProfileKernelLog
from tests.pci_dump import parse_lspci_hex_dump

REAL = Path(__file__).parent / "data" / "real" / "pcie-acs"
SPT_DUMP = REAL / "lspci-xxxx_sunrise-point-lp-9d10_pciutils.txt"
LOGS = sorted(p for p in REAL.glob("*.txt") if p != SPT_DUMP)
ROOT_PORT = 4


def test_pch_table_is_the_kernels() -> None:
    # 16 Ibexpeak + 16 Cougarpoint + 16 Pantherpoint + 16 Lynxpoint-H + 12 Lynxpoint-LP
    # + 12 Wildcat + 8 Patsburg + 15 Wellsburg + 8 Lynx Point 9-series.
    assert len(INTEL_PCH_ACS_IDS) == 119
    for device in (0x3B42, 0x3B51, 0x1C1F, 0x9C1B, 0x1D1E, 0x8D1E, 0x8C9E):
        assert acs_quirk_kind(0x8086, device, ROOT_PORT) == KIND_INTEL_PCH
    for device in (0x3B41, 0x9C1C, 0x1D11, 0x8D1F, 0x8C91, 0x3A40):
        assert acs_quirk_kind(0x8086, device, ROOT_PORT) is None
    assert acs_quirk_kind(0x8086, 0x1C10, 0x6) is None  # not a root port
    assert acs_quirk_kind(0x10DE, 0x1C10, ROOT_PORT) is None
    for device in (0xA110, 0xA16A, 0xA290, 0xA2EE, 0x9D10, 0x9D1B):
        assert acs_quirk_kind(0x8086, device, ROOT_PORT) == KIND_INTEL_SPT
    assert INTEL_PCH_QUIRK_CONTROL == ACS_SV | ACS_RR | ACS_CR | ACS_UF


def test_every_log_sample_has_provenance_and_truth() -> None:
    truth = json.loads((REAL / "truth.json").read_text())
    assert {p.name for p in LOGS} == set(truth) and len(LOGS) >= 5
    for path in [*LOGS, SPT_DUMP]:
        assert path.read_text().startswith("# SOURCE: ")


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.stem)
def test_kernel_log_replay(path: Path) -> None:
    truth = json.loads((REAL / "truth.json").read_text())[path.name]
    lines = path.read_text().splitlines()
    events = quirk_log(lines)
    assert sorted(b for b, m in events.items() if m == PCH_ENABLED) == truth["enabled"]
    printed = dict(re.findall(r"pci (\S+): \[8086:([0-9a-f]{4})\]", path.read_text()))
    assert printed == truth["ids"]
    for device in truth["ids"].values():
        # Every port the kernel printed an id for is in the quirk table.
        assert acs_quirk_kind(0x8086, int(device, 16), ROOT_PORT) == KIND_INTEL_PCH


def test_pch_state_from_the_log_or_the_iommu() -> None:
    bdf = "0000:00:1c.0"
    on = quirk_acs(KIND_INTEL_PCH, bdf, None, None, {bdf: PCH_ENABLED}, True)
    assert on.control == INTEL_PCH_QUIRK_CONTROL
    failed = quirk_acs(
        KIND_INTEL_PCH, bdf, None, None, {bdf: "Failed to enable Intel PCH ACS quirk"}, True
    )
    assert failed.control == 0
    assert quirk_acs(KIND_INTEL_PCH, bdf, None, None, {}, False).control == 0
    unknown = quirk_acs(KIND_INTEL_PCH, bdf, None, None, None, True)
    assert unknown.control is None and "not readable" in unknown.source


def test_sunrise_point_control_is_the_dword_at_8() -> None:
    data = parse_lspci_hex_dump(SPT_DUMP.read_text())["00:1c.0"]
    cfg = parse_config_space(data)
    assert (cfg.vendor_id, cfg.device_id) == (0x8086, 0x9D10)
    assert cfg.acs is not None and cfg.acs.offset == 0x140
    assert cfg.acs.capability == 0x000F  # lspci: SrcValid+ TransBlk+ ReqRedir+ CmpltRedir+
    kind = acs_quirk_kind(cfg.vendor_id, cfg.device_id, cfg.pcie.port_type if cfg.pcie else None)
    assert kind == KIND_INTEL_SPT
    state = quirk_acs(kind, "0000:00:1c.0", cfg, data, None, False)
    assert state.control == 0 and "0x148" in state.source
    # With the kernel's quirk enabled (SV|RR|CR|UF written to the dword at +8) the standard
    # register at +6 still reads 0: only the quirk's offset shows the redirect.
    patched = bytearray(data)
    struct.pack_into("<I", patched, 0x148, ACS_SV | ACS_RR | ACS_CR | ACS_UF)
    cfg2 = parse_config_space(bytes(patched))
    assert cfg2.acs is not None and cfg2.acs.control == 0
    state2 = quirk_acs(kind, "0000:00:1c.0", cfg2, bytes(patched), None, True)
    assert state2.control == 0x1D
    finding = pcie.judge_quirk_acs("rp", kind, state2.control, state2.source, False, "x")
    assert finding.status is Status.FAIL and "ReqRedir+ CmpltRedir" in finding.message


# -- end to end: a root port without ACS capability above a GPU ----------------------------------


def _config(vendor: int, device: int, class_code: int, port_type: int) -> bytes:
    """A 4 KiB config space with a PCI Express capability at 0x40 and no extended capability."""
    data = bytearray(4096)
    struct.pack_into("<HH", data, 0, vendor, device)
    struct.pack_into("<H", data, 0x06, 0x0010)  # capabilities list
    data[0x09:0x0C] = class_code.to_bytes(3, "little")
    data[0x0E] = 0x01 if class_code >> 8 == 0x0604 else 0x00
    data[0x34] = 0x40
    data[0x40:0x42] = bytes([0x10, 0x00])
    struct.pack_into("<H", data, 0x42, 0x0002 | (port_type << 4))
    return bytes(data)


def _node(tmp_path: Path, iommu: bool) -> Path:
    rp, gpu = "0000:00:1c.0", "0000:01:00.0"
    for bdf, rel, vendor, device, cls, ptype in (
        (rp, rp, 0x8086, 0x8D10, 0x060400, ROOT_PORT),
        (gpu, f"{rp}/{gpu}", 0x10DE, 0x2330, 0x030200, 0),
    ):
        d = tmp_path / "sys/devices/pci0000:00" / rel
        d.mkdir(parents=True)
        (d / "vendor").write_text(f"0x{vendor:04x}\n")
        (d / "device").write_text(f"0x{device:04x}\n")
        (d / "class").write_text(f"0x{cls:06x}\n")
        (d / "config").write_bytes(_config(vendor, device, cls, ptype))
        link = tmp_path / "sys/bus/pci/devices" / bdf
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f"../../../devices/pci0000:00/{rel}")
        if iommu:
            group = tmp_path / "sys/kernel/iommu_groups/7"
            group.mkdir(parents=True, exist_ok=True)
            (group / "type").write_text("DMA\n")
            (d / "iommu_group").symlink_to("../../../kernel/iommu_groups/7")
    return tmp_path


@pytest.mark.parametrize(
    ("iommu", "log", "status", "words"),
    [
        (True, [f"[ 0.28] pci 0000:00:1c.0: {PCH_ENABLED}"], Status.FAIL, "redirected"),
        (True, [], Status.WARN, "no such line"),
        (False, [], Status.PASS, "did not enable"),
        (True, ["pci 0000:00:1c.0: Failed to enable Intel PCH ACS quirk"], Status.PASS, "Failed"),
    ],
)
def test_pcie_acs_judges_the_quirk(
    tmp_path: Path, iommu: bool, log: list[str], status: Status, words: str
) -> None:
    root = _node(tmp_path, iommu)
    host = Host(root=str(root), privileged=True, env={}, hostname="t", kernel=ProfileKernelLog(log))
    verdict = pcie.acs.func(Inventory(host), pcie.AcsParams())
    assert verdict.status is status, verdict.summary
    assert words in verdict.summary or words in verdict.findings[0].message
    assert "nothing can redirect" not in verdict.summary


@given(st.lists(st.text(max_size=120), max_size=20))
def test_quirk_log_never_raises(lines: list[str]) -> None:
    events = quirk_log(lines)
    assert all(
        m in (PCH_ENABLED, "Failed to enable Intel PCH ACS quirk") or "SPT" in m
        for m in events.values()
    )
