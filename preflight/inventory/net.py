"""Network interfaces from /sys/class/net: state, MTU, speed, type, and mlx5 ECN settings.

Formats (Documentation/ABI/testing/sysfs-class-net):

* ``operstate``: RFC 2863 ``up``, ``down``, ``unknown``, ``dormant``, ``lowerlayerdown``,
  ``notpresent``, ``testing``.
* ``mtu``: decimal bytes. ``type``: decimal ARPHRD (1 Ethernet, 32 InfiniBand, 772 loopback).
* ``speed``: decimal Mb/s, ``-1`` (SPEED_UNKNOWN) when the link is down; reading it fails with
  EINVAL on interfaces without ethtool link settings (virtual devices). Both mean "unknown".
* ``carrier``: ``0``/``1``; reading fails with EINVAL while the interface is administratively down.
* mlx5 (MLNX_OFED) ECN: ``ecn/roce_np/enable/<prio>`` and ``ecn/roce_rp/enable/<prio>`` hold ``0``
  or ``1`` for each of the 8 priorities (notification point: marks CNPs; reaction point: slows
  down on CNPs, the two halves of DCQCN). The inbox driver does not create them.

Parsers raise :class:`ParseError` only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from preflight.errors import ParseError
from preflight.host import Host
from preflight.inventory.attrs import read_attr
from preflight.inventory.pci import pci_function
from preflight.inventory.sortkeys import natural_key

NET_CLASS = "/sys/class/net"
OPERSTATES = ("up", "down", "unknown", "dormant", "lowerlayerdown", "notpresent", "testing")
ARPHRD_ETHER = 1
ARPHRD_INFINIBAND = 32
ARPHRD_LOOPBACK = 772
ECN_ROLES = ("roce_np", "roce_rp")
_INT_RE = re.compile(r"-?[0-9]{1,10}")
T = TypeVar("T")


def parse_operstate(text: str) -> str:
    """One of the RFC 2863 state names the kernel prints."""
    if not isinstance(text, str):
        raise ParseError(f"expected an operstate as text, got {type(text).__name__}")
    s = text.strip()
    if s not in OPERSTATES:
        raise ParseError(f"expected an operstate ({', '.join(OPERSTATES)}), got {s[:40]!r}")
    return s


def parse_decimal(text: str) -> int:
    """A signed decimal integer file (mtu, type, speed, carrier, ecn/*/enable/<prio>)."""
    if not isinstance(text, str):
        raise ParseError(f"expected a decimal number as text, got {type(text).__name__}")
    s = text.strip()
    if not _INT_RE.fullmatch(s):
        raise ParseError(f"expected a decimal number, got {s[:40]!r}")
    return int(s)


def parse_speed(text: str) -> int | None:
    """Mb/s, or None for SPEED_UNKNOWN (-1, printed while the link is down)."""
    value = parse_decimal(text)
    if value < -1:
        raise ParseError(f"expected a speed in Mb/s or -1, got {value}")
    return None if value == -1 else value


@dataclass
class NetDev:
    """One network interface. Fields are None where the file is absent or unusable."""

    name: str
    operstate: str | None = None
    mtu: int | None = None
    speed_mbps: int | None = None
    type: int | None = None
    carrier: int | None = None
    pci_bdf: str | None = None
    ecn: dict[str, dict[int, int]] | None = None  # role -> priority -> 0/1; None = not exposed
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"{NET_CLASS}/{self.name}"

    @property
    def link_type(self) -> str:
        return {ARPHRD_ETHER: "Ethernet", ARPHRD_INFINIBAND: "InfiniBand"}.get(
            self.type or -1, f"ARPHRD {self.type}" if self.type is not None else "unknown"
        )


class NetInventory:
    """Every interface in /sys/class/net, and ECN of those that expose it."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.devices: dict[str, NetDev] = {}
        for name in sorted(host.listdir(NET_CLASS), key=natural_key):
            self.devices[name] = self._read(name)

    def _value(self, dev: NetDev, attr: str, parse: Callable[[str], T]) -> T | None:
        return read_attr(self.host, f"{dev.path}/{attr}", parse, dev.errors, attr)

    def _read(self, name: str) -> NetDev:
        dev = NetDev(name)
        dev.operstate = self._value(dev, "operstate", parse_operstate)
        dev.mtu = self._value(dev, "mtu", parse_decimal)
        dev.type = self._value(dev, "type", parse_decimal)
        dev.carrier = self._value(dev, "carrier", parse_decimal)
        dev.speed_mbps = self._value(dev, "speed", parse_speed)
        # EINVAL on speed/carrier is how the kernel says "no link settings" or "admin down",
        # not a fault of this tool: keep them unknown without an error.
        dev.errors.pop("speed", None)
        dev.errors.pop("carrier", None)
        dev.pci_bdf = pci_function(self.host.realpath(f"{dev.path}/device"))
        if self.host.is_dir(f"{dev.path}/ecn"):
            dev.ecn = {}
            for role in ECN_ROLES:
                prios: dict[int, int] = {}
                for entry in self.host.listdir(f"{dev.path}/ecn/{role}/enable"):
                    if entry.isdigit():
                        value = self._value(dev, f"ecn/{role}/enable/{entry}", parse_decimal)
                        if value is not None:
                            prios[int(entry)] = value
                dev.ecn[role] = prios
        return dev
