"""Parsers that turn what Host reads into typed facts, gathered once per run."""

from preflight.inventory.node import Inventory

__all__ = ["Inventory"]
