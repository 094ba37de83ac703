#!/usr/bin/env python3
"""Generate the built-in mocked hardware profiles in preflight/profiles/*.json.

    python tools/make_profiles.py           # (re)write every profile
    python tools/make_profiles.py --check   # exit 1 if a committed profile differs

A profile is the sysfs/procfs view of one node (see profile.py for the format). Values come from
the real captures in tests/data/captures/ wherever one exists; the capture is named in a comment
next to the value. Where no public capture exists (no 4 KiB config dump of an H100, ConnectX-7 or
PEX890xx was found, see tests/data/captures/INDEX.md) the register is built from the PCIe spec and
the closest captured sibling device, and the comment says so. Values marked "synthetic" (serials,
build hosts, addresses, IRQs) are invented but have the kernel's exact format.

Faulty profiles are written as the minimal diff (with `"extends"`) between the healthy node and
the same node rebuilt with one fault injected, so a variant can never drift from its base.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import posixpath
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import profile_network  # tools/profile_network.py: RDMA/netdev extras and network variants
import profile_nvml  # tools/profile_nvml.py: the nvml sections and GPU-fault log lines

from preflight.profile import merge  # the loader's own `extends` rule

ROOT = Path(__file__).resolve().parent.parent
PROFILE_DIR = ROOT / "preflight" / "profiles"

# Capture files (tests/data/captures/) cited below by these short names.
CAP_SMI_H100 = "nvidia-smi-q_8xH100-SXM5-80GB_drv565_thamada.txt"
CAP_TOPO = "nvidia-smi-topo-m_and_ibstat_8xH100-NV18_8xCX7-NDR400_plus_CX6Dx_Mooncake-issue2039.txt"
CAP_IBSTAT_H20 = "ibstat_CX7-MT4129-fw28.43-NDR400-IB_H20-node_DeepEP-issue303.txt"
CAP_COUNTERS = "ib-sysfs-counters_CX7-MT4129-fw28.41_saturated-counters_gpud-pr943.txt"
CAP_CX7 = "lspci-vvn_excerpt_ConnectX-7-15b3-1021_H100-node_sriov-network-operator-issue786.txt"
CAP_A100_LSPCI = "lspci-vvvnn_excerpt_A100-SXM4-40GB-endpoint_hwloc-issue653.txt"
CAP_PEX88096 = "lspci-vvnn_excerpt_Supermicro-AS-4124GS-TNR_PEX88096-switch-ACS_linuxhw.txt"
CAP_PEX890XX = "lspci-vv_nonroot-access-denied_HGX-H100-Supermicro_PEX890xx_fastfetch-issue1658.txt"
CAP_HASWELL_RP = "lspci-xxxx_IntelHaswellE-rootport-ACSenabled_Mellanox-CX3Pro_pciutils-tests.txt"
CAP_ACS_NCCL = "lspci-ACSCtl-grep_GPU-servers_nccl-issues523-606-2079.txt"

# =============================================================================================
# PCI configuration space builder
# =============================================================================================

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


# =============================================================================================
# Device models
# =============================================================================================

MiB, GiB = 1 << 20, 1 << 30

# /sys/bus/pci/devices/*/resource flags (kernel IORESOURCE_* | the BAR's low bits).
RES_MEM32 = 0x00040200  # MEM | SIZEALIGN
RES_MEM64_PREF = 0x0014220C  # MEM | PREFETCH | MEM_64 | SIZEALIGN | BAR bits 0xc
RES_WIN_MEM = 0x00000200  # bridge window read by pci_read_bridge_mmio(): MEM
RES_WIN_PREF64 = 0x00102201  # MEM | PREFETCH | MEM_64 | PCI_PREF_RANGE_TYPE_64
# resource has 13 lines (6 BARs, ROM, 6 SR-IOV BARs with CONFIG_PCI_IOV) plus 4 bridge windows
# for bridges (resource_show(): DEVICE_COUNT_RESOURCE vs PCI_BRIDGE_RESOURCES).
RES_LINES_ENDPOINT, RES_LINES_BRIDGE = 13, 17


@dataclass(frozen=True)
class GpuModel:
    name: str  # NVML / procfs model string
    identity: Identity
    bar1: int
    vbios: str  # as /proc/driver/nvidia/gpus/*/information prints it (%02x, lowercase)


@dataclass(frozen=True)
class GpuUnit:
    uuid: str
    minor: int
    irq: int


@dataclass(frozen=True)
class NicUnit:
    guid: int
    lid: int


@dataclass(frozen=True)
class Slot:
    """One PCIe switch: host bridge -> root port -> switch -> {GPU, NIC} on two downstream ports.

    Bus numbers follow from host_bus: root port host_bus:01.0, switch upstream port on host_bus+1,
    downstream ports on host_bus+2 (device number = port), the port's device on host_bus+3+port.
    """

    host_bus: int
    gpu_port: int
    nic_port: int
    numa: int
    iommu_group: int

    def secondary(self, port: int) -> int:
        return self.host_bus + 3 + port

    @property
    def last_bus(self) -> int:
        return self.secondary(max(self.gpu_port, self.nic_port))


@dataclass(frozen=True)
class Faults:
    """What to break when building a node; the healthy node has none."""

    acs_redirect: bool = False
    iommu_translated: bool = False
    narrow_gpu: int | None = None  # GPU index whose link trained at x8
    unprivileged: bool = False
    gpu_fault: str | None = None  # one of profile_nvml.GPU_FAULTS
    net_variant: str | None = None  # one of profile_network.NET_VARIANTS


@dataclass(frozen=True)
class NodeSpec:
    name: str
    description: str
    hostname: str
    cores_per_socket: int
    ram_kib: int  # MemTotal; /dev/shm (tmpfs default) is half of it
    gpu: GpuModel
    gpus: tuple[GpuUnit, ...]
    nics: tuple[NicUnit, ...]
    nic_fw: str
    sm_lid: int
    slots: tuple[Slot, ...]
    dmar_buses: tuple[int, ...]  # host bridges in DRHD order: dmar0, dmar1, ...
    root_port_id: Identity
    switch_subsystem: tuple[int, int]
    driver: str
    nvrm_build: str  # "Release Build  (<user@host>)  <date>" part of the NVRM line
    nvrm_gcc: str
    kernel: str
    kernel_version_line: str
    kernel_pcie_type_suffix: bool  # 6.6+ append "PCIe Endpoint" etc. to the enumeration line
    cmdline_extra: str
    dmi: dict[str, str]
    mmio_high: int
    mmio_low: int
    faults: Faults = field(default_factory=Faults)


# --- identities ---

# CX-7 IB: 15b3:1021 class 0207, subsystem 15b3:0041, rev 0 (CAP_CX7 "41:00.0 0207:
# 15b3:1021", "Subsystem: 15b3:0041", mst "ConnectX7(rev:0)").
CX7 = Identity(0x15B3, 0x1021, (0x15B3, 0x0041), 0x020700, 0x00)


def pex890xx(spec: NodeSpec) -> Identity:
    """Broadcom PEX890xx Gen5 switch port 1000:c030, rev b0 (CAP_PEX890XX), class 0604."""
    return Identity(0x1000, 0xC030, spec.switch_subsystem, 0x060400, 0xB0)


def gpu_config(spec: NodeSpec, slot_index: int, link: tuple[int, int]) -> bytes:
    """GH100 endpoint. Layout as on GA100 (CAP_A100_LSPCI): PM@60, Null@68, Express@78."""
    cs = ConfigSpace()
    bar0, bar1, bar3 = gpu_bars(spec, slot_index)
    # Control "I/O+ Mem+ BusMaster+ ParErr+ SERR+ DisINTx+", cache line 64 B (CAP_A100_LSPCI).
    command = (
        PCI_COMMAND_IO
        | PCI_COMMAND_MEMORY
        | PCI_COMMAND_MASTER
        | PCI_COMMAND_PARITY
        | PCI_COMMAND_SERR
        | PCI_COMMAND_INTX_DISABLE
    )
    bars = {0: (bar0, False), 1: (bar1, True), 3: (bar3, True)}
    type0_header(cs, spec.gpu.identity, command, bars, 0x10, (0xFF, 1))
    express = Express(
        port_type=EXP_ENDPOINT,
        # "MaxPayload 256 bytes, Latency L0s unlimited, L1 <64us, ExtTag+ RBE+ FLReset+"
        devcap=devcap(256, l0s=7, l1=6, ext_tag=True, flr=True),
        # "RlxdOrd+ ExtTag+ NoSnoop- MaxPayload 256 bytes, MaxReadReq 512 bytes" (CAP_A100_LSPCI)
        devctl=devctl(256, 512, relaxed=True, ext_tag=True, no_snoop=False),
        lnkcap=lnkcap(0, flags=LNKCAP_ASPM_OPTCOMP),  # Gen5 x16, "ASPM not supported"
        lnksta=lnksta(*link, LNKSTA_SLC),
        # Completion timeout ranges A+B; inbound atomics FETCHADD/SWAP/CAS 32+64 (CAP_SMI_H100
        # "Atomic Caps Inbound"); 10-bit tags (required at 16 GT/s and above).
        devcap2=0x3
        | DEVCAP2_TIMEOUT_DIS
        | DEVCAP2_ATOMIC_COMP32
        | DEVCAP2_ATOMIC_COMP64
        | DEVCAP2_10BIT_COMP
        | DEVCAP2_10BIT_REQ
        | DEVCAP2_EXT_FMT,
    )
    # MSI-X: 6 vectors, table/PBA in BAR0 at 0xb90000/0xba0000 as on GA100 (HEDGED for GH100).
    cs.place_caps(
        [
            (0x60, pm_cap(PME_D0 | PME_D3HOT)),
            (0x68, Cap(CAP_NULL)),
            (0x78, express.cap()),
            (0xC8, msix_cap(6, (0, 0xB90000), (0, 0xBA0000))),
        ]
    )
    # NVIDIA's extended list: VC@100, AER@420, Secondary PCIe@900, Resizable BAR@bb0 (BAR1).
    cs.place_ext_caps(
        [
            (0x100, vc_cap()),
            (0x420, aer_cap()),
            (0x900, secondary_pcie_cap()),
            (0xBB0, rebar_cap(1, spec.gpu.bar1, 64 * MiB)),
        ]
    )
    return bytes(cs.data)


def nic_config(spec: NodeSpec, slot_index: int) -> bytes:
    """ConnectX-7 endpoint. ConnectX list order: Express@60, VPD@48, MSI-X@9c, VSEC@c0, PM@40."""
    cs = ConfigSpace()
    # Control "I/O- Mem+ BusMaster+ ... DisINTx+", no cache line, pin A, BAR0 64-bit
    # prefetchable 32M (CAP_CX7).
    command = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE
    type0_header(cs, CX7, command, {0: (nic_bar0(spec, slot_index), True)}, 0x00, (0xFF, 1))
    express = Express(
        port_type=EXP_ENDPOINT,
        devcap=devcap(512, l0s=7, l1=7, ext_tag=True, flr=True),
        # NICs: RO on (needed for RO TLPs), MaxReadReq 4096, MPS limited to the path's 256.
        devctl=devctl(256, 4096, relaxed=True, ext_tag=True, no_snoop=True),
        lnkcap=lnkcap(0, flags=LNKCAP_ASPM_OPTCOMP),
        lnksta=lnksta(GEN5, 16, LNKSTA_SLC),
        devcap2=0x7
        | DEVCAP2_TIMEOUT_DIS
        | DEVCAP2_ATOMIC_COMP32
        | DEVCAP2_ATOMIC_COMP64
        | DEVCAP2_ATOMIC_COMP128
        | DEVCAP2_10BIT_COMP
        | DEVCAP2_10BIT_REQ
        | DEVCAP2_EXT_FMT,
    )
    cs.place_caps(
        [
            (0x60, express.cap()),
            (0x48, vpd_cap()),
            (0x9C, msix_cap(64, (0, 0x2000), (0, 0x3000))),
            (0xC0, vendor_cap(0x18)),
            (0x40, pm_cap(0, aux_current=7)),  # "AuxCurrent=375mA", no PME
        ]
    )
    cs.place_ext_caps([(0x100, aer_cap()), (0x150, ari_cap()), (0x1C0, secondary_pcie_cap())])
    return bytes(cs.data)


def switch_port_config(
    spec: NodeSpec,
    slot_index: int,
    port: int | None,
    buses: tuple[int, int, int],
    mem: Window,
    pref: Window,
    link: tuple[int, int],
    ari_below: bool,
) -> bytes:
    """PEX890xx port (port=None: upstream). Layout of the Gen4 sibling PEX88096 (CAP_PEX88096):
    PM@40, MSI@48, Express@68, SSVID@a4; DSN@100, AER@fb4, Secondary PCIe@db4, ACS@f24 (down)."""
    cs = ConfigSpace()
    ident = pex890xx(spec)
    # Control "I/O+ Mem+ BusMaster+ ParErr+ SERR+ DisINTx+", cache line 32 B, "pin ?",
    # BridgeCtl "Parity+ SERR+" (CAP_PEX890XX).
    command = (
        PCI_COMMAND_IO
        | PCI_COMMAND_MEMORY
        | PCI_COMMAND_MASTER
        | PCI_COMMAND_PARITY
        | PCI_COMMAND_SERR
        | PCI_COMMAND_INTX_DISABLE
    )
    bridge_ctl = PCI_BRIDGE_CTL_PARITY | PCI_BRIDGE_CTL_SERR
    type1_header(cs, ident, command, buses, mem, pref, bridge_ctl, 0x08, (0, 0))
    downstream = port is not None
    # LnkCap "ASPM L0s L1, Exit Latency L0s <4us, L1 <32us", BwNot+ ASPMOptComp+; downstream
    # ports report Data Link Layer Link Active (LLActRep+), so LnkSta shows DLActive+.
    flags = LNKCAP_LBNC | LNKCAP_ASPM_OPTCOMP | (LNKCAP_DLLLARC if downstream else 0)
    express = Express(
        port_type=EXP_DOWNSTREAM if downstream else EXP_UPSTREAM,
        devcap=devcap(2048),  # "MaxPayload 2048 bytes ... ExtTag- RBE+"
        devctl=devctl(256, 128, relaxed=True, ext_tag=False, no_snoop=True),
        lnkcap=lnkcap(0 if port is None else port + 1, ASPM_L0S_L1, 6, 5, flags),
        lnksta=lnksta(*link, LNKSTA_DLLLA if downstream else 0),
        # "Completion Timeout: Not Supported ... LTR+ 10BitTagComp+ OBFF Via message ExtFmt+
        # AtomicOpsCap: Routing+"; downstream ports forward ARI.
        devcap2=DEVCAP2_ATOMIC_ROUTE
        | DEVCAP2_LTR
        | DEVCAP2_10BIT_COMP
        | DEVCAP2_OBFF_MSG
        | DEVCAP2_EXT_FMT
        | (DEVCAP2_ARI if downstream else 0),
        # The kernel turns ARI forwarding on in the port above an ARI device (the NIC).
        devctl2=DEVCTL2_ARI_FWD if ari_below else 0,
    )
    # MSI 64-bit maskable, 8 vectors; pcieport enables it on downstream ports (CAP_PEX88096).
    msi = msi_cap(3, is64=True, enabled=downstream, address=0xFEE00000, data=0x4021 + slot_index)
    cs.place_caps(
        [
            (0x40, pm_cap(PME_D0 | PME_D3HOT | PME_D3COLD)),
            (0x48, msi),
            (0x68, express.cap()),
            (0xA4, ssvid_cap(*spec.switch_subsystem)),
        ]
    )
    serial = synthetic_int(f"{spec.name} pex dsn {slot_index} {port}", 64)
    ext = [
        (0x100, dsn_cap(serial)),
        (0xFB4, aer_cap(ue_mask=AER_UE_UNSUP)),
        (0xDB4, secondary_pcie_cap()),
    ]
    if downstream:
        # ACSCap all seven controls, egress vector for 32 ports; ACSCtl all off on the healthy
        # node, as on the PEX88096 ports ("ACSCap: SrcValid+ ... DirectTrans+", "ACSCtl: all -").
        acs_ctl = ACS_CTL_REDIRECT if spec.faults.acs_redirect else 0
        all_acs = ACS_SV | ACS_TB | ACS_RR | ACS_CR | ACS_UF | ACS_EC | ACS_DT
        ext.append((0xF24, acs_cap(all_acs, acs_ctl, egress_ports=32)))
    cs.place_ext_caps(ext)
    return bytes(cs.data)


def root_port_config(
    spec: NodeSpec, slot_index: int, buses: tuple[int, int, int], mem: Window, pref: Window
) -> bytes:
    """Intel Xeon root port. Layout of the captured Intel root port (CAP_HASWELL_RP): SSVID@40,
    MSI@60, Express@90, PM@e0; VSEC@100, ACS@110, AER@148, Secondary PCIe@250."""
    cs = ConfigSpace()
    command = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE
    type1_header(
        cs, spec.root_port_id, command, buses, mem, pref, PCI_BRIDGE_CTL_VGA_16BIT, 0x10, (0xFF, 1)
    )
    express = Express(
        port_type=EXP_ROOT_PORT,
        devcap=devcap(256),  # "MaxPayload 256 bytes ... ExtTag- RBE+"
        devctl=devctl(256, 128, relaxed=False, ext_tag=False, no_snoop=False),
        # "ASPM L1, Exit Latency L1 <16us ... Surprise+ LLActRep+ BwNot+ ASPMOptComp+"
        lnkcap=lnkcap(
            1,  # root port A of the stack
            ASPM_L1,
            0,
            4,
            LNKCAP_SURPRISE | LNKCAP_DLLLARC | LNKCAP_LBNC | LNKCAP_ASPM_OPTCOMP,
        ),
        lnksta=lnksta(GEN5, 16, LNKSTA_SLC | LNKSTA_DLLLA),
        # "Range BCD, TimeoutDis+ ... TPHComp+ ARIFwd+ AtomicOpsCap: 32bit+ 64bit+ 128bitCAS+",
        # plus LTR and 10-bit tags that a Gen5 port must support.
        devcap2=0xE
        | DEVCAP2_TIMEOUT_DIS
        | DEVCAP2_ARI
        | DEVCAP2_ATOMIC_COMP32
        | DEVCAP2_ATOMIC_COMP64
        | DEVCAP2_ATOMIC_COMP128
        | DEVCAP2_LTR
        | DEVCAP2_TPH_COMP
        | DEVCAP2_10BIT_COMP
        | DEVCAP2_10BIT_REQ
        | DEVCAP2_EXT_FMT,
        rootcap=0x0001,  # CRSVisible
        rootctl=0x0018,  # PME interrupt and CRS visibility enabled by the kernel
    )
    msi = msi_cap(1, is64=False, enabled=True, address=0xFEE00000, data=0x4024 + slot_index)
    cs.place_caps(
        [
            (0x40, ssvid_cap(*spec.root_port_id.subsystem)),
            (0x60, msi),
            (0x90, express.cap()),
            (0xE0, pm_cap(PME_D0 | PME_D3HOT | PME_D3COLD, no_soft_reset=False)),
        ]
    )
    # Intel root ports: ACSCap "SrcValid+ TransBlk+ ReqRedir+ CmpltRedir+ UpstreamFwd+" = 0x001f
    # (CAP_HASWELL_RP and the X58 ports); ACSCtl 0 on the healthy node.
    acs_ctl = ACS_CTL_REDIRECT if spec.faults.acs_redirect else 0
    cs.place_ext_caps(
        [
            (0x100, vendor_ext_cap(0x0002, 0, 0x00C)),
            (0x110, acs_cap(ACS_SV | ACS_TB | ACS_RR | ACS_CR | ACS_UF, acs_ctl)),
            (0x148, aer_cap(root_port=True)),
            (0x250, secondary_pcie_cap()),
        ]
    )
    return bytes(cs.data)


# --- address map ---


def slot_pref_base(spec: NodeSpec, slot_index: int) -> int:
    """Each slot's 64-bit prefetchable window: room for BAR1 twice, so BAR1 stays aligned."""
    return spec.mmio_high + slot_index * 2 * spec.gpu.bar1


def gpu_bars(spec: NodeSpec, slot_index: int) -> tuple[int, int, int]:
    """BAR0 16 MiB 32-bit, BAR1 (FB aperture) 64-bit prefetchable, BAR3 32 MiB 64-bit pref."""
    base = slot_pref_base(spec, slot_index)
    return spec.mmio_low + slot_index * 64 * MiB, base, base + spec.gpu.bar1


def nic_bar0(spec: NodeSpec, slot_index: int) -> int:
    return slot_pref_base(spec, slot_index) + spec.gpu.bar1 + 32 * MiB


def gpu_resources(spec: NodeSpec, slot_index: int) -> list[tuple[int, int, int]]:
    bar0, bar1, bar3 = gpu_bars(spec, slot_index)
    lines = [(0, 0, 0)] * RES_LINES_ENDPOINT
    lines[0] = (bar0, bar0 + 16 * MiB - 1, RES_MEM32)
    lines[1] = (bar1, bar1 + spec.gpu.bar1 - 1, RES_MEM64_PREF)
    lines[3] = (bar3, bar3 + 32 * MiB - 1, RES_MEM64_PREF)
    return lines


def nic_resources(spec: NodeSpec, slot_index: int) -> list[tuple[int, int, int]]:
    bar0 = nic_bar0(spec, slot_index)
    lines = [(0, 0, 0)] * RES_LINES_ENDPOINT
    lines[0] = (bar0, bar0 + 32 * MiB - 1, RES_MEM64_PREF)
    return lines


def bridge_resources(mem: Window, pref: Window) -> list[tuple[int, int, int]]:
    lines = [(0, 0, 0)] * RES_LINES_BRIDGE
    if mem is not None:
        lines[14] = (*mem, RES_WIN_MEM)
    if pref is not None:
        lines[15] = (*pref, RES_WIN_PREF64)
    return lines


def format_resources(lines: list[tuple[int, int, int]]) -> str:
    return "".join(f"0x{a:016x} 0x{b:016x} 0x{c:016x}\n" for a, b, c in lines)


# =============================================================================================
# Node assembly
# =============================================================================================


def synthetic_int(seed: str, bits: int) -> int:
    """A stable pseudo-random number for values no capture gives (serials, GUIDs)."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[: bits // 8], "big")


def synthetic_uuid(seed: str) -> str:
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def bdf(bus: int, dev: int = 0, fn: int = 0) -> str:
    return f"0000:{bus:02x}:{dev:02x}.{fn}"


def guid_quads(guid: int) -> str:
    """node_guid as sysfs prints it: four 16-bit groups ("%04x:%04x:%04x:%04x")."""
    return ":".join(f"{guid >> s & 0xFFFF:04x}" for s in (48, 32, 16, 0))


def cpulist(ranges: Iterable[tuple[int, int]]) -> str:
    return ",".join(f"{a}-{b}" for a, b in ranges)


def relative(target: str, link: str) -> str:
    """A symlink target as sysfs writes it (kernfs_get_target_path()): up to the deepest common
    ancestor of the link's directory and the target's *parent*, then down. So a link to an
    ancestor reads "../../../0000:19:00.0", never "../..".
    """
    link_dir = posixpath.dirname(link)
    base = posixpath.commonpath([link_dir, posixpath.dirname(target)])
    ups = 0 if link_dir == base else link_dir[len(base) :].count("/")
    return "../" * ups + posixpath.relpath(target, base)


@dataclass
class Tree:
    """The files and symlinks being assembled for one node."""

    files: dict[str, Any] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)

    def text(self, path: str, value: object) -> None:
        self.files[path] = f"{value}\n"

    def binary(self, path: str, data: bytes) -> None:
        self.files[path] = {"hex": data.rstrip(b"\0").hex(), "size": len(data)}

    def link(self, path: str, target_abs: str) -> None:
        self.symlinks[path] = relative(target_abs, path)


@dataclass(frozen=True)
class PciFunction:
    path: str  # /sys/devices/pci0000:BB/.../DDDD:BB:DD.F
    ident: Identity
    config: bytes
    resources: list[tuple[int, int, int]]
    driver: str
    link_max: tuple[int, int]
    link_now: tuple[int, int]
    buses: tuple[int, int] | None = None  # (secondary, subordinate) for bridges
    root_port: bool = False

    @property
    def bdf(self) -> str:
        return posixpath.basename(self.path)


def node_cpus(spec: NodeSpec, node: int) -> list[tuple[int, int]]:
    """Linux numbers all first threads, socket by socket, then all SMT siblings."""
    n = spec.cores_per_socket
    return [(node * n, node * n + n - 1), (2 * n + node * n, 2 * n + node * n + n - 1)]


def pci_functions(spec: NodeSpec) -> list[tuple[Slot, list[PciFunction]]]:
    out = []
    for i, slot in enumerate(spec.slots):
        hb = slot.host_bus
        up_bus, down_bus = hb + 1, hb + 2
        rp_path = f"/sys/devices/pci0000:{hb:02x}/{bdf(hb, 1)}"
        up_path = f"{rp_path}/{bdf(up_bus)}"
        bar0, bar1, _ = gpu_bars(spec, i)
        gpu_mem = (bar0, bar0 + 16 * MiB - 1)
        gpu_pref = (bar1, bar1 + spec.gpu.bar1 + 32 * MiB - 1)
        nic_start = nic_bar0(spec, i)
        nic_pref = (nic_start, nic_start + 32 * MiB - 1)
        all_pref = (gpu_pref[0], nic_pref[1])
        narrow = spec.faults.narrow_gpu == i
        gpu_link_now = (GEN1, 8 if narrow else 16)  # idle GPUs train down to 2.5 GT/s
        nic_link = (GEN5, 16)

        rp_buses = (hb, up_bus, slot.last_bus)
        up_buses = (up_bus, down_bus, slot.last_bus)
        funcs = [
            PciFunction(
                rp_path,
                spec.root_port_id,
                root_port_config(spec, i, rp_buses, gpu_mem, all_pref),
                bridge_resources(gpu_mem, all_pref),
                "pcieport",
                (GEN5, 16),
                (GEN5, 16),
                (up_bus, slot.last_bus),
                root_port=True,
            ),
            PciFunction(
                up_path,
                pex890xx(spec),
                switch_port_config(spec, i, None, up_buses, gpu_mem, all_pref, (GEN5, 16), False),
                bridge_resources(gpu_mem, all_pref),
                "pcieport",
                (GEN5, 16),
                (GEN5, 16),
                (down_bus, slot.last_bus),
            ),
        ]
        ports = sorted([(slot.gpu_port, "gpu"), (slot.nic_port, "nic")], key=lambda item: item[0])
        for port, kind in ports:
            sec = slot.secondary(port)
            ds_path = f"{up_path}/{bdf(down_bus, port)}"
            mem, pref = (gpu_mem, gpu_pref) if kind == "gpu" else (None, nic_pref)
            # A link has one state, seen identically from both ends: the port above the idle
            # GPU reports the GPU's current speed and width.
            link = gpu_link_now if kind == "gpu" else nic_link
            buses = (down_bus, sec, sec)
            funcs.append(
                PciFunction(
                    ds_path,
                    pex890xx(spec),
                    switch_port_config(spec, i, port, buses, mem, pref, link, kind == "nic"),
                    bridge_resources(mem, pref),
                    "pcieport",
                    (GEN5, 16),
                    link,
                    (sec, sec),
                )
            )
            if kind == "gpu":
                funcs.append(
                    PciFunction(
                        f"{ds_path}/{bdf(sec)}",
                        spec.gpu.identity,
                        gpu_config(spec, i, gpu_link_now),
                        gpu_resources(spec, i),
                        "nvidia",
                        (GEN5, 16),
                        gpu_link_now,
                    )
                )
            else:
                funcs.append(
                    PciFunction(
                        f"{ds_path}/{bdf(sec)}",
                        CX7,
                        nic_config(spec, i),
                        nic_resources(spec, i),
                        "mlx5_core",
                        (GEN5, 16),
                        nic_link,
                    )
                )
        out.append((slot, funcs))
    return out


def words(text: str) -> list[str]:
    return text.split()


# Counter names of drivers/pci/pcie/aer.c (aer_correctable/uncorrectable_error_string).
AER_COR = words("RxErr BadTLP BadDLLP Rollover Timeout NonFatalErr CorrIntErr HeaderOF")
AER_UNCOR = words(
    "Undefined DLP SDES TLP FCP CmpltTO CmpltAbrt UnxCmplt RxOF MalfTLP ECRC UnsupReq ACSViol "
    "UncorrIntErr BlockedTLP AtomicOpBlocked TLPBlockedErr PoisonTLPBlocked"
)


def aer_counters(names: list[str], total: str) -> str:
    """drivers/pci/pcie/aer.c aer_stats_dev_attr: "<name> <count>" per named bit, then TOTAL_."""
    return "".join(f"{name} 0\n" for name in names) + f"TOTAL_{total} 0\n"


def add_pci_function(tree: Tree, spec: NodeSpec, slot: Slot, func: PciFunction) -> None:
    d = func.path
    ident = func.ident
    faults = spec.faults
    cpus = cpulist(node_cpus(spec, slot.numa))
    tree.text(f"{d}/vendor", f"0x{ident.vendor:04x}")
    tree.text(f"{d}/device", f"0x{ident.device:04x}")
    tree.text(f"{d}/subsystem_vendor", f"0x{ident.subsystem[0]:04x}")
    tree.text(f"{d}/subsystem_device", f"0x{ident.subsystem[1]:04x}")
    tree.text(f"{d}/class", f"0x{ident.class_code:06x}")
    tree.text(f"{d}/revision", f"0x{ident.revision:02x}")
    tree.text(f"{d}/numa_node", slot.numa)
    tree.text(f"{d}/local_cpulist", cpus)
    tree.text(f"{d}/max_link_speed", SPEED_STRING[func.link_max[0]])
    tree.text(f"{d}/max_link_width", func.link_max[1])
    tree.text(f"{d}/current_link_speed", SPEED_STRING[func.link_now[0]])
    tree.text(f"{d}/current_link_width", func.link_now[1])
    config = func.config[:UNPRIVILEGED_CONFIG_SIZE] if faults.unprivileged else func.config
    tree.binary(f"{d}/config", config)
    tree.files[f"{d}/resource"] = format_resources(func.resources)
    tree.files[f"{d}/aer_dev_correctable"] = aer_counters(AER_COR, "ERR_COR")
    tree.files[f"{d}/aer_dev_nonfatal"] = aer_counters(AER_UNCOR, "ERR_NONFATAL")
    tree.files[f"{d}/aer_dev_fatal"] = aer_counters(AER_UNCOR, "ERR_FATAL")
    if func.root_port:
        for kind in ("cor", "fatal", "nonfatal"):
            tree.text(f"{d}/aer_rootport_total_err_{kind}", 0)
    if func.buses is not None:
        tree.text(f"{d}/secondary_bus_number", func.buses[0])
        tree.text(f"{d}/subordinate_bus_number", func.buses[1])
    driver_dir = f"/sys/bus/pci/drivers/{func.driver}"
    group_dir = f"/sys/kernel/iommu_groups/{slot.iommu_group}"
    dmar_dir = f"/sys/devices/virtual/iommu/dmar{spec.dmar_buses.index(slot.host_bus)}"
    tree.link(f"{d}/driver", driver_dir)
    tree.link(f"{d}/subsystem", "/sys/bus/pci")
    tree.link(f"{d}/iommu_group", group_dir)
    tree.link(f"{d}/iommu", dmar_dir)
    tree.link(f"/sys/bus/pci/devices/{func.bdf}", d)
    tree.link(f"{driver_dir}/{func.bdf}", d)
    tree.link(f"{group_dir}/devices/{func.bdf}", d)
    tree.link(f"{dmar_dir}/devices/{func.bdf}", d)


# mlx5 Q counters on an InfiniBand port (drivers/infiniband/hw/mlx5/counters.c); the congestion
# counters (np_*/rp_*) exist only on RoCE ports.
MLX5_Q_COUNTERS = words(
    "rx_write_requests rx_read_requests rx_atomic_requests out_of_buffer out_of_sequence "
    "duplicate_request rnr_nak_retry_err packet_seq_err implied_nak_seq_err "
    "local_ack_timeout_err resp_local_length_error resp_cqe_error req_cqe_error "
    "req_remote_invalid_request req_remote_access_errors resp_remote_access_errors "
    "resp_cqe_flush_error req_cqe_flush_error"
)
# PMA PortCounters and extended counters (drivers/infiniband/core/sysfs.c; the file names of
# CAP_COUNTERS).
PMA_COUNTERS = words(
    "symbol_error link_error_recovery link_downed port_rcv_errors "
    "port_rcv_remote_physical_errors port_rcv_switch_relay_errors port_xmit_discards "
    "port_xmit_constraint_errors port_rcv_constraint_errors local_link_integrity_errors "
    "excessive_buffer_overrun_errors VL15_dropped port_xmit_data port_rcv_data "
    "port_xmit_packets port_rcv_packets port_xmit_wait unicast_xmit_packets "
    "unicast_rcv_packets multicast_xmit_packets multicast_rcv_packets"
)


def add_rdma(tree: Tree, spec: NodeSpec, index: int, nic: PciFunction) -> None:
    """mlx5_<i> and its IPoIB netdev ib<i>, under the NIC's PCI directory like real sysfs."""
    unit = spec.nics[index]
    hca = f"mlx5_{index}"
    ib = f"{nic.path}/infiniband/{hca}"
    tree.link(f"/sys/class/infiniband/{hca}", ib)
    tree.link(f"{ib}/device", nic.path)
    tree.text(f"{ib}/node_type", "1: CA")
    tree.text(f"{ib}/node_guid", guid_quads(unit.guid))
    tree.text(f"{ib}/sys_image_guid", guid_quads(unit.guid))  # single-port CX-7: same GUID
    tree.text(f"{ib}/fw_ver", spec.nic_fw)
    tree.text(f"{ib}/hca_type", "MT4129")  # mlx5 "MT%d" of PCI device 0x1021
    tree.text(f"{ib}/board_id", "MT_0000000838")  # CAP_COUNTERS header, DeepEP#38 ibv_devinfo
    tree.text(f"{ib}/hw_rev", "0")  # "%x"; ibstat "Hardware version: 0" (CAP_TOPO)
    tree.text(f"{ib}/node_desc", f"{spec.hostname} {hca}")  # as rdma-ndd sets it
    port = f"{ib}/ports/1"
    # Port strings as sysfs prints them (ibstatus shows the same text).
    tree.text(f"{port}/state", "4: ACTIVE")
    tree.text(f"{port}/phys_state", "5: LinkUp")
    tree.text(f"{port}/rate", "400 Gb/sec (4X NDR)")
    tree.text(f"{port}/link_layer", "InfiniBand")
    tree.text(f"{port}/lid", f"0x{unit.lid:x}")
    tree.text(f"{port}/sm_lid", f"0x{spec.sm_lid:x}")
    tree.text(f"{port}/sm_sl", 0)
    tree.text(f"{port}/lid_mask_count", 0)  # ibstat "LMC: 0"
    tree.text(f"{port}/cap_mask", "0xa751e848")  # ibstat "Capability mask: 0xa751e848"
    tree.text(f"{port}/gids/0", f"fe80:0000:0000:0000:{guid_quads(unit.guid)}")
    for name in PMA_COUNTERS:
        tree.text(f"{port}/counters/{name}", 0)
    for name in MLX5_Q_COUNTERS:
        tree.text(f"{port}/hw_counters/{name}", 0)
    tree.text(f"{port}/hw_counters/lifespan", 10)  # counter cache lifespan in ms

    netdev = f"ib{index}"
    net = f"{nic.path}/net/{netdev}"
    tree.link(f"/sys/class/net/{netdev}", net)
    tree.link(f"{net}/device", nic.path)
    tree.text(f"{net}/operstate", "up")
    tree.text(f"{net}/carrier", 1)
    tree.text(f"{net}/mtu", 4092)  # IPoIB datagram mode: 4096-byte IB MTU minus the 4-byte header
    tree.text(f"{net}/type", 32)  # ARPHRD_INFINIBAND
    tree.text(f"{net}/addr_len", 20)
    # IPoIB hardware address: flags + 24-bit QPN, then the port GID.
    gid = guid_quads(unit.guid).replace(":", "")
    qpn = 0x1029 + 8 * index
    raw = f"00{qpn:06x}fe80000000000000{gid}"
    tree.text(f"{net}/address", ":".join(raw[j : j + 2] for j in range(0, 40, 2)))
    tree.text(f"{net}/speed", 400000)  # ethtool Mb/s: NDR 100 Gb/s per lane x 4 lanes


def gpu_information(spec: NodeSpec, index: int, path: str) -> str:
    """/proc/driver/nvidia/gpus/<bdf>/information (open-gpu-kernel-modules nv-procfs.c)."""
    unit = spec.gpus[index]
    return (
        f"Model: \t\t {spec.gpu.name}\n"
        f"IRQ:   \t\t {unit.irq}\n"
        f"GPU UUID: \t {unit.uuid}\n"
        f"Video BIOS: \t {spec.gpu.vbios}\n"
        "Bus Type: \t PCIe\n"
        "DMA Size: \t 52 bits\n"
        "DMA Mask: \t 0xfffffffffffff\n"
        f"Bus Location: \t {posixpath.basename(path)}\n"
        f"Device Minor: \t {unit.minor}\n"
        f"GPU Firmware: \t {spec.driver}\n"  # GSP firmware = driver version (CAP_SMI_H100)
        "GPU Excluded:\t No\n"
    )


def kernel_cmdline(spec: NodeSpec) -> str:
    iommu = "intel_iommu=on" if spec.faults.iommu_translated else "intel_iommu=on iommu=pt"
    return (
        f"BOOT_IMAGE=/boot/vmlinuz-{spec.kernel} root=UUID="
        f"{synthetic_uuid(spec.hostname + ' root')[4:]} ro {iommu} {spec.cmdline_extra}"
    )


def pcie_type_suffix(spec: NodeSpec, kind: str) -> str:
    return f" PCIe {kind}" if spec.kernel_pcie_type_suffix else ""


def kernel_log(spec: NodeSpec, funcs: list[tuple[Slot, list[PciFunction]]]) -> list[str]:
    """A short boot excerpt: kernel, DMI, DMAR/IOMMU mode, PCI enumeration, mlx5, nvidia."""
    dmi = spec.dmi
    if spec.faults.iommu_translated:
        # iommu_subsys_init(): "%s %s\n" with an empty second field leaves a trailing space.
        domain = [
            "iommu: Default domain type: Translated ",
            "iommu: DMA domain TLB invalidation policy: lazy mode ",
        ]
    else:
        domain = ["iommu: Default domain type: Passthrough (set via kernel command line)"]
    early = [
        spec.kernel_version_line,
        f"Command line: {kernel_cmdline(spec)}",
        f"DMI: {dmi['sys_vendor']} {dmi['product_name']}/{dmi['board_name']}, "
        f"BIOS {dmi['bios_version']} {dmi['bios_date']}",
        "DMAR: IOMMU enabled",
    ]
    lines = [(0.0, text) for text in early]
    lines += [
        (1.094412, "DMAR: Host address width 52"),
        (1.094415, "DMAR: DRHD base: 0x000000b5ffc000 flags: 0x0"),
        (2.514883, "DMAR: Intel(R) Virtualization Technology for Directed I/O"),
        (2.688205, domain[0]),
    ]
    if len(domain) > 1:
        lines.append((2.688207, domain[1]))
    t = 3.10
    gpu_funcs = []
    nic_funcs = []
    for _slot, slot_funcs in funcs:
        for func in slot_funcs:
            if func.driver == "nvidia":
                gpu_funcs.append(func)
            elif func.driver == "mlx5_core":
                nic_funcs.append(func)
    for func in sorted(gpu_funcs + nic_funcs, key=lambda f: f.bdf):
        i = func.ident
        suffix = pcie_type_suffix(spec, "Endpoint")
        lines.append(
            (
                t,
                f"pci {func.bdf}: [{i.vendor:04x}:{i.device:04x}] type 00 class "
                f"0x{i.class_code:06x}{suffix}",
            )
        )
        if func.link_now[1] < func.link_max[1]:
            # pcie_report_downtraining() at enumeration, before the driver idles the GPU: the
            # link still runs at 32 GT/s; the limiting device is the port above (same link).
            up = posixpath.basename(posixpath.dirname(func.path))
            avail = SPEED_MBS_ENC[GEN5] * func.link_now[1]
            cap = SPEED_MBS_ENC[GEN5] * func.link_max[1]
            lines.append(
                (
                    t + 0.000051,
                    f"pci {func.bdf}: {avail // 1000}.{avail % 1000:03d} Gb/s "
                    f"available PCIe bandwidth, limited by {SPEED_STRING[GEN5]} "
                    f"x{func.link_now[1]} link at {up} (capable of {cap // 1000}."
                    f"{cap % 1000:03d} Gb/s with {SPEED_STRING[GEN5]} x16 link)",
                )
            )
        t += 0.0113
    t = 5.41
    for slot, slot_funcs in funcs:
        for func in slot_funcs:
            if func.driver in ("nvidia", "mlx5_core"):
                lines.append((t, f"pci {func.bdf}: Adding to iommu group {slot.iommu_group}"))
                t += 0.0021
    t = 11.82
    bw = SPEED_MBS_ENC[GEN5] * 16
    for func in sorted(nic_funcs, key=lambda f: f.bdf):
        lines.append((t, f"mlx5_core {func.bdf}: firmware version: {spec.nic_fw}"))
        lines.append(
            (
                t + 0.000006,
                f"mlx5_core {func.bdf}: {bw // 1000}.{bw % 1000:03d} Gb/s "
                f"available PCIe bandwidth ({SPEED_STRING[GEN5]} x16 link)",
            )
        )
        t += 0.2873
    lines += [
        (16.204431, "nvidia: loading out-of-tree module taints kernel."),
        (16.382690, "nvidia-nvlink: Nvlink Core is being initialized, major device number 508"),
        (
            16.401127,
            f"NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  {spec.driver}  "
            f"{spec.nvrm_build}",
        ),
    ]
    for func in sorted(nic_funcs, key=lambda f: f.bdf):
        t += 0.0317
        lines.append((t + 9.0, f"mlx5_core {func.bdf}: Port module event: module 0, Cable plugged"))
    return [f"[{ts:12.6f}] {text}" for ts, text in lines]


def build_node(spec: NodeSpec) -> dict[str, Any]:
    """The complete profile of one node (no `extends`)."""
    tree = Tree()
    faults = spec.faults
    funcs = profile_network.rewire(sys.modules[__name__], spec, pci_functions(spec))
    gpu_bdfs = sorted(f.bdf for _slot, fs in funcs for f in fs if f.driver == "nvidia")

    gpu_index = nic_index = 0
    for slot, slot_funcs in funcs:
        for func in slot_funcs:
            add_pci_function(tree, spec, slot, func)
            if func.driver == "nvidia":
                tree.files[f"/proc/driver/nvidia/gpus/{func.bdf}/information"] = gpu_information(
                    spec, gpu_index, func.path
                )
                gpu_index += 1
            elif func.driver == "mlx5_core":
                add_rdma(tree, spec, nic_index, func)
                nic_index += 1
        group = f"/sys/kernel/iommu_groups/{slot.iommu_group}"
        # With ACS off on the switch and root ports, the kernel puts the whole switch (root port,
        # switch ports, GPU, NIC) in one group (pci_device_group() stops at the first ACS-isolated
        # bridge); passthrough mode = "identity", translated lazy mode = "DMA-FQ".
        tree.text(f"{group}/type", "DMA-FQ" if faults.iommu_translated else "identity")
    tree.link("/sys/bus/pci/drivers/nvidia/module", "/sys/module/nvidia")

    for n, bus in enumerate(spec.dmar_buses):
        unit = f"/sys/devices/virtual/iommu/dmar{n}"
        tree.link(f"/sys/class/iommu/dmar{n}", unit)
        # DRHD register base, one 16 KiB unit per stack (synthetic addresses, "%llx" format).
        tree.text(f"{unit}/intel-iommu/address", f"{0xB5FFC000 - bus * 0x40000:x}")

    # Host: kernel, firmware, CPU topology, NUMA.
    tree.text("/proc/cmdline", kernel_cmdline(spec))
    tree.text("/proc/sys/kernel/osrelease", spec.kernel)
    tree.text("/proc/sys/kernel/numa_balancing", 0)
    for key, value in spec.dmi.items():
        tree.text(f"/sys/class/dmi/id/{key}", value)
    ncpu = 4 * spec.cores_per_socket
    for path in ("online", "possible", "present"):
        tree.text(f"/sys/devices/system/cpu/{path}", f"0-{ncpu - 1}")
    tree.text("/sys/devices/system/cpu/smt/active", 1)
    tree.text("/sys/devices/system/cpu/smt/control", "on")
    for cpu in range(ncpu):
        socket = (cpu // spec.cores_per_socket) % 2
        tree.text(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", "performance")
        tree.text(f"/sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id", socket)
    tree.text("/sys/devices/system/node/online", "0-1")
    tree.text("/sys/devices/system/node/possible", "0-1")
    for node in (0, 1):
        tree.text(f"/sys/devices/system/node/node{node}/cpulist", cpulist(node_cpus(spec, node)))

    # NVIDIA driver (open kernel modules, DKMS) and GPUDirect RDMA module.
    tree.files["/proc/driver/nvidia/version"] = (
        f"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {spec.driver}  "
        f"{spec.nvrm_build}\nGCC version:  {spec.nvrm_gcc}\n"
    )
    tree.text("/sys/module/nvidia/version", spec.driver)
    tree.text("/sys/module/nvidia_peermem/version", spec.driver)

    profile_network.add_network(sys.modules[__name__], tree, spec, funcs)
    shm = spec.ram_kib * 1024 // 2
    return {
        "description": spec.description,
        "hostname": spec.hostname,
        "privileged": not faults.unprivileged,
        "env": {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        "limits": {
            "memlock": ["unlimited", "unlimited"],
            "stack": [8388608, "unlimited"],
            "nofile": [1048576, 1048576],
        },
        "statvfs": {"/dev/shm": {"size_bytes": shm, "free_bytes": shm - 2 * MiB}},
        "kernel_log": profile_nvml.with_fault_log(
            profile_network.with_network_log(kernel_log(spec, funcs), spec, funcs), spec, gpu_bdfs
        ),
        "files": dict(sorted(tree.files.items())),
        "symlinks": dict(sorted(tree.symlinks.items())),
        "nvml": profile_nvml.nvml_section(spec, gpu_bdfs),
    }


# =============================================================================================
# The nodes
# =============================================================================================

# 8x H100 SXM5 from CAP_SMI_H100: bus ids 18/2a/3a/5d/9a/ab/ba/db, device 0x2330, subsystem
# 0x16c1 ("Sub System Id: 0x16C110DE"), VBIOS 96.00.74.00.01, BAR1 131072 MiB, rev a1
# ("GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)" in public lspci output).
H100 = GpuModel(
    name="NVIDIA H100 80GB HBM3",
    identity=Identity(0x10DE, 0x2330, (0x10DE, 0x16C1), 0x030200, 0xA1),
    bar1=128 * GiB,
    vbios="96.00.74.00.01",
)
H100_UUIDS = (  # CAP_SMI_H100 "GPU UUID", in bus order (Minor Number 0..7)
    "GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1",
    "GPU-7c3cadbd-17e5-0913-f69b-c618122ea0cd",
    "GPU-2d50cdf6-dd67-9f2e-855e-0d4d6d395a2f",
    "GPU-d1838e76-90e6-4408-711d-aeeaa2e1fd14",
    "GPU-72be6e5d-3c1b-0d37-98ac-d3ef159f2589",
    "GPU-52378fbc-3124-3895-13b6-1dd179563e0f",
    "GPU-83a5aebb-b71c-c570-aa83-185e1233fe97",
    "GPU-33135771-a848-ece1-b61e-489e221d663c",
)
# The 8 CX-7 NDR ports of CAP_TOPO (fw 28.41.1000, SM lid 1024, cap mask 0xa751e848), taken in the
# order of the GPU each one is PIX to: mlx5_0, 3, 4, 5, 6, 9, 10, 11 (node GUID, base lid).
H100_NICS = (
    NicUnit(0x58A2E103001B2576, 287),
    NicUnit(0x58A2E103001A690A, 286),
    NicUnit(0x58A2E103001B25AE, 239),
    NicUnit(0x58A2E103001B2586, 238),
    NicUnit(0x58A2E103001B258A, 285),
    NicUnit(0x58A2E103001B25D6, 457),
    NicUnit(0x58A2E103001A691E, 284),
    NicUnit(0x58A2E103001B2542, 254),
)
# Sapphire Rapids root port 8086:352a ("pcieport 0000:a7:01.0 ... device [8086:352a]" in kernel
# AER logs); subsystem 8086:0000 as the captured Intel root port (CAP_HASWELL_RP).
SPR_ROOT_PORT = Identity(0x8086, 0x352A, (0x8086, 0x0000), 0x060400, 0x04)
EMR_ROOT_PORT = replace(SPR_ROOT_PORT, revision=0x20)

# GPU i and NIC i share a switch; the host bridges are Sapphire Rapids PCIe stacks. CAP_TOPO:
# every GPU has one PIX NIC, GPUs 0-3 and their NICs on NUMA node 0, 4-7 on node 1, and GPUs of a
# socket are NODE to each other (different host bridges). Which downstream port the GPU sits on
# follows from its captured bus number. IOMMU group numbers are synthetic (the kernel numbers
# groups in probe order, so uncore and chipset devices take the low numbers).
DGX_SLOTS = (
    Slot(0x15, gpu_port=0, nic_port=1, numa=0, iommu_group=31),
    Slot(0x26, gpu_port=1, nic_port=0, numa=0, iommu_group=42),
    Slot(0x37, gpu_port=0, nic_port=1, numa=0, iommu_group=53),
    Slot(0x59, gpu_port=1, nic_port=0, numa=0, iommu_group=64),
    Slot(0x97, gpu_port=0, nic_port=1, numa=1, iommu_group=121),
    Slot(0xA7, gpu_port=1, nic_port=0, numa=1, iommu_group=132),
    Slot(0xB7, gpu_port=0, nic_port=1, numa=1, iommu_group=143),
    Slot(0xD7, gpu_port=1, nic_port=0, numa=1, iommu_group=154),
)
SPR_STACKS = (0x00, 0x15, 0x26, 0x37, 0x48, 0x59, 0x80, 0x97, 0xA7, 0xB7, 0xC7, 0xD7)

DGX_H100 = NodeSpec(
    name="dgx-h100",
    description="Healthy DGX-H100-like node: 2x Xeon 8480C, 8x H100 SXM5, 8x ConnectX-7 NDR, "
    "each GPU/NIC pair behind its own PEX890xx switch; IOMMU passthrough, ACS off",
    hostname="dgx-h100-01",
    cores_per_socket=56,
    ram_kib=2113367216,  # MemTotal of 2 TiB DDR5 less firmware/kernel reservations (synthetic)
    gpu=H100,
    gpus=tuple(GpuUnit(uuid, i, 18 + i) for i, uuid in enumerate(H100_UUIDS)),
    nics=H100_NICS,
    nic_fw="28.41.1000",  # CAP_TOPO "Firmware version: 28.41.1000"
    sm_lid=1024,  # CAP_TOPO "SM lid: 1024"
    slots=DGX_SLOTS,
    dmar_buses=SPR_STACKS,
    root_port_id=SPR_ROOT_PORT,
    switch_subsystem=(0x1000, 0xA064),  # synthetic (not in any capture)
    driver="565.57.01",  # CAP_SMI_H100 "Driver Version: 565.57.01"
    # Line format from a captured 570.195.03 /proc/driver/nvidia/version; build host and date
    # are synthetic.
    nvrm_build="Release Build  (dvs-builder@U16-I3-B03-4-3)  Thu Oct 10 00:26:17 UTC 2024",
    nvrm_gcc="gcc version 11.4.0 (Ubuntu 11.4.0-1ubuntu1~22.04) ",
    kernel="5.15.0-1067-nvidia",
    kernel_version_line="Linux version 5.15.0-1067-nvidia (buildd@lcy02-amd64-117) (gcc (Ubuntu "
    "11.4.0-1ubuntu1~22.04) 11.4.0, GNU ld (GNU Binutils for Ubuntu) 2.38) #68-Ubuntu SMP Wed Sep "
    "18 12:24:51 UTC 2024 (Ubuntu 5.15.0-1067.68-nvidia 5.15.160)",
    kernel_pcie_type_suffix=False,
    cmdline_extra="console=tty0 console=ttyS0,115200n8 rd.driver.blacklist=nouveau "
    "nouveau.modeset=0",
    dmi={
        "bios_vendor": "American Megatrends International, LLC.",
        "bios_version": "1.6.7",  # synthetic
        "bios_date": "04/25/2024",  # synthetic
        "sys_vendor": "NVIDIA",
        "product_name": "DGXH100",
        "board_name": "DGXH100",
        "product_serial": "1660124001234",  # synthetic
    },
    mmio_high=0x200000000000,
    mmio_low=0x90000000,
)

# H200 SXM: 10de:2335, subsystem 0x18be, VBIOS 96.00.A5.00.03, BAR1 262144 MiB, UUID of GPU 0 from
# a public `nvidia-smi -q` of an H200 (code-index file 9046480431, driver 550.90.12).
H200 = GpuModel(
    name="NVIDIA H200",
    identity=Identity(0x10DE, 0x2335, (0x10DE, 0x18BE), 0x030200, 0xA1),
    bar1=256 * GiB,
    vbios="96.00.a5.00.03",
)
H200_UUIDS = (
    "GPU-cb3dfa52-e2f3-9ca4-a399-7d16041c3732",
    *(synthetic_uuid(f"hgx-h200 gpu {i}") for i in range(1, 8)),
)
# CX-7 NDR node GUIDs and lids of CAP_IBSTAT_H20 (fw 28.43.2026, SM lid 1) for the first three
# ports; the other five are synthetic with the same OUI.
H200_NICS = (
    NicUnit(0xA088C2030074CFDA, 50),
    NicUnit(0xA088C2030074CBAA, 49),
    NicUnit(0xA088C2030076B78C, 51),
    *(
        NicUnit(0xA088C20300000000 | synthetic_int(f"hgx-h200 nic {i}", 32), 52 + i)
        for i in range(5)
    ),
)
# Supermicro-style HGX board: each switch has downstream ports 0..3; the NIC sits on port 0, the
# GPU on port 3 (CAP_PEX890XX: "a9:03.0 ... PEX890xx ... secondary=ad"), so GPU 5 is 0000:ad:00.0.
HGX_SLOTS = tuple(
    Slot(host_bus, gpu_port=3, nic_port=0, numa=i // 4, iommu_group=group)
    for i, (host_bus, group) in enumerate(
        [
            (0x15, 36),
            (0x26, 49),
            (0x37, 62),
            (0x48, 75),
            (0x97, 140),
            (0xA7, 153),
            (0xB7, 166),
            (0xC7, 179),
        ]
    )
)

HGX_H200 = NodeSpec(
    name="hgx-h200",
    description="Healthy HGX-H200 node (Supermicro SYS-821GE-TNHR-like): 2x Xeon 8568Y+, "
    "8x H200 SXM, 8x ConnectX-7 NDR; IOMMU passthrough, ACS off",
    hostname="hgx-h200-01",
    cores_per_socket=48,
    ram_kib=2113363024,  # synthetic MemTotal of 2 TiB
    gpu=H200,
    gpus=tuple(GpuUnit(uuid, i, 24 + i) for i, uuid in enumerate(H200_UUIDS)),
    nics=H200_NICS,
    nic_fw="28.43.2026",  # CAP_IBSTAT_H20 "Firmware version: 28.43.2026"
    sm_lid=1,  # CAP_IBSTAT_H20 "SM lid: 1"
    slots=HGX_SLOTS,
    dmar_buses=SPR_STACKS,
    root_port_id=EMR_ROOT_PORT,
    switch_subsystem=(0x1000, 0xA064),  # synthetic
    driver="570.195.03",
    # Captured verbatim from a public /proc/driver/nvidia/version of this driver.
    nvrm_build="Release Build  (dvs-builder@U22-I3-H04-03-1)  Sat Sep 20 00:47:16 UTC 2025",
    nvrm_gcc="gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04.2) ",
    kernel="6.8.0-60-generic",
    kernel_version_line="Linux version 6.8.0-60-generic (buildd@lcy02-amd64-098) "
    "(x86_64-linux-gnu-gcc-12 (Ubuntu 12.3.0-1ubuntu1~22.04) 12.3.0, GNU ld (GNU Binutils for "
    "Ubuntu) 2.38) #63~22.04.1-Ubuntu SMP PREEMPT_DYNAMIC Tue Apr 22 19:00:15 UTC 2 (Ubuntu "
    "6.8.0-60.63~22.04.1-generic 6.8.12)",
    kernel_pcie_type_suffix=True,
    cmdline_extra="console=tty0 console=ttyS1,115200n8 nvme_core.multipath=n",
    dmi={
        "bios_vendor": "American Megatrends International, LLC.",
        "bios_version": "2.1",  # synthetic
        "bios_date": "02/22/2024",  # synthetic
        "sys_vendor": "Supermicro",
        "product_name": "SYS-821GE-TNHR",
        "board_name": "X13DEG-OAD",
        "product_serial": "S518427X4A03112",  # synthetic
    },
    mmio_high=0x200000000000,
    mmio_low=0x90000000,
)

# Faulty variants of dgx-h100: (name, description, faults).
VARIANTS = (
    (
        "dgx-h100-acs-enabled",
        "dgx-h100 with ACS redirect on: ACSCtl 0x001d (SrcValid+ ReqRedir+ CmpltRedir+ "
        "UpstreamFwd+) on every root port and switch downstream port, as in nccl#2079",
        Faults(acs_redirect=True),
    ),
    (
        "dgx-h100-iommu-translated",
        "dgx-h100 booted with intel_iommu=on but without iommu=pt: every IOMMU group is DMA-FQ",
        Faults(iommu_translated=True),
    ),
    (
        "dgx-h100-gpu-link-x8",
        "dgx-h100 whose third GPU (0000:3a:00.0) trained at x8 instead of x16",
        Faults(narrow_gpu=2),
    ),
    (
        "dgx-h100-unprivileged",
        "dgx-h100 read without root: config space is only the 64-byte header",
        Faults(unprivileged=True),
    ),
    (
        "dgx-h100-row-remap-pending",
        "dgx-h100 whose GPU1 (0000:2a:00.0) has a row remap pending (reset needed) after 177 "
        "corrected DRAM errors, with the Xid 63 line, as in the ml-engineering capture",
        Faults(gpu_fault=profile_nvml.ROW_REMAP_PENDING),
    ),
    (
        "dgx-h100-xid-79",
        "dgx-h100 whose GPU3 (0000:5d:00.0) fell off the bus: Xid 79 in the kernel log, "
        "NVML answers GpuIsLost for its handle",
        Faults(gpu_fault=profile_nvml.XID_79),
    ),
    (
        "dgx-h100-nvlink-down",
        "dgx-h100 whose GPU6 (0000:ba:00.0) has NVLinks 4 and 5 inactive",
        Faults(gpu_fault=profile_nvml.NVLINK_DOWN),
    ),
    (
        "dgx-h100-ecc-uncorrected",
        "dgx-h100 whose GPU2 (0000:3a:00.0) counted 2 uncorrectable ECC errors since the "
        "driver loaded (row remap pending)",
        Faults(gpu_fault=profile_nvml.ECC_UNCORRECTED),
    ),
    (
        "dgx-h100-gpu-missing",
        "dgx-h100 whose GPU6 (0000:ba:00.0) enumerates on PCI but failed to initialise "
        "(RmInitAdapter failed): NVML sees 7 GPUs of 8",
        Faults(gpu_fault=profile_nvml.GPU_MISSING),
    ),
    (
        "dgx-h100-gpu-lost-no-xid",
        "dgx-h100 whose GPU5 (0000:ab:00.0) fell off the bus at a driver probe: the driver's "
        "'has fallen off the bus' message and no Xid; NVML sees 7 GPUs of 8",
        Faults(gpu_fault=profile_nvml.GPU_LOST_NO_XID),
    ),
    (
        "dgx-h100-nvml-hang",
        "dgx-h100 whose NVML call nvmlDeviceGetRemappedRows blocks forever on GPU4 "
        "(0000:9a:00.0) after an Xid 119 GSP timeout",
        Faults(gpu_fault=profile_nvml.NVML_HANG),
    ),
    (
        "dgx-h100-ib-port-down",
        "dgx-h100 whose mlx5_3 port 1 is 1: DOWN / 3: Disabled (no LID, link downed once), "
        "ib3 down, as the down ports of the captured ibstat outputs",
        Faults(net_variant=profile_network.IB_PORT_DOWN),
    ),
    (
        "dgx-h100-ib-rate-hdr",
        "dgx-h100 whose mlx5_5 port 1 trained at 200 Gb/sec (4X HDR) instead of NDR",
        Faults(net_variant=profile_network.IB_RATE_HDR),
    ),
    (
        "dgx-h100-ib-symbol-errors",
        "dgx-h100 whose mlx5_1 port 1 has symbol errors on top of the captured saturated "
        "counters of a production ConnectX-7 (link_downed 255, port_xmit_discards 65535)",
        Faults(net_variant=profile_network.IB_SYMBOL_ERRORS),
    ),
    (
        "dgx-h100-nic-fw-mismatch",
        "dgx-h100 whose mlx5_6 runs ConnectX-7 firmware 28.39.2048, the others 28.41.1000",
        Faults(net_variant=profile_network.NIC_FW_MISMATCH),
    ),
    (
        "dgx-h100-no-peermem",
        "dgx-h100 on the proprietary GPU kernel module (no DMA-BUF) without nvidia-peermem: "
        "no GPUDirect RDMA path",
        Faults(net_variant=profile_network.NO_PEERMEM),
    ),
    (
        "dgx-h100-gpu-nic-cross-socket",
        "dgx-h100 whose mlx5_0, GPU0's NIC, sits behind root port 0000:c7:01.0 of socket 1 "
        "(0000:c8:00.0): GPU0's nearest NIC is NODE, GPUDirect RDMA off for it",
        Faults(net_variant=profile_network.CROSS_SOCKET),
    ),
    (
        "dgx-h100-roce",
        "Healthy dgx-h100 on RoCE: 8 ConnectX-7 ports in Ethernet mode at 400 GbE, RoCE v2 "
        "GIDs on enp*np0 (MTU 9000), ECN on every priority (check with --baseline dgx-h100-roce)",
        Faults(net_variant=profile_network.ROCE),
    ),
)

# =============================================================================================
# Diff, merge, output
# =============================================================================================

ATOMIC_SECTIONS = ("files", "symlinks", "statvfs", "limits", "env")


def diff(base: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    """The smallest `extends` overlay turning base into variant. Entries of the path-keyed
    sections are replaced whole (a binary file is never half-merged); lists replace."""
    out: dict[str, Any] = {}
    for key in sorted(base.keys() | variant.keys()):
        if key not in variant:
            out[key] = None
        elif key not in base or base[key] != variant[key]:
            old, new = base.get(key), variant[key]
            if key == "nvml":
                out[key] = profile_nvml.diff(old, new)
            elif key in ATOMIC_SECTIONS and isinstance(old, dict):
                out[key] = {
                    k: new.get(k)
                    for k in sorted(old.keys() | new.keys())
                    if old.get(k) != new.get(k)
                }
            else:
                out[key] = new
    return out


def build_all() -> dict[str, dict[str, Any]]:
    profiles = {spec.name: build_node(spec) for spec in (DGX_H100, HGX_H200)}
    base = profiles[DGX_H100.name]
    for name, description, faults in VARIANTS:
        full = build_node(replace(DGX_H100, faults=faults))
        full["description"] = description
        overlay = {"extends": DGX_H100.name, **diff(base, full)}
        assert merge(base, {k: v for k, v in overlay.items() if k != "extends"}) == full
        profiles[name] = overlay
    return profiles


def render(profile: dict[str, Any]) -> str:
    return json.dumps(profile, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed profile is not up to date"
    )
    args = parser.parse_args(argv)
    rendered = {f"{name}.json": render(profile) for name, profile in build_all().items()}
    if args.check:
        stale = [
            name
            for name, text in rendered.items()
            if not (PROFILE_DIR / name).is_file()
            or (PROFILE_DIR / name).read_text(encoding="utf-8") != text
        ]
        stale += sorted(p.name for p in PROFILE_DIR.glob("*.json") if p.name not in rendered)
        for name in stale:
            print(f"out of date: preflight/profiles/{name}", file=sys.stderr)
        if stale:
            print("run: python tools/make_profiles.py", file=sys.stderr)
        return 1 if stale else 0
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (PROFILE_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote preflight/profiles/{name} ({len(text.encode()) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
