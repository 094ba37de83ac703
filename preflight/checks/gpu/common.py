"""What every GPU check shares: naming a GPU, skipping an unanswered field, walking the GPUs."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from preflight.inventory import Inventory
from preflight.inventory.gpu import (
    NvmlError,
    NvmlGpu,
)
from preflight.model import Finding, Status

NVML_CHECK = "gpu.nvml_available"
"""The check that judges whether NVML answers: the others' skips point at it."""
NVML = "nvml:"
MIB = 1 << 20


def subject(inv: Inventory, gpu: NvmlGpu) -> str:
    """The GPU as other checks name it (PCI order), or NVML's index when it gave no address."""
    dev = inv.pci.devices.get(gpu.bdf) if gpu.bdf else None
    if dev is not None and dev.is_gpu:
        return inv.pci.label(dev)
    pci = inv.pci.gpus()
    if gpu.bdf is None and inv.gpu.device_count == len(pci) and 0 <= gpu.index < len(pci):
        # NVML numbers GPUs in PCI bus order: with every GPU counted, index i is PCI GPU i.
        return f"{inv.pci.label(pci[gpu.index])} (by NVML index)"
    return f"NVML GPU{gpu.index} {gpu.bdf or '(no PCI address)'}"


def no_answer(name: str, value: object, call: str) -> Finding | None:
    """A SKIP finding when a field has no value: not supported, or an error judged elsewhere."""
    if isinstance(value, NvmlError):
        if value.not_available:
            return Finding(name, Status.SKIP, f"{call}: {value} on this GPU")
        return Finding(name, Status.SKIP, f"{call}: {value} (see {NVML_CHECK})")
    if value is None:
        return Finding(name, Status.SKIP, f"{call}: not collected")
    return None


def each_gpu(inv: Inventory, judge: Callable[[NvmlGpu, str], Iterable[Finding]]) -> list[Finding]:
    """Findings of judge() for every GPU NVML answered for; GPUs without a handle skip."""
    findings: list[Finding] = []
    for gpu in inv.gpu.gpus:
        name = subject(inv, gpu)
        if gpu.handle_error is not None:
            findings.append(
                Finding(name, Status.SKIP, f"no NVML handle: {gpu.handle_error} (see {NVML_CHECK})")
            )
            continue
        findings.extend(judge(gpu, name))
    return findings


def version_tuple(text: str) -> tuple[int, ...]:
    """ "565.57.01" -> (565, 57, 1); non-numeric parts end the tuple."""
    out = []
    for part in text.strip().split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


def scalar(value: object) -> str | int | None:
    """An NVML field as evidence shows it: the error's text, the number or text, else nothing."""
    if isinstance(value, NvmlError):
        return str(value)
    return value if isinstance(value, (int, str)) else None
