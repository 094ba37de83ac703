"""Fixtures every test may use: profiles as inventories, golden files.

Plain helpers are modules: the CLI runner and JSON-report reader in tests/harness.py, sysroot
builders in tests/rdma_sysroot.py, lspci dump readers in tests/pci_dump.py, the data folders in
tests/paths.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from preflight.inventory import Inventory
from preflight.profile import host_from_profile
from tests.paths import DATA

GOLDEN = DATA / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite tests/data/golden/* from the current output instead of comparing",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """`golden(name, text)`: text must equal tests/data/golden/<name> (with --regen-golden,
    the file is rewritten instead; review the diff)."""
    regen = bool(request.config.getoption("--regen-golden"))

    def compare(name: str, text: str) -> None:
        path = GOLDEN / name
        if regen:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.is_file(), f"no golden file {path}: run pytest with --regen-golden"
        expected = path.read_text(encoding="utf-8")
        assert text == expected, f"{name} differs from its golden file (--regen-golden rewrites)"

    return compare


@pytest.fixture
def profile_inventory() -> Callable[[str], Inventory]:
    """`profile_inventory(name_or_path)`: the inventory of a built-in or file profile."""

    def build(name_or_path: str) -> Inventory:
        return Inventory(host_from_profile(name_or_path))

    return build
