"""Capabilities: what this node offers the checks (root, GPUs, RDMA NICs, NVML), and why not.

One object per run, each capability worked out the first time a check needs it (a run of host
checks never walks the PCI tree). A check declares what it `needs` (it skips, saying why, when
one is missing) and what it `provides`: the check that judges a capability runs when it is
missing, and the skips of the others point at it when the baseline expects the capability.
Nothing here names a check: the providers are handed in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.inventory import Inventory

NAMES = ("root", "gpu", "nic", "nvml")
"""root: the full PCI config space is readable (CAP_SYS_ADMIN); gpu, nic: NVIDIA GPUs or RDMA
NICs on the PCI bus; nvml: NVML answered (collected in a child process; implies gpu)."""

NEEDS_ROOT = (
    "needs root: without CAP_SYS_ADMIN the kernel returns only the first 64 bytes of a PCI "
    "config space"
)


@dataclass(frozen=True)
class Lack:
    """Why a capability is missing; `judged` when a providing check judges it (and runs)."""

    reason: str
    judged: bool = True


@dataclass(frozen=True)
class Provider:
    """The check that judges a capability, and whether this run's baseline expects it."""

    check_id: str
    expects: bool = True


def _root(inv: Inventory) -> Lack | None:
    return None if inv.privileged else Lack(NEEDS_ROOT, judged=False)


def _gpu(inv: Inventory) -> Lack | None:
    return None if inv.pci.gpus() else Lack("no NVIDIA GPU on this node")


def _nic(inv: Inventory) -> Lack | None:
    return None if inv.pci.nics() else Lack("no RDMA NIC on this node")


def _nvml(inv: Inventory) -> Lack | None:
    state = inv.gpu
    if state.absent:
        assert state.failure is not None
        return Lack(f"{state.failure.message}: NVML not captured", judged=False)
    return None if state.unavailable_reason() is None else Lack("NVML unavailable")


PROBES: dict[str, Callable[[Inventory], Lack | None]] = {
    "root": _root,
    "gpu": _gpu,
    "nic": _nic,
    "nvml": _nvml,
}
IMPLIES = {"nvml": ("gpu",)}
"""A capability that cannot be there without another: NVML answers only for GPUs."""


class Capabilities:
    """What the node offers in this run, each probed once."""

    def __init__(self, inv: Inventory, providers: Mapping[str, Provider] | None = None) -> None:
        self.inv = inv
        self.providers = dict(providers or {})
        self._lacks: dict[str, Lack | None] = {}
        self._lock = threading.Lock()

    def lack(self, name: str) -> Lack | None:
        """Why `name` is missing, or None when the node offers it."""
        with self._lock:
            if name in self._lacks:
                return self._lacks[name]
        found = PROBES[name](self.inv)
        with self._lock:
            return self._lacks.setdefault(name, found)

    def why_not(self, name: str) -> str | None:
        """The reason a check that needs `name` gives when it skips, or None."""
        found = self.lack(name)
        if found is None:
            return None
        provider = self.providers.get(name)
        if found.judged and provider is not None and provider.expects:
            return f"{found.reason} (see {provider.check_id})"
        return found.reason

    def gate(self, needs: Iterable[str], provides: Iterable[str] = ()) -> str | None:
        """Why a check that needs these cannot run, or None. A lack the check judges itself
        (a capability it provides) does not stop it. Root comes first (without it nothing
        else is read in full), and what a need implies before the need (GPUs before NVML)."""
        wanted = {*needs, *(i for n in needs for i in IMPLIES.get(n, ()))}
        judged = set(provides)
        for name in NAMES:
            if name not in wanted:
                continue
            found = self.lack(name)
            if found is None or (found.judged and name in judged):
                continue
            return self.why_not(name)
        return None
