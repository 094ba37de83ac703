"""NCCL settings as a job on this node would see them: environment, NCCL_CONF_FILE, /etc/nccl.conf.

Sources and precedence, as NCCL applies them (src/misc/param.cc initEnv()/setEnvFile()):

1. the process environment (here: the environment the checks see, with ``--env`` overrides);
2. ``$NCCL_CONF_FILE`` when set and non-empty (since 2.23), otherwise ``~/.nccl.conf``;
3. ``/etc/nccl.conf``.

A file never overrides a variable already set (``setenv(..., overwrite=0)``). Each file line is
``NAME=VALUE`` split at the first ``=``, taken verbatim: no whitespace is stripped, so
``NCCL_DEBUG = INFO`` sets a variable literally named ``"NCCL_DEBUG "``; lines starting with ``#``
and lines without ``=`` are skipped.

Device lists (``NCCL_IB_HCA``, ``NCCL_SOCKET_IFNAME``; docs env.rst, src/misc/utils.cc
parseStringList()/matchIfList(), src/transport/net_ib/init.cc): an optional leading ``^``
(exclude), then an optional ``=`` (exact names instead of prefixes), then comma-separated
entries ``name[:port[:rail[:plane]]]``; empty entries are skipped; an empty field means "any";
NCCL keeps at most 32 IB entries and 16 socket entries. Without ``=``, ``mlx5_1`` is a prefix and
also selects ``mlx5_10`` … ``mlx5_19``. The socket list uses the same parser; a ``:port`` there
is ignored.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from importlib import resources

from preflight.errors import HostReadError, ParseError
from preflight.host import Host

ETC_NCCL_CONF = "/etc/nccl.conf"
MAX_IB_ENTRIES = 32  # MAX_IB_DEVS
MAX_SOCKET_ENTRIES = 16  # MAX_IFS
_FIELD_RE = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True)
class DeviceSpec:
    """One entry of a device list: a name (prefix unless the list is exact) and an optional port.

    ``rail`` and ``plane`` (NCCL ≥ 2.27 multi-plane NICs) are parsed but do not select.
    """

    name: str
    port: int | None = None
    rail: int | None = None
    plane: int | None = None

    def matches(self, device: str, port: int | None, exact: bool) -> bool:
        """NCCL's matchIf()/matchPort(): exact name or prefix, and the port when both give one."""
        name_ok = device == self.name if exact else device.startswith(self.name)
        return name_ok and (self.port is None or port is None or self.port == port)


@dataclass(frozen=True)
class DeviceList:
    """A parsed NCCL_IB_HCA / NCCL_SOCKET_IFNAME value."""

    raw: str
    exclude: bool
    exact: bool
    entries: tuple[DeviceSpec, ...]
    ignored: tuple[str, ...] = ()  # entries past NCCL's limit, which it drops silently

    def selects(self, device: str, port: int | None = None) -> bool:
        """Whether NCCL would use this device (port): include lists select matches, exclude
        lists everything else. An empty list selects everything, except ``^`` alone: NCCL
        then excludes everything."""
        matched = not self.entries or any(e.matches(device, port, self.exact) for e in self.entries)
        return matched != self.exclude

    def matching(self, entry: DeviceSpec, devices: list[str]) -> list[str]:
        """The devices one entry matches by name (its port aside)."""
        return [d for d in devices if entry.matches(d, None, self.exact)]


def _field(value: str, what: str, token: str) -> int | None:
    if value == "":
        return None
    if not _FIELD_RE.fullmatch(value):
        raise ParseError(f"expected a number for the {what} in {token!r}, got {value!r}")
    return int(value)


def parse_device_list(text: str, max_entries: int = MAX_IB_ENTRIES) -> DeviceList:
    """Parse a device list with NCCL's grammar; ParseError for a port/rail/plane that is not a
    number (NCCL would take atoi() of it, 0, which matches no port) or more than 4 fields."""
    if not isinstance(text, str):
        raise ParseError(f"expected a device list as text, got {type(text).__name__}")
    s = text
    exclude = s.startswith("^")
    if exclude:
        s = s[1:]
    exact = s.startswith("=")
    if exact:
        s = s[1:]
    entries: list[DeviceSpec] = []
    ignored: list[str] = []
    for token in s.split(","):
        fields = token.split(":")
        if fields[0] == "":
            continue  # strtok_r() skips empty entries; NCCL drops an entry without a name
        if len(fields) > 4:
            raise ParseError(f"expected name[:port[:rail[:plane]]], got {token!r}")
        fields += [""] * (4 - len(fields))
        spec = DeviceSpec(
            fields[0],
            _field(fields[1], "port", token),
            _field(fields[2], "rail", token),
            _field(fields[3], "plane", token),
        )
        if len(entries) >= max_entries:
            ignored.append(token)
        else:
            entries.append(spec)
    return DeviceList(text, exclude, exact, tuple(entries), tuple(ignored))


# --------------------------------------------------------------------------------------------
# Names NCCL reads, and the grammar of their values: nccl_names.json, generated from NCCL's
# source by tools/nccl_env_names.py (its "source" records the NCCL version and commit).
# --------------------------------------------------------------------------------------------
NCCL_DATA = json.loads((resources.files("preflight.inventory") / "nccl_names.json").read_text())
NCCL_SOURCE: dict[str, str] = NCCL_DATA["source"]
NCCL_VERSION: str = NCCL_SOURCE["version"]
GRAMMARS: dict[str, list[str]] = NCCL_DATA["grammars"]


@dataclass(frozen=True)
class NameInfo:
    """What NCCL's source says about one variable."""

    name: str
    status: str  # "current" | "deprecated" (still read; `use` supersedes it) | "removed"
    kind: str | None  # "integer" (NCCL_PARAM, strtoll), "string", "typed"; None when removed
    default: str | None = None
    since: str | None = None  # first release (>= 2.3) that read it
    last: str | None = None  # last release that read it, for a removed name
    use: str | None = None  # the replacement of a deprecated name


NAMES: dict[str, NameInfo] = {
    name: NameInfo(
        name,
        entry["status"],
        entry.get("kind"),
        entry.get("default"),
        entry.get("since"),
        entry.get("last"),
        entry.get("use"),
    )
    for name, entry in NCCL_DATA["names"].items()
}
KNOWN_NAMES = frozenset(n for n, info in NAMES.items() if info.status != "removed")
# Names read by NCCL plugins, not by NCCL itself.
PLUGIN_NAMES = {
    "NCCL_SHARP_DISABLE": "the SHARP plugin (nccl-rdma-sharp-plugins)",
    "NCCL_TUNER_CONFIG_FILE": "NCCL's example tuner plugin (plugins/tuner/example)",
}
# Names PyTorch (not NCCL) reads; the NCCL_ spellings are deprecated aliases of TORCH_NCCL_*.
TORCH_ALIASES = {
    "NCCL_ASYNC_ERROR_HANDLING": "TORCH_NCCL_ASYNC_ERROR_HANDLING",
    "NCCL_BLOCKING_WAIT": "TORCH_NCCL_BLOCKING_WAIT",
    "NCCL_DESYNC_DEBUG": "TORCH_NCCL_DESYNC_DEBUG",
    "NCCL_ENABLE_TIMING": "TORCH_NCCL_ENABLE_TIMING",
    "NCCL_ENABLE_MONITORING": "TORCH_NCCL_ENABLE_MONITORING",
}
# Names scripts set that NCCL has never read, with what was probably meant.
NOT_NCCL = {
    "NCCL_TIMEOUT": "NCCL has no such variable: the collective timeout is torch's "
    "init_process_group(timeout=...); NCCL_IB_TIMEOUT is the InfiniBand retransmit timeout",
}
LEVEL_VARIABLES = ("NCCL_NET_GDR_LEVEL", "NCCL_P2P_LEVEL")


def strtoll(text: str) -> tuple[int | None, str]:
    """What C's strtoll(text, NULL, 0) returns, as NCCL_PARAM reads a value, and the part of the
    text it ignored. None for a number out of range (NCCL then keeps the default)."""
    s = text.lstrip(" \t\n\v\f\r")
    m = re.match(r"([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", s)
    if m is None:
        return 0, text  # no digits: 0, not the default
    digits = m.group(2)
    base = 16 if digits[:2].lower() == "0x" else 8 if digits.startswith("0") else 10
    value = int(digits, base) * (-1 if m.group(1) == "-" else 1)
    rest = s[m.end() :]
    if not -(1 << 63) <= value < 1 << 63:
        return None, rest
    return value, rest


def parse_algo_list(text: str, elements: list[str]) -> None:
    """Check an NCCL_ALGO / NCCL_PROTO value as NCCL's parseList() (src/graph/tuning.cc) reads
    it: ``[^]a,b`` or ``Func:[^]a,b;Func:…`` (names case-insensitive). ParseError for what NCCL
    rejects with ncclInvalidUsage, failing communicator creation."""
    funcs = [f.lower() for f in GRAMMARS["functions"]]
    known = [e.lower() for e in elements]
    entries = [e for e in text.split(";") if e]
    for i, entry in enumerate(entries):
        parts = [p for p in entry.split(":") if p]
        if not parts:
            continue
        if len(parts) == 1:
            if i > 0:
                raise ParseError(f"every entry but the first needs a 'Function:' prefix: {entry!r}")
            prefix, items = None, parts[0]
        else:
            prefix, items = parts[0], parts[1]
        if prefix is not None and prefix.lower() not in funcs:
            raise ParseError(
                f"unknown function {prefix!r} (NCCL knows {', '.join(GRAMMARS['functions'])})"
            )
        for item in (x for x in items.removeprefix("^").split(",") if x):
            if item.lower() not in known:
                raise ParseError(f"unknown element {item!r} (NCCL knows {', '.join(elements)})")


def closest_name(name: str, extra: tuple[str, ...] = ()) -> str | None:
    """The known NCCL variable a misspelt name most likely meant."""
    close = difflib.get_close_matches(name, sorted(KNOWN_NAMES | set(extra)), n=1, cutoff=0.75)
    return close[0] if close else None


# --------------------------------------------------------------------------------------------
# NCCL_TOPO_FILE: NCCL's topology XML (src/graph/xml.cc; what NCCL_TOPO_DUMP_FILE writes)
# --------------------------------------------------------------------------------------------
#
# <system version="1"><cpu …><pci busid="0000:07:00.0" class="0x030200" …><gpu dev="0" …/>
# </pci><pci busid="0000:0c:00.0" class="0x020700"><nic><net name="mlx5_0" …/></nic></pci>
# A GPU is a <gpu> inside a <pci>, a NIC a <net> inside a <pci> (through <nic>). NCCL's own
# reader is a small tag scanner, not a full XML parser; so is this one: no entities, no DTD.
TOPO_MAX_BYTES = 4 << 20
_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9_]{0,31})([^<>]{0,4096})>")  # linear: no nesting
_ATTR_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]{0,31})\s*=\s*"([^"<>]{0,256})"')
_BUSID_RE = re.compile(r"[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]")


@dataclass(frozen=True)
class TopoFile:
    """The GPUs and NICs a topology file names, by PCI bus id (lower case)."""

    gpus: tuple[str, ...]
    nics: tuple[tuple[str, tuple[str, ...]], ...]  # (bus id, net names)


def parse_topo_xml(text: str) -> TopoFile:
    """The GPUs and NICs of an NCCL topology XML; ParseError when it is not one."""
    if not isinstance(text, str):
        raise ParseError(f"expected topology XML as text, got {type(text).__name__}")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ParseError("topology XML with a DTD or entities: NCCL's reader has none")
    stack: list[tuple[str, dict[str, str]]] = []
    gpus: list[str] = []
    nics: dict[str, list[str]] = {}
    seen_topology = False
    for m in _TAG_RE.finditer(text):
        closing, tag, raw_attrs = m.group(1), m.group(2), m.group(3)
        empty = raw_attrs.rstrip().endswith("/")
        if closing:
            while stack and stack[-1][0] != tag:  # tolerate unclosed children, as NCCL does
                stack.pop()
            if stack:
                stack.pop()
            continue
        attrs = dict(_ATTR_RE.findall(raw_attrs))
        seen_topology |= tag in ("system", "cpu", "pci")
        pci = next((a for t, a in reversed(stack) if t == "pci"), None)
        if tag in ("gpu", "net") and pci is not None:
            busid = pci.get("busid", "")
            if not _BUSID_RE.fullmatch(busid):
                raise ParseError(f"<{tag}> inside a <pci> without a bus id: {busid[:40]!r}")
            if tag == "gpu" and busid.lower() not in gpus:
                gpus.append(busid.lower())
            if tag == "net":
                nics.setdefault(busid.lower(), []).append(attrs.get("name", ""))
        if not empty:
            stack.append((tag, attrs))
        if len(stack) > 64:
            raise ParseError("topology XML nested deeper than 64 elements")
    if not seen_topology:
        raise ParseError("not an NCCL topology XML (no <system>, <cpu> or <pci> element)")
    return TopoFile(tuple(gpus), tuple((b, tuple(n)) for b, n in nics.items()))


# --------------------------------------------------------------------------------------------
# Reading the settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One NCCL_* assignment and where it came from ('environment' or a file path:line)."""

    name: str
    value: str
    source: str


@dataclass(frozen=True)
class ConfFile:
    """A config file NCCL would read, and what it held."""

    path: str
    present: bool
    settings: tuple[Setting, ...] = ()
    error: str | None = None


def parse_conf(text: str, path: str) -> tuple[Setting, ...]:
    """``NAME=VALUE`` lines as NCCL's setEnvFile() reads them (verbatim, first '=' splits)."""
    if not isinstance(text, str):
        raise ParseError(f"expected nccl.conf text, got {type(text).__name__}")
    out = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            continue
        out.append(Setting(name, value, f"{path}:{lineno}"))
    return tuple(out)


@dataclass
class NcclEnv:
    """The NCCL_* settings in effect, the files they came from, and files the settings name."""

    settings: dict[str, Setting]
    shadowed: list[Setting]  # file entries that a higher-precedence source overrides
    files: list[ConfFile]
    topo_file_exists: bool | None  # NCCL_TOPO_FILE: does the file exist (None: not set)
    suspicious_names: list[Setting] = field(default_factory=list)  # names NCCL cannot mean
    topo: TopoFile | None = None  # NCCL_TOPO_FILE parsed
    topo_error: str | None = None  # why NCCL_TOPO_FILE could not be read or parsed

    def get(self, name: str) -> str | None:
        s = self.settings.get(name)
        return s.value if s else None

    @classmethod
    def read(cls, host: Host) -> NcclEnv:
        """Read the environment and the config files in NCCL's precedence order."""
        env = host.env
        named = sorted(env.names_containing("NCCL").items())  # NCCL_*, and names NCCL cannot mean
        sources: list[tuple[Setting, ...]] = [tuple(Setting(k, v, "environment") for k, v in named)]
        files: list[ConfFile] = []
        user_file = env.get("NCCL_CONF_FILE")
        paths = []
        if user_file:
            paths.append(user_file)
        elif env.get("HOME", "").startswith("/"):
            paths.append(env["HOME"].rstrip("/") + "/.nccl.conf")
        paths.append(ETC_NCCL_CONF)
        for path in paths:
            if not path.startswith("/"):
                files.append(ConfFile(path, False, error="not an absolute path"))
                continue
            try:
                text = host.read_text(path)
            except HostReadError as exc:
                files.append(ConfFile(path, True, error=exc.reason))
                continue
            if text is None:
                files.append(ConfFile(path, False))
                continue
            conf = ConfFile(path, True, parse_conf(text, path))
            files.append(conf)
            sources.append(conf.settings)
        settings: dict[str, Setting] = {}
        shadowed: list[Setting] = []
        suspicious: list[Setting] = []
        for source in sources:
            for s in source:
                if not s.name.startswith("NCCL_") and s.name.strip().startswith("NCCL_"):
                    suspicious.append(s)
                if not s.name.startswith("NCCL_"):
                    continue
                if s.name != s.name.strip():
                    suspicious.append(s)
                    continue
                if s.name in settings:
                    shadowed.append(s)
                else:
                    settings[s.name] = s
        topo = settings.get("NCCL_TOPO_FILE")
        topo_exists = None
        parsed: TopoFile | None = None
        topo_error = None
        if topo is not None:
            topo_exists = topo.value.startswith("/") and host.exists(topo.value)
            if topo_exists:
                parsed, topo_error = read_topo_file(host, topo.value)
        return cls(settings, shadowed, files, topo_exists, suspicious, parsed, topo_error)


def read_topo_file(host: Host, path: str) -> tuple[TopoFile | None, str | None]:
    """Parse the file NCCL_TOPO_FILE names: (topology, None) or (None, why not)."""
    try:
        data = host.read_bytes(path, limit=TOPO_MAX_BYTES + 1)
    except HostReadError as exc:
        return None, exc.reason
    if data is None:
        return None, "not found"
    if len(data) > TOPO_MAX_BYTES:
        return None, f"larger than {TOPO_MAX_BYTES >> 20} MiB"
    try:
        return parse_topo_xml(data.decode("utf-8", "replace")), None
    except ParseError as exc:
        return None, str(exc)
