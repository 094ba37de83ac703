"""parse_config_space against real pciutils dumps, with lspci 3.9.0's decoding as the oracle."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight.errors import ParseError
from preflight.inventory.pci_config import (
    ACS_CR,
    ACS_DT,
    ACS_EC,
    ACS_RR,
    ACS_SV,
    ACS_TB,
    ACS_UF,
    AcsCapability,
    ConfigSpaceError,
    PciConfig,
    parse_config_space,
)
from tests.paths import CAPTURES
from tests.pci_dump import (
    OracleCap,
    OracleDevice,
    decoded_path,
    dump_files,
    flags,
    normalize_bdf,
    parse_lspci_decoded,
    parse_lspci_hex_dump,
    speed_code,
    width,
)

# lspci's name for a standard capability (start of the text after `[xx] `) -> capability ID.
STANDARD_CAP_IDS: dict[str, frozenset[int]] = {
    "Null": frozenset({0x00}),
    "Power Management version": frozenset({0x01}),
    "Vital Product Data": frozenset({0x03}),
    "MSI:": frozenset({0x05}),
    "Vendor Specific Information": frozenset({0x09}),
    "Debug port": frozenset({0x0A}),
    "Subsystem:": frozenset({0x0D}),
    "Express": frozenset({0x10}),
    "MSI-X:": frozenset({0x11}),
    "SATA HBA": frozenset({0x12}),
    "PCI Advanced Features": frozenset({0x13}),
}
# lspci's name for an extended capability -> extended capability ID(s).
EXTENDED_CAP_IDS: dict[str, frozenset[int]] = {
    "Advanced Error Reporting": frozenset({0x01}),
    "Virtual Channel": frozenset({0x02, 0x09}),  # VC and MFVC-less VC9 print the same
    "Device Serial Number": frozenset({0x03}),
    "Power Budgeting": frozenset({0x04}),
    "Root Complex Link": frozenset({0x05}),
    "Vendor Specific Information": frozenset({0x0B}),
    "Access Control Services": frozenset({0x0D}),
    "Alternative Routing-ID Interpretation": frozenset({0x0E}),
    "Single Root I/O Virtualization": frozenset({0x10}),
    "Multicast": frozenset({0x12}),
    "Latency Tolerance Reporting": frozenset({0x18}),
    "Secondary PCI Express": frozenset({0x19}),
    "L1 PM Substates": frozenset({0x1E}),
}
ACS_LSPCI_ORDER = (
    "SrcValid",
    "TransBlk",
    "ReqRedir",
    "CmpltRedir",
    "UpstreamFwd",
    "EgressCtrl",
    "DirectTrans",
)
ACS_BITS = (ACS_SV, ACS_TB, ACS_RR, ACS_CR, ACS_UF, ACS_EC, ACS_DT)
ASPM_SUPPORT = {"not supported": 0, "L0s": 1, "L1": 2, "L0s L1": 3}
ASPM_CONTROL = {"Disabled": 0, "L0s Enabled": 1, "L1 Enabled": 2, "L0s L1 Enabled": 3}

HASWELL = "lspci-xxxx_IntelHaswellE-rootport-ACSenabled_Mellanox-CX3Pro_pciutils-tests.txt"
X58 = "lspci-xxxx_Intel-X58-rootport-ACS-AER_pciutils-tests.txt"
PEX8532 = "lspci-xxxx_PLX-PEX8532-switch-port_pciutils-tests.txt"
PEX9716 = "lspci-xxxx_PLX-PEX9716-switch-port-256B_pciutils-tests.txt"
BROKEN = "lspci-xxxx_broken-extended-caps_ATI-RS690_pciutils-tests.txt"
NCCL_ACS = "lspci-ACSCtl-grep_GPU-servers_nccl-issues523-606-2079.txt"


def _dumps() -> dict[str, dict[str, bytes]]:
    return {p.name: parse_lspci_hex_dump(p.read_text()) for p in dump_files()}


def _oracles() -> dict[str, dict[str, OracleDevice]]:
    return {p.name: parse_lspci_decoded(decoded_path(p).read_text()) for p in dump_files()}


DUMPS = _dumps()
ORACLES = _oracles()
DEVICES = [(name, bdf) for name, devs in DUMPS.items() for bdf in devs]
DEVICE_IDS = [f"{name.split('_')[1]}:{bdf}" for name, bdf in DEVICES]


def _device(dump: str, bdf: str) -> tuple[PciConfig, OracleDevice]:
    return parse_config_space(DUMPS[dump][bdf]), ORACLES[dump][normalize_bdf(bdf)]


def _expected_ids(cap: OracleCap) -> frozenset[int] | None:
    table = STANDARD_CAP_IDS if cap.version is None else EXTENDED_CAP_IDS
    return next((ids for name, ids in table.items() if cap.text.startswith(name)), None)


# --- the corpus itself -------------------------------------------------------------------------


def test_corpus_is_complete() -> None:
    assert len(DUMPS) == 9
    assert len(DEVICES) == 65
    for name, devs in DUMPS.items():
        assert {normalize_bdf(b) for b in devs} == set(ORACLES[name]), name
        assert {len(b) for b in devs.values()} <= {256, 4096}, name


def test_every_oracle_capability_name_is_mapped() -> None:
    unmapped = {
        (cap.version is not None, cap.text)
        for devs in ORACLES.values()
        for dev in devs.values()
        for cap in dev.caps
        if _expected_ids(cap) is None
    }
    assert unmapped == set()


# --- every device of every dump against lspci ----------------------------------------------------


@pytest.mark.parametrize(("dump", "bdf"), DEVICES, ids=DEVICE_IDS)
def test_header_matches_oracle(dump: str, bdf: str) -> None:
    cfg, dev = _device(dump, bdf)
    m = re.search(
        r" \[(?P<cls>[0-9a-f]{4})\]: .*\[(?P<ven>[0-9a-f]{4}):(?P<did>[0-9a-f]{4})\]", dev.header
    )
    assert m is not None, dev.header
    assert cfg.vendor_id == int(m.group("ven"), 16)
    assert cfg.device_id == int(m.group("did"), 16)
    assert cfg.class_code >> 8 == int(m.group("cls"), 16)
    rev = re.search(r"\(rev ([0-9a-f]{2})\)", dev.header)
    if rev is not None:
        assert cfg.revision == int(rev.group(1), 16)
    assert ("Status: Cap+" in dev.status_line) == bool(cfg.status & 0x10)
    assert cfg.capabilities_readable
    assert cfg.extended_readable == (cfg.size == 4096)


@pytest.mark.parametrize(("dump", "bdf"), DEVICES, ids=DEVICE_IDS)
def test_capability_lists_match_oracle(dump: str, bdf: str) -> None:
    cfg, dev = _device(dump, bdf)
    assert [c.offset for c in cfg.capabilities] == [c.offset for c in dev.standard]
    assert [(c.offset, c.version) for c in cfg.extended_capabilities] == [
        (c.offset, c.version) for c in dev.extended
    ]
    for mine, theirs in zip(
        cfg.capabilities + cfg.extended_capabilities, dev.standard + dev.extended, strict=True
    ):
        ids = _expected_ids(theirs)
        if ids is not None:
            assert mine.id in ids, f"[{theirs.offset:x}] {theirs.text}: id {mine.id:#x}"
    aer = dev.find("Advanced Error Reporting", extended=True)
    assert cfg.aer_offset == (None if aer is None else aer.offset)
    if dump != BROKEN:
        assert cfg.problems == ()


@pytest.mark.parametrize(("dump", "bdf"), DEVICES, ids=DEVICE_IDS)
def test_pcie_capability_matches_oracle(dump: str, bdf: str) -> None:
    cfg, dev = _device(dump, bdf)
    exp = dev.find("Express", extended=False)
    if exp is None:
        assert cfg.pcie is None
        return
    pcie = cfg.pcie
    assert pcie is not None
    m = re.fullmatch(r"Express \(v(\d+)\) (.+?)(?: \(Slot[+-]\))?, MSI [0-9a-f]{2}", exp.text)
    assert m is not None, exp.text
    assert (pcie.offset, pcie.version, pcie.port_type_name) == (exp.offset, int(m[1]), m[2])

    regs = exp.registers
    devcap = re.search(r"MaxPayload (\d+) bytes", regs["DevCap"])
    assert devcap is not None
    assert pcie.max_payload_supported == int(devcap[1])

    devctl = flags(regs["DevCtl"])
    assert pcie.relaxed_ordering == devctl["RlxdOrd"]
    assert pcie.extended_tag == devctl["ExtTag"]
    assert pcie.no_snoop == devctl["NoSnoop"]
    sizes = re.search(r"MaxPayload (\d+) bytes, MaxReadReq (\d+) bytes", regs["DevCtl"])
    assert sizes is not None
    assert (pcie.max_payload, pcie.max_read_request) == (int(sizes[1]), int(sizes[2]))

    devsta = flags(regs["DevSta"])
    assert pcie.correctable_detected == devsta["CorrErr"]
    assert pcie.nonfatal_detected == devsta["NonFatalErr"]
    assert pcie.fatal_detected == devsta["FatalErr"]
    assert pcie.unsupported_detected == devsta["UnsupReq"]

    if "LnkCap" not in regs:  # lspci prints no link for RC integrated endpoints/event collectors
        assert pcie.port_type in (9, 10)
        link = (pcie.link_cap_speed, pcie.link_cap_width, pcie.link_speed, pcie.link_width)
        assert link == (0, 0, 0, 0)
        return
    _assert_speed(pcie.link_cap_speed, regs["LnkCap"])
    assert pcie.link_cap_width == width(regs["LnkCap"])
    aspm = re.search(r"ASPM (not supported|L0s L1|L0s|L1)", regs["LnkCap"])
    assert aspm is not None
    assert pcie.aspm_support == ASPM_SUPPORT[aspm[1]]
    aspm = re.match(r"ASPM (Disabled|L0s L1 Enabled|L0s Enabled|L1 Enabled);", regs["LnkCtl"])
    assert aspm is not None
    assert pcie.aspm_control == ASPM_CONTROL[aspm[1]]
    _assert_speed(pcie.link_speed, regs["LnkSta"])
    assert pcie.link_width == width(regs["LnkSta"])


def _assert_speed(code: int, text: str) -> None:
    expected = speed_code(text)
    if expected == 0:  # lspci prints "unknown" for every code outside 1..6
        assert not 1 <= code <= 6
    else:
        assert code == expected


@pytest.mark.parametrize(("dump", "bdf"), DEVICES, ids=DEVICE_IDS)
def test_acs_matches_oracle(dump: str, bdf: str) -> None:
    cfg, dev = _device(dump, bdf)
    oracle = dev.find("Access Control Services", extended=True)
    if oracle is None:
        assert cfg.acs is None
        return
    acs = cfg.acs
    assert acs is not None
    assert acs.offset == oracle.offset
    cap_flags = flags(oracle.registers["ACSCap"])
    ctl_flags = flags(oracle.registers["ACSCtl"])
    for name, bit in zip(ACS_LSPCI_ORDER, ACS_BITS, strict=True):
        assert bool(acs.capability & bit) == cap_flags[name], f"ACSCap {name}"
        assert bool(acs.control & bit) == ctl_flags[name], f"ACSCtl {name}"
    assert acs.enabled() == [n for n in ACS_LSPCI_ORDER if ctl_flags[n]]


# --- named devices -----------------------------------------------------------------------------


def test_haswell_root_port_above_connectx3_has_acs_enabled() -> None:
    cfg = parse_config_space(DUMPS[HASWELL]["00:02.0"])
    assert (cfg.vendor_id, cfg.device_id, cfg.class_code) == (0x8086, 0x2F04, 0x060400)
    # Header type 0x81: a bridge header, multi-function bit set.
    assert (cfg.header_type, cfg.multifunction, cfg.size) == (1, True, 4096)
    assert [c.offset for c in cfg.capabilities] == [0x40, 0x60, 0x90, 0xE0]
    assert cfg.pcie is not None
    assert (cfg.pcie.offset, cfg.pcie.port_type, cfg.pcie.port_type_name) == (0x90, 4, "Root Port")
    assert (cfg.pcie.max_payload, cfg.pcie.max_read_request) == (256, 128)
    assert (cfg.pcie.link_cap_speed, cfg.pcie.link_cap_width) == (3, 8)  # 8 GT/s x8
    assert (cfg.pcie.link_speed, cfg.pcie.link_width) == (3, 8)
    assert cfg.acs == AcsCapability(offset=0x110, capability=0x001F, control=0x001F)
    assert cfg.acs.enabled() == ["SrcValid", "TransBlk", "ReqRedir", "CmpltRedir", "UpstreamFwd"]
    assert cfg.acs.redirect_bits == ACS_RR | ACS_CR
    assert cfg.aer_offset == 0x148


def test_connectx3_pro_endpoint() -> None:
    cfg = parse_config_space(DUMPS[HASWELL]["03:00.0"])
    assert (cfg.vendor_id, cfg.device_id, cfg.class_code) == (0x15B3, 0x1007, 0x020000)
    assert cfg.pcie is not None
    assert (cfg.pcie.port_type_name, cfg.pcie.max_read_request) == ("Endpoint", 512)
    # 4 KiB readable and no ACS in the list: absent, not unknown.
    assert cfg.extended_readable
    assert cfg.acs is None
    assert cfg.aer_offset == 0x154
    # No SR-IOV capability (0x0010) in this dump, whatever the capture index says.
    assert [(c.id, c.offset) for c in cfg.extended_capabilities] == [
        (0x0E, 0x100),
        (0x03, 0x148),
        (0x01, 0x154),
        (0x19, 0x18C),
    ]


def test_x58_root_port_acs_supported_but_disabled() -> None:
    cfg = parse_config_space(DUMPS[X58]["00:01.0"])
    assert cfg.acs == AcsCapability(offset=0x150, capability=0x001F, control=0x0000)
    assert cfg.acs.enabled() == []
    assert cfg.acs.redirect_bits == 0


def test_plx_extended_list_is_walked_in_pointer_order() -> None:
    cfg = parse_config_space(DUMPS[PEX8532]["0000:12:08.0"])
    assert [c.offset for c in cfg.extended_capabilities] == [0x100, 0xFB4, 0x138, 0x148]
    assert cfg.aer_offset == 0xFB4


def test_256_byte_dump_leaves_extended_capabilities_unknown() -> None:
    cfg = parse_config_space(DUMPS[PEX9716]["05:01.0"])
    assert (cfg.size, cfg.capabilities_readable, cfg.extended_readable) == (256, True, False)
    assert cfg.pcie is not None
    assert cfg.pcie.port_type_name == "Downstream Port"
    assert (cfg.pcie.max_payload_supported, cfg.pcie.max_payload) == (1024, 128)
    assert cfg.pcie.no_snoop
    assert cfg.pcie.correctable_detected
    assert cfg.pcie.unsupported_detected
    # None here means "not readable", which only extended_readable tells apart from "absent".
    assert (cfg.acs, cfg.aer_offset, cfg.extended_capabilities) == (None, None, ())
    assert cfg.problems == ()


def test_broken_extended_caps_parse_with_a_problem() -> None:
    cfg = parse_config_space(DUMPS[BROKEN]["00:00.0"])
    assert (cfg.vendor_id, cfg.device_id) == (0x1002, 0x7911)
    assert not cfg.status & 0x10
    assert cfg.capabilities == ()
    assert cfg.extended_capabilities == ()
    assert cfg.pcie is None
    assert cfg.acs is None
    assert len(cfg.problems) == 1
    assert "repeats the standard header" in cfg.problems[0]


def test_64_byte_read_makes_capabilities_unknown() -> None:
    cfg = parse_config_space(DUMPS[HASWELL]["00:02.0"][:64])
    assert (cfg.vendor_id, cfg.device_id) == (0x8086, 0x2F04)
    assert (cfg.class_code, cfg.revision) == (0x060400, 2)
    assert cfg.status & 0x10  # the list exists; it just was not read
    assert (cfg.capabilities_readable, cfg.extended_readable) == (False, False)
    assert (cfg.capabilities, cfg.extended_capabilities) == ((), ())
    assert (cfg.pcie, cfg.acs, cfg.aer_offset) == (None, None, None)
    assert cfg.problems == ()


# --- hand-built spaces ---------------------------------------------------------------------------


def _space(size: int = 256, *, status: int = 0x0010, cap_ptr: int = 0x40) -> bytearray:
    data = bytearray(size)
    data[0:4] = (0x8086 | 0x1234 << 16).to_bytes(4, "little")
    data[0x06:0x08] = status.to_bytes(2, "little")
    data[0x34] = cap_ptr
    return data


def _ext(data: bytearray, at: int, cap_id: int, version: int, nxt: int) -> None:
    data[at : at + 4] = (cap_id | version << 16 | nxt << 20).to_bytes(4, "little")


def test_standard_list_loop_is_reported() -> None:
    data = _space()
    data[0x40:0x42] = bytes([0x01, 0x50])
    data[0x50:0x52] = bytes([0x05, 0x40])
    cfg = parse_config_space(bytes(data))
    assert [(c.id, c.offset) for c in cfg.capabilities] == [(0x01, 0x40), (0x05, 0x50)]
    assert cfg.problems == ("capability list loops back to 0x40",)


def test_standard_pointer_into_header_is_reported() -> None:
    data = _space(cap_ptr=0x20)
    cfg = parse_config_space(bytes(data))
    assert cfg.capabilities == ()
    assert cfg.problems == ("capability pointer 0x20 out of range",)


def test_standard_list_ignored_without_status_bit() -> None:
    data = _space(status=0)
    data[0x40:0x42] = bytes([0x01, 0x00])
    assert parse_config_space(bytes(data)).capabilities == ()


def test_cardbus_uses_pointer_at_0x14() -> None:
    data = _space(cap_ptr=0)
    data[0x0E] = 0x82  # CardBus header, multi-function
    data[0x14] = 0x80
    data[0x80:0x82] = bytes([0x01, 0x00])
    cfg = parse_config_space(bytes(data))
    assert (cfg.header_type, cfg.multifunction) == (2, True)
    assert [c.offset for c in cfg.capabilities] == [0x80]


def test_pcie_capability_past_standard_space_is_reported() -> None:
    data = _space(4096, cap_ptr=0xF8)
    data[0xF8:0xFC] = bytes([0x10, 0x00, 0x02, 0x00])
    cfg = parse_config_space(bytes(data))
    assert cfg.pcie is None
    assert cfg.problems == ("PCI Express capability at 0xf8 runs past 0xff",)


def _pcie_space(flags: int, devctl: int, lnkcap: int, lnksta: int) -> bytes:
    data = _space()
    data[0x40:0x42] = bytes([0x10, 0x00])
    data[0x42:0x44] = flags.to_bytes(2, "little")
    data[0x44:0x48] = (0x5).to_bytes(4, "little")  # DevCap: MPS supported 4096
    data[0x48:0x4A] = devctl.to_bytes(2, "little")
    data[0x4A:0x4C] = (0x000F).to_bytes(2, "little")  # DevSta: CED NFED FED URD
    data[0x4C:0x50] = lnkcap.to_bytes(4, "little")
    data[0x50:0x52] = (0x0003).to_bytes(2, "little")  # LnkCtl: ASPM L0s L1
    data[0x52:0x54] = lnksta.to_bytes(2, "little")
    return bytes(data)


def test_pcie_registers_use_full_field_widths() -> None:
    # v2 root port; DevCtl MPS=5, MRRS=5, RO, ExtTag, NoSnoop; LnkCap 64 GT/s x32 ASPM L0s L1;
    # LnkSta 32 GT/s x32.
    pcie = parse_config_space(_pcie_space(0x0042, 0x59B0, 0x0E06, 0x0205)).pcie
    assert pcie is not None
    assert (pcie.version, pcie.port_type, pcie.port_type_name) == (2, 4, "Root Port")
    assert (pcie.max_payload_supported, pcie.max_payload, pcie.max_read_request) == (4096,) * 3
    assert (pcie.relaxed_ordering, pcie.extended_tag, pcie.no_snoop) == (True, True, True)
    errors = (
        pcie.correctable_detected,
        pcie.nonfatal_detected,
        pcie.fatal_detected,
        pcie.unsupported_detected,
    )
    assert errors == (True, True, True, True)
    assert (pcie.link_cap_speed, pcie.link_cap_width, pcie.aspm_support) == (6, 32, 3)
    assert (pcie.aspm_control, pcie.link_speed, pcie.link_width) == (3, 5, 32)


def test_rc_integrated_endpoint_has_no_link_fields() -> None:
    pcie = parse_config_space(_pcie_space(0x0092, 0x0000, 0x0E06, 0x0205)).pcie
    assert pcie is not None
    assert pcie.port_type_name == "Root Complex Integrated Endpoint"
    link = (pcie.link_cap_speed, pcie.link_cap_width, pcie.aspm_support, pcie.aspm_control)
    assert link == (0, 0, 0, 0)
    assert (pcie.link_speed, pcie.link_width) == (0, 0)
    unknown = parse_config_space(_pcie_space(0x00F2, 0x0000, 0x0E06, 0x0205)).pcie
    assert unknown is not None
    assert unknown.port_type_name == "Unknown type 15"


def test_extended_pointer_out_of_range_is_reported() -> None:
    data = _space(4096, cap_ptr=0)
    _ext(data, 0x100, 0x0001, 2, 0x040)
    cfg = parse_config_space(bytes(data))
    assert [(c.id, c.offset, c.version) for c in cfg.extended_capabilities] == [(1, 0x100, 2)]
    assert cfg.aer_offset == 0x100
    assert cfg.problems == ("extended capability pointer 0x040 out of range (at 0x100)",)


def test_extended_list_loop_is_reported() -> None:
    data = _space(4096, cap_ptr=0)
    _ext(data, 0x100, 0x000D, 1, 0x200)
    data[0x104:0x108] = bytes([0x1D, 0x00, 0x1D, 0x00])
    _ext(data, 0x200, 0x0001, 1, 0x100)
    cfg = parse_config_space(bytes(data))
    assert [c.offset for c in cfg.extended_capabilities] == [0x100, 0x200]
    assert cfg.acs == AcsCapability(offset=0x100, capability=0x001D, control=0x001D)
    assert cfg.problems == ("extended capability list loops back to 0x100",)


def test_extended_list_stops_at_all_ones() -> None:
    data = _space(4096, cap_ptr=0)
    data[0x100:0x104] = b"\xff\xff\xff\xff"
    cfg = parse_config_space(bytes(data))
    assert (cfg.extended_capabilities, cfg.problems) == ((), ())


@pytest.mark.parametrize(
    "data",
    [b"", b"\x86\x80", bytes(63), b"\xff" * 64, b"\xff" * 4096, bytes(256), bytes(4096)],
    ids=["empty", "2B", "63B", "ffff-64", "ffff-4096", "zero-256", "zero-4096"],
)
def test_garbage_raises_config_space_error(data: bytes) -> None:
    with pytest.raises(ConfigSpaceError) as info:
        parse_config_space(data)
    assert isinstance(info.value, ParseError)
    assert "\n" not in str(info.value)


# --- ACS register decoding -----------------------------------------------------------------------


def test_nccl_2079_acsctl_0x001d() -> None:
    acs = AcsCapability(offset=0x2A0, capability=0x005F, control=0x001D)
    assert acs.enabled() == ["SrcValid", "ReqRedir", "CmpltRedir", "UpstreamFwd"]
    assert acs.redirect_bits == ACS_RR | ACS_CR
    assert AcsCapability(offset=0x2A0, capability=0x005F, control=0x0000).enabled() == []


def test_enabled_names_match_real_lspci_acsctl_lines() -> None:
    lines = re.findall(r"ACSCtl:\s*(.*)", (CAPTURES / NCCL_ACS).read_text())
    lines = [ln for ln in lines if "SrcValid" in ln and "DirectTrans" in ln]
    assert len(lines) >= 20
    for line in lines:
        bits = flags(line)
        control = sum(
            bit for name, bit in zip(ACS_LSPCI_ORDER, ACS_BITS, strict=True) if bits[name]
        )
        assert AcsCapability(0, 0x7F, control).enabled() == [n for n in ACS_LSPCI_ORDER if bits[n]]


# --- the dump reader -----------------------------------------------------------------------------


def test_hex_dump_reader_skips_comments_and_decoding() -> None:
    text = (
        "# a comment\n"
        "0000:12:08.0 Class 0604: Device 10b5:8532\n"
        "\tStatus: Cap+ 66MHz-\n"
        "00: b5 10 32 85 07 00 10 00 bc 00 04 06 00 00 01 00\n"
        "10: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n"
        "\n"
        "03:00.0 Ethernet controller: Mellanox\n"
        "# another\n"
        "000: b3 15 07 10 06 04 10 00 00 00 00 02 10 00 00 00\n"
    )
    dumps = parse_lspci_hex_dump(text)
    assert list(dumps) == ["0000:12:08.0", "03:00.0"]
    assert len(dumps["0000:12:08.0"]) == 32
    assert dumps["03:00.0"][:4] == bytes.fromhex("b3150710")


# --- robustness ----------------------------------------------------------------------------------

_SEED_DUMPS = [b for devs in DUMPS.values() for b in devs.values() if len(b) == 4096]


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


_arbitrary = st.one_of(
    st.binary(max_size=300),
    st.builds(
        _random_bytes,
        st.sampled_from([0, 63, 64, 256, 4096]) | st.integers(0, 5000),
        st.integers(0, 2**32),
    ),
)


def _mutate(base: bytes, edits: list[tuple[int, int]], force_valid: bool) -> bytes:
    data = bytearray(base)
    for pos, value in edits:
        data[pos % len(data)] = value
    if force_valid:
        data[0:2] = b"\x86\x80"
        data[6] |= 0x10
    return bytes(data)


_mutated = st.builds(
    _mutate,
    st.sampled_from(_SEED_DUMPS),
    st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=40),
    st.booleans(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_arbitrary | _mutated)
def test_only_config_space_error_escapes(data: bytes) -> None:
    try:
        cfg = parse_config_space(data)
    except ConfigSpaceError:
        return
    assert cfg.size == len(data)
    assert cfg.capabilities_readable == (len(data) >= 256)
    assert len(cfg.capabilities) <= 48
    assert len(cfg.extended_capabilities) <= (4096 - 256) // 4
    for problem in cfg.problems:
        assert problem
        assert "\n" not in problem
