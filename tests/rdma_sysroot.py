"""Test helpers: write /sys/class/infiniband and /sys/class/net trees into a private sysroot.

The strings written are sysfs file contents; the captures that hold such strings verbatim
(``ibstatus`` prints the sysfs files, the counter captures are ``cat`` of them) are quoted in the
tests. ``from_ibstat`` turns a real ``ibstat`` capture (a tool's rendering: ``Rate: 400``,
``State: Active``) into the sysfs strings the kernel prints for the same port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from preflight.host import Host
from preflight.inventory import Inventory
from preflight.inventory.rdma_sysfs_text import PHYS_STATES, PORT_STATES
from preflight.inventory.rdma_text import ToolOutput

# IB speed name per lane rate in Gb/s, for rendering ibstat's "Rate: N" of a 4X port in sysfs form.
SPEED_BY_LANE = {2.5: "SDR", 5.0: "DDR", 10.0: "QDR", 25.0: "EDR", 50.0: "HDR", 100.0: "NDR"}


@dataclass
class Port:
    num: int = 1
    state: str = "4: ACTIVE"
    phys_state: str = "5: LinkUp"
    rate: str = "400 Gb/sec (4X NDR)"
    link_layer: str = "InfiniBand"
    lid: str = "0x11f"
    sm_lid: str = "0x400"
    counters: dict[str, str] = field(default_factory=dict)
    hw_counters: dict[str, str] = field(default_factory=dict)
    gids: dict[int, tuple[str, str | None, str | None]] = field(default_factory=dict)


@dataclass
class Netdev:
    operstate: str = "up"
    mtu: str = "4092"
    type: str = "32"
    speed: str | None = "400000"
    ecn: dict[str, dict[int, str]] | None = None


@dataclass
class Device:
    name: str
    bus: int
    fw_ver: str = "28.41.1000"
    hca_type: str = "MT4129"
    ports: list[Port] = field(default_factory=lambda: [Port()])
    netdevs: dict[str, Netdev] = field(default_factory=dict)
    numa: int = 0

    @property
    def bdf(self) -> str:
        return f"0000:{self.bus:02x}:00.0"


ZERO_COUNTERS = dict.fromkeys(
    [
        "symbol_error",
        "link_error_recovery",
        "link_downed",
        "port_rcv_errors",
        "port_rcv_remote_physical_errors",
        "port_xmit_discards",
        "local_link_integrity_errors",
        "excessive_buffer_overrun_errors",
        "port_xmit_data",
        "port_rcv_data",
    ],
    "0",
)
ZERO_HW = dict.fromkeys(
    ["rnr_nak_retry_err", "packet_seq_err", "implied_nak_seq_err", "local_ack_timeout_err"], "0"
)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") or text == "" else text + "\n")


def _link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def build(
    root: Path, devices: list[Device], extra_netdevs: dict[str, Netdev] | None = None
) -> Path:
    """Write the devices (PCI function, IB device, ports, netdevs) under root."""
    for dev in devices:
        pci = root / f"sys/devices/pci0000:00/{dev.bdf}"
        _write(pci / "vendor", "0x15b3")
        _write(pci / "device", "0x1021")
        _write(pci / "class", "0x020700")
        _write(pci / "numa_node", str(dev.numa))
        _link(root / f"sys/bus/pci/devices/{dev.bdf}", f"../../../devices/pci0000:00/{dev.bdf}")
        ib = pci / "infiniband" / dev.name
        _link(
            root / f"sys/class/infiniband/{dev.name}",
            f"../../devices/pci0000:00/{dev.bdf}/infiniband/{dev.name}",
        )
        _link(ib / "device", "../../../" + dev.bdf)
        _write(ib / "fw_ver", dev.fw_ver)
        _write(ib / "hca_type", dev.hca_type)
        _write(ib / "node_type", "1: CA")
        for port in dev.ports:
            p = ib / "ports" / str(port.num)
            for attr in ("state", "phys_state", "rate", "link_layer", "lid", "sm_lid"):
                _write(p / attr, getattr(port, attr))
            for name, value in port.counters.items():
                _write(p / "counters" / name, value)
            for name, value in port.hw_counters.items():
                _write(p / "hw_counters" / name, value)
            for index, (gid, kind, ndev) in port.gids.items():
                _write(p / "gids" / str(index), gid)
                if kind is not None:
                    _write(p / "gid_attrs/types" / str(index), kind)
                if ndev is not None:
                    _write(p / "gid_attrs/ndevs" / str(index), ndev)
        for name, nd in dev.netdevs.items():
            write_netdev(root, name, nd, pci)
    for name, nd in (extra_netdevs or {}).items():
        write_netdev(root, name, nd, None)
    return root


def write_netdev(root: Path, name: str, nd: Netdev, pci: Path | None) -> None:
    if pci is not None:
        real = pci / "net" / name
        rel = real.relative_to(root / "sys")
        _link(root / f"sys/class/net/{name}", f"../../{rel}")
        _link(real / "device", "../../../" + pci.name)
    else:
        real = root / f"sys/devices/virtual/net/{name}"
        _link(root / f"sys/class/net/{name}", f"../../devices/virtual/net/{name}")
    _write(real / "operstate", nd.operstate)
    _write(real / "mtu", nd.mtu)
    _write(real / "type", nd.type)
    if nd.speed is not None:
        _write(real / "speed", nd.speed)
    for role, prios in (nd.ecn or {}).items():
        for prio, value in prios.items():
            _write(real / f"ecn/{role}/enable/{prio}", value)


def host(root: Path, env: dict[str, str] | None = None) -> Host:
    return Host(root=str(root), privileged=True, env=env or {}, hostname="t")


def inventory(root: Path, env: dict[str, str] | None = None) -> Inventory:
    return Inventory(host(root, env))


def from_ibstat(out: ToolOutput, first_bus: int = 0x20) -> list[Device]:
    """The sysfs view of the CAs an `ibstat` capture lists (4X ports; a Down port's SM lid 0)."""
    devices = []
    for i, ca in enumerate(out.cas):
        ports = []
        for num, tp in sorted(ca.ports.items()):
            assert tp.state is not None and tp.phys_state is not None and tp.rate_gbps is not None
            lane = tp.rate_gbps / 4
            rate_text = f"{tp.rate_gbps:g} Gb/sec (4X {SPEED_BY_LANE[lane]})"
            ports.append(
                Port(
                    num=num,
                    state=f"{tp.state}: {PORT_STATES[tp.state]}",
                    phys_state=f"{tp.phys_state}: {PHYS_STATES[tp.phys_state]}",
                    rate=rate_text,
                    link_layer=tp.link_layer or "InfiniBand",
                    lid=f"0x{tp.lid or 0:x}",
                    sm_lid=f"0x{tp.sm_lid or 0:x}",
                    counters=dict(ZERO_COUNTERS),
                )
            )
        devices.append(
            Device(
                ca.name,
                first_bus + i,
                fw_ver=ca.fw_ver or "?",
                hca_type=ca.ca_type or "?",
                ports=ports,
            )
        )
    return devices


_IBSTATUS_BLOCK = re.compile(
    r"Infiniband device '([^']+)' port (\d+) status:\n((?:[ \t]+\S.*\n?)+)"
)


def ibstatus_ports(text: str) -> dict[str, dict[str, str]]:
    """`ibstatus` blocks as {"mlx5_0/1": {"state": "4: ACTIVE", "rate": "...", ...}}: ibstatus
    prints the sysfs files, so the values are sysfs file contents."""
    out = {}
    for m in _IBSTATUS_BLOCK.finditer(text):
        fields = {}
        for line in m.group(3).splitlines():
            key, _, value = line.strip().partition(":")
            fields[key.strip().replace(" ", "_")] = value.strip()
        out[f"{m.group(1)}/{m.group(2)}"] = fields
    return out
