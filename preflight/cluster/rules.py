"""Which facts take part in drift: the rule for keys that are naturally unique per node.

A fact drifts when nodes of one type disagree on it. Some facts differ on every healthy node by
nature (its hostname, serial numbers, GUIDs, MACs, addresses, timestamps); comparing them would
report every node. The rule, applied to the last dotted component of a fact key
(`dmi.product_serial` → `product_serial`), case-insensitively, with shell-style globs:

- identity: `hostname`, `fqdn`, `nodename`, `machine_id`, `boot_id`, `asset_tag`, `*_asset_tag`
- serial numbers: `serial`, `serial_number`, `*_serial`
- UUIDs and GUIDs: `uuid`, `*_uuid`, `guid`, `*_guid`
- addresses: `mac`, `*_mac`, `mac_address`, `hwaddr`, `perm_addr`, `address`, `*_address`,
  `ip`, `ipv4`, `ipv6`, `*_ip`, `lid`, `base_lid`, `gid`, `gids` (InfiniBand LIDs and GIDs are
  per port)
- time: `timestamp`, `*_timestamp`, `*_at`, `*_time`, `uptime`, `uptime_*`

`--ignore-fact GLOB` leaves out more keys (matched against the whole key, e.g.
`'pci.*.current_link_speed'`). Inside string values, UUID-shaped substrings are masked as
`<uuid>` before comparing: kernel command lines carry `root=UUID=…` of each node's own disk.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from preflight.inventory.facts import PER_NODE_LEAVES
from preflight.model import Scalar

UNIQUE_NAMES: tuple[str, ...] = (
    "hostname",
    "fqdn",
    "nodename",
    "machine_id",
    "boot_id",
    "asset_tag",
    "*_asset_tag",
    "serial",
    "serial_number",
    "*_serial",
    *PER_NODE_LEAVES,  # of run's own facts: a GPU's `uuid`, an InfiniBand port's `lid`
    "*_uuid",
    "guid",
    "*_guid",
    "mac",
    "*_mac",
    "mac_address",
    "hwaddr",
    "perm_addr",
    "address",
    "*_address",
    "ip",
    "ipv4",
    "ipv6",
    "*_ip",
    "base_lid",
    "gid",
    "gids",
    "timestamp",
    "*_timestamp",
    "*_at",
    "*_time",
    "uptime",
    "uptime_*",
)

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
UUID_MASK = "<uuid>"

UNIQUE = "unique"
IGNORED = "ignored"


_UNIQUE_RE = re.compile("|".join(fnmatch.translate(p) for p in UNIQUE_NAMES))


@functools.lru_cache(maxsize=65536)
def is_naturally_unique(key: str) -> bool:
    """Whether a fact key names something that differs on every healthy node."""
    return _UNIQUE_RE.match(key.rsplit(".", 1)[-1].lower()) is not None


def mask(value: Scalar) -> Scalar:
    """The value with UUID-shaped substrings replaced by `<uuid>`; other values unchanged."""
    if isinstance(value, str) and "-" in value:
        return UUID_RE.sub(UUID_MASK, value)
    return value


@dataclass(frozen=True)
class FactRule:
    """The unique-key rule plus the operator's extra globs (`--ignore-fact`)."""

    ignore: Sequence[str] = ()

    def left_out(self, key: str) -> str | None:
        """`unique` or `ignored` when the key takes no part in drift, else None."""
        if is_naturally_unique(key):
            return UNIQUE
        if self.ignore and _ignored(key, tuple(self.ignore)):
            return IGNORED
        return None


@functools.lru_cache(maxsize=65536)
def _ignored(key: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in globs)
