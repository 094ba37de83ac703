"""The nodes: the healthy DGX H100 and HGX H200 specs, and the faulty variants of the DGX."""

from __future__ import annotations

from dataclasses import replace

from tools.make_profiles import network as profile_network
from tools.make_profiles import nvml as profile_nvml
from tools.make_profiles.config_space import Identity
from tools.make_profiles.devices import (
    Faults,
    GiB,
    GpuModel,
    GpuUnit,
    NicUnit,
    NodeSpec,
    Slot,
    synthetic_int,
    synthetic_uuid,
)

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
