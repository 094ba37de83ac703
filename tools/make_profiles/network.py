"""The RDMA/network side of the built-in profiles: extras every node has, and network variants.

Called by assembly.py (which writes the IB device and port files in add_rdma()); this module
adds what the network checks read beyond those, and applies the network variants:

* every node: the verbs devices (/sys/class/infiniband_verbs/uverbsN, /dev/infiniband/uverbsN),
  gid_attrs of the IB port GID, the netdev's dev_port/dev_id;
* variants (devices.Faults.net_variant): a port down, a port at HDR, a port with symbol
  errors and the saturated counters of CAP_COUNTERS, a NIC on older firmware, no peer-memory
  module, a NIC moved to the other socket's root complex, and a healthy RoCE node.

Sources (tests/data/captures/): CAP_TOPO (8x CX-7 NDR, fw 28.41.1000), CAP_COUNTERS (real CX-7 port
counters, saturated), CAP_IBSTAT_CX8 (down/disabled ports: "Rate: 10", "Base lid: 65535",
"SM lid: 0"), CAP_DEVINFO_CX7 (CX-7 firmware 28.39.2048), CAP_IBSTATUS_BF3 (RoCE 400: sysfs rate
"400 Gb/sec (4X NDR)" with link_layer Ethernet), CAP_IBSTAT_ROCE (RoCE ports: lid 0, SM lid 0,
capability mask 0x00010000, port GUID derived from the MAC). Values no capture gives are marked
synthetic and have the kernel's format.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace
from typing import Any

from tools.make_profiles.config_space import GEN5
from tools.make_profiles.devices import MiB, bridge_resources, nic_bar0, root_port_config

CAP_COUNTERS = "ib-sysfs-counters_CX7-MT4129-fw28.41_saturated-counters_gpud-pr943.txt"
CAP_IBSTAT_CX8 = "ibstat_CX8-MT4131-down-disabled_CX7-MT4129-100G_Dell-B300-SXM6_korean-notes.txt"
CAP_DEVINFO_CX7 = "ibv_devinfo_CX7-MT4129_IB-PORT_DOWN-and-RoCE-ACTIVE_H100_DeepEP-issue38.txt"
CAP_IBSTATUS_BF3 = "ibstatus_BF3-RoCE-NDR400-and-HDR200_8xH20_DeepEP-issue17.txt"
CAP_IBSTAT_ROCE = "ibstat_CX6Dx-MT4125-RoCE100_l2fwd-nv-issue6.txt"

# Variants (devices.Faults.net_variant) and the NIC index each one touches.
IB_PORT_DOWN = "ib-port-down"
IB_RATE_HDR = "ib-rate-hdr"
IB_SYMBOL_ERRORS = "ib-symbol-errors"
NIC_FW_MISMATCH = "nic-fw-mismatch"
NO_PEERMEM = "no-peermem"
CROSS_SOCKET = "gpu-nic-cross-socket"
ROCE = "roce"
NET_VARIANTS = (
    IB_PORT_DOWN,
    IB_RATE_HDR,
    IB_SYMBOL_ERRORS,
    NIC_FW_MISMATCH,
    NO_PEERMEM,
    CROSS_SOCKET,
    ROCE,
)
NIC_OF = {
    IB_PORT_DOWN: 3,
    IB_RATE_HDR: 5,
    IB_SYMBOL_ERRORS: 1,
    NIC_FW_MISMATCH: 6,
    CROSS_SOCKET: 0,
}

# CAP_COUNTERS, verbatim: /sys/class/infiniband/mlx5_1/ports/1/counters of a production CX-7 port
# with saturated legacy counters (port_xmit_wait 2^32-1, link_downed 2^8-1, port_xmit_discards
# 2^16-1, excessive_buffer_overrun_errors 2^4-1) and 64-bit data counters.
CAPTURED_COUNTERS = {
    "unicast_rcv_packets": 240037171331,
    "port_xmit_data": 205143497464492,
    "port_xmit_constraint_errors": 0,
    "VL15_dropped": 0,
    "port_rcv_errors": 0,
    "port_xmit_wait": 4294967295,
    "link_error_recovery": 0,
    "multicast_rcv_packets": 0,
    "multicast_xmit_packets": 0,
    "port_rcv_remote_physical_errors": 0,
    "port_rcv_packets": 240037171331,
    "unicast_xmit_packets": 242071897216,
    "excessive_buffer_overrun_errors": 15,
    "port_rcv_data": 205128687774249,
    "port_rcv_constraint_errors": 0,
    "link_downed": 255,
    "local_link_integrity_errors": 0,
    "port_xmit_discards": 65535,
    "port_rcv_switch_relay_errors": 2,
    "port_xmit_packets": 242071897216,
    "symbol_error": 0,
}
# A marginal link on top of it (synthetic): symbol errors with the link error recoveries and
# receive errors they cause.
SYMBOL_ERROR_COUNTERS = {"symbol_error": 4387, "link_error_recovery": 3, "port_rcv_errors": 112}
OLD_FW = "28.39.2048"  # CAP_DEVINFO_CX7: "fw_ver: 28.39.2048" on a ConnectX-7 (MT_0000000838)
# ib_uverbs: character major 231, minors from 192 (IB_UVERBS_BASE_MINOR).
UVERBS_MAJOR, UVERBS_MINOR = 231, 192
# mlx5 RoCE congestion counters (hw_counters on Ethernet ports only).
ROCE_CC_COUNTERS = ("np_cnp_sent", "np_ecn_marked_roce_packets", "rp_cnp_handled", "rp_cnp_ignored")
ROCE_MTU = 9000  # jumbo frames, the usual RoCE fabric MTU (synthetic choice)
ROCE_PRIORITY_COUNT = 8
CNP_DSCP, CNP_802P_PRIO = 48, 6  # MLNX_OFED defaults for ecn/roce_np (synthetic)
CROSS_SOCKET_STACK = 0xC7  # a Sapphire Rapids PCIe stack of socket 1 that DGX_SLOTS leaves free
CROSS_SOCKET_GROUP = 186  # synthetic IOMMU group number


def nic_functions(funcs: list[tuple[Any, list[Any]]]) -> list[Any]:
    """The NIC PCI functions in the order assembly.py names them mlx5_0, mlx5_1, …"""
    return [f for _slot, fs in funcs for f in fs if f.driver == "mlx5_core"]


# =============================================================================================
# PCI: a NIC moved to the other socket
# =============================================================================================


def rewire(mp: Any, spec: Any, funcs: list[tuple[Any, list[Any]]]) -> list[tuple[Any, list[Any]]]:
    """For CROSS_SOCKET: move the NIC of GPU0's switch behind a root port of socket 1.

    The NIC and its switch downstream port leave slot 0; a new root port c7:01.0 (NUMA node 1)
    gets the NIC at c8:00.0. It keeps its place in the list, so it is still mlx5_0.
    """
    if spec.faults.net_variant != CROSS_SOCKET:
        return funcs
    index = NIC_OF[CROSS_SOCKET]
    slot, slot_funcs = funcs[index]
    nic = next(f for f in slot_funcs if f.driver == "mlx5_core")
    nic_port = posixpath.dirname(nic.path)
    kept = [f for f in slot_funcs if f.path not in (nic.path, nic_port)]
    hb, sec = CROSS_SOCKET_STACK, CROSS_SOCKET_STACK + 1
    new_slot = replace(
        slot, host_bus=hb, gpu_port=0, nic_port=0, numa=1, iommu_group=CROSS_SOCKET_GROUP
    )
    rp_path = f"/sys/devices/pci0000:{hb:02x}/{mp.bdf(hb, 1)}"
    start = nic_bar0(spec, index)
    pref = (start, start + 32 * MiB - 1)
    root_port = mp.PciFunction(
        rp_path,
        spec.root_port_id,
        root_port_config(spec, index, (hb, sec, sec), None, pref),
        bridge_resources(None, pref),
        "pcieport",
        (GEN5, 16),
        (GEN5, 16),
        (sec, sec),
        root_port=True,
    )
    moved = replace(nic, path=f"{rp_path}/{mp.bdf(sec)}")
    out = list(funcs)
    out[index] = (slot, kept)
    out.insert(index + 1, (new_slot, [root_port, moved]))
    return out


# =============================================================================================
# Files
# =============================================================================================


def _drop(tree: Any, prefix: str) -> None:
    """Remove every file and symlink at or below a path."""
    for table in (tree.files, tree.symlinks):
        for path in [p for p in table if p == prefix or p.startswith(prefix + "/")]:
            del table[path]


def _mac(guid: int) -> int:
    """The MAC a ConnectX derives its GUID from: GUID = MAC[0:3] 03:00 MAC[3:6]
    (CAP_IBSTAT_ROCE: node GUID 0x0c42a103001dd12a for MAC 0c:42:a1:1d:d1:2a)."""
    return (guid >> 40) << 24 | (guid & 0xFFFFFF)


def _gid(value: int) -> str:
    """A 128-bit GID as sysfs prints it ("%pI6": eight groups of four hex digits)."""
    return ":".join(f"{value >> s & 0xFFFF:04x}" for s in range(112, -1, -16))


def _link_local(mac: int) -> int:
    """fe80::/64 with the modified EUI-64 of the MAC (U/L bit flipped, ff:fe in the middle)."""
    eui = ((mac >> 24) ^ 0x020000) << 40 | 0xFFFE << 24 | (mac & 0xFFFFFF)
    return 0xFE80 << 112 | eui


def _ipv4_mapped(a: int, b: int, c: int, d: int) -> int:
    return 0xFFFF << 32 | a << 24 | b << 16 | c << 8 | d


def add_verbs(mp: Any, tree: Any, index: int, nic: Any) -> None:
    """/sys/class/infiniband_verbs/uverbsN (under the NIC, like real sysfs) and its /dev node."""
    name = f"uverbs{index}"
    real = f"{nic.path}/infiniband_verbs/{name}"
    tree.link(f"/sys/class/infiniband_verbs/{name}", real)
    tree.link(f"{real}/device", nic.path)
    tree.text(f"{real}/ibdev", f"mlx5_{index}")
    tree.text(f"{real}/abi_version", 1)
    tree.text(f"{real}/dev", f"{UVERBS_MAJOR}:{UVERBS_MINOR + index}")
    # A character device cannot be a profile file; an empty regular file stands for it.
    tree.files[f"/dev/infiniband/{name}"] = ""


def make_roce(mp: Any, tree: Any, spec: Any, index: int, nic: Any) -> None:
    """Turn mlx5_<index> into a 400 GbE RoCE port with its Ethernet netdev and ECN settings."""
    unit = spec.nics[index]
    hca = f"mlx5_{index}"
    port = f"{nic.path}/infiniband/{hca}/ports/1"
    mac = _mac(unit.guid)
    netdev = f"enp{int(nic.bdf[5:7], 16)}s0np0"  # udev predictable name: PCI bus, slot, port 0
    tree.text(f"{port}/link_layer", "Ethernet")
    tree.text(f"{port}/rate", "400 Gb/sec (4X NDR)")  # CAP_IBSTATUS_BF3: RoCE 400 at "4X NDR"
    tree.text(f"{port}/lid", "0x0")  # CAP_IBSTAT_ROCE: "Base lid: 0", "SM lid: 0"
    tree.text(f"{port}/sm_lid", "0x0")
    tree.text(f"{port}/cap_mask", "0x00010000")  # CAP_IBSTAT_ROCE "Capability mask"
    ip = (10, 10, index, 11)  # synthetic address plan: one /24 per rail
    entries = [
        (_link_local(mac), "IB/RoCE v1"),
        (_link_local(mac), "RoCE v2"),
        (_ipv4_mapped(*ip), "IB/RoCE v1"),
        (_ipv4_mapped(*ip), "RoCE v2"),
    ]
    for i, (gid, kind) in enumerate(entries):
        tree.text(f"{port}/gids/{i}", _gid(gid))
        tree.text(f"{port}/gid_attrs/types/{i}", kind)
        tree.text(f"{port}/gid_attrs/ndevs/{i}", netdev)
    for name in ROCE_CC_COUNTERS:
        tree.text(f"{port}/hw_counters/{name}", 0)
    # Replace the IPoIB interface by the Ethernet one.
    _drop(tree, f"{nic.path}/net/ib{index}")
    _drop(tree, f"/sys/class/net/ib{index}")
    net = f"{nic.path}/net/{netdev}"
    tree.link(f"/sys/class/net/{netdev}", net)
    tree.link(f"{net}/device", nic.path)
    tree.text(f"{net}/operstate", "up")
    tree.text(f"{net}/carrier", 1)
    tree.text(f"{net}/mtu", ROCE_MTU)
    tree.text(f"{net}/type", 1)  # ARPHRD_ETHER
    tree.text(f"{net}/addr_len", 6)
    tree.text(f"{net}/address", ":".join(f"{mac >> s & 0xFF:02x}" for s in range(40, -1, -8)))
    tree.text(f"{net}/speed", 400000)
    tree.text(f"{net}/dev_port", 0)
    tree.text(f"{net}/dev_id", "0x0")
    for role in ("roce_np", "roce_rp"):
        for prio in range(ROCE_PRIORITY_COUNT):
            tree.text(f"{net}/ecn/{role}/enable/{prio}", 1)
    tree.text(f"{net}/ecn/roce_np/cnp_dscp", CNP_DSCP)
    tree.text(f"{net}/ecn/roce_np/cnp_802p_prio", CNP_802P_PRIO)


def add_network(mp: Any, tree: Any, spec: Any, funcs: list[tuple[Any, list[Any]]]) -> None:
    """Everything the network checks read beyond add_rdma(), then the node's network variant."""
    variant = spec.faults.net_variant
    nics = nic_functions(funcs)
    tree.text("/sys/class/infiniband_verbs/abi_version", 6)  # IB_USER_VERBS_ABI_VERSION
    tree.files["/dev/infiniband/rdma_cm"] = ""
    for index, nic in enumerate(nics):
        port = f"{nic.path}/infiniband/mlx5_{index}/ports/1"
        tree.text(f"{port}/gid_attrs/types/0", "IB/RoCE v1")  # IB_GID_TYPE_IB prints so
        tree.text(f"{nic.path}/net/ib{index}/dev_port", 0)
        tree.text(f"{nic.path}/net/ib{index}/dev_id", "0x0")
        add_verbs(mp, tree, index, nic)
        if variant == ROCE:
            make_roce(mp, tree, spec, index, nic)
    target = NIC_OF.get(variant or "")
    if target is None:
        if variant == NO_PEERMEM:
            # Proprietary kernel module (no DMA-BUF) and nvidia-peermem not loaded. The version
            # line has the proprietary module's format: "NVIDIA UNIX x86_64 Kernel Module".
            del tree.files["/sys/module/nvidia_peermem/version"]
            tree.files["/proc/driver/nvidia/version"] = (
                f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {spec.driver}  "
                f"{spec.nvrm_build.split(')', 1)[-1].strip()}\n"
                f"GCC version:  {spec.nvrm_gcc}\n"
            )
        return
    nic = nics[target]
    hca = f"mlx5_{target}"
    port = f"{nic.path}/infiniband/{hca}/ports/1"
    net = f"{nic.path}/net/ib{target}"
    if variant == IB_PORT_DOWN:
        # CAP_IBSTAT_CX8: "State: Down", "Physical state: Disabled", "Rate: 10", "Base lid: 65535",
        # "SM lid: 0" = sysfs "1: DOWN", "3: Disabled", "10 Gb/sec (4X SDR)", 0xffff, 0x0. The
        # port was up once since boot: LinkDownedCounter 1.
        tree.text(f"{port}/state", "1: DOWN")
        tree.text(f"{port}/phys_state", "3: Disabled")
        tree.text(f"{port}/rate", "10 Gb/sec (4X SDR)")
        tree.text(f"{port}/lid", "0xffff")
        tree.text(f"{port}/sm_lid", "0x0")
        tree.text(f"{port}/counters/link_downed", 1)
        tree.text(f"{net}/operstate", "down")
        tree.text(f"{net}/carrier", 0)
        tree.text(f"{net}/speed", 10000)
    elif variant == IB_RATE_HDR:
        tree.text(f"{port}/rate", "200 Gb/sec (4X HDR)")  # the sysfs string of CAP ibstatus HDR
        tree.text(f"{net}/speed", 200000)
    elif variant == IB_SYMBOL_ERRORS:
        for name, value in {**CAPTURED_COUNTERS, **SYMBOL_ERROR_COUNTERS}.items():
            tree.text(f"{port}/counters/{name}", value)
    elif variant == NIC_FW_MISMATCH:
        tree.text(f"{nic.path}/infiniband/{hca}/fw_ver", OLD_FW)


def with_network_log(lines: list[str], spec: Any, funcs: list[tuple[Any, list[Any]]]) -> list[str]:
    """The kernel log as the variant's node would print it (firmware, driver module lines)."""
    variant = spec.faults.net_variant
    if variant == NIC_FW_MISMATCH:
        bdf = nic_functions(funcs)[NIC_OF[NIC_FW_MISMATCH]].bdf
        old = f"mlx5_core {bdf}: firmware version: {spec.nic_fw}"
        return [line.replace(old, f"mlx5_core {bdf}: firmware version: {OLD_FW}") for line in lines]
    if variant == NO_PEERMEM:
        date = spec.nvrm_build.split(")", 1)[-1].strip()
        open_line = f"NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  {spec.driver}  "
        return [
            line.split("NVRM: loading")[0]
            + f"NVRM: loading NVIDIA UNIX x86_64 Kernel Module  {spec.driver}  {date}"
            if open_line in line
            else line
            for line in lines
        ]
    return lines
