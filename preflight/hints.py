"""Hints: what the operator likely meant, said under the table (never a verdict)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from preflight.inventory.facts import LINK_LAYER, is_rdma_port_key


def roce_hint(
    link_layers: Sequence[str], expected: str, baseline: str, ethernet_baselines: Sequence[str]
) -> str | None:
    """Every RDMA port runs Ethernet while the baseline expects InfiniBand: a RoCE node checked
    against an InfiniBand baseline (the DMI product and GPUs are the same, so detection cannot
    tell). Name the baseline that fits: one of `ethernet_baselines` named after this one
    (`dgx-h100` → `dgx-h100-roce`), else say what a fitting baseline pins."""
    if not link_layers or expected != "InfiniBand" or set(link_layers) != {"Ethernet"}:
        return None
    ports = f"every RDMA port ({len(link_layers)}) is Ethernet (RoCE)"
    fits = [name for name in ethernet_baselines if name.startswith(f"{baseline}-")]
    if fits:
        return f"{ports} and baseline {baseline} expects InfiniBand: --baseline {fits[0]} fits"
    return (
        f"{ports} and baseline {baseline} expects InfiniBand: use a baseline with "
        '[rdma.link_layer] expected = "Ethernet"'
    )


def link_layers(facts: Mapping[str, object]) -> list[str]:
    """The link layer of every RDMA port, from the report's facts."""
    return [str(v) for k, v in sorted(facts.items()) if is_rdma_port_key(k, LINK_LAYER)]
