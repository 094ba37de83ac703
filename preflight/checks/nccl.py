"""NCCL settings a job on this node would inherit: device lists, debug-only knobs, typos."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.errors import ParseError
from preflight.inventory import Inventory
from preflight.inventory.nccl_env import (
    GRAMMARS,
    LEVEL_VARIABLES,
    MAX_IB_ENTRIES,
    MAX_SOCKET_ENTRIES,
    NAMES,
    NCCL_VERSION,
    NOT_NCCL,
    PLUGIN_NAMES,
    TORCH_ALIASES,
    DeviceList,
    Setting,
    TopoFile,
    closest_name,
    parse_algo_list,
    parse_device_list,
    strtoll,
)
from preflight.inventory.rdma import IbPort
from preflight.model import Action, Evidence, Finding, Status, Verdict
from preflight.registry import NoParams, check, param


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
    action=Action.FIX_CONFIG,
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
    action=Action.FIX_CONFIG,
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
    "NCCL_DMABUF_ENABLE": (("1",), "disables DMA-BUF (GPUDirect RDMA without nvidia-peermem)"),
    "NCCL_ALGO": ((), "forces the collective algorithm"),
    "NCCL_PROTO": ((), "forces the protocol"),
    "NCCL_MAX_NCHANNELS": ((), "overrides NCCL's channel tuning"),
    "NCCL_MIN_NCHANNELS": ((), "overrides NCCL's channel tuning"),
    "NCCL_MAX_NRINGS": ((), "overrides NCCL's channel tuning"),
    "NCCL_MIN_NRINGS": ((), "overrides NCCL's channel tuning"),
    "NCCL_NTHREADS": ((), "overrides NCCL's thread tuning"),
    "NCCL_BUFFSIZE": ((), "overrides NCCL's buffer size"),
    "NCCL_NVLS_ENABLE": (("1", "2"), "disables NVLink SHARP (NVLS) all-reduce"),
    "NCCL_PXN_DISABLE": (("0",), "disables PXN (NVLink forwarding to the rail NIC)"),
    "NCCL_NVB_DISABLE": (("0",), "disables NVLink-bridge paths"),
    "NCCL_P2P_DIRECT_DISABLE": (("0",), "disables direct peer access within a process"),
    "NCCL_CHECK_POINTERS": (("0",), "checks every pointer on each call (slow)"),
    "NCCL_LAUNCH_MODE": ((), "overrides the kernel launch mode"),
    "NCCL_CUMEM_ENABLE": ((), "overrides cuMem usage"),
}


@dataclass(frozen=True)
class EnvParams:
    """allow = NCCL_* names the site sets on purpose; extra_known = plugin variables."""

    allow: tuple[str, ...] = param((), "NCCL_* variables the site sets on purpose: not reported.")
    extra_known: tuple[str, ...] = param((), "Variables of NCCL plugins to treat as known names.")


def judge_value(name: str, value: str, kind: str | None, default: str | None) -> Finding | None:
    """A value NCCL would misread or reject, judged with NCCL's own parsing (its source, the
    version in nccl_names.json); None when NCCL reads it as written."""
    ev = (Evidence(f"env:{name}", value),)
    if name in ("NCCL_ALGO", "NCCL_PROTO"):
        elements = GRAMMARS["algorithms" if name == "NCCL_ALGO" else "protocols"]
        try:
            parse_algo_list(value, elements)
        except ParseError as exc:
            return Finding(
                name,
                Status.FAIL,
                f"{value!r}: {exc}: NCCL fails communicator creation (ncclInvalidUsage)",
                ev,
            )
        return None
    if name in LEVEL_VARIABLES:
        if value in GRAMMARS["levels"] or value[:1].isdigit():
            return None
        return Finding(
            name,
            Status.WARN,
            f"{value!r} is ignored: NCCL accepts {', '.join(GRAMMARS['levels'])} "
            "(case-sensitive) or a number",
            ev,
        )
    if name == "NCCL_SOCKET_FAMILY":
        if value in GRAMMARS["socket_families"]:
            return None
        return Finding(
            name,
            Status.WARN,
            f"{value!r} is ignored: NCCL compares it with "
            f"{' or '.join(GRAMMARS['socket_families'])} only",
            ev,
        )
    if kind == "integer" and value != "":
        number, rest = strtoll(value)
        if number is None:
            return Finding(
                name,
                Status.WARN,
                f"{value!r} is out of range: NCCL keeps its default {default}",
                ev,
            )
        if rest.strip(" \t\n\v\f\r") or rest == value:
            return Finding(
                name,
                Status.WARN,
                f"{value!r} is not a number: NCCL reads it as {number} (strtoll)"
                + (f", not as its default {default}" if default != str(number) else ""),
                ev,
            )
    return None


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
    if name in PLUGIN_NAMES:
        return Finding(name, Status.PASS, f"read by {PLUGIN_NAMES[name]}, not by NCCL", ev)
    info = NAMES.get(name)
    if name in params.extra_known and (info is None or info.status == "removed"):
        return None
    if info is None:
        close = closest_name(name, params.extra_known)
        hint = f"; did you mean {close}?" if close else ""
        return Finding(
            name,
            Status.WARN,
            f"not a variable NCCL reads (none of its releases 2.3 to {NCCL_VERSION}){hint}",
            ev,
        )
    if info.status == "removed":
        return Finding(
            name,
            Status.WARN,
            f"NCCL {info.since}–{info.last} read it; NCCL {NCCL_VERSION} ignores it",
            ev,
        )
    bad_value = judge_value(name, value, info.kind, info.default)
    if bad_value is not None:
        return bad_value
    if info.status == "deprecated":
        return Finding(
            name,
            Status.WARN,
            f"set to {value!r}: legacy name NCCL {NCCL_VERSION} still reads, superseded by "
            f"{info.use}",
            ev,
        )
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


def judge_topo_file(
    path: str, topo: TopoFile, gpus: list[str], nics: dict[str, list[str]]
) -> list[Finding]:
    """The GPUs and NICs an NCCL_TOPO_FILE names against this node's, by PCI bus id. NCCL
    trusts the file: a GPU or NIC it names at an address this node does not have is a stale
    file (copied from another node type, or from before a hardware change)."""
    var = "NCCL_TOPO_FILE"
    source = f"file:{path}"
    findings = []
    node_gpus = {g.lower() for g in gpus}
    node_nics = {b.lower(): names for b, names in nics.items()}
    for busid in topo.gpus:
        if busid not in node_gpus:
            findings.append(
                Finding(
                    var,
                    Status.FAIL,
                    f"{path} names a GPU at {busid}, which is no GPU on this node: a stale "
                    "topology file",
                    (Evidence(source, busid, f"one of {', '.join(sorted(node_gpus)) or 'none'}"),),
                )
            )
    for busid, names in topo.nics:
        if busid not in node_nics:
            findings.append(
                Finding(
                    var,
                    Status.FAIL,
                    f"{path} names a NIC at {busid} ({', '.join(names)}), which is no RDMA NIC "
                    "on this node: a stale topology file",
                    (Evidence(source, busid, f"one of {', '.join(sorted(node_nics)) or 'none'}"),),
                )
            )
        elif node_nics[busid] and not set(names) & set(node_nics[busid]):
            findings.append(
                Finding(
                    var,
                    Status.WARN,
                    f"{path}: the NIC at {busid} is {', '.join(node_nics[busid])} here, "
                    f"the file calls it {', '.join(names)}",
                    (Evidence(source, ", ".join(names), ", ".join(node_nics[busid])),),
                )
            )
    missing = sorted(node_gpus - set(topo.gpus)) if topo.gpus else []
    if missing:
        findings.append(
            Finding(
                var,
                Status.WARN,
                f"{path} leaves out {len(missing)} GPUs of this node ({', '.join(missing[:4])})",
            )
        )
    if not findings:
        findings.append(
            Finding(
                var,
                Status.PASS,
                f"{path} matches this node: {len(topo.gpus)} GPUs and {len(topo.nics)} NICs at "
                "their bus ids",
            )
        )
    return findings


@check(
    "nccl.env",
    title="No debug-only, unknown or broken NCCL settings",
    tags=("nccl", "env"),
    params=EnvParams,
    action=Action.FIX_CONFIG,
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
    - fail: `NCCL_TOPO_FILE` names a file that does not exist, or a GPU or NIC at a PCI bus id
      this node does not have (a stale topology file); an `NCCL_ALGO`/`NCCL_PROTO` value NCCL
      rejects (communicator creation fails).
    - warn: a debug-only setting other than its default; an unknown `NCCL_*` name (with the
      closest known one) or one NCCL no longer reads; a legacy name (`NCCL_MIN_NRINGS`); a
      value NCCL misreads (`NCCL_IB_DISABLE=true` is 0, `NCCL_SOCKET_FAMILY=ipv4` and
      `NCCL_NET_GDR_LEVEL=pix` are ignored); `NCCL_IB_GID_INDEX` on RoCE; a config line whose
      name has whitespace; a config file that cannot be read.
    The names, their defaults and value grammars come from NCCL's source
    (`preflight/inventory/nccl_names.json`, made by `tools/nccl_env_names.py`).

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
    topo_path = nccl.get("NCCL_TOPO_FILE")
    if topo_path is not None and nccl.topo is not None:
        pci = inv.pci
        nics = {n.bdf: pci.rdma_pci.get(n.bdf, []) for n in pci.nics()}
        findings.extend(judge_topo_file(topo_path, nccl.topo, [g.bdf for g in pci.gpus()], nics))
    elif topo_path is not None and nccl.topo_error is not None:
        findings.append(
            Finding(
                "NCCL_TOPO_FILE",
                Status.WARN,
                f"cannot check {topo_path} against this node: {nccl.topo_error}",
            )
        )
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
