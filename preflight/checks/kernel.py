"""Kernel log events beyond GPU Xids, judged by the action class of their catalogue row."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.inventory import Inventory
from preflight.inventory.kernel_events import KernelEvent
from preflight.inventory.log_actions import ACTION_TEXT, DRAIN, IGNORE
from preflight.model import Action, Evidence, Finding, Status, Verdict
from preflight.registry import check, param
from preflight.remediation import LOG_ACTION_CLASS, log_action_text

SOURCE = "kmsg"


@dataclass(frozen=True)
class KernelEventsParams:
    """Catalogue rows to leave out entirely (e.g. `kernel.hung_task` on a fleet that tolerates
    it), by id."""

    ignore: tuple[str, ...] = param(
        (), "Catalogue ids to leave out entirely (kernel.hung_task on a fleet that tolerates it)."
    )


def judge_kernel_events(
    events: list[KernelEvent], labels: dict[str, str], ignore: tuple[str, ...]
) -> list[Finding]:
    """One finding per (row, subject): drain classes FAIL, informational rows PASS, the rest
    WARN."""
    groups: dict[tuple[str, str], list[KernelEvent]] = {}
    for event in events:
        if event.pattern not in ignore:
            groups.setdefault((event.pattern, event.subject), []).append(event)
    findings = []
    for (pattern, subject), items in sorted(groups.items()):
        last = items[-1]
        if last.action in DRAIN:
            status = Status.FAIL
        elif last.action == IGNORE:
            status = Status.PASS
        else:
            status = Status.WARN
        times = f" {len(items)} times" if len(items) > 1 else ""
        message = f"{pattern}{times}: {last.meaning}; {ACTION_TEXT[last.action]}"
        evidence = tuple(Evidence(SOURCE, e.line, "no such line") for e in items[-3:])
        name = labels.get(subject, subject) if subject else "node"
        findings.append(
            Finding(
                name,
                status,
                message,
                evidence,
                action=LOG_ACTION_CLASS[last.action],
                action_text=log_action_text(last.action, name),
            )
        )
    return findings


@check(
    "kernel.events",
    title="No kernel log event since boot that calls for a drain",
    tags=("kernel",),
    params=KernelEventsParams,
    action=Action.REBOOT,
    actions=(Action.REPLACE, Action.RESET_GPU, Action.MONITOR, Action.RESTART_JOB),
)
def events(inv: Inventory, params: KernelEventsParams) -> Verdict:
    """No NVSwitch, NIC, PCIe, memory or disk fault since boot that calls for a drain.

    ## Why
    Faults outside the GPU end training runs as surely as an Xid: a fatal NVSwitch SXid stalls
    every GPU behind the switch, a bad cable or transceiver drops an InfiniBand port, a fatal
    PCIe error resets a link, an uncorrectable DIMM error or a failing local disk crashes the
    job or corrupts its checkpoint. The kernel log of the current boot is the one place all of
    them show up, often long before a counter does.

    ## Reads
    The kernel log of the current boot (`/dev/kmsg`), matched against one catalogue of line
    shapes (`preflight.inventory.kernel_events.PATTERNS`, from the code that prints them):
    `nvidia-nvswitchN: SXid (PCI:...): N, Fatal|Non-fatal|Severity N`, mlx5
    `Port module event[error]`, insufficient slot power, firmware health and a `Link down`
    after `Link up` (a flap), `PCIe Bus Error: severity=...` and AER recovery, `available PCIe
    bandwidth, limited by`, `EDAC MCn: N UE|CE`, `[Hardware Error]: event severity:`, memory
    failures, `blocked for more than N seconds`, soft lockups and RCU stalls, block and NVMe
    I/O errors and controller resets, file systems remounted read-only.

    ## Verdicts
    - pass: no catalogued event, or only informational ones (corrected PCIe or memory errors,
      non-fatal SXids).
    - fail: an event whose action is a GPU reset, a reboot or a drain for service (fatal SXid
      or AER, cable/module error, uncorrectable memory error, disk I/O error, ...).
    - warn: an event to look into (link flap, hung task, non-fatal uncorrectable PCIe error,
      downtrained link, NVMe timeout) or an SXid without a severity word.
    - skip: the kernel log is not readable (`kernel.dmesg_restrict=1` without root).

    ## Fix
    Act on the finding's action: reseat or replace the cable/module or DIMM named, replace the
    disk, reboot after a fatal SXid or PCIe error (run the vendor's diagnostics first); a
    hung task or link flap points at the device it names. `ignore` leaves out a row by id.
    """
    log = inv.kernel_events
    if not log.readable:
        return Verdict.skip("kernel log not readable (kernel.dmesg_restrict=1 and not root)")
    labels = {bdf: inv.pci.label(dev) for bdf, dev in inv.pci.devices.items()}
    findings = judge_kernel_events(list(log.events), labels, params.ignore)
    return Verdict.from_findings(
        findings,
        ok=f"no kernel event needing action in {log.lines} kernel log lines since boot",
        empty=f"no catalogued kernel event in {log.lines} kernel log lines since boot",
        empty_status=Status.PASS,
    )
