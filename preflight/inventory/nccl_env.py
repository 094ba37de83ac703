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
import re
from dataclasses import dataclass, field

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
# Names NCCL reads (docs env.rst, System configuration and Debugging sections, NCCL 2.x), for
# telling a typo (NCCL_IB_HCAS, NCCL_SOCKET_IFNAMES) from a real setting.
# --------------------------------------------------------------------------------------------
_KNOWN = """
    NCCL_ALGO NCCL_ALLOC_P2P_NET_LL_BUFFERS NCCL_BUFFSIZE NCCL_CGA_CLUSTER_SIZE
    NCCL_CHECK_POINTERS NCCL_CHECKS_DISABLE NCCL_COLLNET_ENABLE NCCL_COLLNET_NODE_THRESHOLD
    NCCL_COMM_BLOCKING NCCL_COMM_ID NCCL_COMM_SPLIT_SHARE_RESOURCES NCCL_CONF_FILE
    NCCL_CREATE_THREAD_CONTEXT NCCL_CROSS_NIC NCCL_CTA_POLICY NCCL_CUMEM_ENABLE
    NCCL_CUMEM_HOST_ENABLE NCCL_DEBUG NCCL_DEBUG_FILE NCCL_DEBUG_SUBSYS
    NCCL_DEBUG_TIMESTAMP_FORMAT NCCL_DEBUG_TIMESTAMP_LEVELS NCCL_DMABUF_ENABLE
    NCCL_ENV_PLUGIN NCCL_GDRCOPY_ENABLE NCCL_GDRCOPY_FIFO_ENABLE NCCL_GDRCOPY_FLUSH_ENABLE
    NCCL_GDRCOPY_SYNC_ENABLE NCCL_GRAPH_DUMP_FILE NCCL_GRAPH_DUMP_FILE_RANK NCCL_GRAPH_FILE
    NCCL_GRAPH_MIXING_SUPPORT NCCL_GRAPH_REGISTER NCCL_HOSTID NCCL_IB_ADAPTIVE_ROUTING
    NCCL_IB_ADDR_FAMILY NCCL_IB_ADDR_RANGE NCCL_IB_AR_THRESHOLD NCCL_IB_CUDA_SUPPORT
    NCCL_IB_DATA_DIRECT NCCL_IB_DISABLE NCCL_IB_ECE_ENABLE NCCL_IB_FIFO_TC
    NCCL_IB_GDR_FLUSH_DISABLE NCCL_IB_GID_INDEX NCCL_IB_HCA NCCL_IB_MERGE_NICS
    NCCL_IB_MERGE_VFS NCCL_IB_MQP_RETRY_ALL NCCL_IB_MQP_RETRY_CNT NCCL_IB_MQP_RETRY_SLEEP_MSEC
    NCCL_IB_OOO_RQ NCCL_IB_PCI_RELAXED_ORDERING NCCL_IB_PKEY NCCL_IB_QPS_PER_CONNECTION
    NCCL_IB_RETRY_CNT NCCL_IB_RETURN_ASYNC_EVENTS NCCL_IB_ROCE_VERSION_NUM NCCL_IB_SL
    NCCL_IB_SPLIT_DATA_ON_QPS NCCL_IB_TC NCCL_IB_TIMEOUT NCCL_IB_USE_INLINE
    NCCL_IB_DEVICE_PCI_ORDER NCCL_IGNORE_CPU_AFFINITY NCCL_IGNORE_DISABLED_P2P
    NCCL_LAUNCH_MODE NCCL_LAUNCH_ORDER_IMPLICIT NCCL_LAUNCH_RACE_FATAL
    NCCL_LEGACY_CUDA_REGISTER NCCL_LL128_BUFFSIZE NCCL_LL128_NTHREADS NCCL_LL_BUFFSIZE
    NCCL_LL_THRESHOLD NCCL_LOCAL_REGISTER NCCL_MAX_CTAS NCCL_MAX_NCHANNELS
    NCCL_MAX_P2P_NCHANNELS NCCL_MEM_SYNC_DOMAIN NCCL_MIN_CTAS NCCL_MIN_NCHANNELS
    NCCL_MIN_P2P_NCHANNELS NCCL_MNNVL_CLIQUE_ID NCCL_MNNVL_ENABLE NCCL_MNNVL_UUID
    NCCL_NCHANNELS_PER_NET_PEER NCCL_NET NCCL_NET_DISABLE_INTRA NCCL_NET_FORCE_FLUSH
    NCCL_NET_GDR_C2C NCCL_NET_GDR_LEVEL NCCL_NET_GDR_READ NCCL_NET_MERGE_LEVEL
    NCCL_NET_OVERHEAD NCCL_NET_PLUGIN NCCL_NET_SHARED_BUFFERS NCCL_NET_SHARED_COMMS
    NCCL_NO_CACHE NCCL_NSOCKS_PERTHREAD NCCL_NTHREADS NCCL_NVB_DISABLE NCCL_NVB_PRECONNECT
    NCCL_NVLS_CHUNKSIZE NCCL_NVLS_ENABLE NCCL_NVLS_NCHANNELS NCCL_NVLSTREE_MAX_CHUNKSIZE
    NCCL_OOB_NET_ENABLE NCCL_OOB_NET_IFNAME NCCL_P2P_DIRECT_DISABLE NCCL_P2P_DISABLE
    NCCL_P2P_LEVEL NCCL_P2P_LL_THRESHOLD NCCL_P2P_NET_CHUNKSIZE NCCL_P2P_NVL_CHUNKSIZE
    NCCL_P2P_PCI_CHUNKSIZE NCCL_P2P_PXN_LEVEL NCCL_P2P_READ_ENABLE NCCL_P2P_USE_CUDA_MEMCPY
    NCCL_PAT_ENABLE NCCL_PROFILER_PLUGIN NCCL_PROGRESS_APPENDOP_FREQ NCCL_PROTO
    NCCL_PROXY_APPEND_BATCH_SIZE NCCL_PROXY_DUMP_SIGNAL NCCL_PXN_C2C NCCL_PXN_DISABLE
    NCCL_RAS_ADDR NCCL_RAS_ENABLE NCCL_RAS_TIMEOUT_FACTOR NCCL_RUNTIME_CONNECT
    NCCL_SET_STACK_SIZE NCCL_SET_THREAD_NAME NCCL_SHARP_DISABLE NCCL_SHM_DISABLE
    NCCL_SHM_LOCALITY NCCL_SHM_MEMCPY_MODE NCCL_SHM_USE_CUDA_MEMCPY NCCL_SINGLE_RING_THRESHOLD
    NCCL_SOCKET_FAMILY NCCL_SOCKET_IFNAME NCCL_SOCKET_NTHREADS NCCL_SOCKET_RETRY_CNT
    NCCL_SOCKET_RETRY_SLEEP_MSEC NCCL_TOPO_DUMP_FILE NCCL_TOPO_DUMP_FILE_RANK NCCL_TOPO_FILE
    NCCL_TREE_THRESHOLD NCCL_TUNER_CONFIG_FILE NCCL_TUNER_PLUGIN NCCL_UID_STAGGER_RATE
    NCCL_UID_STAGGER_THRESHOLD NCCL_WIN_ENABLE NCCL_WORK_ARGS_BYTES NCCL_WORK_FIFO_BYTES
"""
KNOWN_NAMES = frozenset(_KNOWN.split())
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


def closest_name(name: str, extra: tuple[str, ...] = ()) -> str | None:
    """The known NCCL variable a misspelt name most likely meant."""
    close = difflib.get_close_matches(name, sorted(KNOWN_NAMES | set(extra)), n=1, cutoff=0.75)
    return close[0] if close else None


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

    def get(self, name: str) -> str | None:
        s = self.settings.get(name)
        return s.value if s else None

    @classmethod
    def read(cls, host: Host) -> NcclEnv:
        """Read the environment and the config files in NCCL's precedence order."""
        env = host.env
        sources: list[tuple[Setting, ...]] = [
            tuple(Setting(k, v, "environment") for k, v in sorted(env.items()))
        ]
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
        if topo is not None:
            topo_exists = topo.value.startswith("/") and host.exists(topo.value)
        return cls(settings, shadowed, files, topo_exists, suspicious)
