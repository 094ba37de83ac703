"""`--mask`: replace what identifies a node, a network or a person in a profile.

Each identifying value becomes a placeholder of the same format, the same placeholder for the
same value everywhere, so a masked profile replays to the same verdicts:

- hostnames (the FQDN, its short name and domain, in any letter case): `node-0001`,
  `site-0001.example`;
- serial numbers and asset tags (DMI files, NVML): `SERIAL000001`;
- UUIDs: `00000000-0000-4000-8000-…`;
- MACs (`aa:bb:…`, `aa-bb-…`, PXE `BOOTIF=01-aa-bb-…`): locally administered unicast
  `02:00:00:00:00:01`;
- GUIDs (`xxxx:xxxx:xxxx:xxxx`, `GUID: 0x…`) and PCIe Device Serial Numbers (the extended
  capability inside every config space, and lspci's `aa-bb-…-hh` text): `0000:0000:0000:0001`;
- IPv4 addresses: the /24 network moves to another /24 of the same kind (10/8, 172.16/12,
  192.168/16, 100.64/10, 169.254/16, or public to 198.18/15), the host byte stays; IPv6
  addresses and GIDs in every written form: the IPv4 of an IPv4-mapped GID as above, the MAC
  inside an EUI-64 interface id (`…ff:fe…`, U/L bit flipped) as a MAC, any other interface id
  as a GUID, a routed /64 prefix renumbered (its first 16 bits kept);
- user names (`$HOME`, `/home/<user>`) and private directories of the paths the profile names
  (NCCL_* and CUDA_* paths, nccl.conf values, NVML process names, `nfsroot=`): `user-0001`,
  `dir-0001`; the file name at the end of a path stays (NVML process names are allow-listed
  by it).

Loopback, unspecified, multicast and broadcast addresses, netmasks, all-zero values and
well-known account names (root, ubuntu, …) identify nobody and stay. A placeholder never equals
an original value of its kind in the same profile.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from preflight.errors import ParseError
from preflight.inventory.pci_config import parse_config_space

_HH = r"[0-9A-Fa-f]{2}"
_H4 = r"[0-9A-Fa-f]{4}"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV4 = r"(?:\d{1,3}\.){3}\d{1,3}"

UUID_RE = re.compile(
    r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f])"
)
HWADDR20_RE = re.compile(rf"(?<![0-9A-Fa-f:])(?:{_HH}:){{19}}{_HH}(?![0-9A-Fa-f:])")
GID_RE = re.compile(rf"(?<![\w:.])(?:{_H4}:){{7}}{_H4}(?![\w:])")
IPV6_RE = re.compile(
    rf"(?<![\w:.])(?:(?:{_H}(?::{_H}){{0,5}})?::(?:{_H}:){{0,5}}{_IPV4}"
    rf"|(?:{_H}(?::{_H}){{0,6}})?::(?:{_H}(?::{_H}){{0,6}})?)(?![\w:])(?!\.\d)"
)
IPV6_FULL_RE = re.compile(rf"(?<![\w:.])(?:{_H}:){{7}}{_H}(?![\w:])")
DSN_RE = re.compile(rf"(?<![0-9A-Fa-f-])(?:{_HH}-){{7}}{_HH}(?![0-9A-Fa-f-])")
MAC_RE = re.compile(rf"(?<![0-9A-Fa-f:])(?:{_HH}:){{5}}{_HH}(?![0-9A-Fa-f:])")
MAC_DASH_RE = re.compile(rf"(?<![0-9A-Fa-f-])(?:{_HH}-)?(?:{_HH}-){{5}}{_HH}(?![0-9A-Fa-f-])")
GUID_RE = re.compile(rf"(?<![0-9A-Fa-f:]){_H4}(?::{_H4}){{3}}(?![0-9A-Fa-f:])")
GUID_HEX_RE = re.compile(
    r"(?:(?i:guid)[^\S\n]{0,3}[:=]?[^\S\n]{0,8}(?:0x)?[0-9A-Fa-f]{16}(?![0-9A-Fa-f])"
    r"|(?<![^\n])[ \t]*0x[0-9A-Fa-f]{16}(?=[ \t]*(?:\n|$)))"
)
IPV4_RE = re.compile(rf"(?<![\w.]){_IPV4}(?!\w)(?!\.\d)")

_STRUCTURAL = (
    ("uuid", UUID_RE),
    ("hwaddr", HWADDR20_RE),
    ("gid", GID_RE),
    ("ip6", IPV6_RE),
    ("ip6full", IPV6_FULL_RE),
    ("dsn", DSN_RE),
    ("mac", MAC_RE),
    ("macdash", MAC_DASH_RE),
    ("guid", GUID_RE),
    ("guidhex", GUID_HEX_RE),
    ("ip4", IPV4_RE),
)
"""Formats found anywhere in text, tried in this order where two start at the same place."""

SERIAL_FILES = frozenset(
    {
        "product_serial",
        "board_serial",
        "chassis_serial",
        "serial_number",
        "serial",
        "board_asset_tag",
        "chassis_asset_tag",
    }
)
NOT_SERIALS = frozenset(
    {
        "",
        "0",
        "none",
        "n/a",
        "na",
        "not specified",
        "not applicable",
        "default string",
        "to be filled by o.e.m.",
        "system serial number",
        "chassis serial number",
        "base board serial number",
        "0123456789",
        "123456789",
    }
)
"""Firmware's filler values: the same on every machine."""

COMMON_USERS = frozenset(
    {"root", "nobody", "ubuntu", "admin", "user", "nvidia", "centos", "rocky", "debian", "slurm"}
)
"""Account names that are the same on every machine of their distribution."""

USER_ROOTS = frozenset({"home", "Users", "users"})
"""Directories whose entries are user names (/home/<user>)."""

PUBLIC_DIRS = frozenset(
    [
        "etc",
        "opt",
        "usr",
        "local",
        "bin",
        "sbin",
        "lib",
        "lib32",
        "lib64",
        "libexec",
        "share",
        "include",
        "src",
        "home",
        "Users",
        "users",
        "root",
        "tmp",
        "var",
        "run",
        "srv",
        "mnt",
        "media",
        "data",
        "shared",
        "nfs",
        "scratch",
        "export",
        "apps",
        "software",
        "sw",
        "modules",
        "boot",
        "efi",
        "conda",
        "venvs",
        "miniconda",
        "miniconda3",
        "anaconda",
        "anaconda3",
        "miniforge3",
        "mambaforge",
        "envs",
        "env",
        "venv",
        ".venv",
        "site-packages",
        "dist-packages",
        "python",
        "python3",
        "pyenv",
        "versions",
        ".local",
        ".conda",
        ".cache",
        ".config",
        "config",
        "conf",
        "nccl",
        "cuda",
        "nvidia",
        "hpcx",
        "mellanox",
        "ofed",
        "work",
        "workspace",
        "projects",
        "jobs",
        "logs",
        "images",
        "rootfs",
        "roots",
        "nfsroot",
        "diskless",
    ]
)
_PUBLIC_DIR_RE = re.compile(r"(?:python|cuda|cuda-|nccl)?[0-9][0-9.]*|lib[a-z0-9_]*|\.[a-z]+rc")
"""Directory names that name software, a version or a role, never a person or a project."""

SYSTEM_TREES = ("/sys", "/proc", "/dev")
"""Paths the checks read: never renamed, or the replay would not find them."""

PATH_KEYED = frozenset({"files", "symlinks"})
"""Profile sections keyed by paths."""

VERSION_KEY_RE = re.compile(r"version|vbios|fw_ver|firmware|bios", re.IGNORECASE)
"""Keys and file names holding versions, where a.b.c.d is a version, not an IPv4 address."""

_IPV4_BLOCKS = (
    (0x0A000000, 8),  # 10/8
    (0xAC100000, 12),  # 172.16/12
    (0xC0A80000, 16),  # 192.168/16
    (0x64400000, 10),  # 100.64/10, carrier-grade NAT
    (0xA9FE0000, 16),  # 169.254/16, link-local
)
_IPV4_PUBLIC = (0xC6120000, 15)  # 198.18/15 (RFC 2544 benchmarking) stands for any public one

_LITERAL_PLACEHOLDERS = {
    "host": "node-{:04d}",
    "domain": "site-{:04d}.example",
    "serial": "SERIAL{:06d}",
    "user": "user-{:04d}",
    "dir": "dir-{:04d}",
}

_M48 = (1 << 48) - 1
_M64 = (1 << 64) - 1

_CMDLINE_IP_RE = re.compile(r"(?<!\S)ip=([^\s]*)")
_NFSROOT_RE = re.compile(r"(?<!\S)(?:nfsroot=(?:[^\s:,/]*:)?|root=nfs4?:[^\s:/]*:)(/[^\s,:]*)")
_HOME_PATH_RE = re.compile(r"(?<![\w.-])/(?:[\w.-]+/)*?(?:home|Users|users)/[\w.-]+")
_PATH_VALUE_RE = re.compile(r"(?<![\w.-])/[\w.@+/-]*")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9][A-Za-z0-9-]*)*")


def _same_case(original: str, new: str) -> str:
    """`new` in upper case where `original` writes its letters in upper case."""
    letters = [c for c in original if c.isalpha()]
    return new.upper() if letters and all(c.isupper() for c in letters) else new


def _groups(digits: str, width: int, sep: str) -> str:
    return sep.join(digits[i : i + width] for i in range(0, len(digits), width))


def _mac_text(value: int, sep: str) -> str:
    return sep.join(f"{b:02x}" for b in value.to_bytes(6, "big"))


class Masker:
    """Same value → same placeholder; every placeholder has the format of what it replaces.

    Register the values found at known places (`hostname`, `serial`, `user`, `path`), let
    `collect` see every text (so no placeholder equals an original), then `apply`.
    """

    def __init__(self) -> None:
        self.literals: dict[str, str] = {}  # exact text → placeholder (case-insensitive: hosts)
        self._hosts: dict[str, str] = {}  # lower case → as written
        self._paths: set[str] = set()
        self._words: set[str] = set()  # users and serials: whole words, case as written
        self._maps: dict[str, dict[Any, Any]] = {}
        self._seen: dict[str, set[Any]] = {}
        self._counts: dict[str, int] = {}
        self._pattern: re.Pattern[str] | None = None

    # -- registration of values found at known places ---------------------------------------

    def hostname(self, name: str) -> None:
        """A host name: the FQDN, its short name and its domain (and the domain's parents)."""
        name = name.strip().rstrip(".")
        if not _NAME_RE.fullmatch(name) or name.lower() == "localhost" or IPV4_RE.fullmatch(name):
            return
        short, _, domain = name.partition(".")
        self._host_literal(short, "host")
        labels = domain.split(".") if domain else []
        for i in range(len(labels) - 1):  # never a bare top-level label (com, local)
            self._host_literal(".".join(labels[i:]), "domain")
        if domain:
            site = self.literals.get(domain.lower(), "example")
            self._host_literal(name, "fqdn", self.literals[short.lower()] + "." + site)

    def _host_literal(self, text: str, kind: str, placeholder: str | None = None) -> None:
        key = text.lower()
        if not key or key in self._hosts:
            return
        self._hosts[key] = text
        self.literals[key] = placeholder or self._placeholder(kind, key)
        self._pattern = None

    def serial(self, value: str) -> None:
        """A serial number or asset tag, replaced as a whole word."""
        value = value.strip()
        if value.lower() in NOT_SERIALS or len(value) < 4 or value in self.literals:
            return
        self.literals[value] = self._placeholder("serial", value)
        self._words.add(value)
        self._pattern = None

    def user(self, name: str) -> None:
        """A user name, replaced as a whole word (in paths too)."""
        if (
            not name
            or name in COMMON_USERS
            or name in PUBLIC_DIRS
            or name in self.literals
            or name.startswith(".")
        ):
            return
        self.literals[name] = self._placeholder("user", name)
        self._words.add(name)
        self._pattern = None

    def path(self, path: str, *, is_dir: bool = True, last_is_user: bool = False) -> None:
        """A path the profile names: the user names and private directories in it.

        Each prefix that ends in a private directory is replaced wherever a path starts with
        it; the file name of a file path stays.
        """
        if not path.startswith("/") or len(path) > 4096:
            return
        if any(path == tree or path.startswith(tree + "/") for tree in SYSTEM_TREES):
            return
        parts = [p for p in path.split("/") if p]
        if not is_dir:
            parts = parts[:-1]
        for i, part in enumerate(parts):
            if (i and parts[i - 1] in USER_ROOTS) or (last_is_user and i == len(parts) - 1):
                self.user(part)
            if not self._public_dir(part):
                prefix = "/" + "/".join(parts[: i + 1])
                if prefix not in self._paths:
                    self._paths.add(prefix)
                    self._pattern = None

    def _public_dir(self, part: str) -> bool:
        return (
            part in PUBLIC_DIRS or bool(_PUBLIC_DIR_RE.fullmatch(part))
        ) and part not in self.literals

    def scan_known_places(self, text: str) -> None:
        """Register what a kernel command line or a path in free text names: the hostname of
        `ip=`, the root path of `nfsroot=`, user names under /home."""
        if "ip=" in text:
            for m in _CMDLINE_IP_RE.finditer(text):
                fields = m.group(1).split(":")
                if len(fields) > 4 and fields[4]:
                    self.hostname(fields[4])
        for m in _NFSROOT_RE.finditer(text):
            self.path(m.group(1))
        if "/" in text:
            for m in _HOME_PATH_RE.finditer(text):
                self.path(m.group(0))

    # -- placeholders -------------------------------------------------------------------------

    def _next(self, kind: str) -> int:
        self._counts[kind] = self._counts.get(kind, 0) + 1
        return self._counts[kind]

    def _placeholder(self, kind: str, key: str) -> str:
        template = _LITERAL_PLACEHOLDERS[kind]
        taken = set(self.literals) | set(self._hosts)
        while True:
            value = template.format(self._next(kind))
            if value.lower() not in taken and value not in taken:
                return value

    def _mapped(self, kind: str, value: Any, make: Callable[[int], Any]) -> Any:
        """The placeholder of `value` of `kind`: the next of `make(1), make(2), …` that is
        no value of this kind seen in the profile."""
        table = self._maps.setdefault(kind, {})
        if value not in table:
            seen = self._seen.get(kind, set())
            used = set(table.values())
            for _ in range(1 << 17):  # bounded: a kind of network may run out of placeholders
                candidate = make(self._next(kind))
                if candidate not in seen and candidate not in used:
                    break
            table[value] = candidate
        return table[value]

    def _note(self, kind: str, value: Any) -> None:
        self._seen.setdefault(kind, set()).add(value)

    # -- values -------------------------------------------------------------------------------

    def mac(self, value: int) -> int:
        """48-bit MAC → a locally administered unicast MAC; group and zero addresses stay."""
        if value in (0, _M48) or (value >> 40) & 1:
            return value
        return int(self._mapped("mac", value, lambda n: (0x02 << 40) | n))

    def guid(self, value: int) -> int:
        """64-bit GUID (or Device Serial Number, interface id) → a small one; 0 and ~0 stay."""
        if value in (0, _M64):
            return value
        return int(self._mapped("guid", value, lambda n: n))

    def eui64(self, value: int, *, flip: bool) -> int:
        """A 64-bit id that is a MAC with ff:fe inserted (U/L bit flipped in an IPv6 interface
        id): the masked MAC's; any other id: a masked GUID."""
        if (value >> 24) & 0xFFFF != 0xFFFE:
            return self.guid(value)
        u = 0x02 if flip else 0
        mac = (((value >> 40) ^ (u << 16)) << 24) | (value & 0xFFFFFF)
        new = self.mac(mac)
        return (((new >> 24) ^ (u << 16)) << 40) | (0xFFFE << 24) | (new & 0xFFFFFF)

    def dsn(self, value: int) -> int:
        """A PCIe Device Serial Number: an EUI-64 (often from the NIC's MAC) or a number."""
        return self.eui64(value, flip=False)

    def ipv4(self, value: int) -> int:
        """A new /24 of the same kind of network, the host byte kept; this-network, loopback,
        multicast, broadcast and netmasks (≥ 224.0.0.0) stay."""
        first = value >> 24
        if first in (0, 127) or first >= 224:
            return value
        base, bits = next(
            ((b, s) for b, s in _IPV4_BLOCKS if value >> (32 - s) == b >> (32 - s)),
            _IPV4_PUBLIC,
        )
        nets = 1 << (24 - bits)
        net = self._mapped(
            f"ip4net/{base:x}", value >> 8, lambda n: (base >> 8) + n % nets
        )  # wraps only past 65535 networks of one kind
        return int(net) << 8 | (value & 0xFF)

    def ipv6(self, value: int) -> int:
        """An IPv6 address or GID: see the module docstring."""
        if value >> 120 == 0xFF or value in (0, 1):  # multicast, unspecified, loopback
            return value
        if value >> 32 == 0xFFFF:  # ::ffff:a.b.c.d, an IPv4-mapped (RoCE v2) GID
            return (0xFFFF << 32) | self.ipv4(value & 0xFFFFFFFF)
        prefix, iid = value >> 64, value & _M64
        if prefix & _M48:  # a routed prefix; fe80::, fec0:: (the default subnet prefix) stay
            top = prefix & ~_M48 & _M64
            prefix = int(self._mapped(f"prefix/{top:x}", prefix, lambda n: top | n))
        return (prefix << 64) | (self.eui64(iid, flip=True) if iid else 0)

    def _note_ipv6(self, value: int) -> None:
        if value >> 32 == 0xFFFF:
            self._note_ipv4(value & 0xFFFFFFFF)
            return
        prefix, iid = value >> 64, value & _M64
        self._note(f"prefix/{prefix & ~_M48 & _M64:x}", prefix)
        self._note_eui64(iid)

    def _note_ipv4(self, value: int) -> None:
        base, _ = next(
            ((b, s) for b, s in _IPV4_BLOCKS if value >> (32 - s) == b >> (32 - s)),
            _IPV4_PUBLIC,
        )
        self._note(f"ip4net/{base:x}", value >> 8)

    def _note_eui64(self, value: int) -> None:
        if (value >> 24) & 0xFFFF == 0xFFFE:
            self._note("mac", ((value >> 40) << 24) | (value & 0xFFFFFF))
            self._note("mac", (((value >> 40) ^ 0x020000) << 24) | (value & 0xFFFFFF))
        self._note("guid", value)

    # -- text ---------------------------------------------------------------------------------

    def _regex(self) -> re.Pattern[str]:
        if self._pattern is None:
            parts = [f"(?P<{kind}>{rx.pattern})" for kind, rx in _STRUCTURAL]
            if self._paths:
                alts = "|".join(re.escape(p) for p in sorted(self._paths, key=len, reverse=True))
                parts.insert(0, rf"(?P<path>(?<![\w./-])(?:{alts})(?![\w.-]))")
            if self._hosts:
                # Any letter case (NODE01) where the name has a digit, dot or hyphen; a name that
                # is a plain word (gpu) only as written, or it would replace that word in text.
                alts = "|".join(
                    f"(?i:{re.escape(h)})" if re.search(r"[\d.-]", h) else re.escape(self._hosts[h])
                    for h in sorted(self._hosts, key=len, reverse=True)
                )
                parts.append(rf"(?P<host>(?<![\w-])(?:{alts})(?![\w-]))")
            if self._words:
                alts = "|".join(re.escape(w) for w in sorted(self._words, key=len, reverse=True))
                parts.append(rf"(?P<word>(?<![\w.-])(?:{alts})(?![\w-]))")
            self._pattern = re.compile("|".join(parts))
        return self._pattern

    def _matches(self, text: str, versions: bool) -> Iterator[re.Match[str]]:
        for m in self._regex().finditer(text):
            if not (versions and m.lastgroup == "ip4"):
                yield m

    def collect(self, text: str, *, versions: bool = False) -> None:
        """Note the values of every structured format in `text`: no placeholder may equal one."""
        for m in self._matches(text, versions):
            kind, token = m.lastgroup, m.group(0)
            value = _parse(kind, token)
            if value is None:
                continue
            if kind in ("gid", "ip6", "ip6full"):
                self._note_ipv6(value)
            elif kind == "hwaddr":
                self._note_ipv6(value & ((1 << 128) - 1))
            elif kind == "ip4":
                self._note_ipv4(value)
            elif kind in ("mac", "macdash"):
                self._note("mac", value)
            elif kind in ("guid", "guidhex", "dsn"):
                self._note_eui64(value)

    def apply(self, text: str, *, versions: bool = False) -> str:
        """`text` with every identifying value replaced; a.b.c.d stays where `versions`."""
        if not text:
            return text
        out: list[str] = []
        end = 0
        for m in self._matches(text, versions):
            out.append(text[end : m.start()])
            out.append(self._replace(m.lastgroup or "", m.group(0)))
            end = m.end()
        out.append(text[end:])
        return "".join(out)

    def _replace(self, kind: str, token: str) -> str:
        if kind == "host":
            return _same_case(token, self.literals[token.lower()])
        if kind == "word":
            return self.literals[token]
        if kind == "path":
            return self._path_text(token)
        if kind == "uuid":
            if not int(token.replace("-", ""), 16):
                return token
            key = token.lower()
            new = self._mapped("uuid", key, lambda n: f"00000000-0000-4000-8000-{n:012x}")
            return _same_case(token, str(new))
        value = _parse(kind, token)
        if value is None:
            return token
        if kind == "gid":
            new = self.ipv6(value)
            return _same_case(token, _groups(f"{new:032x}", 4, ":"))
        if kind == "ip6full":  # eight groups, no zero compression, as written
            groups = _groups(f"{self.ipv6(value):032x}", 4, ":").split(":")
            return _same_case(token, ":".join(f"{int(g, 16):x}" for g in groups))
        if kind == "ip6":
            if "." in token:  # ::ffff:a.b.c.d: the mapping head stays, the IPv4 changes
                head, _, tail = token.rpartition(":")
                new4 = self.ipv4(int(ipaddress.IPv4Address(tail)))
                return f"{head}:{ipaddress.IPv4Address(new4)}"
            return _same_case(token, ipaddress.IPv6Address(self.ipv6(value)).compressed)
        if kind == "hwaddr":  # flags and QPN, then the port GID
            new = (value >> 128 << 128) | self.ipv6(value & ((1 << 128) - 1))
            return _same_case(token, ":".join(f"{b:02x}" for b in new.to_bytes(20, "big")))
        if kind == "mac":
            return _same_case(token, _mac_text(self.mac(value), ":"))
        if kind == "macdash":  # an optional hardware type first (PXE BOOTIF=01-…)
            head = token[:3] if token.count("-") == 6 else ""
            return head + _same_case(token, _mac_text(self.mac(value), "-"))
        if kind == "dsn":
            new = self.dsn(value)
            return _same_case(token, "-".join(f"{b:02x}" for b in new.to_bytes(8, "big")))
        if kind == "guid":
            new = self.eui64(value, flip=False)
            return _same_case(token, _groups(f"{new:016x}", 4, ":"))
        if kind == "guidhex":
            head, digits = token[:-16], token[-16:]
            return head + _same_case(digits, f"{self.eui64(value, flip=False):016x}")
        if kind == "ip4":
            return str(ipaddress.IPv4Address(self.ipv4(value)))
        return token

    def _path_text(self, path: str) -> str:
        parts = path.split("/")
        out = []
        for i, part in enumerate(parts):
            if not part or self._public_dir(part):
                out.append(part)
            elif part in self.literals:
                out.append(self.literals[part])
            elif part.lower() in self._hosts:
                out.append(_same_case(part, self.literals[part.lower()]))
            elif i and parts[i - 1] in USER_ROOTS:
                self.user(part)
                out.append(self.literals.get(part, part))
            else:
                out.append(str(self._mapped("dir", part, _LITERAL_PLACEHOLDERS["dir"].format)))
        return "/".join(out)


def _parse(kind: str | None, token: str) -> int | None:
    """The number a token of a structured format writes, or None where it is not one."""
    try:
        if kind in ("gid", "ip6", "ip6full"):
            return int(ipaddress.IPv6Address(token))
        if kind == "ip4":
            return int(ipaddress.IPv4Address(token))
        if kind in ("hwaddr", "mac", "guid"):
            return int(token.replace(":", ""), 16)
        if kind in ("dsn", "macdash"):
            return int("".join(token.split("-")[-8 if kind == "dsn" else -6 :]), 16)
        if kind == "guidhex":
            return int(token[-16:], 16)
    except ValueError:
        return None
    return None


# -- profiles ---------------------------------------------------------------------------------

DSN_CAP_ID = 0x0003
"""PCI Express Device Serial Number extended capability: +4 lower dword, +8 upper dword."""


def _config_bytes(content: Any) -> bytearray | None:
    if not (isinstance(content, dict) and isinstance(content.get("hex"), str)):
        return None
    try:
        raw = bytes.fromhex(content["hex"])
    except ValueError:
        return None
    size = content.get("size", len(raw))
    if not isinstance(size, int) or not len(raw) <= size <= 1 << 16:
        return None
    return bytearray(raw.ljust(size, b"\0"))


def serial_offsets(data: bytes | bytearray) -> list[int]:
    """Offsets of the 8 serial bytes of every Device Serial Number capability in a config
    space, found by walking its extended capability list; [] when it does not parse."""
    try:
        config = parse_config_space(bytes(data))
    except ParseError:
        return []
    return [
        cap.offset + 4
        for cap in config.extended_capabilities
        if cap.id == DSN_CAP_ID and cap.offset + 12 <= len(data)
    ]


def _mask_config(masker: Masker, content: Any, collect: bool) -> Any:
    data = _config_bytes(content)
    offsets = serial_offsets(data) if data is not None else []
    if data is None or not offsets:
        return content
    for at in offsets:
        value = int.from_bytes(data[at : at + 4], "little") | (
            int.from_bytes(data[at + 4 : at + 8], "little") << 32
        )
        if collect:
            masker._note_eui64(value)
            continue
        new = masker.dsn(value)
        data[at : at + 4] = (new & 0xFFFFFFFF).to_bytes(4, "little")
        data[at + 4 : at + 8] = (new >> 32).to_bytes(4, "little")
    return {**content, "hex": bytes(data).rstrip(b"\0").hex()}


def _paths_in(value: str) -> Iterable[str]:
    return (m.group(0) for m in _PATH_VALUE_RE.finditer(value))


def register(masker: Masker, profile: dict[str, Any]) -> None:
    """Register the values found at known places of a profile."""
    hostname = profile.get("hostname")
    if isinstance(hostname, str):
        masker.hostname(hostname)
    env = profile.get("env")
    if isinstance(env, dict):
        for key, value in env.items():
            if not isinstance(value, str):
                continue
            if key == "HOME" and value.rstrip("/") not in ("", "/root"):
                masker.path(value.rstrip("/"), last_is_user=True)
            elif key != "PATH":
                for path in _paths_in(value):
                    masker.path(path, is_dir=False)
    files = profile.get("files")
    if isinstance(files, dict):
        for path, content in files.items():
            if not isinstance(content, str):
                continue
            name = str(path).rsplit("/", 1)[-1]
            if name in SERIAL_FILES:
                masker.serial(content)
            elif name.endswith("nccl.conf"):
                masker.path(str(path), is_dir=False)
                for line in content.splitlines():
                    for found in _paths_in(line.partition("=")[2]):
                        masker.path(found, is_dir=False)
    nvml = profile.get("nvml")
    gpus = nvml.get("gpus") if isinstance(nvml, dict) else None
    for gpu in gpus.values() if isinstance(gpus, dict) else ():
        if not isinstance(gpu, dict):
            continue
        if isinstance(gpu.get("serial"), str):
            masker.serial(gpu["serial"])
        procs = gpu.get("processes")
        for proc in procs if isinstance(procs, list) else ():
            if isinstance(proc, dict) and isinstance(proc.get("name"), str):
                masker.path(proc["name"], is_dir=False)
    for text in _strings(profile):
        masker.scan_known_places(text)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        if isinstance(value.get("hex"), str):
            return
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _walk(masker: Masker, value: Any, key: str, collect: bool) -> Any:
    versions = bool(VERSION_KEY_RE.search(key.rsplit("/", 1)[-1]))
    if isinstance(value, str):
        if collect:
            masker.collect(value, versions=versions)
            return value
        return masker.apply(value, versions=versions)
    if isinstance(value, dict):
        if isinstance(value.get("hex"), str):
            return _mask_config(masker, value, collect) if key.endswith("/config") else value
        out = {}
        for k, v in value.items():
            name = str(k)
            # Paths name users and hosts; other keys are the profile's and NVML's own names.
            new_key = _walk(masker, name, key, collect) if key in PATH_KEYED else name
            out[new_key] = _walk(masker, v, name, collect)
        return out
    if isinstance(value, list):
        return [_walk(masker, v, key, collect) for v in value]
    return value


def mask(profile: dict[str, Any]) -> dict[str, Any]:
    """The profile with what identifies the node, its networks and its users replaced."""
    masker = Masker()
    register(masker, profile)
    _walk(masker, profile, "", collect=True)
    out: dict[str, Any] = _walk(masker, profile, "", collect=False)
    out["description"] = "masked snapshot"
    return out


def masked_patterns() -> Iterable[re.Pattern[str]]:
    """The formats --mask replaces wherever they occur (tests compare messages without them)."""
    return tuple(rx for _, rx in _STRUCTURAL)
