"""Device models: the GPU, NIC, switch and root-port config spaces and BAR/resource layout of
one node spec."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tools.make_profiles.config_space import (
    ACS_CR,
    ACS_CTL_REDIRECT,
    ACS_DT,
    ACS_EC,
    ACS_RR,
    ACS_SV,
    ACS_TB,
    ACS_UF,
    AER_UE_UNSUP,
    ASPM_L0S_L1,
    ASPM_L1,
    CAP_NULL,
    DEVCAP2_10BIT_COMP,
    DEVCAP2_10BIT_REQ,
    DEVCAP2_ARI,
    DEVCAP2_ATOMIC_COMP32,
    DEVCAP2_ATOMIC_COMP64,
    DEVCAP2_ATOMIC_COMP128,
    DEVCAP2_ATOMIC_ROUTE,
    DEVCAP2_EXT_FMT,
    DEVCAP2_LTR,
    DEVCAP2_OBFF_MSG,
    DEVCAP2_TIMEOUT_DIS,
    DEVCAP2_TPH_COMP,
    DEVCTL2_ARI_FWD,
    EXP_DOWNSTREAM,
    EXP_ENDPOINT,
    EXP_ROOT_PORT,
    EXP_UPSTREAM,
    GEN5,
    LNKCAP_ASPM_OPTCOMP,
    LNKCAP_DLLLARC,
    LNKCAP_LBNC,
    LNKCAP_SURPRISE,
    LNKSTA_DLLLA,
    LNKSTA_SLC,
    PCI_BRIDGE_CTL_PARITY,
    PCI_BRIDGE_CTL_SERR,
    PCI_BRIDGE_CTL_VGA_16BIT,
    PCI_COMMAND_INTX_DISABLE,
    PCI_COMMAND_IO,
    PCI_COMMAND_MASTER,
    PCI_COMMAND_MEMORY,
    PCI_COMMAND_PARITY,
    PCI_COMMAND_SERR,
    PME_D0,
    PME_D3COLD,
    PME_D3HOT,
    Cap,
    ConfigSpace,
    Express,
    Identity,
    Window,
    acs_cap,
    aer_cap,
    ari_cap,
    devcap,
    devctl,
    dsn_cap,
    lnkcap,
    lnksta,
    msi_cap,
    msix_cap,
    pm_cap,
    rebar_cap,
    secondary_pcie_cap,
    ssvid_cap,
    type0_header,
    type1_header,
    vc_cap,
    vendor_cap,
    vendor_ext_cap,
    vpd_cap,
)

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


def synthetic_int(seed: str, bits: int) -> int:
    """A stable pseudo-random number for values no capture gives (serials, GUIDs)."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[: bits // 8], "big")


def synthetic_uuid(seed: str) -> str:
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
