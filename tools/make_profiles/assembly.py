"""Node assembly: one node spec to the files, symlinks, kernel log and nvml section of its
profile."""

from __future__ import annotations

import posixpath
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tools.make_profiles import network as profile_network
from tools.make_profiles import nvml as profile_nvml
from tools.make_profiles.config_space import (
    GEN1,
    GEN5,
    SPEED_MBS_ENC,
    SPEED_STRING,
    UNPRIVILEGED_CONFIG_SIZE,
    Identity,
)
from tools.make_profiles.devices import (
    CX7,
    MiB,
    NodeSpec,
    Slot,
    bridge_resources,
    format_resources,
    gpu_bars,
    gpu_config,
    gpu_resources,
    nic_bar0,
    nic_config,
    nic_resources,
    pex890xx,
    root_port_config,
    switch_port_config,
    synthetic_uuid,
)


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
