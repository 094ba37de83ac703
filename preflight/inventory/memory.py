"""What earlier runs on this node left behind (`run --state DIR`), as plain data for the checks.

The state directory is read by `preflight.state` before the checks run; the checks see only
these values (empty without --state): the previous run's since-boot counters, so that a
counter becomes a rate, and the operator's Xid acknowledgements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


def counter_key(port: str, counter: str) -> str:
    """`mlx5_0/1 symbol_error`: one RDMA port counter in the state file."""
    return f"{port} {counter}"


@dataclass(frozen=True)
class PreviousCounters:
    """The since-boot counters the previous run of this boot read, and how long ago."""

    at: str  # ISO 8601 UTC time of the previous run
    elapsed_s: float  # from then to the start of this run
    rdma: Mapping[str, int] = field(default_factory=dict)  # counter_key → value
    aer_correctable: Mapping[str, int] = field(default_factory=dict)  # BDF → TOTAL_ERR_COR


@dataclass(frozen=True)
class XidMark:
    """An operator's acknowledgement of one GPU's Xids up to the newest logged at the time."""

    at: str  # ISO 8601 UTC time of `preflight ack`
    by: str
    timestamp_s: float | None  # the newest acknowledged Xid, seconds since boot (dmesg stamp)
    count: int  # Xid lines of this GPU in the log at the time (for lines without a stamp)


@dataclass(frozen=True)
class RunMemory:
    """Everything the checks may know about earlier runs of this boot."""

    previous: PreviousCounters | None = None
    xid_marks: Mapping[str, XidMark] = field(default_factory=dict)  # GPU BDF → newest ack
