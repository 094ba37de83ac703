"""Generate the built-in mocked hardware profiles in preflight/profiles/*.json.

    python -m tools.make_profiles           # (re)write every profile (from the repository root)
    python -m tools.make_profiles --check   # exit 1 if a committed profile differs

A profile is the sysfs/procfs view of one node (see profile.py for the format). Values come from
the real captures in tests/data/captures/ wherever one exists; the capture is named in a comment
next to the value. Where no public capture exists (no 4 KiB config dump of an H100, ConnectX-7 or
PEX890xx was found, see tests/data/captures/INDEX.md) the register is built from the PCIe spec and
the closest captured sibling device, and the comment says so. Values marked "synthetic" (serials,
build hosts, addresses, IRQs) are invented but have the kernel's exact format.

Faulty profiles are written as the minimal diff (with `"extends"`) between the healthy node and
the same node rebuilt with one fault injected, so a variant can never drift from its base.

Modules, in import order: config_space (the PCI configuration space builder), devices (device
models), assembly (a node spec to its files and links), nodes (the node specs and their faulty
variants), generate (diff, merge, output); nvml and network add the NVML and RDMA/network sides.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILE_DIR = ROOT / "preflight" / "profiles"

# Capture files (tests/data/captures/) cited in the modules' comments by these short names.
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
