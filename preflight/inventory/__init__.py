"""Parsers that turn what Host reads into typed facts, gathered once per run.

`Inventory` is imported on first use: a reader of reports that needs only the fact key names
(preflight.inventory.facts) does not load every parser with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from preflight.inventory.inventory import Inventory

__all__ = ["Inventory"]


def __getattr__(name: str) -> Any:
    if name == "Inventory":
        from preflight.inventory.inventory import Inventory

        return Inventory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
