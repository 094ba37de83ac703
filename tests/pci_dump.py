"""Test helpers: read `lspci -xxxx` hex dumps and `lspci -vvv` decodings (the oracle)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.paths import CAPTURES

DUMP_GLOB = "lspci-xxxx_*_pciutils-tests.txt"
DECODED_SUFFIX = ".decoded-lspci-3.9.0-vvvnn.txt"

# `00:1c.0 PCI bridge: ...` or `0000:12:08.0 Class 0604: ...` at column 0.
_DEVICE_RE = re.compile(
    r"^(?P<bdf>(?:[0-9a-fA-F]{4,}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])(?:\s|$)"
)
# `000: 86 80 ...` / `f0: 00 ...`: offset, colon, up to 16 hex bytes.
_HEX_ROW_RE = re.compile(r"^(?P<off>[0-9a-fA-F]{2,3}):(?P<bytes>(?: [0-9a-fA-F]{2}){1,16})\s*$")


def dump_files() -> list[Path]:
    """The pciutils `lspci -xxxx` dumps that have a decoded sibling."""
    return sorted(p for p in CAPTURES.glob(DUMP_GLOB) if decoded_path(p).is_file())


def decoded_path(dump: Path) -> Path:
    """The lspci 3.9.0 decoding of `dump`."""
    return dump.with_name(dump.name[: -len(".txt")] + DECODED_SUFFIX)


def normalize_bdf(bdf: str) -> str:
    """Lower-case and drop domain 0000, which lspci omits when it is the only domain."""
    bdf = bdf.lower()
    return bdf[5:] if bdf.startswith("0000:") else bdf


def parse_lspci_hex_dump(text: str) -> dict[str, bytes]:
    """Read `lspci -xxxx` text into {bdf: config bytes}.

    Device header lines start at column 0; indented `-vvv` decoding lines and `#` comments are
    skipped. Rows must be contiguous from offset 0.
    """
    devices: dict[str, bytearray] = {}
    current: bytearray | None = None
    bdf = ""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#") or line[0] in " \t":
            continue
        row = _HEX_ROW_RE.match(line)
        if row is not None and current is not None:
            off = int(row.group("off"), 16)
            if off != len(current):
                raise ValueError(
                    f"line {lineno}: row {off:#x} for {bdf}, expected {len(current):#x}"
                )
            current.extend(bytes.fromhex(row.group("bytes")))
            continue
        dev = _DEVICE_RE.match(line)
        if dev is None:
            raise ValueError(f"line {lineno}: neither a device header nor a hex row: {line!r}")
        bdf = dev.group("bdf").lower()
        if bdf in devices:
            raise ValueError(f"line {lineno}: device {bdf} appears twice")
        current = devices[bdf] = bytearray()
    return {k: bytes(v) for k, v in devices.items()}


@dataclass
class OracleCap:
    """One `Capabilities: [off vN] Name...` line and its indented register lines."""

    offset: int
    version: int | None  # printed only for extended capabilities
    text: str
    registers: dict[str, str] = field(default_factory=dict)


@dataclass
class OracleDevice:
    """What lspci printed for one device."""

    bdf: str
    header: str
    status_line: str = ""
    caps: list[OracleCap] = field(default_factory=list)

    @property
    def standard(self) -> list[OracleCap]:
        return [c for c in self.caps if c.version is None]

    @property
    def extended(self) -> list[OracleCap]:
        return [c for c in self.caps if c.version is not None]

    def find(self, prefix: str, *, extended: bool | None = None) -> OracleCap | None:
        for cap in self.caps:
            if extended is not None and (cap.version is not None) != extended:
                continue
            if cap.text.startswith(prefix):
                return cap
        return None


_CAP_RE = re.compile(r"^\tCapabilities: \[(?P<off>[0-9a-f]+)(?: v(?P<ver>\d+))?\] (?P<text>.*)$")
_REG_RE = re.compile(r"^\t\t(?P<name>[A-Za-z][A-Za-z0-9 ]*?):\s*(?P<rest>.*)$")
_CONT_RE = re.compile(r"^\t\t[\t ]+(?P<rest>.*)$")


def parse_lspci_decoded(text: str) -> dict[str, OracleDevice]:
    """Read `lspci -vvv[nn]` text into {normalized bdf: OracleDevice}."""
    devices: dict[str, OracleDevice] = {}
    dev: OracleDevice | None = None
    cap: OracleCap | None = None
    reg: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        if line[0] not in " \t":
            m = _DEVICE_RE.match(line)
            if m is None:
                raise ValueError(f"unexpected line {line!r}")
            bdf = normalize_bdf(m.group("bdf"))
            dev = devices[bdf] = OracleDevice(bdf=bdf, header=line)
            cap, reg = None, None
            continue
        if dev is None:
            raise ValueError(f"indented line before any device: {line!r}")
        m = _CAP_RE.match(line)
        if m is not None:
            ver = m.group("ver")
            cap = OracleCap(
                offset=int(m.group("off"), 16),
                version=None if ver is None else int(ver),
                text=m.group("text"),
            )
            dev.caps.append(cap)
            reg = None
            continue
        if line.startswith("\tStatus:"):
            dev.status_line = line.strip()
        if cap is None:
            continue
        if not line.startswith("\t\t"):
            cap, reg = None, None  # back at device level (does not occur after caps)
            continue
        cont = _CONT_RE.match(line)
        if cont is not None and reg is not None:
            cap.registers[reg] += " " + cont.group("rest").strip()
            continue
        m = _REG_RE.match(line)
        if m is not None:
            reg = m.group("name")
            cap.registers[reg] = m.group("rest").strip()
    return devices


_FLAG_RE = re.compile(r"(?<![\w-])(\w+)([+-])(?=[\s,]|$)")


def flags(text: str) -> dict[str, bool]:
    """`RlxdOrd- ExtTag+ ...` -> {"RlxdOrd": False, "ExtTag": True}; last occurrence wins."""
    return {m.group(1): m.group(2) == "+" for m in _FLAG_RE.finditer(text)}


_SPEED_GTS = {"2.5": 1, "5": 2, "8": 3, "16": 4, "32": 5, "64": 6}


def speed_code(text: str) -> int:
    """lspci `Speed 8GT/s` / `Speed unknown` -> the 4-bit speed code (0 for unknown)."""
    m = re.search(r"Speed (?:(?P<gts>[\d.]+)GT/s|unknown)", text)
    if m is None:
        raise ValueError(f"no speed in {text!r}")
    gts = m.group("gts")
    return 0 if gts is None else _SPEED_GTS[gts]


def width(text: str) -> int:
    m = re.search(r"Width x(\d+)", text)
    if m is None:
        raise ValueError(f"no width in {text!r}")
    return int(m.group(1))
