"""The fact keys a report carries: named in preflight/inventory/facts.py, read by compare."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from preflight.cluster.rules import FactRule, is_naturally_unique
from preflight.inventory import Inventory
from preflight.inventory import facts as keys
from preflight.inventory.facts import node_facts

ProfileInventory = Callable[[str], Inventory]  # the conftest fixture

NAMED = tuple(
    value
    for name, value in vars(keys).items()
    if name.isupper() and isinstance(value, str) and "." in value
)
"""Every key and key family (prefix) the module names."""


@pytest.mark.parametrize("profile", ["dgx-h100", "hgx-h200", "dgx-h100-roce"])
def test_every_fact_run_writes_has_a_named_key_or_family(
    profile_inventory: ProfileInventory, profile: str
) -> None:
    facts = node_facts(profile_inventory(profile))
    assert len(facts) > 500
    unnamed = sorted(k for k in facts if not (k in NAMED or k.startswith(NAMED)))
    assert not unnamed, f"facts without a name in preflight/inventory/facts.py: {unnamed[:5]}"


def test_builders_spell_the_keys_run_writes(profile_inventory: ProfileInventory) -> None:
    facts = node_facts(profile_inventory("dgx-h100"))
    assert facts[keys.rdma_key("mlx5_0", keys.HCA_TYPE)] == "MT4129"
    assert facts[keys.rdma_port_key("mlx5_0", 1, keys.LINK_LAYER)] == "InfiniBand"
    assert facts[keys.net_key("ib0", keys.MTU)] == 4092
    assert facts[keys.topology_key(3, keys.NEAREST_NIC)] == "mlx5_3 PIX"
    assert facts[keys.PCI_GPU_COUNT] == 8
    gpu = next(k for k in facts if k.startswith(keys.GPU) and k.endswith(f".{keys.UUID}"))
    bdf = gpu[len(keys.GPU) : -len(keys.UUID) - 1]
    bar1 = facts[keys.pci_key(bdf, keys.BAR1_BYTES)]
    assert isinstance(bar1, int) and bar1 >= 2**30


def test_per_node_leaves_are_left_out_of_drift_and_their_neighbours_are_not(
    profile_inventory: ProfileInventory,
) -> None:
    facts = node_facts(profile_inventory("dgx-h100"))
    per_node = sorted(k for k in facts if k.rsplit(".", 1)[-1] in keys.PER_NODE_LEAVES)
    assert any(k.endswith(".uuid") for k in per_node) and any(k.endswith(".lid") for k in per_node)
    rule = FactRule()
    assert all(rule.left_out(k) == "unique" for k in per_node)
    # The subnet manager's LID is one per subnet: every node of a group agrees on it.
    sm = keys.rdma_port_key("mlx5_0", 1, keys.SM_LID)
    assert sm in facts and not is_naturally_unique(sm)
    assert not is_naturally_unique(keys.PCI_GPU_COUNT)


def test_key_parts_from_the_node_are_made_safe() -> None:
    assert keys.part("mlx5_0") == "mlx5_0"
    assert keys.part("eth 0/\u00e9") == "eth_0__"
    assert keys.part("") == "_"


def test_reading_the_key_names_loads_no_parser() -> None:
    import subprocess
    import sys

    code = (
        "import sys, preflight.cluster.rules, preflight.inventory.facts;"
        "print(sorted(m for m in sys.modules if m.startswith('preflight.inventory')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['preflight.inventory', 'preflight.inventory.facts']"
