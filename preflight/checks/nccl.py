"""NCCL settings a job on this node would inherit: device lists, debug-only knobs, typos."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.errors import ParseError
from preflight.inventory import Inventory
from preflight.inventory.nccl_env import (
    KNOWN_NAMES,
    MAX_IB_ENTRIES,
    MAX_SOCKET_ENTRIES,
    NOT_NCCL,
    TORCH_ALIASES,
    DeviceList,
    Setting,
    closest_name,
    parse_device_list,
)
from preflight.inventory.rdma import IbPort
from preflight.model import Evidence, Finding, Status, Verdict
from preflight.registry import NoParams, check


def verdict_of(findings: list[Finding], var: str) -> Verdict:
    """Worst of the findings; when all pass, the summary is what the variable selects."""
    ok = next((f.message for f in findings if f.subject == var and f.status is Status.PASS), var)
    return Verdict.from_findings(findings, ok=ok)


def source_of(setting: Setting) -> str:
    """Evidence source: env:NAME, or the config file and line."""
    if setting.source == "environment":
        return f"env:{setting.name}"
    return f"file:{setting.source}"


def judge_entries(
    var: str, parsed: DeviceList, names: list[str], max_entries: int
) -> list[Finding]:
    """Entries that match nothing (typo), and prefixes that catch more than the device they
    name (`mlx5_1` also selects `mlx5_10` … `mlx5_19`)."""
    findings = []
    for entry in parsed.entries:
        hits = parsed.matching(entry, names)
        spec = entry.name + (f":{entry.port}" if entry.port is not None else "")
        if not hits:
            spaced = entry.name != entry.name.strip()
            hint = " (it contains whitespace, which NCCL keeps)" if spaced else ""
            findings.append(
                Finding(
                    var,
                    Status.WARN,
                    f"entry {spec!r} matches no device{hint} (have {', '.join(names) or 'none'})",
                )
            )
        elif not parsed.exact and entry.name in names and len(hits) > 1:
            others = [h for h in hits if h != entry.name]
            findings.append(
                Finding(
                    var,
                    Status.WARN,
                    f"entry {spec!r} is a prefix: it also selects {', '.join(others)}; write "
                    f"'{'^' if parsed.exclude else ''}={parsed.raw.lstrip('^=')}' for exact names",
                )
            )
    if parsed.ignored:
        findings.append(
            Finding(
                var,
                Status.WARN,
                f"NCCL reads at most {max_entries} entries; ignores {', '.join(parsed.ignored)}",
            )
        )
    return findings


def judge_ib_hca(setting: Setting, ports: list[IbPort]) -> list[Finding]:
    """What NCCL_IB_HCA selects among the node's RDMA ports, NCCL's grammar exactly."""
    var = setting.name
    ev = (Evidence(source_of(setting), setting.value, "selects active ports"),)
    try:
        parsed = parse_device_list(setting.value, MAX_IB_ENTRIES)
    except ParseError as exc:
        return [Finding(var, Status.FAIL, f"{setting.value!r} cannot be parsed: {exc}", ev)]
    devices = list(dict.fromkeys(p.device for p in ports))
    selected = [p for p in ports if parsed.selects(p.device, p.num)]
    findings = judge_entries(var, parsed, devices, MAX_IB_ENTRIES)
    if not selected:
        what = "no RDMA device on this node" if not ports else f"devices: {', '.join(devices)}"
        return [
            Finding(
                var,
                Status.FAIL,
                f"{setting.value!r} selects no RDMA port ({what}): NCCL falls back to TCP "
                "sockets or fails at init",
                ev,
            )
        ]
    for p in selected:
        if not p.active:
            findings.append(
                Finding(
                    p.name,
                    Status.FAIL,
                    f"NCCL_IB_HCA={setting.value!r} selects {p.name}, which is {p.state}: "
                    "NCCL skips it",
                    ev,
                )
            )
    layers = sorted({p.link_layer or "?" for p in selected})
    if len(layers) > 1:
        findings.append(
            Finding(
                var,
                Status.WARN,
                f"selects ports of different link layers ({', '.join(layers)}): NCCL cannot "
                "merge them",
                ev,
            )
        )
    active = [p.name for p in selected if p.active]
    findings.append(
        Finding(
            var,
            Status.PASS,
            f"{setting.value!r} selects {len(active)} active ports: " + ", ".join(active),
            ev,
        )
    )
    return findings


@check(
    "nccl.ib_hca",
    title="NCCL_IB_HCA selects active RDMA ports",
    tags=("nccl", "rdma", "env"),
)
def ib_hca(inv: Inventory, params: NoParams) -> Verdict:
    """`NCCL_IB_HCA`, when set, selects active RDMA ports, and only the ones it names.

    ## Why
    NCCL applies the list silently: a typo (`=mlx5_9` on a node with mlx5_0..7), an entry naming
    a down port, or a prefix that catches more than meant (`mlx5_1` also selects `mlx5_10` …
    `mlx5_19`) gives a job that starts and then runs on the wrong NICs, on fewer NICs, or on
    TCP sockets.

    ## Reads
    `NCCL_IB_HCA` from the environment the checks see (`--env`), `$NCCL_CONF_FILE` or
    `~/.nccl.conf`, and `/etc/nccl.conf` (NCCL's precedence); the RDMA ports in
    `/sys/class/infiniband`. Grammar: optional `^` (exclude), optional `=` (exact names),
    comma-separated `hca[:port[:rail[:plane]]]`, at most 32 entries.

    ## Verdicts
    - pass: it selects at least one port, all of them ACTIVE.
    - fail: it cannot be parsed, selects nothing, or selects a port that is not ACTIVE.
    - warn: an entry matches no device; a prefix entry names a device and also selects others;
      selected ports mix link layers; entries past the 32nd.
    - skip: `NCCL_IB_HCA` is not set (NCCL uses every active port).

    ## Fix
    Use exact names with ports (`NCCL_IB_HCA==mlx5_0:1,mlx5_1:1,…`), or leave it unset on
    nodes where every port is for NCCL; fix or exclude the down port.
    """
    setting = inv.nccl.settings.get("NCCL_IB_HCA")
    if setting is None:
        return Verdict.skip("NCCL_IB_HCA not set: NCCL uses every active RDMA port")
    return verdict_of(judge_ib_hca(setting, inv.rdma.ports()), setting.name)


def judge_socket_ifname(setting: Setting, netdevs: dict[str, str | None]) -> list[Finding]:
    """What NCCL_SOCKET_IFNAME selects among the node's interfaces (name -> operstate)."""
    var = setting.name
    ev = (Evidence(source_of(setting), setting.value, "selects interfaces that are up"),)
    try:
        parsed = parse_device_list(setting.value, MAX_SOCKET_ENTRIES)
    except ParseError as exc:
        return [Finding(var, Status.FAIL, f"{setting.value!r} cannot be parsed: {exc}", ev)]
    names = list(netdevs)
    findings = judge_entries(var, parsed, names, MAX_SOCKET_ENTRIES)
    selected = [n for n in names if parsed.selects(n)]
    if not selected:
        return [
            Finding(
                var,
                Status.FAIL,
                f"{setting.value!r} selects no interface (have {', '.join(names) or 'none'}): "
                "NCCL fails with 'no socket interface found'",
                ev,
            )
        ]
    up = [n for n in selected if netdevs[n] in ("up", "unknown")]
    down = [n for n in selected if n not in up]
    if not up:
        findings.append(
            Finding(
                var,
                Status.FAIL,
                "selects only interfaces that are not up: "
                + ", ".join(f"{n} ({netdevs[n]})" for n in down),
                ev,
            )
        )
        return findings
    if down:
        findings.append(
            Finding(
                var,
                Status.WARN,
                "also selects interfaces that are not up: "
                + ", ".join(f"{n} ({netdevs[n]})" for n in down),
                ev,
            )
        )
    findings.append(
        Finding(
            var,
            Status.PASS,
            f"{setting.value!r} selects {', '.join(up)}",
            ev,
        )
    )
    return findings


@check(
    "nccl.socket_ifname",
    title="NCCL_SOCKET_IFNAME selects interfaces that are up",
    tags=("nccl", "network", "env"),
)
def socket_ifname(inv: Inventory, params: NoParams) -> Verdict:
    """`NCCL_SOCKET_IFNAME`, when set, selects network interfaces that exist and are up.

    ## Why
    NCCL bootstraps every job over TCP on the interfaces this variable selects (and uses them
    for data when there is no RDMA). Selecting nothing makes init fail; selecting a down or
    wrong interface makes it hang until the socket retries run out (~60 s by default).

    ## Reads
    `NCCL_SOCKET_IFNAME` (environment, NCCL config files) and `/sys/class/net/*/operstate`.
    Same grammar as `NCCL_IB_HCA` (`^` exclude, `=` exact, prefixes), at most 16 entries.
    IP addresses are not visible in sysfs and are not checked.

    ## Verdicts
    - pass: it selects at least one interface that is up.
    - fail: it cannot be parsed, selects nothing, or only interfaces that are down.
    - warn: it also selects down interfaces; an entry matches nothing; an entry meant as one
      name is a prefix of others (`eth1` also selects `eth10`).
    - skip: not set (NCCL prefers `ib*` interfaces and never picks `lo` or `docker*`).

    ## Fix
    Name the interface exactly (`NCCL_SOCKET_IFNAME==ib0`), or a prefix that selects only the
    intended ones (`^docker,lo`).
    """
    setting = inv.nccl.settings.get("NCCL_SOCKET_IFNAME")
    if setting is None:
        return Verdict.skip("NCCL_SOCKET_IFNAME not set: NCCL picks ib* first, never lo or docker*")
    netdevs = {n: d.operstate for n, d in inv.net.devices.items()}
    return verdict_of(judge_socket_ifname(setting, netdevs), setting.name)


# -- other settings --------------------------------------------------------------------------

# Settings of env.rst's "Debugging" section that break or slow real jobs when left in scripts,
# with the values that mean "NCCL's default" (harmless) and what any other value does.
DEBUG_ONLY: dict[str, tuple[tuple[str, ...], str]] = {
    "NCCL_P2P_DISABLE": (("0",), "disables NVLink/PCIe peer-to-peer between GPUs"),
    "NCCL_SHM_DISABLE": (("0",), "disables the shared-memory transport"),
    "NCCL_IB_DISABLE": (("0",), "disables InfiniBand/RoCE: NCCL falls back to TCP sockets"),
    "NCCL_P2P_LEVEL": ((), "overrides NCCL's GPU-to-GPU peer-to-peer distance policy"),
    "NCCL_NET_GDR_READ": (("1",), "disables GPUDirect RDMA reads"),
    "NCCL_IB_CUDA_SUPPORT": (("1",), "disables GPUDirect RDMA"),
    "NCCL_DMABUF_ENABLE": (("1",), "disables DMA-BUF (GPUDirect RDMA without nvidia-peermem)"),
    "NCCL_ALGO": ((), "forces the collective algorithm"),
    "NCCL_PROTO": ((), "forces the protocol"),
    "NCCL_MAX_NCHANNELS": ((), "overrides NCCL's channel tuning"),
    "NCCL_MIN_NCHANNELS": ((), "overrides NCCL's channel tuning"),
    "NCCL_NTHREADS": ((), "overrides NCCL's thread tuning"),
    "NCCL_BUFFSIZE": ((), "overrides NCCL's buffer size"),
    "NCCL_LL_THRESHOLD": ((), "obsolete protocol threshold"),
    "NCCL_TREE_THRESHOLD": ((), "obsolete algorithm threshold"),
    "NCCL_SINGLE_RING_THRESHOLD": ((), "obsolete ring threshold"),
    "NCCL_NVLS_ENABLE": (("1", "2"), "disables NVLink SHARP (NVLS) all-reduce"),
    "NCCL_PXN_DISABLE": (("0",), "disables PXN (NVLink forwarding to the rail NIC)"),
    "NCCL_NVB_DISABLE": (("0",), "disables NVLink-bridge paths"),
    "NCCL_P2P_DIRECT_DISABLE": (("0",), "disables direct peer access within a process"),
    "NCCL_CHECKS_DISABLE": (("0",), "disables argument checks"),
    "NCCL_CHECK_POINTERS": (("0",), "checks every pointer on each call (slow)"),
    "NCCL_LAUNCH_MODE": ((), "overrides the kernel launch mode"),
    "NCCL_CUMEM_ENABLE": ((), "overrides cuMem usage"),
}


@dataclass(frozen=True)
class EnvParams:
    """allow = NCCL_* names the site sets on purpose; extra_known = plugin variables."""

    allow: tuple[str, ...] = ()
    extra_known: tuple[str, ...] = ()


def judge_setting(
    setting: Setting, roce: bool, topo_exists: bool | None, params: EnvParams
) -> Finding | None:
    """One NCCL_* setting: typo, not-NCCL name, debug-only knob, topology file, GID index."""
    name, value = setting.name, setting.value
    ev = (Evidence(source_of(setting), value),)
    if name in params.allow:
        return Finding(name, Status.PASS, f"set to {value!r}, allowed by the baseline", ev)
    if name in NOT_NCCL:
        return Finding(name, Status.WARN, NOT_NCCL[name], ev)
    if name in TORCH_ALIASES:
        return Finding(
            name,
            Status.PASS,
            f"{name} is read by PyTorch (deprecated spelling of {TORCH_ALIASES[name]})",
            ev,
        )
    if name not in KNOWN_NAMES and name not in params.extra_known:
        close = closest_name(name, params.extra_known)
        hint = f"; did you mean {close}?" if close else ""
        return Finding(name, Status.WARN, f"not a variable NCCL reads{hint}", ev)
    if name in DEBUG_ONLY:
        harmless, effect = DEBUG_ONLY[name]
        if value.strip() in harmless:
            return Finding(name, Status.PASS, f"set to {value!r}, NCCL's default", ev)
        return Finding(
            name,
            Status.WARN,
            f"set to {value!r}: {effect}; a debugging setting, not for production",
            ev,
        )
    if name == "NCCL_NET_GDR_LEVEL" and value.strip().upper() in ("LOC", "0"):
        return Finding(
            name,
            Status.WARN,
            f"set to {value!r}: forces GPUDirect RDMA off; a debugging setting",
            ev,
        )
    if name == "NCCL_TOPO_FILE":
        if not value.startswith("/"):
            return Finding(
                name,
                Status.WARN,
                f"{value!r} is relative: it depends on the job's working directory",
                ev,
            )
        if not topo_exists:
            return Finding(
                name,
                Status.FAIL,
                f"{value!r} does not exist: NCCL warns and detects the topology itself",
                (Evidence(source_of(setting), value, "an existing XML file"),),
            )
    if name == "NCCL_IB_GID_INDEX" and roce:
        return Finding(
            name,
            Status.WARN,
            f"set to {value!r} on RoCE: since NCCL 2.21 the GID is chosen by address family "
            "and RoCE version; a fixed index breaks when addresses change",
            ev,
        )
    return None


@check(
    "nccl.env",
    title="No debug-only, unknown or broken NCCL settings",
    tags=("nccl", "env"),
    params=EnvParams,
)
def env(inv: Inventory, params: EnvParams) -> Verdict:
    """The NCCL settings a job would inherit hold no debug-only knobs, typos or broken paths.

    ## Why
    NCCL's docs: the "Debugging" variables (`NCCL_P2P_DISABLE`, `NCCL_IB_DISABLE`, `NCCL_ALGO`,
    `NCCL_PROTO`, …) "should not be used in production nor retained in scripts": left in a
    profile or `/etc/nccl.conf` they quietly cost bandwidth or disable GPUDirect. A misspelt
    name (`NCCL_IB_HCAS`) is silently ignored, as is `NCCL_TIMEOUT`, which NCCL never had.

    ## Reads
    The environment the checks see (`--env`), `$NCCL_CONF_FILE` or `~/.nccl.conf`,
    `/etc/nccl.conf`, the file `NCCL_TOPO_FILE` names, and the RDMA ports' link layer.

    ## Verdicts
    - pass: no setting of concern (also when none is set).
    - fail: `NCCL_TOPO_FILE` names a file that does not exist.
    - warn: a debug-only setting other than its default; an unknown `NCCL_*` name (with the
      closest known one); `NCCL_IB_GID_INDEX` on RoCE; a config line whose name has
      whitespace; a config file that cannot be read.

    ## Fix
    Remove the setting from the job script, the container image's environment or
    `/etc/nccl.conf`; list deliberate ones in the baseline's `allow`.
    """
    nccl = inv.nccl
    roce = any(p.is_roce for p in inv.rdma.ports()) if nccl.get("NCCL_IB_GID_INDEX") else False
    findings = []
    for setting in nccl.settings.values():
        finding = judge_setting(setting, roce, nccl.topo_file_exists, params)
        if finding is not None:
            findings.append(finding)
    for s in nccl.suspicious_names:
        findings.append(
            Finding(
                s.name.strip(),
                Status.WARN,
                f"{s.source}: NCCL reads the name {s.name!r} with its whitespace: no effect",
                (Evidence(source_of(s), s.value),),
            )
        )
    for f in nccl.files:
        if f.error:
            findings.append(Finding(f.path, Status.WARN, f"cannot read {f.path}: {f.error}"))
    for s in nccl.shadowed:
        findings.append(
            Finding(
                s.name,
                Status.PASS,
                f"{s.source} sets {s.name}={s.value!r}, overridden by "
                f"{nccl.settings[s.name].source}",
            )
        )
    n = len(nccl.settings)
    plural = "s" if n != 1 else ""
    ok = f"{n} NCCL setting{plural}, none of concern" if n else "no NCCL_* settings"
    if not findings:
        findings.append(Finding("node", Status.PASS, ok))
    return Verdict.from_findings(findings, ok=ok)
