"""On a real NVIDIA GPU: what NVML answers, through the same child process the run uses.

Marked `gpu`; skipped cleanly where there is no GPU or no libnvidia-ml (CI). On a GPU machine,
`pytest -m gpu -s` prints the record, and which calls were NotSupported, for the issue note.
"""

from __future__ import annotations

import json
import os

import pytest

from preflight.host import Host
from preflight.inventory import Inventory
from preflight.nvml.probe import NvmlRecord
from preflight.nvml.schema import validate_section
from preflight.sources.nvml import LiveNvml

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def live() -> NvmlRecord:
    if not os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("no NVIDIA driver on this machine")
    result = Host(nvml=LiveNvml(30)).nvml()
    if not isinstance(result, NvmlRecord) or "init" in result.data:
        pytest.skip(f"NVML not usable here: {result}")
    return result


def test_live_record_has_the_documented_shape(live: NvmlRecord) -> None:
    validate_section(live.data)
    assert live.data["device_count"] == len(live.data["gpus"])
    not_supported = sorted(
        {
            f"{key}: {value['error']}"
            for gpu in live.data["gpus"].values()
            for key, value in gpu.items()
            if isinstance(value, dict) and "error" in value
        }
    )
    print(json.dumps(live.data, indent=1, sort_keys=True))
    print("errors per field:", not_supported)


def test_live_gpus_match_the_pci_bus(live: NvmlRecord) -> None:
    inv = Inventory(Host(nvml=LiveNvml(30)))
    pci = {g.bdf for g in inv.pci.gpus()}
    assert {g.bdf for g in inv.gpu.gpus} <= pci
