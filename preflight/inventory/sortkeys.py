"""Sort keys for kernel device names (shared by the net and RDMA inventories)."""

from __future__ import annotations

import re


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that puts mlx5_2 before mlx5_10 (ibstat lists CAs lexically: mlx5_10 first)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name) if p)
