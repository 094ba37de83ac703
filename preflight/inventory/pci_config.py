"""Parse a PCI configuration space as read from /sys/bus/pci/devices/<bdf>/config.

Register layout: PCI Local Bus 3.0 ch. 6 and PCI Express Base ch. 7 (as mirrored in Linux
include/uapi/linux/pci_regs.h). Reads by non-root users return only the first 64 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from preflight.errors import ParseError

# Standard header (types 0, 1 and 2 share 0x00-0x0F).
_VENDOR_ID = 0x00
_DEVICE_ID = 0x02
_COMMAND = 0x04
_STATUS = 0x06
_STATUS_CAP_LIST = 0x0010  # Status bit 4: the capability pointer is valid
_REVISION_ID = 0x08  # class code is the 24 bits above it, 0x09-0x0B
_HEADER_TYPE = 0x0E  # bits 6:0 layout, bit 7 multi-function
_HEADER_TYPE_CARDBUS = 2
_CAPABILITY_LIST = 0x34  # type 0 and type 1 headers
_CARDBUS_CAPABILITY_LIST = 0x14  # type 2 header
_HEADER_SIZE = 0x40  # first byte that may hold a capability
_STD_CONFIG_SIZE = 0x100  # conventional config space; extended space is 0x100-0xFFF
_EXT_CONFIG_SIZE = 0x1000

_CAP_ID_EXP = 0x10  # PCI Express capability
_CAP_ID_BROKEN = 0xFF  # what a missing or broken device returns

_EXT_CAP_ID_AER = 0x01
_EXT_CAP_ID_ACS = 0x0D

# PCI Express capability, offsets from its base.
_EXP_FLAGS = 0x02  # bits 3:0 version, 7:4 device/port type
_EXP_DEVCAP = 0x04  # bits 2:0 Max_Payload_Size Supported
_EXP_DEVCTL = 0x08
_EXP_DEVSTA = 0x0A
_EXP_LNKCAP = 0x0C  # bits 3:0 max speed, 9:4 max width, 11:10 ASPM support
_EXP_LNKCTL = 0x10  # bits 1:0 ASPM control
_EXP_LNKSTA = 0x12  # bits 3:0 current speed, 9:4 negotiated width
_EXP_LINK_END = 0x14  # link registers end here
_EXP_DEVICE_END = 0x0C  # device registers end here

_DEVCTL_RELAX_EN = 0x0010
_DEVCTL_PAYLOAD = 0x00E0  # bits 7:5, 128 << v bytes
_DEVCTL_EXT_TAG = 0x0100
_DEVCTL_NOSNOOP_EN = 0x0800
_DEVCTL_READRQ = 0x7000  # bits 14:12, 128 << v bytes
_DEVSTA_CED = 0x0001  # correctable error detected
_DEVSTA_NFED = 0x0002  # non-fatal error detected
_DEVSTA_FED = 0x0004  # fatal error detected
_DEVSTA_URD = 0x0008  # unsupported request detected

# Device/port types (Flags bits 7:4) with the names lspci prints for them.
_PORT_TYPE_NAMES = {
    0: "Endpoint",
    1: "Legacy Endpoint",
    4: "Root Port",
    5: "Upstream Port",
    6: "Downstream Port",
    7: "PCI-Express to PCI/PCI-X Bridge",
    8: "PCI/PCI-X to PCI-Express Bridge",
    9: "Root Complex Integrated Endpoint",
    10: "Root Complex Event Collector",
}
# Root Complex integrated endpoints and event collectors have no link registers.
_PORT_TYPES_WITHOUT_LINK = frozenset({9, 10})

# ACS extended capability: +0x04 ACS Capability (16 bit), +0x06 ACS Control (16 bit).
_ACS_CAP = 0x04
_ACS_CTRL = 0x06
_ACS_END = 0x08

ACS_SV = 0x01  # Source Validation
ACS_TB = 0x02  # Translation Blocking
ACS_RR = 0x04  # P2P Request Redirect
ACS_CR = 0x08  # P2P Completion Redirect
ACS_UF = 0x10  # Upstream Forwarding
ACS_EC = 0x20  # P2P Egress Control
ACS_DT = 0x40  # Direct Translated P2P

_ACS_NAMES = (
    (ACS_SV, "SrcValid"),
    (ACS_TB, "TransBlk"),
    (ACS_RR, "ReqRedir"),
    (ACS_CR, "CmpltRedir"),
    (ACS_UF, "UpstreamFwd"),
    (ACS_EC, "EgressCtrl"),
    (ACS_DT, "DirectTrans"),
)


class ConfigSpaceError(ParseError):
    """The bytes are not a PCI configuration space of a present device."""


@dataclass(frozen=True)
class Capability:
    """One entry of the standard or extended capability list."""

    id: int
    offset: int
    version: int | None  # extended capabilities only


@dataclass(frozen=True)
class PcieCapability:
    """Decoded registers of the PCI Express capability (ID 0x10)."""

    offset: int
    version: int
    port_type: int
    max_payload_supported: int
    max_payload: int
    max_read_request: int
    relaxed_ordering: bool
    no_snoop: bool
    extended_tag: bool
    correctable_detected: bool
    nonfatal_detected: bool
    fatal_detected: bool
    unsupported_detected: bool
    link_cap_speed: int
    link_cap_width: int
    aspm_support: int
    aspm_control: int
    link_speed: int
    link_width: int

    @property
    def port_type_name(self) -> str:
        """The device/port type as lspci names it."""
        return _PORT_TYPE_NAMES.get(self.port_type, f"Unknown type {self.port_type}")


def acs_control_names(control: int) -> list[str]:
    """lspci names of the ACS Control bits set in `control`, in lspci order."""
    return [name for bit, name in _ACS_NAMES if control & bit]


@dataclass(frozen=True)
class AcsCapability:
    """Access Control Services extended capability (ID 0x0D)."""

    offset: int
    capability: int
    control: int

    def enabled(self) -> list[str]:
        """lspci names of the control bits that are set, in lspci order."""
        return acs_control_names(self.control)

    @property
    def redirect_bits(self) -> int:
        """The control bits that send peer-to-peer traffic up to the root complex."""
        return self.control & (ACS_RR | ACS_CR | ACS_EC)


@dataclass(frozen=True)
class PciConfig:
    """Fields of one device's configuration space.

    When `capabilities_readable` is False (a non-root 64-byte read) the capability fields are
    unknown, not absent; likewise `acs`/`aer_offset` when `extended_readable` is False.
    """

    size: int
    vendor_id: int
    device_id: int
    command: int
    status: int
    revision: int
    class_code: int
    header_type: int
    multifunction: bool
    capabilities_readable: bool
    extended_readable: bool
    capabilities: tuple[Capability, ...]
    extended_capabilities: tuple[Capability, ...]
    pcie: PcieCapability | None
    acs: AcsCapability | None
    aer_offset: int | None
    problems: tuple[str, ...]


def _u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little")


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def _walk_standard(data: bytes, header_type: int, problems: list[str]) -> list[Capability]:
    pointer_reg = (
        _CARDBUS_CAPABILITY_LIST if header_type == _HEADER_TYPE_CARDBUS else _CAPABILITY_LIST
    )
    limit = min(len(data), _STD_CONFIG_SIZE)
    caps: list[Capability] = []
    seen: set[int] = set()
    # Bits 1:0 of every capability pointer are reserved.
    where = data[pointer_reg] & 0xFC
    while where:
        if where < _HEADER_SIZE or where + 2 > limit:
            problems.append(f"capability pointer 0x{where:02x} out of range")
            break
        if where in seen:
            problems.append(f"capability list loops back to 0x{where:02x}")
            break
        seen.add(where)
        cap_id = data[where]
        if cap_id == _CAP_ID_BROKEN:
            problems.append(f"capability list broken at 0x{where:02x} (ID 0xff)")
            break
        caps.append(Capability(id=cap_id, offset=where, version=None))
        where = data[where + 1] & 0xFC
    return caps


def _ext_space_aliased(data: bytes) -> bool:
    # A bridge that drops the extended register address bits makes the 256-byte standard space
    # repeat every 0x100 up to 0xFFF; Linux (pci_ext_cfg_is_aliased) then treats the device as
    # having no extended space, comparing the dword at 0x000 with 0x100, 0x200, ... 0xF00.
    first = data[0:4]
    return all(
        data[pos : pos + 4] == first
        for pos in range(_STD_CONFIG_SIZE, _EXT_CONFIG_SIZE, _STD_CONFIG_SIZE)
    )


def _walk_extended(data: bytes, problems: list[str]) -> list[Capability]:
    if _ext_space_aliased(data):
        problems.append(
            "extended config space repeats the standard header at every 0x100: "
            "device has no extended capabilities"
        )
        return []
    caps: list[Capability] = []
    seen: set[int] = set()
    where = _STD_CONFIG_SIZE
    while True:
        if where in seen:
            problems.append(f"extended capability list loops back to 0x{where:03x}")
            break
        seen.add(where)
        # Header: bits 15:0 ID, 19:16 version, 31:20 next offset (bits 1:0 reserved).
        header = _u32(data, where)
        if header in (0, 0xFFFFFFFF):
            break
        caps.append(Capability(id=header & 0xFFFF, offset=where, version=(header >> 16) & 0xF))
        nxt = (header >> 20) & 0xFFC
        if nxt == 0:
            break
        if nxt < _STD_CONFIG_SIZE or nxt + 4 > len(data):
            problems.append(
                f"extended capability pointer 0x{nxt:03x} out of range (at 0x{where:03x})"
            )
            break
        where = nxt
    return caps


def _decode_pcie(data: bytes, base: int, problems: list[str]) -> PcieCapability | None:
    flags = _u16(data, base + _EXP_FLAGS)
    port_type = (flags >> 4) & 0xF
    has_link = port_type not in _PORT_TYPES_WITHOUT_LINK
    end = base + (_EXP_LINK_END if has_link else _EXP_DEVICE_END)
    if end > min(len(data), _STD_CONFIG_SIZE):
        problems.append(f"PCI Express capability at 0x{base:02x} runs past 0xff")
        return None
    devcap = _u32(data, base + _EXP_DEVCAP)
    devctl = _u16(data, base + _EXP_DEVCTL)
    devsta = _u16(data, base + _EXP_DEVSTA)
    lnkcap = _u32(data, base + _EXP_LNKCAP) if has_link else 0
    lnkctl = _u16(data, base + _EXP_LNKCTL) if has_link else 0
    lnksta = _u16(data, base + _EXP_LNKSTA) if has_link else 0
    return PcieCapability(
        offset=base,
        version=flags & 0xF,
        port_type=port_type,
        max_payload_supported=128 << (devcap & 0x7),
        max_payload=128 << ((devctl & _DEVCTL_PAYLOAD) >> 5),
        max_read_request=128 << ((devctl & _DEVCTL_READRQ) >> 12),
        relaxed_ordering=bool(devctl & _DEVCTL_RELAX_EN),
        no_snoop=bool(devctl & _DEVCTL_NOSNOOP_EN),
        extended_tag=bool(devctl & _DEVCTL_EXT_TAG),
        correctable_detected=bool(devsta & _DEVSTA_CED),
        nonfatal_detected=bool(devsta & _DEVSTA_NFED),
        fatal_detected=bool(devsta & _DEVSTA_FED),
        unsupported_detected=bool(devsta & _DEVSTA_URD),
        link_cap_speed=lnkcap & 0xF,
        link_cap_width=(lnkcap >> 4) & 0x3F,
        aspm_support=(lnkcap >> 10) & 0x3,
        aspm_control=lnkctl & 0x3,
        link_speed=lnksta & 0xF,
        link_width=(lnksta >> 4) & 0x3F,
    )


def _decode_acs(data: bytes, base: int, problems: list[str]) -> AcsCapability | None:
    if base + _ACS_END > len(data):
        problems.append(f"ACS capability at 0x{base:03x} runs past the end of the data")
        return None
    return AcsCapability(
        offset=base, capability=_u16(data, base + _ACS_CAP), control=_u16(data, base + _ACS_CTRL)
    )


def parse_config_space(data: bytes) -> PciConfig:
    """Decode `data`; raise ConfigSpaceError if it is no device's config space."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ConfigSpaceError(f"config space must be bytes, not {type(data).__name__}")
    data = bytes(data)
    size = len(data)
    if size < _HEADER_SIZE:
        raise ConfigSpaceError(f"config space is {size} bytes; the standard header needs 64")
    vendor_id = _u16(data, _VENDOR_ID)
    if vendor_id in (0xFFFF, 0x0000):
        raise ConfigSpaceError(f"vendor ID 0x{vendor_id:04x}: no device responds")
    header_type = data[_HEADER_TYPE] & 0x7F
    status = _u16(data, _STATUS)
    capabilities_readable = size >= _STD_CONFIG_SIZE
    extended_readable = size >= _EXT_CONFIG_SIZE
    problems: list[str] = []

    caps: list[Capability] = []
    ext_caps: list[Capability] = []
    pcie: PcieCapability | None = None
    acs: AcsCapability | None = None
    aer_offset: int | None = None
    if capabilities_readable and status & _STATUS_CAP_LIST:
        caps = _walk_standard(data, header_type, problems)
        exp = next((c for c in caps if c.id == _CAP_ID_EXP), None)
        if exp is not None:
            pcie = _decode_pcie(data, exp.offset, problems)
    if extended_readable:
        ext_caps = _walk_extended(data, problems)
        acs_cap = next((c for c in ext_caps if c.id == _EXT_CAP_ID_ACS), None)
        if acs_cap is not None:
            acs = _decode_acs(data, acs_cap.offset, problems)
        aer_offset = next((c.offset for c in ext_caps if c.id == _EXT_CAP_ID_AER), None)

    return PciConfig(
        size=size,
        vendor_id=vendor_id,
        device_id=_u16(data, _DEVICE_ID),
        command=_u16(data, _COMMAND),
        status=status,
        revision=data[_REVISION_ID],
        class_code=int.from_bytes(data[_REVISION_ID + 1 : _REVISION_ID + 4], "little"),
        header_type=header_type,
        multifunction=bool(data[_HEADER_TYPE] & 0x80),
        capabilities_readable=capabilities_readable,
        extended_readable=extended_readable,
        capabilities=tuple(caps),
        extended_capabilities=tuple(ext_caps),
        pcie=pcie,
        acs=acs,
        aer_offset=aer_offset,
        problems=tuple(problems),
    )
