"""nccl-tests arithmetic: bandwidths, size sweeps, data types, and fills whose sum is exact."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

GB = 1e9
"""nccl-tests' bandwidth unit: GB/s means 1e9 bytes per second (sizes are still in KiB/MiB)."""


def bus_factor(ranks: int) -> float:
    """all_reduce's busbw/algbw ratio, 2(n−1)/n: each rank sends and receives that share of S."""
    if ranks < 1:
        raise ValueError(f"rank count must be at least 1, got {ranks}")
    return 2.0 * (ranks - 1) / ranks


def algbw_gbps(nbytes: int, seconds: float) -> float:
    """Algorithm bandwidth: bytes of the buffer over the time of one all_reduce, in GB/s."""
    return nbytes / seconds / GB if seconds > 0 else 0.0


def busbw_gbps(nbytes: int, seconds: float, ranks: int) -> float:
    """Bus bandwidth as nccl-tests defines it for all_reduce: algbw × 2(n−1)/n."""
    return algbw_gbps(nbytes, seconds) * bus_factor(ranks)


# -- sizes ----------------------------------------------------------------------------------

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """'8', '128K', '1M', '1G', '4GiB' → bytes. Suffixes are binary, as in nccl-tests' -b/-e."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 8, 64K, 1M, 1G)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value != int(value) or value < 1:
        raise ValueError(f"not a whole positive number of bytes: {text!r}")
    return int(value)


def format_size(nbytes: int) -> str:
    """1073741824 → '1 GiB', 1536 → '1.5 KiB', 8 → '8 B'."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            value = nbytes / scale
            return f"{value:g} {unit}" if value * 10 == int(value * 10) else f"{value:.2f} {unit}"
    return f"{nbytes} B"


def sweep(min_bytes: int, max_bytes: int, step_factor: float = 2.0) -> list[int]:
    """min, min×f, min×f², … ≤ max, as nccl-tests steps -b to -e with -f."""
    if min_bytes < 1 or max_bytes < min_bytes:
        raise ValueError(f"need 1 <= min-bytes <= max-bytes, got {min_bytes} and {max_bytes}")
    if step_factor <= 1:
        raise ValueError(f"step factor must be above 1, got {step_factor:g}")
    sizes = []
    size = float(min_bytes)
    while size <= max_bytes:
        sizes.append(int(size))
        size *= step_factor
    return sizes


# -- data types -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DType:
    """An all_reduce element type."""

    name: str  # torch's name (torch.float32)
    nccl_name: str  # nccl-tests' spelling in the type column
    size: int  # bytes per element
    exact_limit: int  # every integer 0…exact_limit is representable, so sums up to it are exact


DTYPES = {
    # Floating point: 2**(significand bits incl. the implicit one) is the last exact integer run.
    "float32": DType("float32", "float", 4, 1 << 24),
    "float64": DType("float64", "double", 8, 1 << 53),
    "float16": DType("float16", "half", 2, 1 << 11),
    "bfloat16": DType("bfloat16", "bfloat16", 2, 1 << 8),
    "int32": DType("int32", "int32", 4, (1 << 31) - 1),
    "int64": DType("int64", "int64", 8, (1 << 63) - 1),
}
ALIASES = {
    "float": "float32",
    "fp32": "float32",
    "double": "float64",
    "fp64": "float64",
    "half": "float16",
    "fp16": "float16",
    "bf16": "bfloat16",
}


def dtype(name: str) -> DType:
    """A data type by torch or nccl-tests name."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {name!r} (choose from {', '.join(DTYPES)})")
    return DTYPES[key]


def element_count(nbytes: int, dt: DType) -> int:
    """Elements in a buffer of nbytes (rounded down to whole elements, as nccl-tests does)."""
    return nbytes // dt.size


# -- verification fill ----------------------------------------------------------------------


@dataclass(frozen=True)
class Fill:
    """Values rank r writes at index i, chosen so every partial sum is an exact integer.

    With m = `modulus`: v(r, i) = (i mod m) + (r mod 2). The sum over ranks changes with i (a
    misplaced chunk shows) and neighbouring ranks differ (a rank's data sent twice shows). When
    the world is too large for that in the type's exact range (bfloat16 beyond 170 ranks),
    v(r, i) = [r ≡ i mod q] + [r = 0]·[i ≡ 0 mod q+1] with q = `stride`.
    """

    modulus: int = 0
    stride: int = 0

    @property
    def period(self) -> int:
        """The fill and the expected sum repeat with this period in i."""
        return self.modulus or self.stride * (self.stride + 1)

    def value(self, rank: int, index: int) -> int:
        """v(rank, index)."""
        if self.modulus:
            return index % self.modulus + rank % 2
        hit = 1 if rank % self.stride == index % self.stride else 0
        return hit + (1 if rank == 0 and index % (self.stride + 1) == 0 else 0)

    def rank_values(self, rank: int) -> list[int]:
        """One period of what this rank writes."""
        return [self.value(rank, i) for i in range(self.period)]

    def expected(self, ranks: int) -> list[int]:
        """One period of the exact sum over all ranks (in closed form: worlds can be large)."""
        if self.modulus:
            # every rank adds i mod m; the ranks // 2 odd ranks add 1 more
            return [ranks * (i % self.modulus) + ranks // 2 for i in range(self.period)]
        q = self.stride
        return [
            ranks // q + (1 if i % q < ranks % q else 0) + (1 if i % (q + 1) == 0 else 0)
            for i in range(self.period)
        ]


def fill_for(ranks: int, dt: DType) -> Fill:
    """The fill for this world size and type: the largest sum stays within the exact range."""
    # Largest sum with modulus m: ranks × (m − 1) + ranks // 2 (the odd ranks' extra 1).
    room = (dt.exact_limit - ranks // 2) // ranks
    if room >= 1:
        return Fill(modulus=min(8, room + 1))
    # Largest sum: ceil(ranks / q) hits + rank 0's extra 1.
    return Fill(stride=math.ceil(ranks / (dt.exact_limit - 1)))
