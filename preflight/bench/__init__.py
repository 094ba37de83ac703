"""All-reduce benchmark over torch.distributed, and the search for the node that slows it.

torch is an optional extra: the modules that import it (`dist`, `sweep`, `pairtest`) are loaded
only by the `bench` commands inside the rank processes, so `preflight run` never pays for it.
"""

from __future__ import annotations

TORCH_MISSING = "torch is not installed: pip install 'gpu-preflight[bench]'"
