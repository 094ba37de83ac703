"""`preflight baselines generate`: what a fleet (or one known-good node) reports → a baseline TOML.

Like nhc-genconf, but from the JSON reports: each fact a strict majority of the group's nodes
agree on is a candidate, and PINS says which facts set which check parameter. A pin whose check
or parameter is not registered is left out, and the TOML is parsed back with the registry before
it is written, so a generated baseline always loads.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from preflight.cluster import figures
from preflight.cluster.aggregate import Fleet
from preflight.cluster.rules import UUID_MASK
from preflight.errors import UsageError
from preflight.inventory import facts as fact_keys
from preflight.model import Scalar
from preflight.registry import Registry
from preflight.wording import count as plural

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

Facts = Mapping[str, Scalar]

BOOT_SPECIFIC = ("BOOT_IMAGE=", "root=", "initrd=", "resume=", "rd.luks.uuid=")
"""Kernel command-line tokens that name this node's own disk or image, not a setting to pin."""


@dataclass(frozen=True)
class Pin:
    """One baseline parameter and the facts its value was read from."""

    check: str
    param: str
    value: Scalar | tuple[Scalar, ...]
    sources: tuple[str, ...]


def majority(fleet: Fleet, group: str) -> tuple[dict[str, Scalar], dict[str, int], int]:
    """Facts that more than half of the group's nodes agree on, how many agree, the group size."""
    members = fleet.groups[group]
    facts: dict[str, Scalar] = {}
    support: dict[str, int] = {}
    for key, values in fleet.facts.get(group, {}).items():
        value, ids = max(values.items(), key=lambda kv: len(kv[1]))
        if 2 * len(ids) > len(members):
            facts[key], support[key] = value, len(ids)
    return facts, support, len(members)


def _devices(facts: Facts) -> dict[str, dict[str, Scalar]]:
    out: dict[str, dict[str, Scalar]] = {}
    for key, value in facts.items():
        if key.startswith(fact_keys.PCI) and key.count(".") >= 3:
            bdf, _, name = key[len(fact_keys.PCI) :].rpartition(".")
            out.setdefault(bdf, {})[name] = value
    return out


def _gpus(devices: dict[str, dict[str, Scalar]]) -> list[str]:
    # The report records bar1_bytes for GPUs only (NVIDIA display/3D controllers).
    return sorted(b for b, d in devices.items() if fact_keys.BAR1_BYTES in d)


def _nics(devices: dict[str, dict[str, Scalar]]) -> list[str]:
    # Mellanox/NVIDIA networking (15b3) endpoints; the switch ports above them run pcieport.
    return sorted(
        b
        for b, d in devices.items()
        if str(d.get(fact_keys.IDS, "")).startswith("15b3:")
        and d.get(fact_keys.DRIVER) != "pcieport"
    )


def _uniform(
    devices: dict[str, dict[str, Scalar]], bdfs: Sequence[str], name: str
) -> tuple[Scalar, tuple[str, ...]] | None:
    values = {devices[b].get(name) for b in bdfs}
    if len(bdfs) == 0 or len(values) != 1 or None in values:
        return None
    return values.pop(), tuple(fact_keys.pci_key(b, name) for b in bdfs)


def _speed(text: Scalar) -> float | None:
    # The report spells link speeds as the kernel does: "32.0 GT/s".
    if isinstance(text, str) and text.endswith(" GT/s"):
        try:
            return float(text[:-5])
        except ValueError:
            return None
    return None


def _gbps(rate: Scalar) -> float | None:
    # sysfs `rate` of an InfiniBand port: "400 Gb/sec (4X NDR)".
    if isinstance(rate, str) and " Gb/sec" in rate:
        try:
            return float(rate.split(" Gb/sec", 1)[0])
        except ValueError:
            return None
    return None


def _rdma(facts: Facts) -> list[Pin]:
    """RDMA pins from `rdma.<dev>.*` and `rdma.<dev>.port<N>.*` facts, and their netdevs' MTU."""
    out: list[Pin] = []
    hca_type = f".{fact_keys.HCA_TYPE}"
    devices = sorted(
        k[len(fact_keys.RDMA) : -len(hca_type)]
        for k in facts
        if k.startswith(fact_keys.RDMA) and k.endswith(hca_type)
    )
    if not devices:
        return out
    out.append(
        Pin(
            "rdma.devices",
            "expected",
            len(devices),
            tuple(fact_keys.rdma_key(d, fact_keys.HCA_TYPE) for d in devices),
        )
    )
    firmware: dict[str, set[Scalar]] = {}
    for d in devices:
        firmware.setdefault(str(facts[fact_keys.rdma_key(d, fact_keys.HCA_TYPE)]), set()).add(
            facts.get(fact_keys.rdma_key(d, fact_keys.FW_VER))
        )
    if firmware and all(len(v) == 1 and None not in v for v in firmware.values()):
        pinned = tuple(f"{hca}={next(iter(v))}" for hca, v in sorted(firmware.items()))
        out.append(
            Pin(
                "rdma.fw_version",
                "pinned",
                pinned,
                tuple(fact_keys.rdma_key(d, fact_keys.FW_VER) for d in devices),
            )
        )
    link_layer = f".{fact_keys.LINK_LAYER}"
    ports = sorted(
        k[: -len(link_layer)]
        for k in facts
        if k.startswith(tuple(fact_keys.rdma_key(d, fact_keys.PORT) for d in devices))
        and k.endswith(link_layer)
    )

    def port_key(port: str, leaf: str) -> str:
        return f"{port}.{leaf}"

    layers = {facts[port_key(p, fact_keys.LINK_LAYER)] for p in ports}
    if len(layers) == 1:
        out.append(
            Pin(
                "rdma.link_layer",
                "expected",
                str(layers.pop()),
                tuple(port_key(p, fact_keys.LINK_LAYER) for p in ports),
            )
        )
    rates = [_gbps(facts.get(port_key(p, fact_keys.RATE))) for p in ports]
    if ports and all(r is not None for r in rates):
        out.append(
            Pin(
                "rdma.port_rate",
                "min_gbps",
                min(r for r in rates if r is not None),
                tuple(port_key(p, fact_keys.RATE) for p in ports),
            )
        )
    for layer, param in (("InfiniBand", "ib_mtu"), ("Ethernet", "eth_mtu")):
        keys = [
            fact_keys.net_key(str(facts[port_key(p, fact_keys.NETDEV)]), fact_keys.MTU)
            for p in ports
            if facts.get(port_key(p, fact_keys.LINK_LAYER)) == layer
            and facts.get(port_key(p, fact_keys.NETDEV))
        ]
        mtus = {facts.get(k) for k in keys}
        if keys and len(mtus) == 1 and isinstance(next(iter(mtus)), int):
            out.append(Pin("net.netdev", param, mtus.pop(), tuple(keys)))
    return out


def _cmdline_tokens(cmdline: str) -> list[str]:
    return [
        t
        for t in cmdline.split()
        if not t.startswith(BOOT_SPECIFIC) and UUID_MASK not in t and "UUID=" not in t
    ]


def pins(facts: Facts) -> list[Pin]:
    """Every parameter the facts can pin, in the order a baseline lists them."""
    out: list[Pin] = []

    def direct(check: str, param: str, key: str, convert: Callable[[Scalar], Scalar]) -> None:
        if facts.get(key) is not None:
            value = convert(facts[key])
            if value is not None:
                out.append(Pin(check, param, value, (key,)))

    devices = _devices(facts)
    gpus, nics = _gpus(devices), _nics(devices)
    for bdfs, count_key, check in (
        (gpus, fact_keys.PCI_GPU_COUNT, "node.gpu_count"),
        (nics, fact_keys.PCI_NIC_COUNT, "node.nic_count"),
    ):
        count = facts.get(count_key)
        if not isinstance(count, int) or count == 0:
            continue
        out.append(Pin(check, "expected", count, (count_key,)))
        if len(bdfs) == count:
            models = tuple(sorted({str(devices[b][fact_keys.IDS]) for b in bdfs}))
            out.append(
                Pin(
                    check,
                    "models",
                    models,
                    tuple(fact_keys.pci_key(b, fact_keys.IDS) for b in bdfs),
                )
            )
    for kind, bdfs in (("gpu", gpus), ("nic", nics)):
        speed = _uniform(devices, bdfs, fact_keys.MAX_LINK_SPEED)
        if speed is not None and _speed(speed[0]) is not None:
            out.append(Pin("pcie.link", f"{kind}_speed_gts", _speed(speed[0]), speed[1]))
        width = _uniform(devices, bdfs, fact_keys.MAX_LINK_WIDTH)
        if width is not None:
            out.append(Pin("pcie.link", f"{kind}_width", width[0], width[1]))
    for kind, bdfs in (("gpu", gpus), ("nic", nics)):
        mrrs = _uniform(devices, bdfs, fact_keys.MAX_READ_REQUEST)
        if mrrs is not None:
            out.append(Pin("pcie.devctl", f"{kind}_max_read_request", mrrs[0], mrrs[1]))
    mps = _uniform(devices, gpus + nics, fact_keys.MAX_PAYLOAD)
    if mps is not None:
        out.append(Pin("pcie.devctl", "max_payload", mps[0], mps[1]))
    ro = _uniform(devices, nics, fact_keys.RELAXED_ORDERING)
    if ro is not None:
        out.append(Pin("pcie.devctl", "nic_relaxed_ordering", ro[0], ro[1]))
    bars = [devices[b].get(fact_keys.BAR1_BYTES) for b in gpus]
    if bars and all(isinstance(b, int) for b in bars):
        smallest = min(b for b in bars if isinstance(b, int))
        out.append(
            Pin(
                "pcie.bar1",
                "min_bar1_gib",
                smallest / 2**30,
                tuple(fact_keys.pci_key(b, fact_keys.BAR1_BYTES) for b in gpus),
            )
        )
    out.extend(_rdma(facts))
    direct(
        "numa.nodes",
        "expected",
        fact_keys.NUMA_NODES,
        lambda v: v if isinstance(v, int) and v else None,
    )
    direct(
        "cpu.smt",
        "expected",
        fact_keys.CPU_SMT_ACTIVE,
        lambda v: v if isinstance(v, bool) else None,
    )
    for param in ("bios_vendor", "bios_version", "product_name"):
        direct("host.bios", param, fact_keys.dmi_key(param), lambda v: str(v) if v else None)
    cmdline = facts.get(fact_keys.KERNEL_CMDLINE)
    if isinstance(cmdline, str) and _cmdline_tokens(cmdline):
        out.append(
            Pin(
                "host.kernel_cmdline",
                "required",
                tuple(_cmdline_tokens(cmdline)),
                (fact_keys.KERNEL_CMDLINE,),
            )
        )
    return out


BUSBW_FLOOR_SHARE = 0.9
"""bench.allreduce.min_busbw_gbps is pinned at this share of the group's median bus bandwidth
(outliers removed first, as SuperBench's baseline generation does): 10 % below its peers fails."""
FIGURE_FLOOR_SHARE = 0.9
"""The active GPU tests' floors likewise: this share of the inlier median of the nodes' figures."""
ACTIVE_FIGURES = (
    # figure (result_figures.from_active_result: each node's median over its GPUs) → check parameter
    ("gpu.copy_bandwidth host→device (GB/s)", "gpu.copy_bandwidth", "min_h2d_gbps"),
    ("gpu.copy_bandwidth device→host (GB/s)", "gpu.copy_bandwidth", "min_d2h_gbps"),
    ("gpu.copy_bandwidth device-local (GB/s)", "gpu.copy_bandwidth", "min_d2d_gbps"),
    ("gpu.p2p_bandwidth copy (GB/s)", "gpu.p2p_bandwidth", "min_gbps"),
    ("gpu.gemm BF16 GEMM (TFLOPS)", "gpu.gemm", "min_tflops"),
    ("gpu.gemm FP8 GEMM (TFLOPS)", "gpu.gemm", "min_fp8_tflops"),
    ("gpu.burn sustained GEMM (TFLOPS)", "gpu.burn", "min_tflops"),
    ("gpu.burn clocks (MHz)", "gpu.burn", "min_sm_mhz"),
)


def _floor_pin(
    f: figures.MetricStats,
    per_node: Mapping[int, tuple[tuple[str, float], ...]],
    members: Sequence[int],
    check: str,
    param: str,
    share: float,
) -> tuple[Pin, str, int]:
    median = figures.inliers_median(f, per_node, members)
    source = f"{f.metric} median {median:g} without {len(f.outliers)} outliers, x{share}"
    return Pin(check, param, round(share * median, 1), (source,)), source, f.count - len(f.outliers)


def figure_pins(fleet: Fleet, group: str) -> tuple[list[Pin], dict[str, int]]:
    """Pins from the group's measured figures, and how many nodes each rests on: the all-reduce
    floor and the active GPU tests' floors, each from the median of the nodes that are not
    outliers."""
    members = fleet.groups[group]
    per_node = {i: fleet.nodes[i].figures for i in members if fleet.nodes[i].figures}
    stats = figures.judge(per_node, {group: members})
    out: list[Pin] = []
    support: dict[str, int] = {}
    busbw = [
        f
        for f in stats
        if f.metric.startswith("bench.allreduce all_reduce ") and f.metric.endswith("(GB/s)")
    ]
    wanted = []
    if len(busbw) == 1:  # none measured, or several gate sizes: nothing says which is the gate
        wanted.append((busbw[0], "bench.allreduce", "min_busbw_gbps", BUSBW_FLOOR_SHARE))
    by_metric = {f.metric: f for f in stats}
    wanted += [
        (by_metric[metric], check, param, FIGURE_FLOOR_SHARE)
        for metric, check, param in ACTIVE_FIGURES
        if metric in by_metric
    ]
    for f, check, param, share in wanted:
        pin, source, nodes = _floor_pin(f, per_node, members, check, param, share)
        out.append(pin)
        support[source] = nodes
    return out, support


def registered(candidates: Sequence[Pin], registry: Registry) -> list[Pin]:
    """The pins whose check and parameter this preflight knows."""
    out = []
    for pin in candidates:
        spec = registry.specs.get(pin.check)
        if spec is not None and pin.param in spec.defaults():
            out.append(pin)
    return out


def _toml(value: Scalar | tuple[Scalar, ...]) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    # A JSON string literal is a valid TOML basic string for the characters facts hold.
    return json.dumps(str(value), ensure_ascii=False)


@dataclass(frozen=True)
class Origin:
    """Where the pinned values came from, for the header and the per-value comments."""

    description: str
    nodes: int
    support: Mapping[str, int]


def to_toml(
    name: str, chosen: Sequence[Pin], facts: Facts, origin: Origin, extends: str | None = None
) -> str:
    """The baseline file: a header saying where it came from, [baseline], then one table a check."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    lines = [
        f"# Generated by `preflight baselines generate` on {now}",
        f"# from {origin.description}.",
        "# Every value is what the nodes reported; the comment says on how many of them. Review",
        "# before use: a value a bad majority shares is pinned too.",
        "[baseline]",
        f"name = {_toml(name)}",
        f"description = {_toml('Pinned from ' + origin.description)}",
    ]
    if extends:
        lines.append(f"extends = {_toml(extends)}")
    by_check: dict[str, list[Pin]] = {}
    for pin in chosen:
        by_check.setdefault(pin.check, []).append(pin)
    match: list[str] = []
    product = facts.get(fact_keys.dmi_key("product_name"))
    if isinstance(product, str) and product:
        match.append(f"product_names = {_toml((product,))}")
    gpu = {p.param: p.value for p in by_check.get("node.gpu_count", [])}
    if "models" in gpu:
        match.append(f"gpu_ids = {_toml(gpu['models'])}")
    if "expected" in gpu:
        match.append(f"gpu_count = {_toml(gpu['expected'])}")
    if match:
        lines += ["", "[baseline.match]", *match]
    for check in sorted(by_check):
        lines += ["", f"[{check}]"]
        for pin in by_check[check]:
            agree = min(origin.support.get(s, origin.nodes) for s in pin.sources)
            where = pin.sources[0] + (f" (+{len(pin.sources) - 1})" if len(pin.sources) > 1 else "")
            of = plural(origin.nodes, "node")
            lines.append(f"{pin.param} = {_toml(pin.value)}  # {where}: {agree:,} of {of}")
    return "\n".join(lines) + "\n"


def pick_group(fleet: Fleet, group: str | None) -> str:
    """The group to pin: the one asked for, or the only one; several and no choice is an error."""
    if group is not None:
        if group not in fleet.groups:
            raise UsageError(
                f"no group {group!r} in the reports (groups: {', '.join(fleet.groups)})"
            )
        return group
    if not fleet.groups:
        raise UsageError("no readable report")
    if len(fleet.groups) > 1:
        sizes = ", ".join(
            f"{g} ({plural(len(m), 'node')})" for g, m in sorted(fleet.groups.items())
        )
        raise UsageError(f"the reports hold several groups: {sizes}; choose one with --group")
    return next(iter(fleet.groups))


def generate(
    fleet: Fleet,
    registry: Registry,
    group: str | None = None,
    name: str | None = None,
    extends: str | None = None,
    source: str = "generated.toml",
) -> str:
    """The baseline TOML for one group's majority (or its only node), checked to load."""
    from preflight import baseline

    group = pick_group(fleet, group)
    facts, support, nodes = majority(fleet, group)
    if nodes == 1:
        record = fleet.nodes[fleet.groups[group][0]]
        description = f"the report of {record.name} ({record.source})"
    else:
        description = f"the majority of {nodes:,} reports (group {group})"
    measured, support_of = figure_pins(fleet, group)
    support.update(support_of)
    chosen = registered([*pins(facts), *measured], registry)
    text = to_toml(
        name or f"fleet-{group}", chosen, facts, Origin(description, nodes, support), extends
    )
    baseline.parse(tomllib.loads(text), registry, source)
    return text
