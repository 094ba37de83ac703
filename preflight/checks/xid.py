"""GPU Xid errors in the kernel log of the current boot, judged by NVIDIA's action catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from preflight.inventory import Inventory
from preflight.inventory.memory import XidMark
from preflight.inventory.xid import ACTION_TEXT, DRAIN, IGNORE, RESTART_APP, XidEvent
from preflight.model import Action, Evidence, Finding, Status, Verdict
from preflight.registry import check, param
from preflight.remediation import LOG_ACTION_CLASS, log_action_text
from preflight.wording import count

SOURCE = "kmsg"


@dataclass(frozen=True)
class XidParams:
    """Xid numbers to leave out entirely (e.g. a known-benign one on this fleet)."""

    ignore: tuple[int, ...] = param(
        (), "Xid numbers to leave out entirely (a known-benign one on this fleet)."
    )


def acknowledged(events: list[XidEvent], marks: Mapping[str, XidMark]) -> list[bool]:
    """Per event: at or before its GPU's acknowledgement (`preflight ack`).

    An event with a dmesg stamp is acknowledged when it is not newer than the newest Xid the
    operator saw; one without a stamp when it is among the first `count` lines of its GPU.
    """
    seen: dict[str, int] = {}
    out = []
    for event in events:
        position = seen.get(event.bdf, 0)
        seen[event.bdf] = position + 1
        mark = marks.get(event.bdf)
        if mark is None:
            out.append(False)
        elif event.timestamp_s is not None and mark.timestamp_s is not None:
            out.append(event.timestamp_s <= mark.timestamp_s)
        else:
            out.append(position < mark.count)
    return out


def judge_acknowledged(
    events: list[XidEvent], labels: dict[str, str], marks: Mapping[str, XidMark]
) -> list[Finding]:
    """One PASS finding per GPU whose Xids an operator acknowledged: when and by whom."""
    by_gpu: dict[str, list[XidEvent]] = {}
    for event in events:
        by_gpu.setdefault(event.bdf, []).append(event)
    findings = []
    for bdf, items in sorted(by_gpu.items()):
        mark = marks[bdf]
        kinds = ", ".join(sorted({e.label for e in items}))
        findings.append(
            Finding(
                labels.get(bdf, f"PCI {bdf}"),
                Status.PASS,
                f"{count(len(items), 'Xid line')} ({kinds}) acknowledged by {mark.by} at "
                f"{mark.at} (preflight ack): not counted",
                tuple(Evidence(SOURCE, e.line, "acknowledged") for e in items[-3:]),
            )
        )
    return findings


def judge_xids(
    events: list[XidEvent], labels: dict[str, str], ignore: tuple[int, ...]
) -> list[Finding]:
    """One finding per (GPU, Xid): drain classes FAIL, application and unknown Xids WARN,
    informational ones PASS. A no-Xid "fallen off the bus" message counts only when the GPU
    logged no Xid 79 for it."""
    groups: dict[tuple[str, int], list[XidEvent]] = {}
    fell_off = {e.bdf for e in events if e.xid == 79}
    for event in events:
        if event.xid is None:
            if event.bdf in fell_off:
                continue
        elif event.xid in ignore:
            continue
        key = (event.bdf, -1 if event.xid is None else event.xid)
        groups.setdefault(key, []).append(event)
    findings = []
    for (bdf, _), items in sorted(groups.items()):
        last = items[-1]
        # Xid 154's action depends on its text; the last line is the GPU's current state.
        action = last.action
        if action in DRAIN:
            status = Status.FAIL
        elif action == IGNORE:
            status = Status.PASS
        else:
            status = Status.WARN
        times = f" {len(items)} times" if len(items) > 1 else ""
        head = f"{last.label}{times} ({last.meaning})"
        if last.xid is None:
            message = f"{last.meaning}{times}: {ACTION_TEXT[action]}; replace it if it recurs"
        elif action == RESTART_APP:
            message = f"{head}: application error; {ACTION_TEXT[action]}"
        else:
            message = f"{head}: {ACTION_TEXT[action]}"
        if last.gpu_instance is not None:
            message += f" (MIG GPU instance {last.gpu_instance})"
        evidence = tuple(Evidence(SOURCE, e.line, "no Xid of this class") for e in items[-3:])
        subject = labels.get(bdf, f"PCI {bdf}")
        findings.append(
            Finding(
                subject,
                status,
                message,
                evidence,
                action=LOG_ACTION_CLASS[action],
                action_text=log_action_text(action, subject, bdf),
            )
        )
    return findings


@check(
    "xid.events",
    title="No GPU Xid that calls for a reset or reboot since boot",
    tags=("gpu", "kernel"),
    params=XidParams,
    action=Action.RESET_GPU,
    actions=(Action.REBOOT, Action.REPLACE, Action.RESTART_JOB, Action.MONITOR),
)
def events(inv: Inventory, params: XidParams) -> Verdict:
    """No GPU logged an Xid since boot whose NVIDIA-prescribed action is a GPU reset or reboot.

    ## Why
    The driver logs every GPU fault as an Xid. Some leave the GPU unusable or untrustworthy
    until it is reset or the node rebooted (79 fallen off the bus, 48/95 uncorrectable memory
    errors, 74 and fatal 144-150 NVLink, 119/120 GSP timeouts, 154 with a reset or reboot
    action, a GPU that fell off the bus without an Xid); a node that
    logged one must not take the next job. Application Xids (13, 31, 45) are the job's own
    faults but worth knowing.

    ## Reads
    The kernel log of the current boot (`/dev/kmsg`), lines
    `NVRM: Xid (PCI:0000:5d:00): 79, ...` (also with a MIG `GPU-I:`/`GPU-CI:` attribution, or
    without `PCI:` from old drivers), attributed to the GPU by PCI address and mapped to the
    action class of NVIDIA's Xid catalogue (reset GPU / reboot / drain for service / restart app
    / ignore); NVLink5 Xids 144-150 by the severity word in the line. Also the driver's
    "The NVIDIA GPU 0000:b3:00.0 ... has fallen off the bus" messages that carry no Xid.
    With `run --state DIR`, the operator's acknowledgements (`preflight ack`) from DIR.

    ## Verdicts
    - pass: no Xid, or only informational ones (43, 63, 92, non-fatal 144-150, 154 back to
      None), or only Xids an operator acknowledged with `preflight ack` after servicing the GPU
      (the finding names who and when; a newer Xid counts again).
    - fail: an Xid whose action is to reset the GPU, reboot the node or service it (an Xid the
      catalogue calls unused: contact support), or a GPU that fell off the bus without an Xid.
    - warn: an application Xid (restart the app), or an Xid this catalogue does not know.
    - skip: the kernel log is not readable (`kernel.dmesg_restrict=1` without root).

    ## Fix
    Drain the node; reset the GPU (`nvidia-smi -r -i N`) or reboot as the Xid asks; collect
    `nvidia-bug-report.sh` first. After a GPU reset the old Xid stays in the kernel log until
    reboot: `preflight ack --gpu BDF --state DIR` records that it was dealt with (runs with
    `--state DIR` then pass it). Repeated Xids on one GPU after a reset: replace it.
    """
    log = inv.xid
    if not log.readable:
        return Verdict.skip(
            "kernel log not readable (kernel.dmesg_restrict=1 and not root): Xids unknown"
        )
    labels = {}
    for bdf, dev in inv.pci.devices.items():
        if dev.is_gpu:
            labels[bdf] = inv.pci.label(dev)
    marks = inv.memory.xid_marks
    acked = acknowledged(list(log.events), marks)
    events = [e for e, a in zip(log.events, acked, strict=True) if not a]
    findings = judge_xids(events, labels, params.ignore)
    findings += judge_acknowledged(
        [e for e, a in zip(log.events, acked, strict=True) if a], labels, marks
    )
    ignored = [e.xid for e in events if e.xid is not None and e.xid in params.ignore]
    lines = count(log.lines, "kernel log line")
    # An ignored Xid is still said: "no Xid" would hide that the log holds one.
    said = ""
    if ignored:
        said = f"{count(len(ignored), 'Xid')} ignored ({', '.join(map(str, sorted(set(ignored))))})"
    return Verdict.from_findings(
        findings,
        ok=f"no Xid needing action in {lines} since boot" + (f"; {said}" if said else ""),
        empty=f"{said} in {lines} since boot" if said else f"no Xid in {lines} since boot",
        empty_status=Status.PASS,
    )
