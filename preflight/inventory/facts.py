"""A node's facts: the flat dotted keys a report carries, named here and assembled here.

A report's `facts` are what `compare` groups and diffs across a fleet and what
`baselines generate` pins, so their keys are a contract: every key and key family is named once
in this module (`PCI_GPU_COUNT`, `pci_key(bdf, IDS)`, `rdma_port_key(dev, 1, LINK_LAYER)`…),
and the readers of reports (preflight/cluster, preflight/hints.py) build keys with the same
names instead of spelling them again.

Key families, `<…>` a part that varies per node:

- `dmi.<field>`, `kernel.*`, `iommu.*`, `nvidia.*`, `cpu.*`, `numa.nodes`, `limits.<name>.soft`
  and `.hard`, `shm.size_bytes`;
- `pci.{gpu,nic,nvswitch}_count`, `pci.<bdf>.<leaf>` (ids, link speeds and widths, devctl);
- `gpu.<bdf>.<leaf>` from the driver's procfs and, when NVML was collected, `nvml.*` and more
  `gpu.<bdf>.<leaf>` (`nvml.gpu<index>.<leaf>` for a GPU without a PCI address);
- `rdma.<device>.<leaf>`, `rdma.<device>.port<N>.<leaf>`, `net.<netdev>.<leaf>`;
- `topology.GPU<index>.<nic>` and `.nearest_nic`, `gdr.*`, `nccl.<variable>`,
  `nccl.conf_files`;
- `bench.*`: numeric figures of benchmark runs (none written by `run` today; compare reads them).

Of the leaves above, `uuid` (a GPU's) and `lid` (an InfiniBand port's) differ on every healthy
node: `PER_NODE_LEAVES`, which compare's unique-key rule leaves out of drift.

The assembly reads the inventory's parts; the modules that define their types are imported when
facts are assembled, not when a reader of reports imports the key names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from preflight.inventory.gpu import NvmlState, ProcGpu
    from preflight.inventory.inventory import Inventory
    from preflight.inventory.nccl_env import NcclEnv
    from preflight.inventory.net import NetInventory
    from preflight.inventory.pci import PciDevice, PciInventory
    from preflight.inventory.rdma import GpuDirectInfo, RdmaInventory
    from preflight.model import Scalar

# -- node-wide keys -------------------------------------------------------------------------------
DMI = "dmi."
KERNEL_RELEASE = "kernel.release"
KERNEL_CMDLINE = "kernel.cmdline"
KERNEL_NUMA_BALANCING = "kernel.numa_balancing"
IOMMU_CMDLINE_MODE = "iommu.cmdline_mode"
IOMMU_UNITS = "iommu.units"
NVIDIA_DRIVER_VERSION = "nvidia.driver_version"
NVIDIA_OPEN_KERNEL_MODULE = "nvidia.open_kernel_module"
CPU_COUNT = "cpu.count"
CPU_GOVERNOR = "cpu.governor"
CPU_SMT_ACTIVE = "cpu.smt_active"
CPU_SMT_CONTROL = "cpu.smt_control"
NUMA_NODES = "numa.nodes"
LIMITS = "limits."
SHM_SIZE_BYTES = "shm.size_bytes"
PCI_GPU_COUNT = "pci.gpu_count"
PCI_NIC_COUNT = "pci.nic_count"
PCI_NVSWITCH_COUNT = "pci.nvswitch_count"
GDR_PEERMEM = "gdr.peermem"
GDR_UVERBS = "gdr.uverbs"
NCCL = "nccl."
NCCL_CONF_FILES = "nccl.conf_files"
NVML_STATUS = "nvml.status"
NVML_ERROR = "nvml.error"
NVML_DRIVER_VERSION = "nvml.driver_version"
NVML_CUDA_DRIVER_VERSION = "nvml.cuda_driver_version"
NVML_GPU_COUNT = "nvml.gpu_count"
BENCH = "bench."
"""Numeric facts under this prefix are benchmark figures (compare's outliers)."""

# -- per-device keys: family prefixes and their leaves ---------------------------------------
PCI = "pci."
IDS = "ids"
NUMA_NODE = "numa_node"
DRIVER = "driver"
IOMMU_GROUP_TYPE = "iommu_group_type"
MAX_LINK_SPEED = "max_link_speed"
CURRENT_LINK_SPEED = "current_link_speed"
MAX_LINK_WIDTH = "max_link_width"
CURRENT_LINK_WIDTH = "current_link_width"
MAX_PAYLOAD = "max_payload"
MAX_READ_REQUEST = "max_read_request"
RELAXED_ORDERING = "relaxed_ordering"
ACS_CTL = "acs_ctl"
BAR1_BYTES = "bar1_bytes"

GPU = "gpu."
NVML_GPU = "nvml.gpu"
MODEL = "model"
UUID = "uuid"
VBIOS = "vbios"
GSP_FIRMWARE = "gsp_firmware"
NVML_ERROR_LEAF = "nvml_error"
PERSISTENCE_MODE = "persistence_mode"
ECC_MODE = "ecc_mode"
MIG_MODE = "mig_mode"
POWER_LIMIT_W = "power_limit_w"
NVLINKS_ACTIVE = "nvlinks_active"
FABRIC_STATE = "fabric_state"

RDMA = "rdma."
FW_VER = "fw_ver"
HCA_TYPE = "hca_type"
BOARD_ID = "board_id"
PCI_ADDRESS = "pci"
PORT = "port"
STATE = "state"
PHYS_STATE = "phys_state"
RATE = "rate"
LINK_LAYER = "link_layer"
NETDEV = "netdev"
LID = "lid"
SM_LID = "sm_lid"

NET = "net."
OPERSTATE = "operstate"
MTU = "mtu"
SPEED_MBPS = "speed_mbps"

TOPOLOGY = "topology."
NEAREST_NIC = "nearest_nic"

PER_NODE_LEAVES = (UUID, LID)
"""Leaves of the keys above whose values differ on every healthy node (a GPU's UUID, an
InfiniBand port's LID)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_:.-]")


def part(name: str) -> str:
    """A name from the node (a device, a netdev, a variable) as one key part."""
    return _UNSAFE.sub("_", name) or "_"


def dmi_key(field: str) -> str:
    """`dmi.bios_version`."""
    return f"{DMI}{field}"


def limit_key(name: str, which: str) -> str:
    """`limits.memlock.soft` (which: soft or hard)."""
    return f"{LIMITS}{name}.{which}"


def pci_key(bdf: str, leaf: str) -> str:
    """`pci.0000:18:00.0.max_link_speed`."""
    return f"{PCI}{bdf}.{leaf}"


def gpu_key(bdf: str, leaf: str) -> str:
    """`gpu.0000:18:00.0.uuid`."""
    return f"{GPU}{bdf}.{leaf}"


def rdma_key(device: str, leaf: str) -> str:
    """`rdma.mlx5_0.fw_ver` (device: a key part, see part())."""
    return f"{RDMA}{device}.{leaf}"


def rdma_port_key(device: str, port: int, leaf: str) -> str:
    """`rdma.mlx5_0.port1.link_layer`."""
    return f"{RDMA}{device}.{PORT}{port}.{leaf}"


def net_key(netdev: str, leaf: str) -> str:
    """`net.ib0.mtu`."""
    return f"{NET}{netdev}.{leaf}"


def topology_key(gpu_index: int, leaf: str) -> str:
    """`topology.GPU3.nearest_nic`, `topology.GPU3.mlx5_3`."""
    return f"{TOPOLOGY}GPU{gpu_index}.{leaf}"


def is_rdma_port_key(key: str, leaf_name: str) -> bool:
    """Whether key is `rdma.<device>.port<N>.<leaf_name>`."""
    return key.startswith(RDMA) and key.endswith(f".{leaf_name}") and f".{PORT}" in key


# -- assembly ------------------------------------------------------------------------------------


def node_facts(
    inv: Inventory, into: dict[str, Scalar] | None = None, missing: list[str] | None = None
) -> dict[str, Scalar]:
    """The node's settings as flat dotted keys, for reports and fleet comparison.

    Gathered group by group into `into`: a group whose part was abandoned (PartHung) is left
    out and named in `missing`, and every other group is kept.
    """
    from preflight.inventory.inventory import PartHung

    facts: dict[str, Scalar] = {} if into is None else into
    for name, group in _fact_groups(inv):
        try:
            facts.update(group())
        except PartHung as exc:
            if missing is not None:
                missing.append(f"{name}: {exc}")
    return facts


def _fact_groups(inv: Inventory) -> list[tuple[str, Callable[[], dict[str, Scalar]]]]:
    return [
        ("dmi", lambda: {dmi_key(name): value for name, value in inv.dmi.values.items()}),
        ("kernel", lambda: _kernel_facts(inv)),
        ("cpu", lambda: _cpu_facts(inv)),
        ("limits", lambda: _limit_facts(inv)),
        ("pci", lambda: _pci_facts(inv)),
        # NVML facts only when NVML was collected in this run: facts never start the child.
        ("gpu", lambda: gpu_facts(inv.nvidia_procfs, inv.gpu if inv.host.nvml_started else None)),
        ("network", lambda: network_facts(inv.pci, inv.rdma, inv.net, inv.nccl, inv.gdr)),
    ]


def _kernel_facts(inv: Inventory) -> dict[str, Scalar]:
    k = inv.kernel
    return {
        KERNEL_RELEASE: k.release,
        KERNEL_CMDLINE: k.cmdline,
        IOMMU_CMDLINE_MODE: k.iommu_cmdline.mode(),
        IOMMU_UNITS: len(k.iommu_units),
        NVIDIA_DRIVER_VERSION: k.nvidia_driver,
        NVIDIA_OPEN_KERNEL_MODULE: k.nvidia_open_module,
    }


def _cpu_facts(inv: Inventory) -> dict[str, Scalar]:
    c = inv.cpu
    governors = sorted(set(c.governors.values()))
    return {
        CPU_COUNT: len(c.cpus),
        CPU_GOVERNOR: ",".join(governors) if governors else None,
        CPU_SMT_ACTIVE: c.smt_active,
        CPU_SMT_CONTROL: c.smt_control,
        NUMA_NODES: len(c.numa_nodes),
        KERNEL_NUMA_BALANCING: c.numa_balancing,
    }


def _limit_facts(inv: Inventory) -> dict[str, Scalar]:
    lim = inv.limits
    facts: dict[str, Scalar] = {}
    for name, limit in sorted(lim.limits.items()):
        facts[limit_key(name, "soft")] = limit.soft
        facts[limit_key(name, "hard")] = limit.hard
    facts[SHM_SIZE_BYTES] = lim.shm.size_bytes if lim.shm else None
    return facts


def _pci_facts(inv: Inventory) -> dict[str, Scalar]:
    pci = inv.pci
    facts: dict[str, Scalar] = {
        PCI_GPU_COUNT: len(pci.gpus()),
        PCI_NIC_COUNT: len(pci.nics()),
        PCI_NVSWITCH_COUNT: len(pci.nvswitches()),
    }
    for bdf in pci.relevant:
        facts.update(device_facts(pci.devices[bdf]))
    return facts


def device_facts(dev: PciDevice) -> dict[str, Scalar]:
    """Flat facts of one PCI device, keyed pci.<bdf>.<leaf>."""
    from preflight.inventory.sysfs_text import format_link_speed

    bdf = dev.bdf
    out: dict[str, Scalar] = {
        pci_key(bdf, IDS): dev.ids,
        pci_key(bdf, NUMA_NODE): dev.numa_node,
        pci_key(bdf, DRIVER): dev.driver,
        pci_key(bdf, IOMMU_GROUP_TYPE): dev.iommu_type,
    }
    for speed, name in (
        (dev.max_link_speed, MAX_LINK_SPEED),
        (dev.current_link_speed, CURRENT_LINK_SPEED),
    ):
        out[pci_key(bdf, name)] = format_link_speed(speed) if speed is not None else None
    out[pci_key(bdf, MAX_LINK_WIDTH)] = dev.max_link_width
    out[pci_key(bdf, CURRENT_LINK_WIDTH)] = dev.current_link_width
    cfg = dev.config
    if cfg is not None and cfg.capabilities_readable:
        if cfg.pcie is not None:
            out[pci_key(bdf, MAX_PAYLOAD)] = cfg.pcie.max_payload
            out[pci_key(bdf, MAX_READ_REQUEST)] = cfg.pcie.max_read_request
            out[pci_key(bdf, RELAXED_ORDERING)] = cfg.pcie.relaxed_ordering
        if cfg.extended_readable:
            out[pci_key(bdf, ACS_CTL)] = f"0x{cfg.acs.control:04x}" if cfg.acs else None
    if dev.is_gpu and dev.bars is not None and len(dev.bars) > 1:
        out[pci_key(bdf, BAR1_BYTES)] = dev.bars[1].size
    return out


def gpu_facts(proc: Mapping[str, ProcGpu], nvml: NvmlState | None) -> dict[str, Any]:
    """gpu.<bdf>.{model,uuid,vbios,gsp_firmware} from the driver's procfs (always), and, when
    NVML was collected in this run, nvml.* and gpu.<bdf>.<setting> from NVML."""
    from preflight.inventory.gpu import Fabric, NvmlError, Power, TwoStates

    def value(v: Any) -> str | int | None:
        if isinstance(v, NvmlError):
            return f"error:{v.name}"
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            return v
        return None

    facts: dict[str, Any] = {}
    for bdf, info in sorted(proc.items()):
        facts[gpu_key(bdf, MODEL)] = info.model
        facts[gpu_key(bdf, UUID)] = info.uuid
        facts[gpu_key(bdf, VBIOS)] = info.vbios
        facts[gpu_key(bdf, GSP_FIRMWARE)] = info.firmware
    if nvml is None:
        return facts
    reason = nvml.unavailable_reason()
    if nvml.absent:
        facts[NVML_STATUS] = "absent"
        return facts
    facts[NVML_STATUS] = (
        "ok" if reason is None else (nvml.failure.kind if nvml.failure is not None else "error")
    )
    if reason is not None:
        facts[NVML_ERROR] = reason
        return facts
    facts[NVML_DRIVER_VERSION] = value(nvml.driver_version)
    cuda = nvml.cuda_driver_version
    facts[NVML_CUDA_DRIVER_VERSION] = (
        f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else value(cuda)
    )
    facts[NVML_GPU_COUNT] = value(nvml.device_count)
    for gpu in nvml.gpus:
        p = f"{GPU}{gpu.bdf}." if gpu.bdf else f"{NVML_GPU}{gpu.index}."
        if gpu.handle_error is not None:
            facts[p + NVML_ERROR_LEAF] = gpu.handle_error.name
            continue
        facts[p + PERSISTENCE_MODE] = value(gpu.persistence_mode)
        for name, mode in ((ECC_MODE, gpu.ecc_mode), (MIG_MODE, gpu.mig_mode)):
            facts[p + name] = value(mode.current) if isinstance(mode, TwoStates) else value(mode)
        power = gpu.power
        facts[p + POWER_LIMIT_W] = (
            power.limit_mw / 1000
            if isinstance(power, Power) and isinstance(power.limit_mw, int)
            else value(power)
        )
        if isinstance(gpu.nvlinks, list):
            facts[p + NVLINKS_ACTIVE] = sum(1 for link in gpu.nvlinks if link.state == 1)
        fabric = gpu.fabric
        facts[p + FABRIC_STATE] = (
            value(fabric.state) if isinstance(fabric, Fabric) else value(fabric)
        )
    return facts


def network_facts(
    pci: PciInventory,
    rdma: RdmaInventory,
    net: NetInventory,
    nccl: NcclEnv,
    gdr: GpuDirectInfo,
) -> dict[str, Scalar]:
    """RDMA, netdev, GPU↔NIC topology, GPUDirect and NCCL settings as flat facts."""
    from preflight.inventory.rdma import nic_label
    from preflight.inventory.topology import gpu_nic_paths

    facts: dict[str, Scalar] = {}
    for dev in rdma.devices.values():
        d = part(dev.name)
        facts[rdma_key(d, FW_VER)] = dev.fw_ver
        facts[rdma_key(d, HCA_TYPE)] = dev.hca_type
        facts[rdma_key(d, BOARD_ID)] = dev.board_id
        facts[rdma_key(d, PCI_ADDRESS)] = dev.pci_bdf
        for port in dev.ports.values():
            n = port.num
            facts[rdma_port_key(d, n, STATE)] = str(port.state) if port.state else None
            facts[rdma_port_key(d, n, PHYS_STATE)] = (
                str(port.phys_state) if port.phys_state else None
            )
            facts[rdma_port_key(d, n, RATE)] = str(port.rate) if port.rate else None
            facts[rdma_port_key(d, n, LINK_LAYER)] = port.link_layer
            facts[rdma_port_key(d, n, NETDEV)] = port.netdev
            if port.is_ib:
                facts[rdma_port_key(d, n, LID)] = port.lid
                facts[rdma_port_key(d, n, SM_LID)] = port.sm_lid
            netdev = net.devices.get(port.netdev or "")
            if netdev is not None:
                nd = part(netdev.name)
                facts[net_key(nd, OPERSTATE)] = netdev.operstate
                facts[net_key(nd, MTU)] = netdev.mtu
                facts[net_key(nd, SPEED_MBPS)] = netdev.speed_mbps
    gpus, nics = pci.gpus(), pci.nics()
    for index, (_gpu, row) in enumerate(gpu_nic_paths(gpus, nics)):
        for nic, distance in row:
            facts[topology_key(index, part(nic_label(pci, nic)))] = distance.name
        if row:
            facts[topology_key(index, NEAREST_NIC)] = (
                f"{nic_label(pci, row[0][0])} {row[0][1].name}"
            )
    facts[GDR_PEERMEM] = next(iter(gdr.peermem.values()), None) if gdr.peermem else None
    facts[GDR_UVERBS] = len(gdr.verbs)
    for name, setting in sorted(nccl.settings.items()):
        facts[f"{NCCL}{part(name)}"] = setting.value
    facts[NCCL_CONF_FILES] = ",".join(f.path for f in nccl.files if f.present) or None
    return facts
