"""Distance between two PCI devices, in the classes `nvidia-smi topo -m` prints."""

from __future__ import annotations

import enum

from preflight.inventory.pci import PciDevice


class PathType(enum.IntEnum):
    """Closer is smaller. Names and meaning as in nvidia-smi's topology legend."""

    PIX = 1  # through at most one PCIe switch (both below the same switch)
    PXB = 2  # through several PCIe bridges, without the host bridge
    PHB = 3  # through a PCIe host bridge (the CPU's root complex)
    NODE = 4  # between host bridges of one NUMA node
    SYS = 5  # across the SMP interconnect between NUMA nodes (UPI/xGMI)


def pci_distance(a: PciDevice, b: PciDevice) -> PathType:
    """The path class between two devices, from their places in the sysfs PCI tree.

    The first bridge under a host bridge is its root port; anything shared below it is a
    switch. Two devices each one port below a shared switch are PIX; a deeper shared tree is
    PXB; a shared root port or host bridge only is PHB; different host bridges are NODE on the
    same NUMA node and SYS across nodes (unknown NUMA counts as different: NCCL cannot place
    such a device either).
    """
    if a.host_bridge is None or a.host_bridge != b.host_bridge:
        if a.numa_node is not None and a.numa_node >= 0 and a.numa_node == b.numa_node:
            return PathType.NODE
        return PathType.SYS
    chain_a, chain_b = a.upstream, b.upstream
    shared = 0
    for x, y in zip(chain_a, chain_b, strict=False):
        if x != y:
            break
        shared += 1
    if shared <= 1:  # nothing in common, or only the root port
        return PathType.PHB
    below = (len(chain_a) - shared) + (len(chain_b) - shared)
    return PathType.PIX if below <= 2 else PathType.PXB


def gpu_nic_paths(
    gpus: list[PciDevice], nics: list[PciDevice]
) -> list[tuple[PciDevice, list[tuple[PciDevice, PathType]]]]:
    """For each GPU, every NIC with its distance class, nearest first (ties in bus order).

    The rows of `nvidia-smi topo -m`'s GPU×NIC block, from the sysfs PCI tree.
    """
    return [
        (gpu, sorted(((n, pci_distance(gpu, n)) for n in nics), key=lambda p: (p[1], p[0].bdf)))
        for gpu in gpus
    ]
