"""RDMA devices and ports: presence, state, rate, link layer, subnet manager, firmware, error
counters, RoCE GIDs and ECN."""

from __future__ import annotations

import fnmatch
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from preflight.errors import ParseError
from preflight.inventory import Inventory
from preflight.inventory.memory import PreviousCounters, counter_key
from preflight.inventory.rdma import CounterSample, IbDevice, IbPort
from preflight.inventory.rdma_sysfs_text import (
    LID_UNASSIGNED,
    ROCE_V2,
    counter_saturated,
    parse_fw_version,
)
from preflight.model import Action, Evidence, Finding, Status, Verdict, passed
from preflight.registry import check, param

SYSFS = "sysfs:"
NO_IB_DEVICE = "no RDMA device in /sys/class/infiniband (see rdma.devices)"


def ignored(name: str, patterns: Sequence[str]) -> bool:
    """Whether a port (mlx5_8/1) or device (mlx5_8) matches one of the `ignore` globs."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def judged_ports(inv: Inventory, ignore: Sequence[str]) -> list[IbPort]:
    """Every RDMA port not excluded by the check's `ignore` globs."""
    return [p for p in inv.rdma.ports() if not ignored(p.name, ignore)]


def unreadable(port: IbPort, attrs: Iterable[str]) -> Finding | None:
    """An ERROR finding when one of the port's files could not be read or parsed."""
    bad = [a for a in attrs if a in port.errors]
    if not bad:
        return None
    return Finding(
        port.name,
        Status.ERROR,
        f"cannot use {bad[0]}: {port.errors[bad[0]]}",
        tuple(Evidence(SYSFS + f"{port.path}/{a}", None, "readable") for a in bad),
    )


# -- devices ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevicesParams:
    """expected = number of RDMA devices; 0 = one per RDMA-capable NIC function on the bus."""

    expected: int = param(
        0, "RDMA devices expected; unset: one per RDMA-capable NIC function on the bus.", unset=True
    )


def judge_devices(
    nic_functions: list[tuple[str, str]],
    devices: list[tuple[str, str | None]],
    expected: int,
    not_nics: Sequence[tuple[str, str]] = (),
) -> list[Finding]:
    """NIC functions (label, bdf) against RDMA devices (name, bdf) of RDMA NICs; `not_nics` are
    RDMA devices that are no NIC (name, why): listed, never counted."""
    findings = [Finding(name, Status.SKIP, f"not counted: {why}") for name, why in not_nics]
    by_bdf = {bdf: name for name, bdf in devices if bdf}
    for label, bdf in nic_functions:
        if bdf in by_bdf:
            findings.append(Finding(label, Status.PASS, f"RDMA device {by_bdf[bdf]}"))
        else:
            findings.append(
                Finding(
                    label,
                    Status.FAIL,
                    "NIC without an RDMA device: mlx5_ib not loaded, or the port is in a mode "
                    "without RDMA",
                    (Evidence("sysfs:/sys/class/infiniband/*/device", None, f"one for {bdf}"),),
                )
            )
    if expected and len(devices) != expected:
        findings.append(
            Finding(
                "node",
                Status.FAIL,
                f"{len(devices)} RDMA devices, expected {expected}",
                (Evidence("sysfs:/sys/class/infiniband", len(devices), f"== {expected}"),),
            )
        )
    return findings


@check(
    "rdma.devices",
    title="Every RDMA NIC has an RDMA device",
    tags=("rdma",),
    needs=("nic",),
    params=DevicesParams,
    action=Action.FIX_CONFIG,
)
def devices(inv: Inventory, params: DevicesParams) -> Verdict:
    """Every RDMA-capable NIC on the PCI bus has a device in /sys/class/infiniband.

    ## Why
    A ConnectX function whose RDMA driver (mlx5_ib) did not bind is counted by `node.nic_count`
    but invisible to NCCL: it silently uses fewer NICs, or falls back to TCP sockets, and
    inter-node bandwidth collapses without an error.

    ## Reads
    `/sys/class/infiniband/*/device` (the PCI function behind each RDMA device) and the NICs
    found on the PCI bus.

    ## Verdicts
    - pass: each NIC function has an RDMA device (and the count equals `expected` when set).
    - fail: a NIC without an RDMA device, or a different number of devices than `expected`.
    - skip: no RDMA NIC on the node. RDMA devices that are no NIC (Soft-RoCE `rxe` on a netdev,
      a device without a PCI function such as SCIF) are listed as skipped and not counted.

    ## Fix
    `modprobe mlx5_ib` (and `ib_uverbs`); check `dmesg | grep mlx5` for firmware or driver
    errors; a ConnectX in Ethernet mode still needs mlx5_ib for RoCE.
    """
    pci = inv.pci
    nics = [(pci.label(n), n.bdf) for n in pci.nics()]
    devs = [(d.name, d.pci_bdf) for d in inv.rdma.devices.values() if d.is_nic]
    others = [(d.name, not_a_nic(d)) for d in inv.rdma.devices.values() if not d.is_nic]
    return Verdict.from_findings(
        judge_devices(nics, devs, params.expected, others),
        ok=f"{len(devs)} RDMA devices for {len(nics)} NIC functions",
    )


def not_a_nic(dev: IbDevice) -> str:
    """Why an RDMA device is not an RDMA NIC."""
    if dev.software:
        return "software RDMA (Soft-RoCE) on a netdev, not an RDMA NIC"
    return "no PCI function behind this RDMA device (virtual, SCIF or platform device)"


# -- port state ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortStateParams:
    """ignore = globs of ports (mlx5_8/1, mlx5_bond_*) that are allowed to be down."""

    ignore: tuple[str, ...] = param(
        (), "Globs of ports (mlx5_8/1, mlx5_bond_*) allowed to be down."
    )


def judge_port_state(port: IbPort) -> Finding:
    """A port must be 4: ACTIVE and 5: LinkUp."""
    bad = unreadable(port, ("state", "phys_state"))
    if bad:
        return bad
    state = str(port.state) if port.state else "absent"
    phys = str(port.phys_state) if port.phys_state else "absent"
    ev = (
        Evidence(SYSFS + f"{port.path}/state", state, "4: ACTIVE"),
        Evidence(SYSFS + f"{port.path}/phys_state", phys, "5: LinkUp"),
    )
    if port.active and port.link_up:
        return Finding(port.name, Status.PASS, f"{state}, {phys}", ev)
    action = Action.REPLACE
    if port.link_up and port.is_ib:
        why = "link trained but no subnet manager has configured the port"
        action, todo = Action.FIX_CONFIG, f"start a subnet manager for {port.name}'s fabric"
        todo += " (`sminfo`, UFM or opensm) or add its switch to the SM's partition"
    elif port.phys_state is not None and port.phys_state.code == 3:
        why = "port disabled (by the switch, ibportstate or firmware)"
        action, todo = Action.FIX_CONFIG, f"enable {port.name} on the switch (`ibportstate`)"
    elif port.phys_state is not None and port.phys_state.code == 2:
        why = "no link partner (cable, transceiver or switch port)"
        todo = f"reseat or replace the cable and transceiver of {port.name}, then its switch port"
    else:
        why = "port not usable by NCCL, which skips inactive ports"
        todo = f"check the cable of {port.name} and its switch port (`ibportstate`, switch logs)"
    return Finding(
        port.name,
        Status.FAIL,
        f"state {state}, phys_state {phys} (expected 4: ACTIVE, 5: LinkUp): {why}",
        ev,
        action=action,
        action_text=todo,
    )


@check(
    "rdma.port_state",
    title="RDMA ports are ACTIVE with the link up",
    tags=("rdma", "network"),
    needs=("nic",),
    params=PortStateParams,
    action=Action.REPLACE,
    actions=(Action.FIX_CONFIG,),
)
def port_state(inv: Inventory, params: PortStateParams) -> Verdict:
    """Every RDMA port is `4: ACTIVE` with physical state `5: LinkUp`.

    ## Why
    NCCL ignores ports that are not ACTIVE: a down port means its GPUs share another NIC
    (half the bandwidth) or, with `NCCL_IB_HCA` naming it, the job fails at init. A port that
    is LinkUp but stuck in INIT has no subnet manager.

    ## Reads
    `/sys/class/infiniband/<dev>/ports/<n>/{state,phys_state}`.

    ## Verdicts
    - pass: every port (except `ignore`) ACTIVE and LinkUp.
    - fail: a port DOWN, INIT, ARMED, Polling or Disabled, naming `<dev>/<port>` and the state.
    - skip: no RDMA device.

    ## Fix
    Check the cable and the switch port (`ibportstate`, switch logs); Polling means no link
    partner, Disabled an administrative or firmware disable; INIT means no subnet manager
    (`sminfo`). Ports deliberately unused belong in `ignore`.
    """
    ports = judged_ports(inv, params.ignore)
    findings = [judge_port_state(p) for p in ports]
    return Verdict.from_findings(
        findings,
        ok=f"{passed(findings)} ports ACTIVE, LinkUp",
        empty=NO_IB_DEVICE,
    )


# -- rate ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateParams:
    """min_gbps = rate every active port must reach (0: ports of one model must match)."""

    min_gbps: float = param(
        0.0,
        "Rate every active port must reach, Gb/s; unset: ports of one model must match.",
        unset=True,
    )
    ignore: tuple[str, ...] = param((), "Globs of ports (mlx5_8/1, mlx5_bond_*) not judged.")


def judge_rate(port: IbPort, min_gbps: float, peer_gbps: float | None) -> Finding:
    """An active port's rate against the pinned minimum, else against its fastest peers."""
    bad = unreadable(port, ("rate",))
    if bad:
        return bad
    if not port.active:
        return Finding(port.name, Status.SKIP, "port not ACTIVE: rate not judged (see state)")
    if port.rate is None:
        return Finding(port.name, Status.SKIP, "the driver exposes no rate")
    source = SYSFS + f"{port.path}/rate"
    if min_gbps:
        ev = (Evidence(source, str(port.rate), f">= {min_gbps:g} Gb/sec"),)
        if port.rate.gbps < min_gbps:
            return Finding(
                port.name,
                Status.FAIL,
                f"{port.rate}, expected at least {min_gbps:g} Gb/sec",
                ev,
            )
        return Finding(port.name, Status.PASS, str(port.rate), ev)
    if peer_gbps is not None and port.rate.gbps < peer_gbps:
        return Finding(
            port.name,
            Status.WARN,
            f"{port.rate}, slower than the {peer_gbps:g} Gb/sec of the same NIC model",
            (Evidence(source, str(port.rate), f"{peer_gbps:g} Gb/sec like its peers"),),
        )
    return Finding(port.name, Status.PASS, str(port.rate), (Evidence(source, str(port.rate)),))


@check(
    "rdma.port_rate",
    title="RDMA ports run at the expected rate",
    tags=("rdma", "network"),
    needs=("nic",),
    params=RateParams,
    action=Action.REPLACE,
)
def port_rate(inv: Inventory, params: RateParams) -> Verdict:
    """Every active RDMA port runs at least at the expected rate (`400 Gb/sec (4X NDR)`).

    ## Why
    A port that trained at HDR (200 Gb/s) or with fewer lanes halves the bandwidth of every
    GPU that uses it; in a ring or tree all-reduce the whole job then runs at that speed.
    Nothing fails: the job is just slow.

    ## Reads
    `/sys/class/infiniband/<dev>/ports/<n>/rate` (`<Gb/s> Gb/sec (<lanes>X <speed>)`).

    ## Verdicts
    - pass: rate ≥ `min_gbps`; with no minimum pinned, every port as fast as the fastest port
      of the same NIC model and link layer.
    - fail: a port below `min_gbps`.
    - warn: (no minimum pinned) a port slower than its peers.
    - skip: ports that are not ACTIVE (see `rdma.port_state`); no RDMA device.

    ## Fix
    Check the cable and transceiver (an HDR cable on an NDR port trains at HDR), the switch
    port's configured speed, and `mlxlink -d <dev>` for the negotiated lanes.
    """
    ports = judged_ports(inv, params.ignore)
    fastest: dict[tuple[str, str | None], float] = {}
    for p in ports:
        if p.active and p.rate is not None:
            key = (inv.rdma.devices[p.device].model, p.link_layer)
            fastest[key] = max(fastest.get(key, 0.0), p.rate.gbps)
    findings = [
        judge_rate(
            p, params.min_gbps, fastest.get((inv.rdma.devices[p.device].model, p.link_layer))
        )
        for p in ports
    ]
    ok = f"{sum(f.status is Status.PASS for f in findings)} active ports at full rate"
    return Verdict.from_findings(findings, ok=ok, empty=NO_IB_DEVICE)


# -- link layer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkLayerParams:
    """expected = InfiniBand or Ethernet (RoCE); empty = ports of one model must agree."""

    expected: str = param(
        "", "InfiniBand or Ethernet (RoCE); unset: ports of one model must agree.", unset=True
    )
    ignore: tuple[str, ...] = param((), "Globs of ports (mlx5_8/1, mlx5_bond_*) not judged.")


def judge_link_layer(port: IbPort, expected: str, majority: str | None) -> Finding:
    """A port's link layer against the pinned one, else against the other ports of its model."""
    bad = unreadable(port, ("link_layer",))
    if bad:
        return bad
    layer = port.link_layer or "absent"
    source = SYSFS + f"{port.path}/link_layer"
    if expected:
        ev = (Evidence(source, layer, expected),)
        if layer != expected:
            return Finding(port.name, Status.FAIL, f"link layer {layer}, expected {expected}", ev)
        return Finding(port.name, Status.PASS, layer, ev)
    if majority is not None and layer != majority:
        return Finding(
            port.name,
            Status.WARN,
            f"link layer {layer}, unlike the {majority} of its NIC model's other ports",
            (Evidence(source, layer, majority),),
        )
    return Finding(port.name, Status.PASS, layer, (Evidence(source, layer),))


@check(
    "rdma.link_layer",
    title="RDMA ports use the expected link layer (InfiniBand or RoCE)",
    tags=("rdma", "network"),
    needs=("nic",),
    params=LinkLayerParams,
    action=Action.FIX_CONFIG,
)
def link_layer(inv: Inventory, params: LinkLayerParams) -> Verdict:
    """Every RDMA port runs the expected link layer: InfiniBand, or Ethernet for RoCE.

    ## Why
    ConnectX-7 ports can run either protocol (`mlxconfig LINK_TYPE_P1`). A port flipped to
    Ethernet on an InfiniBand fabric never comes up on the IB switch, and NCCL cannot merge
    ports of different link layers ("Attempted to merge incompatible devices").

    ## Reads
    `/sys/class/infiniband/<dev>/ports/<n>/link_layer`.

    ## Verdicts
    - pass: every port on `expected`; with nothing pinned, the ports of each NIC model agree.
    - fail: a port on another link layer than `expected`.
    - warn: (nothing pinned) a port unlike the other ports of its model.
    - skip: no RDMA device.

    ## Fix
    `mlxconfig -d <dev> set LINK_TYPE_P1=1` (IB) or `=2` (Ethernet), then a firmware reset or
    reboot.
    """
    if params.expected and params.expected not in ("InfiniBand", "Ethernet"):
        return Verdict(
            Status.ERROR,
            f"parameter expected={params.expected!r}: use InfiniBand or Ethernet",
        )
    ports = judged_ports(inv, params.ignore)
    layers: dict[str, Counter[str]] = {}
    for p in ports:
        if p.link_layer:
            layers.setdefault(inv.rdma.devices[p.device].model, Counter())[p.link_layer] += 1
    majority = {m: c.most_common(1)[0][0] for m, c in layers.items()}
    findings = [
        judge_link_layer(p, params.expected, majority.get(inv.rdma.devices[p.device].model))
        for p in ports
    ]
    summary = ", ".join(f"{n} {layer}" for layer, n in sum(layers.values(), Counter()).items())
    return Verdict.from_findings(findings, ok=f"ports: {summary}", empty=NO_IB_DEVICE)


# -- subnet manager --------------------------------------------------------------------------


@dataclass(frozen=True)
class SubnetManagerParams:
    """ignore = globs of ports not judged."""

    ignore: tuple[str, ...] = param((), "Globs of ports (mlx5_8/1, mlx5_bond_*) not judged.")


def judge_subnet_manager(port: IbPort) -> Finding:
    """An InfiniBand port with its link up must have a LID and know its subnet manager."""
    bad = unreadable(port, ("lid", "sm_lid", "state"))
    if bad:
        return bad
    if not port.is_ib:
        return Finding(port.name, Status.SKIP, f"{port.link_layer} port: no subnet manager")
    if not port.link_up:
        return Finding(port.name, Status.SKIP, "link down: not judged (see rdma.port_state)")
    lid, sm = port.lid, port.sm_lid
    ev = (
        Evidence(SYSFS + f"{port.path}/lid", f"0x{lid:x}" if lid is not None else None, "assigned"),
        Evidence(SYSFS + f"{port.path}/sm_lid", f"0x{sm:x}" if sm is not None else None, "!= 0x0"),
    )
    problems = []
    if lid is None or lid in LID_UNASSIGNED:
        problems.append("no LID assigned")
    if not sm:
        problems.append("no subnet manager LID")
    if problems:
        return Finding(
            port.name,
            Status.FAIL,
            f"{' and '.join(problems)} (state {port.state}): no subnet manager configured it",
            ev,
        )
    return Finding(port.name, Status.PASS, f"LID 0x{lid:x}, SM LID 0x{sm:x}", ev)


@check(
    "rdma.subnet_manager",
    title="InfiniBand ports have a LID from a subnet manager",
    tags=("rdma", "network"),
    needs=("nic",),
    params=SubnetManagerParams,
    action=Action.FIX_CONFIG,
)
def subnet_manager(inv: Inventory, params: SubnetManagerParams) -> Verdict:
    """Every InfiniBand port with its link up has a LID and a subnet manager LID.

    ## Why
    InfiniBand routes by LIDs that the subnet manager (opensm, UFM) assigns. Without one the
    link trains but the port stays INIT: no queue pair can connect and NCCL fails at init with
    `ibv_modify_qp failed`.

    ## Reads
    `/sys/class/infiniband/<dev>/ports/<n>/{lid,sm_lid,state,phys_state,link_layer}`.

    ## Verdicts
    - pass: LID neither 0x0 nor 0xffff, SM LID non-zero.
    - fail: no LID or no SM LID on an IB port whose link is up.
    - skip: RoCE ports, ports whose link is down, no InfiniBand port.

    ## Fix
    Make sure a subnet manager runs on the fabric (`sminfo`, UFM or `systemctl status opensm`)
    and that this port's switch is in its subnet (partition keys).
    """
    ports = judged_ports(inv, params.ignore)
    findings = [judge_subnet_manager(p) for p in ports]
    return Verdict.from_findings(
        findings,
        ok=f"{passed(findings)} InfiniBand ports with a LID and a subnet manager",
        empty=NO_IB_DEVICE,
    )


# -- firmware --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FwParams:
    """pinned = "VERSION" (every NIC) or "HCA_TYPE=VERSION" (e.g. MT4129=28.41.1000)."""

    pinned: tuple[str, ...] = param(
        (), "Firmware versions: VERSION (every NIC) or HCA_TYPE=VERSION (MT4129=28.41.1000)."
    )


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return parse_fw_version(version)
    except ParseError:
        return ()


def judge_fw(devs: list[IbDevice], pinned: Sequence[str]) -> list[Finding]:
    """Firmware identical across the devices of a model, and equal to the pinned version."""
    pins: dict[str, str] = {}
    for entry in pinned:
        model, sep, version = entry.partition("=")
        pins[model.strip() if sep else "*"] = (version if sep else model).strip()
    by_model: dict[str, list[IbDevice]] = {}
    findings = []
    for d in devs:
        if not d.is_nic:
            findings.append(Finding(d.name, Status.SKIP, f"not judged: {not_a_nic(d)}"))
        else:
            by_model.setdefault(d.model, []).append(d)
    for model, group in by_model.items():
        counts = Counter(d.fw_ver for d in group if d.fw_ver)
        common = max(counts, key=lambda v: (counts[v], _version_key(v))) if counts else None
        pin = pins.get(model, pins.get("*"))
        want = pin or common
        for d in group:
            source = f"sysfs:/sys/class/infiniband/{d.name}/fw_ver"
            if d.fw_ver is None:
                findings.append(unknown_fw(d, source))
                continue
            ev = (Evidence(source, d.fw_ver, want),)
            todo = (
                f"update {d.name} to firmware {want} (`mlxfwmanager -u`), then `mlxfwreset` "
                "or a cold reboot"
            )
            if pin and d.fw_ver != pin:
                msg = f"firmware {d.fw_ver}, pinned {pin} for {model}"
                findings.append(Finding(d.name, Status.FAIL, msg, ev, action_text=todo))
            elif not pin and d.fw_ver != common:
                others = [x.name for x in group if x.fw_ver == common]
                msg = (
                    f"firmware {d.fw_ver} differs from {common} on {len(others)} other {model} "
                    f"NICs ({', '.join(others[:3])}{'…' if len(others) > 3 else ''})"
                )
                findings.append(Finding(d.name, Status.FAIL, msg, ev, action_text=todo))
            else:
                findings.append(Finding(d.name, Status.PASS, f"{model} firmware {d.fw_ver}", ev))
    return findings


def unknown_fw(dev: IbDevice, source: str) -> Finding:
    """A device whose firmware version cannot be known: the driver has none (ib_qib, the rxe and
    siw software providers) or the file could not be read."""
    if "fw_ver" in dev.errors:
        return Finding(
            dev.name,
            Status.WARN,
            f"firmware version unknown: {dev.errors['fw_ver']}",
            (Evidence(source, None, "readable"),),
        )
    return Finding(
        dev.name,
        Status.SKIP,
        "the driver exposes no firmware version (no fw_ver): not compared",
        (Evidence(source, None, None),),
    )


@check(
    "rdma.fw_version",
    title="NIC firmware is identical on all NICs of a model",
    tags=("rdma", "firmware"),
    needs=("nic",),
    params=FwParams,
    action=Action.FIX_CONFIG,
)
def fw_version(inv: Inventory, params: FwParams) -> Verdict:
    """All RDMA NICs of one model run the same firmware, the pinned one if the baseline pins it.

    ## Why
    Firmware decides link training, congestion control and adaptive-routing behaviour. One NIC
    left on an older image after a partial update is a classic source of a slow or flapping
    rank that no other node shows; fleet tools compare it node to node.

    ## Reads
    `/sys/class/infiniband/<dev>/{fw_ver,hca_type}` (`MT4129` = ConnectX-7).

    ## Verdicts
    - pass: every NIC of a model on the same version (equal to `pinned` when set).
    - fail: a NIC on a version other than its model's most common one, or than `pinned`.
    - warn: a device's fw_ver file could not be read.
    - skip: no RDMA device; per device, a driver without a firmware version (ib_qib, rxe,
      siw) or an RDMA device that is no NIC.

    ## Fix
    Update the NIC with the fleet's firmware (`mlxfwmanager -u`, or `flint -d <dev> -i
    <image> burn`), then a firmware reset (`mlxfwreset`) or a cold reboot.
    """
    devs = list(inv.rdma.devices.values())
    versions = sorted({d.fw_ver for d in devs if d.fw_ver and d.is_nic})
    findings = judge_fw(devs, params.pinned)
    return Verdict.from_findings(
        findings,
        ok=f"{passed(findings)} NICs on firmware {', '.join(versions)}",
        empty=NO_IB_DEVICE,
    )


# -- error counters --------------------------------------------------------------------------

LINK_ERROR_COUNTERS = (
    "symbol_error",
    "link_error_recovery",
    "link_downed",
    "port_rcv_errors",
    "local_link_integrity_errors",
    "excessive_buffer_overrun_errors",
    "port_rcv_remote_physical_errors",
)
TRANSPORT_COUNTERS = (
    "port_xmit_discards",
    "rnr_nak_retry_err",
    "packet_seq_err",
    "implied_nak_seq_err",
    "local_ack_timeout_err",
)


@dataclass(frozen=True)
class CountersParams:
    """Thresholds on counters since boot (WARN above), and growth during the run (FAIL)."""

    link_counters: tuple[str, ...] = param(
        LINK_ERROR_COUNTERS, "Physical-link error counters watched."
    )
    max_link_errors: int = param(0, "Link errors since boot per port above which it warns.")
    transport_counters: tuple[str, ...] = param(
        TRANSPORT_COUNTERS, "Transport (hw_counters) error counters watched."
    )
    max_transport_errors: int = param(
        1000, "Transport errors since boot per port above which it warns."
    )
    fail_on_growth: bool = param(True, "Fail when a watched counter grows during the run.")
    window_s: float = param(0.0, "Seconds to wait at least between the two counter samples.")
    ignore: tuple[str, ...] = param((), "Globs of ports (mlx5_8/1, mlx5_bond_*) not judged.")
    # With `run --state`: rates since the previous run of this boot (NVSentinel's rule).
    max_symbol_errors_per_s: float = param(
        10.0,
        "With --state: symbol errors per second since the last run above which the port warns "
        "(NVSentinel: above 10/s the link is degraded).",
    )
    fail_on_link_downed_since_last_run: bool = param(
        True, "With --state: fail when link_downed grew since the last run of this boot."
    )


def judge_since_last_run(
    port_name: str,
    current: Mapping[str, int],
    previous: PreviousCounters,
    max_symbol_errors_per_s: float,
    fail_on_link_downed: bool,
) -> list[Finding]:
    """symbol_error per second and link_downed since the previous run of this boot.

    Symbol errors above `max_symbol_errors_per_s` degrade the link (WARN); any link_downed
    since the last run means the link went down and up again between runs (FAIL). A counter
    lower than last time was reset (`perfquery -R`): no rate from it.
    """
    findings = []
    hours = previous.elapsed_s / 3600
    for name in ("symbol_error", "link_downed"):
        now = current.get(name)
        before = previous.rdma.get(counter_key(port_name, name))
        if now is None or before is None or now < before or previous.elapsed_s <= 0:
            continue
        delta = now - before
        since = f"since the last run ({previous.at}, {previous.elapsed_s:.0f} s ago)"
        evidence = (Evidence(SYSFS + name, f"{before} → {now}", None),)
        if name == "symbol_error":
            per_s = delta / previous.elapsed_s
            if per_s > max_symbol_errors_per_s:
                findings.append(
                    Finding(
                        f"{port_name} symbol_error rate",
                        Status.WARN,
                        f"{delta} symbol errors {since}: {per_s:.3g}/s, {delta / hours:.3g}/h "
                        f"(degraded above {max_symbol_errors_per_s:g}/s)",
                        evidence,
                    )
                )
        elif delta > 0:
            findings.append(
                Finding(
                    f"{port_name} link_downed",
                    Status.FAIL if fail_on_link_downed else Status.WARN,
                    f"link went down {delta} times {since}",
                    evidence,
                )
            )
    return findings


def counter_file(port: IbPort, name: str) -> str | None:
    """counters/<name> (PMA) or hw_counters/<name> (mlx5 Q counters), whichever the port has."""
    for group in ("counters", "hw_counters"):
        if f"{group}/{name}" in port.counters:
            return f"{group}/{name}"
    return None


def judge_counter(
    port_name: str,
    rel: str,
    start: int | None,
    end: int | None,
    limit: int,
    window_s: float,
    fail_on_growth: bool,
    source: str,
) -> Finding | None:
    """One counter: grew during the run (FAIL), saturated or above `limit` since boot (WARN).

    Returns None for a counter that is zero or below its limit and did not grow.
    """
    name = rel.rsplit("/", 1)[-1]
    value = end if end is not None else start
    if value is None:
        return None
    subject = f"{port_name} {name}"
    if start is not None and end is not None and end > start:
        growth = f"{name} grew {start} → {end} (+{end - start}) in {window_s:.2f} s"
        ev = (Evidence(source, f"{start} → {end}", "no growth during the run"),)
        return Finding(subject, Status.FAIL if fail_on_growth else Status.WARN, growth, ev)
    if counter_saturated(name, value):
        return Finding(
            subject,
            Status.WARN,
            f"{name} ≥ {value}: saturated counter (it stopped counting; growth can no longer "
            "be seen until it is reset)",
            (Evidence(source, value, f"<= {limit} since boot"),),
        )
    if value > limit:
        return Finding(
            subject,
            Status.WARN,
            f"{name} = {value} since boot (threshold {limit})",
            (Evidence(source, value, f"<= {limit} since boot"),),
        )
    return None


def judge_port_counters(
    port: IbPort,
    first: CounterSample,
    last: CounterSample,
    params: CountersParams,
) -> list[Finding]:
    """Every watched counter of one port; a PASS finding when none is of concern."""
    window = max(0.0, last.taken_at - first.taken_at)
    watched = [(n, params.max_link_errors) for n in params.link_counters]
    watched += [(n, params.max_transport_errors) for n in params.transport_counters]
    findings: list[Finding] = []
    present = 0
    for name, limit in watched:
        rel = counter_file(port, name)
        if rel is None:
            continue
        start = first.values.get((port.name, rel))
        end = last.values.get((port.name, rel), start)
        if start is None and end is None:
            continue  # N/A (no PMA)
        present += 1
        finding = judge_counter(
            port.name,
            rel,
            start,
            end,
            limit,
            window,
            params.fail_on_growth,
            SYSFS + f"{port.path}/{rel}",
        )
        if finding is not None:
            findings.append(finding)
    if not present:
        na = [r for r, v in port.counters.items() if v is None]
        reason = "N/A (no PMA)" if na else "no error counters exposed"
        return [Finding(port.name, Status.SKIP, f"counters not available: {reason}")]
    if not findings:
        findings.append(
            Finding(
                port.name,
                Status.PASS,
                f"{present} error counters within limits, none grew in {window:.2f} s",
            )
        )
    return findings


@check(
    "rdma.counters",
    title="RDMA error counters are low and do not grow",
    tags=("rdma", "network", "counters"),
    needs=("nic",),
    params=CountersParams,
    final=True,
    action=Action.REPLACE,
    warn_action=Action.MONITOR,
)
def counters(inv: Inventory, params: CountersParams) -> Verdict:
    """RDMA error counters are below their thresholds since boot, and none grows during the run.

    ## Why
    NCCL's troubleshooting guide: non-zero `SymbolErrorCounter`, `LinkErrorRecoveryCounter`
    or `LinkDownedCounter` "may indicate hardware or cabling problems"; retransmission
    counters (`packet_seq_err`, `local_ack_timeout_err`, …) "increasing while a test is
    running" point at a bad link or congestion. A marginal cable makes one rank slow or drop
    out mid-job; counters are the only early sign.

    ## Reads
    `/sys/class/infiniband/<dev>/ports/<n>/counters/*` (PMA) and `hw_counters/*` (mlx5), twice:
    when the run starts (the runner samples before the first check) and again when this check
    runs, after all others. `window_s` makes it wait until that many seconds have passed since
    the first sample. With `run --state DIR`, also the previous run's values (same boot),
    which turn since-boot counts into rates. Saturated 4/8/16-bit counters (`link_downed` 255,
    `port_xmit_discards` 65535) and `N/A (no PMA)` are recognized.

    ## Verdicts
    - pass: every watched counter at or below its threshold and unchanged during the run.
    - fail: a counter grew between the two samples (`fail_on_growth`); with `run --state`,
      `link_downed` grew since the previous run of this boot
      (`fail_on_link_downed_since_last_run`).
    - warn: `link_counters` above `max_link_errors`, or `transport_counters` above
      `max_transport_errors`, since boot; a saturated counter; with `run --state`, more than
      `max_symbol_errors_per_s` symbol errors per second since the previous run (NVSentinel
      degrades a link above 10/s).
    - skip: no RDMA device; ports without a PMA.

    ## Fix
    Reseat or replace the cable/transceiver of the port named (`mlxlink -d <dev> -m -c` shows
    BER and lane errors), check the switch port's counters, then reset the counters
    (`perfquery -x -R <lid> <port>`) so the next run starts from zero.
    """
    ports = judged_ports(inv, params.ignore)
    rdma = inv.rdma
    first = rdma.first_sample
    wait = params.window_s - (time.monotonic() - first.taken_at)
    if wait > 0:
        time.sleep(wait)
    watched = set(params.link_counters) | set(params.transport_counters)
    keys = [
        k
        for k in first.values
        if k[1].rsplit("/", 1)[-1] in watched and not ignored(k[0], params.ignore)
    ]
    last = rdma.resample(keys)
    findings = [f for p in ports for f in judge_port_counters(p, first, last, params)]
    previous = inv.memory.previous
    if previous is not None:
        for port in ports:
            current = {
                rel.rsplit("/", 1)[-1]: v
                for (name, rel), v in last.values.items()
                if name == port.name and v is not None
            }
            findings += judge_since_last_run(
                port.name,
                current,
                previous,
                params.max_symbol_errors_per_s,
                params.fail_on_link_downed_since_last_run,
            )
    window = last.taken_at - first.taken_at
    return Verdict.from_findings(
        findings,
        ok=f"{len({f.subject for f in findings if f.status is Status.PASS})} ports: error counters "
        f"low, none grew in {window:.2f} s",
        empty=NO_IB_DEVICE,
    )


# -- RoCE ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoceGidParams:
    """ignore = globs of ports not judged."""

    ignore: tuple[str, ...] = param((), "Globs of ports (mlx5_8/1, mlx5_bond_*) not judged.")


def judge_roce_gid(port: IbPort, address_family: str | None) -> Finding:
    """A RoCE port needs a RoCE v2 GID on its netdev (with an IPv4 address, NCCL's default)."""
    netdev = port.netdev
    v2 = [g for g in port.gids if g.type == ROCE_V2 and (netdev is None or g.ndev == netdev)]
    source = SYSFS + f"{port.path}/gid_attrs/types"
    listing = ", ".join(f"{g.index}:{g.type or '?'}@{g.ndev or '-'}" for g in port.gids) or "none"
    if not v2:
        return Finding(
            port.name,
            Status.FAIL,
            f"no RoCE v2 GID bound to {netdev or 'a netdev'}: the interface has no IP address, "
            "or RoCE v2 is off",
            (Evidence(source, listing, f"a RoCE v2 entry on {netdev or 'the port netdev'}"),),
        )
    want_v6 = (address_family or "AF_INET") == "AF_INET6"
    usable = [g for g in v2 if (g.ipv4 is None) == want_v6]
    if not usable:
        family = "IPv6" if want_v6 else "IPv4"
        return Finding(
            port.name,
            Status.WARN,
            f"RoCE v2 GIDs on {netdev} but none with an {family} address, which NCCL selects by "
            "default (NCCL_IB_ADDR_FAMILY)",
            (Evidence(source, listing, f"a RoCE v2 {family} GID"),),
        )
    g = usable[0]
    addr = g.ipv4 or g.gid
    return Finding(
        port.name,
        Status.PASS,
        f"RoCE v2 GID {g.index} ({addr}) on {g.ndev}",
        (Evidence(source, listing, "a RoCE v2 entry"),),
    )


@check(
    "rdma.roce_gid",
    title="RoCE ports have a RoCE v2 GID on their interface",
    tags=("rdma", "roce", "network"),
    needs=("nic",),
    params=RoceGidParams,
    action=Action.FIX_CONFIG,
)
def roce_gid(inv: Inventory, params: RoceGidParams) -> Verdict:
    """Every active RoCE port has a RoCE v2 GID on its netdev, of the address family NCCL uses.

    ## Why
    RoCE addresses peers by GID: an entry exists per IP address of the netdev and RoCE version.
    Without an IP on the interface there is no v2 GID, and NCCL fails with
    `ibv_modify_qp failed with error Invalid argument` or falls back to RoCE v1, which is not
    routable. Since NCCL 2.21 the GID index is picked from `NCCL_IB_ADDR_FAMILY`
    (default IPv4) and `NCCL_IB_ROCE_VERSION_NUM` (default 2).

    ## Reads
    `/sys/class/infiniband/<dev>/ports/<n>/{gids,gid_attrs/types,gid_attrs/ndevs}/<i>`,
    `/sys/class/infiniband/<dev>/device/net`, and `NCCL_IB_ADDR_FAMILY`.

    ## Verdicts
    - pass: a RoCE v2 GID on the port's netdev, of the selected address family.
    - fail: no RoCE v2 GID on the netdev.
    - warn: RoCE v2 GIDs, but none of the address family NCCL selects.
    - skip: no active RoCE (Ethernet link layer) port.

    ## Fix
    Give the interface its IP address (netplan/NetworkManager), make sure RoCE v2 is enabled
    (`cma_roce_mode -d <dev> -p 1 -m 2`), and check `show_gids`.
    """
    family = inv.nccl.get("NCCL_IB_ADDR_FAMILY")
    ports = [p for p in judged_ports(inv, params.ignore) if p.is_roce and p.active]
    findings = [judge_roce_gid(p, family) for p in ports]
    return Verdict.from_findings(
        findings,
        ok=f"{passed(findings)} RoCE ports with a RoCE v2 GID",
        empty="no active RoCE (Ethernet link layer) port",
    )


@dataclass(frozen=True)
class RoceEcnParams:
    """priority = the lossless RoCE priority; required = the node type runs RoCE with DCQCN."""

    priority: int = param(3, "The lossless RoCE priority (PFC and ECN on it).")
    required: bool = param(False, "The node type runs RoCE with DCQCN: ECN must be on.")
    ignore: tuple[str, ...] = param((), "Globs of ports (mlx5_8/1, mlx5_bond_*) not judged.")


def judge_ecn(
    subject: str, netdev: str, ecn: dict[str, dict[int, int]] | None, priority: int, required: bool
) -> Finding:
    """ECN notification and reaction point enabled on the RoCE priority."""
    if ecn is None:
        return Finding(
            subject,
            Status.SKIP,
            f"{netdev}: the driver exposes no ECN settings in sysfs (inbox mlx5: see mlnx_qos)",
        )
    problems = []
    evidence = []
    for role in ("roce_np", "roce_rp"):
        value = ecn.get(role, {}).get(priority)
        evidence.append(
            Evidence(f"sysfs:/sys/class/net/{netdev}/ecn/{role}/enable/{priority}", value, "1")
        )
        if value != 1:
            problems.append(f"{role} {'absent' if value is None else value}")
    if problems:
        return Finding(
            subject,
            Status.FAIL if required else Status.WARN,
            f"{netdev}: ECN off on priority {priority} ({', '.join(problems)}): DCQCN cannot "
            "slow senders down, congestion becomes PFC pauses and drops",
            tuple(evidence),
        )
    return Finding(
        subject, Status.PASS, f"{netdev}: ECN on for priority {priority}", tuple(evidence)
    )


@check(
    "rdma.roce_ecn",
    title="RoCE ports have ECN on the lossless priority",
    tags=("rdma", "roce", "network"),
    needs=("nic",),
    params=RoceEcnParams,
    action=Action.FIX_CONFIG,
)
def roce_ecn(inv: Inventory, params: RoceEcnParams) -> Verdict:
    """ECN is enabled on the RoCE priority of every RoCE port, where the driver exposes it.

    Both halves of DCQCN: the notification point (marks CNPs) and the reaction point.

    ## Why
    RoCE needs congestion control: with ECN off, congested switches can only pause (PFC) or
    drop, which spreads head-of-line blocking across the fabric and shows as retransmits and
    stalls in all-reduce at scale.

    ## Reads
    `/sys/class/net/<if>/ecn/roce_np/enable/<prio>` and `ecn/roce_rp/enable/<prio>` (mlx5 with
    MLNX_OFED) of the netdev of every active RoCE port.

    ## Verdicts
    - pass: both enabled (`1`) on `priority`.
    - fail: (`required`) either is off.
    - warn: either is off and the baseline does not require RoCE congestion control.
    - skip: no active RoCE port; the driver exposes no ECN files.

    ## Fix
    `echo 1 > /sys/class/net/<if>/ecn/roce_np/enable/<prio>` and the same for `roce_rp`
    (persist with the NIC's boot scripts), and match the switch's ECN/PFC configuration.
    """
    if not 0 <= params.priority <= 7:
        return Verdict(Status.ERROR, f"parameter priority={params.priority}: use 0..7")
    net = inv.net
    findings = []
    for p in judged_ports(inv, params.ignore):
        if not (p.is_roce and p.active):
            continue
        if p.netdev is None:
            findings.append(Finding(p.name, Status.SKIP, "no netdev (see net.netdev)"))
            continue
        dev = net.devices.get(p.netdev)
        findings.append(
            judge_ecn(p.name, p.netdev, dev.ecn if dev else None, params.priority, params.required)
        )
    return Verdict.from_findings(
        findings,
        ok=f"ECN on priority {params.priority} on {passed(findings)} RoCE ports",
        empty="no active RoCE (Ethernet link layer) port",
    )
