"""ACS that the kernel provides by quirk, not through the ACS capability in config space.

Linux drivers/pci/quirks.c (checked in linux-next, 2026) lists root ports whose peer-to-peer
isolation is not (correctly) described by a standard ACS capability, and enables it by
writing chipset registers when the kernel enables ACS (at boot, when an IOMMU driver asked for
it: pci_enable_acs()):

* Intel PCH root ports (pci_quirk_intel_pch_acs_ids, "provided by Intel in Red Hat bugzilla
  1037684"): no ACS capability at all. pci_quirk_enable_intel_pch_acs() disables the ports'
  upstream peer decode (RCBA UPDCR) and sets MPC.IRBNCE, "the equivalent of
  PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF", then logs "Intel PCH root port ACS
  workaround enabled" (or warns "Failed to enable Intel PCH ACS quirk"). Config space alone
  cannot tell whether it ran: the kernel log (or, failing that, whether the IOMMU is on) does.
* Intel Sunrise Point / Union Point / 7th-8th gen mobile root ports
  (pci_quirk_intel_spt_pch_acs_match): an ACS capability whose Capability and Control registers
  are dwords, so Control sits at +8, not +6 ("This doesn't fix what lspci shows"). The kernel
  reads and writes the dword at +8; so does this module.

Data only: which ports, what the quirk sets, and the log lines that say so.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from preflight.inventory.pci_config import ACS_CR, ACS_RR, ACS_SV, ACS_UF, PciConfig

VENDOR_INTEL = 0x8086
PORT_TYPE_ROOT_PORT = 0x4  # PCI Express capability, Device/Port Type

# pci_quirk_intel_pch_acs_ids[]
INTEL_PCH_ACS_IDS = frozenset(
    [
        *range(0x3B42, 0x3B52),  # Ibexpeak
        *range(0x1C10, 0x1C20),  # Cougarpoint
        *range(0x1E10, 0x1E20),  # Pantherpoint
        *range(0x8C10, 0x8C20),  # Lynxpoint-H
        *range(0x9C10, 0x9C1C),  # Lynxpoint-LP
        *range(0x9C90, 0x9C9C),  # Wildcat
        *range(0x1D10, 0x1D1F, 2),  # Patsburg (X79): even ids only
        *range(0x8D10, 0x8D1F),  # Wellsburg (X99)
        *range(0x8C90, 0x8C9F, 2),  # Lynx Point (9 series): even ids only
    ]
)
# pci_quirk_intel_spt_pch_acs_match(): inclusive ranges.
INTEL_SPT_ACS_RANGES = (
    (0xA110, 0xA11F),  # Sunrise Point-H root ports 1-16
    (0xA167, 0xA16A),  # Sunrise Point-H root ports 17-20
    (0xA290, 0xA29F),  # Union Point root ports 1-16
    (0xA2E7, 0xA2EE),  # Union Point root ports 17-24
    (0x9D10, 0x9D1B),  # 7th/8th gen mobile (Sunrise Point-LP) root ports 1-12
)
# What pci_quirk_enable_intel_pch_acs() provides the equivalent of.
INTEL_PCH_QUIRK_CONTROL = ACS_SV | ACS_RR | ACS_CR | ACS_UF
INTEL_SPT_CONTROL_OFFSET = 0x08  # INTEL_SPT_ACS_CTRL = PCI_ACS_CAP + 4, a dword

PCH_ENABLED = "Intel PCH root port ACS workaround enabled"
PCH_FAILED = "Failed to enable Intel PCH ACS quirk"
SPT_ENABLED = "Intel SPT PCH root port ACS workaround enabled"
SPT_REDIRECT_OFF = "Intel SPT PCH root port workaround: disabled ACS redirect"

KIND_INTEL_PCH = "Intel PCH root port ACS quirk"
KIND_INTEL_SPT = "Intel SPT PCH root port ACS quirk"

# dev_printk prefix: "pci 0000:00:1c.0: " at enumeration, "pcieport 0000:00:1c.0: " on resume.
_LOG_RE = re.compile(
    r"(?:^|\s)[a-z_]{1,20} ([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]): "
    r"(" + "|".join(re.escape(m) for m in (PCH_ENABLED, PCH_FAILED, SPT_ENABLED)) + r")"
)


def acs_quirk_kind(vendor: int | None, device: int | None, port_type: int | None) -> str | None:
    """Which ACS quirk of the kernel applies to a PCI function, or None."""
    if vendor != VENDOR_INTEL or device is None or port_type != PORT_TYPE_ROOT_PORT:
        return None
    if device in INTEL_PCH_ACS_IDS:
        return KIND_INTEL_PCH
    if any(lo <= device <= hi for lo, hi in INTEL_SPT_ACS_RANGES):
        return KIND_INTEL_SPT
    return None


QUIRK_LOG_WORDS = ("ACS",)
"""What every ACS-quirk message contains."""


def quirk_log(lines: Iterable[str]) -> dict[str, str]:
    """The last ACS-quirk message the kernel logged per PCI address (bdf -> message)."""
    events: dict[str, str] = {}
    for line in lines:
        if not any(w in line for w in QUIRK_LOG_WORDS):
            continue
        m = _LOG_RE.search(line[:512])
        if m:
            events[m.group(1)] = m.group(2)
    return events


@dataclass(frozen=True)
class QuirkAcs:
    """The ACS state of a quirked port: the control bits in effect, or None when unknown."""

    kind: str
    control: int | None
    source: str  # where the state was read or why it is inferred


def quirk_acs(
    kind: str,
    bdf: str,
    config: PciConfig | None,
    data: bytes | None,
    log: dict[str, str] | None,
    iommu_on: bool,
) -> QuirkAcs:
    """The ACS in effect on a port the kernel quirks (`kind` from acs_quirk_kind()).

    `log` is quirk_log() of the kernel log (None when it could not be read); `iommu_on` whether
    the port is in an IOMMU group (the kernel enables ACS, and so runs the quirk, only then).
    """
    if kind == KIND_INTEL_SPT:
        if config is None or config.acs is None or data is None:
            return QuirkAcs(kind, None, "no ACS capability readable at this port")
        at = config.acs.offset + INTEL_SPT_CONTROL_OFFSET
        if at + 4 > len(data):
            return QuirkAcs(kind, None, f"config space ends before the control dword at 0x{at:x}")
        (control,) = struct.unpack_from("<I", data, at)
        return QuirkAcs(kind, control & 0xFFFF, f"control dword at 0x{at:03x} (not +6)")
    message = (log or {}).get(bdf)
    if message == PCH_ENABLED:
        return QuirkAcs(kind, INTEL_PCH_QUIRK_CONTROL, f"kernel log: {PCH_ENABLED}")
    if message == PCH_FAILED:
        return QuirkAcs(kind, 0, f"kernel log: {PCH_FAILED}")
    if not iommu_on:
        return QuirkAcs(kind, 0, "not in an IOMMU group: the kernel did not enable ACS")
    why = "no such line in the kernel log" if log is not None else "kernel log not readable"
    return QuirkAcs(kind, None, f"IOMMU on, so the kernel enables it at boot; {why}")
