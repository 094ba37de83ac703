"""The PCI configuration space builder: 4 KiB config spaces written register by register,
with the standard and extended capabilities the built-in profiles' devices have."""

from __future__ import annotations

from dataclasses import dataclass

CONFIG_SIZE = 4096  # PCIe extended config space; non-root readers get only the first 64 bytes
UNPRIVILEGED_CONFIG_SIZE = 64  # pci_read_config(): size = 64 unless CAP_SYS_ADMIN

# Header registers (include/uapi/linux/pci_regs.h).
PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PCI_COMMAND_MASTER = 0x001, 0x002, 0x004
PCI_COMMAND_PARITY, PCI_COMMAND_SERR, PCI_COMMAND_INTX_DISABLE = 0x040, 0x100, 0x400
PCI_STATUS_CAP_LIST = 0x0010  # status bit 4: a capability list starts at 0x34
PCI_BRIDGE_CTL_PARITY, PCI_BRIDGE_CTL_SERR, PCI_BRIDGE_CTL_VGA_16BIT = 0x01, 0x02, 0x10

# Capability ids: standard list (byte id) and extended list (16-bit id at 0x100+).
CAP_PM, CAP_VPD, CAP_MSI, CAP_VNDR = 0x01, 0x03, 0x05, 0x09
CAP_SSVID, CAP_EXP, CAP_MSIX = 0x0D, 0x10, 0x11
CAP_NULL = 0x00  # a real, empty list entry; A100 shows "Capabilities: [68] Null" (CAP_A100_LSPCI)
ECAP_AER, ECAP_VC, ECAP_DSN, ECAP_VNDR = 0x01, 0x02, 0x03, 0x0B
ECAP_ACS, ECAP_ARI, ECAP_REBAR, ECAP_SECPCI = 0x0D, 0x0E, 0x15, 0x19

# PCIe capability: device/port type in Flags bits 7:4.
EXP_ENDPOINT, EXP_ROOT_PORT, EXP_UPSTREAM, EXP_DOWNSTREAM = 0x0, 0x4, 0x5, 0x6

# DevCtl (cap+0x08): error reporting enables, Relaxed Ordering, Extended Tag, No Snoop.
DEVCTL_CERE, DEVCTL_NFERE, DEVCTL_FERE = 0x0001, 0x0002, 0x0004
DEVCTL_RELAX_EN, DEVCTL_EXT_TAG, DEVCTL_NOSNOOP_EN = 0x0010, 0x0100, 0x0800
# Kernel AER on, UR reporting off: "CorrErr+ NonFatalErr+ FatalErr+ UnsupReq-" is what both the
# A100 (CAP_A100_LSPCI) and the PEX88096 ports (CAP_PEX88096) report.
DEVCTL_ERR_REPORTING = DEVCTL_CERE | DEVCTL_NFERE | DEVCTL_FERE

# Encoded sizes: MPS in DevCap bits 2:0 / DevCtl bits 7:5, MRRS in DevCtl bits 14:12; 128 << code.
SIZE_CODE = {128: 0, 256: 1, 512: 2, 1024: 3, 2048: 4, 4096: 5}

# Link speeds: LnkCap/LnkSta code -> sysfs string (drivers/pci/probe.c pci_speed_string()).
SPEED_STRING = {
    1: "2.5 GT/s PCIe",
    2: "5.0 GT/s PCIe",
    3: "8.0 GT/s PCIe",
    4: "16.0 GT/s PCIe",
    5: "32.0 GT/s PCIe",
}
GEN5, GEN1 = 5, 1
# Mb/s per lane after line coding (PCIE_SPEED2MBS_ENC): 8b/10b for Gen1/2, 128b/130b above.
SPEED_MBS_ENC = {1: 2000, 2: 4000, 3: 7876, 4: 15753, 5: 31507}

# ACS Capability / Control bits (PCI_ACS_*): SV, TB, RR, CR, UF, EC, DT.
ACS_SV, ACS_TB, ACS_RR, ACS_CR, ACS_UF, ACS_EC, ACS_DT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
# nccl#2079: "ACSCtl: 0x001d = SrcValid+, ReqRedir+, CmpltRedir+, UpstreamFwd+" (CAP_ACS_NCCL).
ACS_CTL_REDIRECT = ACS_SV | ACS_RR | ACS_CR | ACS_UF
assert ACS_CTL_REDIRECT == 0x001D


@dataclass(frozen=True)
class Cap:
    """One capability: its id, its registers as (offset from the cap, width in bytes, value)."""

    cap_id: int
    regs: tuple[tuple[int, int, int], ...] = ()
    version: int = 0  # extended capabilities only (bits 19:16 of the header)


class ConfigSpace:
    """A function's configuration space, written register by register, little-endian."""

    def __init__(self, size: int = CONFIG_SIZE) -> None:
        self.data = bytearray(size)

    def put(self, offset: int, width: int, value: int) -> None:
        self.data[offset : offset + width] = value.to_bytes(width, "little")

    def get(self, offset: int, width: int) -> int:
        return int.from_bytes(self.data[offset : offset + width], "little")

    def place_caps(self, caps: list[tuple[int, Cap]]) -> None:
        """Write the standard list: 0x34 points at the first cap, each byte+1 at the next."""
        self.put(0x06, 2, self.get(0x06, 2) | PCI_STATUS_CAP_LIST)
        self.put(0x34, 1, caps[0][0])
        for i, (offset, cap) in enumerate(caps):
            following = caps[i + 1][0] if i + 1 < len(caps) else 0
            self.put(offset, 1, cap.cap_id)
            self.put(offset + 1, 1, following)
            for rel, width, value in cap.regs:
                self.put(offset + rel, width, value)

    def place_ext_caps(self, caps: list[tuple[int, Cap]]) -> None:
        """Write the extended list from 0x100; header = id | version << 16 | next << 20."""
        assert caps[0][0] == 0x100
        for i, (offset, cap) in enumerate(caps):
            following = caps[i + 1][0] if i + 1 < len(caps) else 0
            self.put(offset, 4, cap.cap_id | cap.version << 16 | following << 20)
            for rel, width, value in cap.regs:
                self.put(offset + rel, width, value)


# --- standard capabilities ---------------------------------------------------------------------


def pm_cap(pme_support: int, aux_current: int = 0, no_soft_reset: bool = True) -> Cap:
    """Power Management v3 (PMC bits 15:11 = PME from D0,D1,D2,D3hot,D3cold; PMCSR in D0)."""
    pmc = 0x0003 | aux_current << 6 | pme_support << 11
    pmcsr = 0x0008 if no_soft_reset else 0x0000  # bit 3 NoSoftRst, power state bits 1:0 = D0
    return Cap(CAP_PM, ((2, 2, pmc), (4, 2, pmcsr)))


PME_D0, PME_D3HOT, PME_D3COLD = 0x01, 0x08, 0x10


def msi_cap(vectors_log2: int, is64: bool, enabled: bool, address: int, data: int) -> Cap:
    """MSI with per-vector masking; layout differs for 32- and 64-bit message addresses."""
    ctrl = vectors_log2 << 1 | 0x0100 | (0x0080 if is64 else 0) | (0x0001 if enabled else 0)
    if not enabled:
        address = data = 0
    data_offset = 0xC if is64 else 0x8  # the upper address dword sits at +8 when 64-bit
    return Cap(CAP_MSI, ((2, 2, ctrl), (4, 4, address), (data_offset, 2, data)))


def msix_cap(vectors: int, table: tuple[int, int], pba: tuple[int, int]) -> Cap:
    """MSI-X, enabled: table size - 1 in bits 10:0; table/PBA = (BAR index, offset)."""
    ctrl = 0x8000 | (vectors - 1)
    return Cap(CAP_MSIX, ((2, 2, ctrl), (4, 4, table[1] | table[0]), (8, 4, pba[1] | pba[0])))


def ssvid_cap(vendor: int, device: int) -> Cap:
    """Bridge Subsystem ID capability: bridges have no 0x2c register, the kernel reads this."""
    return Cap(CAP_SSVID, ((4, 2, vendor), (6, 2, device)))


def vpd_cap() -> Cap:
    return Cap(CAP_VPD, ((2, 2, 0), (4, 4, 0)))


def vendor_cap(length: int) -> Cap:
    return Cap(CAP_VNDR, ((2, 1, length),))


@dataclass(frozen=True)
class Express:
    """The PCI Express capability (v2) of one function; register names as in pci_regs.h."""

    port_type: int
    devcap: int
    devctl: int
    lnkcap: int
    lnksta: int
    devcap2: int
    lnkctl: int = 0x0040  # CommClk+ (common reference clock), ASPM disabled, RCB 64
    devctl2: int = 0
    lnkcap2: int = 0x3E  # supported link speeds vector: 2.5, 5, 8, 16, 32 GT/s (bits 5:1)
    lnkctl2: int = GEN5  # target link speed 32 GT/s
    lnksta2: int = 0x1E  # EqualizationComplete+, Phase1+, Phase2+, Phase3+ (Gen3+ trained)
    rootctl: int = 0
    rootcap: int = 0

    def cap(self) -> Cap:
        flags = 0x0002 | self.port_type << 4  # capability version 2, no slot implemented
        regs = (
            (0x02, 2, flags),
            (0x04, 4, self.devcap),
            (0x08, 2, self.devctl),
            (0x0C, 4, self.lnkcap),
            (0x10, 2, self.lnkctl),
            (0x12, 2, self.lnksta),
            (0x1C, 2, self.rootctl),
            (0x1E, 2, self.rootcap),
            (0x24, 4, self.devcap2),
            (0x28, 2, self.devctl2),
            (0x2C, 4, self.lnkcap2),
            (0x30, 2, self.lnkctl2),
            (0x32, 2, self.lnksta2),
        )
        return Cap(CAP_EXP, regs)


def devcap(mps: int, l0s: int = 0, l1: int = 0, ext_tag: bool = False, flr: bool = False) -> int:
    """DevCap: MPS supported 2:0, ExtTag 5, L0s/L1 acceptable latency 8:6 / 11:9, RBE 15, FLR 28."""
    value = SIZE_CODE[mps] | l0s << 6 | l1 << 9 | 1 << 15
    value |= (1 << 5 if ext_tag else 0) | (1 << 28 if flr else 0)
    return value


def devctl(mps: int, mrrs: int, relaxed: bool, ext_tag: bool, no_snoop: bool) -> int:
    """DevCtl: error reporting, RO bit 4, MPS bits 7:5, ExtTag bit 8, NoSnoop bit 11, MRRS 14:12."""
    value = DEVCTL_ERR_REPORTING | SIZE_CODE[mps] << 5 | SIZE_CODE[mrrs] << 12
    value |= DEVCTL_RELAX_EN if relaxed else 0
    value |= DEVCTL_EXT_TAG if ext_tag else 0
    value |= DEVCTL_NOSNOOP_EN if no_snoop else 0
    return value


# LnkCap bits above the speed/width/ASPM/latency fields.
LNKCAP_SURPRISE, LNKCAP_DLLLARC = 1 << 19, 1 << 20  # Surprise Down, DLL Link Active reporting
LNKCAP_LBNC, LNKCAP_ASPM_OPTCOMP = 1 << 21, 1 << 22  # bandwidth notification, ASPM optionality
ASPM_NONE, ASPM_L1, ASPM_L0S_L1 = 0, 2, 3
# LnkSta bits above speed/width.
LNKSTA_SLC, LNKSTA_DLLLA = 0x1000, 0x2000  # Slot Clock Configuration, Data Link Layer Link Active


def lnkcap(
    port: int, aspm: int = ASPM_NONE, l0s_exit: int = 0, l1_exit: int = 0, flags: int = 0
) -> int:
    """LnkCap: speed 3:0, width 9:4, ASPM 11:10, L0s/L1 exit latency 14:12/17:15, port 31:24."""
    return GEN5 | 16 << 4 | aspm << 10 | l0s_exit << 12 | l1_exit << 15 | flags | port << 24


def lnksta(speed: int, width: int, flags: int = 0) -> int:
    return speed | width << 4 | flags


# DevCap2 bits.
DEVCAP2_TIMEOUT_DIS, DEVCAP2_ARI, DEVCAP2_ATOMIC_ROUTE = 1 << 4, 1 << 5, 1 << 6
DEVCAP2_ATOMIC_COMP32, DEVCAP2_ATOMIC_COMP64, DEVCAP2_ATOMIC_COMP128 = 1 << 7, 1 << 8, 1 << 9
DEVCAP2_LTR, DEVCAP2_TPH_COMP = 1 << 11, 1 << 12
DEVCAP2_10BIT_COMP, DEVCAP2_10BIT_REQ, DEVCAP2_OBFF_MSG, DEVCAP2_EXT_FMT = (
    1 << 16,
    1 << 17,
    1 << 18,
    1 << 20,
)
DEVCTL2_ARI_FWD = 1 << 5

# --- extended capabilities ---------------------------------------------------------------------

# AER defaults from the PCIe spec: UE severity DLP, SDES, FCP, RxOF, MalfTLP, UncorrIntErr fatal;
# CE mask: Advisory Non-Fatal masked. AERCap: ECRC generation and check capable.
AER_UESVRT_DEFAULT = 0x00462030
AER_CEMSK_DEFAULT = 0x00002000
AER_CAP_ECRC = 0xA0
AER_UE_UNSUP = 1 << 20  # PEX88096 ports ship with UnsupReq masked (CAP_PEX88096 "UEMsk: UnsupReq+")


def aer_cap(root_port: bool = False, ue_mask: int = 0) -> Cap:
    """AER v2: status registers all clear (healthy); root ports add RootCmd/RootSta/ErrSrc."""
    regs = [(0x08, 4, ue_mask), (0x0C, 4, AER_UESVRT_DEFAULT), (0x14, 4, AER_CEMSK_DEFAULT)]
    regs.append((0x18, 4, AER_CAP_ECRC))
    if root_port:
        regs.append((0x2C, 4, 0x7))  # RootCmd: the kernel's AER driver enables CE/NFE/FE reporting
    return Cap(ECAP_AER, tuple(regs), version=2)


def acs_cap(acs_cap_bits: int, acs_ctl: int, egress_ports: int = 0) -> Cap:
    """ACS: ACSCap at +4, ACSCtl at +6 (setpci ECAP_ACS+6.w); EgressCtrl adds a vector at +8."""
    regs = [(4, 2, acs_cap_bits | egress_ports << 8), (6, 2, acs_ctl)]
    if acs_cap_bits & ACS_EC:
        regs.append((8, 4, 0))
    return Cap(ECAP_ACS, tuple(regs), version=1)


def ari_cap(next_function: int = 0) -> Cap:
    return Cap(ECAP_ARI, ((4, 2, next_function << 8), (6, 2, 0)), version=1)


def dsn_cap(serial: int) -> Cap:
    return Cap(ECAP_DSN, ((4, 4, serial & 0xFFFFFFFF), (8, 4, serial >> 32)), version=1)


def secondary_pcie_cap() -> Cap:
    """Secondary PCIe (Gen3+): LnkCtl3 = 0, Lane Error Status = 0 (no lane errors since boot)."""
    return Cap(ECAP_SECPCI, ((4, 4, 0), (8, 4, 0)), version=1)


def vc_cap() -> Cap:
    """Virtual Channel with VC0 only: enabled, TC0-7 mapped to it (the usual GPU single VC)."""
    return Cap(ECAP_VC, ((0x14, 4, 0x800000FF),), version=1)


def vendor_ext_cap(vsec_id: int, rev: int, length: int) -> Cap:
    return Cap(ECAP_VNDR, ((4, 4, vsec_id | rev << 16 | length << 20),), version=1)


def rebar_cap(bar: int, size: int, smallest: int) -> Cap:
    """Resizable BAR: cap bit (4+n) = 2^(20+n) bytes supported; ctrl = BAR index, 1 BAR, size n."""
    current = size.bit_length() - 1 - 20
    low = smallest.bit_length() - 1 - 20
    supported = sum(1 << (4 + n) for n in range(low, current + 1))
    ctrl = bar | 1 << 5 | current << 8
    return Cap(ECAP_REBAR, ((4, 4, supported), (8, 4, ctrl)), version=1)


# --- headers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    vendor: int
    device: int
    subsystem: tuple[int, int]
    class_code: int
    revision: int


def common_header(cs: ConfigSpace, ident: Identity, command: int, header_type: int) -> None:
    cs.put(0x00, 2, ident.vendor)
    cs.put(0x02, 2, ident.device)
    cs.put(0x04, 2, command)
    cs.put(0x08, 4, ident.revision | ident.class_code << 8)
    cs.put(0x0E, 1, header_type)


BAR_MEM64_PREF = 0xC  # BAR low bits: type 10b (64-bit) << 1 | prefetchable bit 3


def type0_header(
    cs: ConfigSpace,
    ident: Identity,
    command: int,
    bars: dict[int, tuple[int, bool]],
    cache_line: int,
    irq: tuple[int, int],
) -> None:
    """Endpoint header: BARs as index -> (address, 64-bit prefetchable), subsystem at 0x2c."""
    common_header(cs, ident, command, 0x00)
    cs.put(0x0C, 1, cache_line)
    for index, (address, mem64) in bars.items():
        offset = 0x10 + 4 * index
        if mem64:
            cs.put(offset, 4, (address & 0xFFFFFFFF) | BAR_MEM64_PREF)
            cs.put(offset + 4, 4, address >> 32)
        else:
            cs.put(offset, 4, address)
    cs.put(0x2C, 2, ident.subsystem[0])
    cs.put(0x2E, 2, ident.subsystem[1])
    cs.put(0x3C, 1, irq[0])
    cs.put(0x3D, 1, irq[1])


Window = tuple[int, int] | None  # inclusive (start, end), None = disabled


def type1_header(
    cs: ConfigSpace,
    ident: Identity,
    command: int,
    buses: tuple[int, int, int],
    mem: Window,
    pref: Window,
    bridge_ctl: int,
    cache_line: int,
    irq: tuple[int, int],
) -> None:
    """Bridge header: bus numbers at 0x18, I/O window off, 32-bit and 64-bit prefetch windows."""
    common_header(cs, ident, command, 0x01)
    cs.put(0x0C, 1, cache_line)
    cs.put(0x18, 1, buses[0])
    cs.put(0x19, 1, buses[1])
    cs.put(0x1A, 1, buses[2])
    cs.put(0x1C, 1, 0xF0)  # I/O base > limit: "I/O behind bridge: [disabled]"
    cs.put(0x1D, 1, 0x00)
    if mem is None:
        cs.put(0x20, 4, 0x0000FFF0)
    else:
        cs.put(0x20, 2, mem[0] >> 16 & 0xFFF0)
        cs.put(0x22, 2, mem[1] >> 16 & 0xFFF0)
    if pref is None:
        cs.put(0x24, 4, 0x0001FFF1)  # 64-bit capable (type 1), base > limit
    else:
        cs.put(0x24, 2, pref[0] >> 16 & 0xFFF0 | 1)
        cs.put(0x26, 2, pref[1] >> 16 & 0xFFF0 | 1)
        cs.put(0x28, 4, pref[0] >> 32)
        cs.put(0x2C, 4, pref[1] >> 32)
    cs.put(0x3C, 1, irq[0])
    cs.put(0x3D, 1, irq[1])
    cs.put(0x3E, 2, bridge_ctl)
