"""What a run takes from the state directory (counters of this boot, Xid acknowledgements) and
what it leaves there (its counters and outcome); the lemon-node judgement over the history."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from preflight.host import Host
from preflight.inventory import Inventory
from preflight.inventory.inventory import PartHung
from preflight.inventory.memory import PreviousCounters, RunMemory, XidMark, counter_key
from preflight.model import CheckResult, Finding, Report, Status
from preflight.stages import HISTORY as HISTORY_STAGE
from preflight.state.store import (
    HISTORY,
    MAX_COUNTERS,
    MAX_FAILING,
    REPLACED,
    Say,
    StateDir,
    StateUnusable,
    empty,
    read_or_fresh,
    update,
    warn,
)

BOOT_ID = "/proc/sys/kernel/random/boot_id"
HISTORY_CHECK = HISTORY_STAGE.id


def boot_id(host: Host) -> str | None:
    """This boot's random id (a new one after every reboot); None when it cannot be read."""
    line = host.read_line(BOOT_ID)
    return line.strip()[:64] if line and line.strip() else None


def memory_of(doc: Mapping[str, Any], boot: str | None, now: float) -> RunMemory:
    """What the checks get: counters and acks of this boot only (a reboot resets the counters
    and clears the kernel log the acks point into)."""
    counters = doc.get("counters")
    previous = None
    if counters is not None and counters["boot_id"] == boot and now > counters["time"]:
        previous = PreviousCounters(
            at=counters["at"],
            elapsed_s=now - counters["time"],
            rdma=counters["rdma"],
            aer_correctable=counters["aer_correctable"],
        )
    marks: dict[str, XidMark] = {}
    for ack in doc.get("acks", []):  # oldest first: the newest ack of a GPU wins
        if ack["boot_id"] != boot:
            continue
        for bdf, mark in ack["marks"].items():
            marks[bdf] = XidMark(ack["at"], ack["by"], mark["timestamp_s"], mark["count"])
    return RunMemory(previous, marks)


def observed_counters(inv: Inventory, report: Report) -> tuple[dict[str, int], dict[str, int]]:
    """This run's since-boot counters, from inventory parts the checks already built: the RDMA
    port counters when rdma.counters ran, AER correctable totals when pcie.aer ran."""
    try:
        ran = {r.id for r in report.results if r.status not in (Status.SKIP, Status.ERROR)}
        return _observed(inv, ran)
    except PartHung:  # a later check abandoned the part: nothing to remember from it
        return {}, {}


def _observed(inv: Inventory, ran: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    rdma: dict[str, int] = {}
    if "rdma.counters" in ran:
        for (port, rel), value in inv.rdma.first_sample.values.items():
            if value is not None and len(rdma) < MAX_COUNTERS:
                rdma[counter_key(port, rel.rsplit("/", 1)[-1])] = value
    aer: dict[str, int] = {}
    if "pcie.aer" in ran:
        for bdf, dev in inv.pci.devices.items():
            counters = dev.aer.get("correctable")
            if counters and len(aer) < MAX_COUNTERS:
                total = counters.get("TOTAL_ERR_COR")
                if total is None:
                    total = sum(v for k, v in counters.items() if not k.startswith("TOTAL_"))
                aer[bdf] = total
    return rdma, aer


def lemon(history: Sequence[Mapping[str, Any]], failing_now: Sequence[str]) -> list[Finding]:
    """Checks failing now that failed before and passed in between: repaired, then failed
    again. A run that did not judge the check (`--only`, a skip) is no pass; in entries written
    before runs recorded their passing checks, not failing counts as a pass."""
    findings = []
    for check_id in failing_now:
        failed_at = passed_at = None
        for run in history:
            if check_id in run["failing"]:
                if passed_at is None:
                    failed_at = run["at"]
            elif failed_at is not None and passed_at is None and _passed(run, check_id):
                passed_at = run["at"]
        if failed_at is not None and passed_at is not None:
            findings.append(
                Finding(
                    check_id,
                    Status.WARN,
                    f"failed again: it failed at {failed_at}, passed at {passed_at} (repaired?) "
                    "and fails now; a part that keeps failing after repairs should be replaced",
                )
            )
    return findings


def _passed(run: Mapping[str, Any], check_id: str) -> bool:
    passing = run.get("passing")
    return check_id in passing if passing is not None else check_id not in run["failing"]


@dataclass
class RunState:
    """One run's use of DIR: read before the checks, updated after."""

    path: str
    say: Say
    usable: bool = False
    doc: dict[str, Any] = field(default_factory=empty)
    memory: RunMemory = field(default_factory=RunMemory)
    boot: str | None = None
    started: float = 0.0
    inventory: Inventory | None = None
    warned: bool = False  # the state read was corrupt, and said so

    @classmethod
    def open(cls, path: str, say: Say) -> RunState:
        """Read DIR's state (under the lock, briefly); an unusable state is a warning."""
        run = cls(path, say)
        try:
            directory = StateDir(path)
        except StateUnusable as exc:
            warn(say, path, str(exc))
            return run
        try:
            with directory.locked():
                said: list[str] = []

                def note(line: str) -> None:
                    said.append(line)
                    say(line)

                run.doc = read_or_fresh(directory, path, note, REPLACED)
                run.warned = bool(said)
            run.usable = True
        except StateUnusable as exc:
            warn(say, path, str(exc))
        finally:
            directory.close()
        return run

    def attach(self, inv: Inventory) -> None:
        """Give the checks what earlier runs of this boot saw (before they run)."""
        self.inventory = inv
        if not self.usable:
            return
        self.boot = boot_id(inv.host)
        self.started = time.time()
        self.memory = memory_of(self.doc, self.boot, self.started)
        inv.memory = self.memory

    def finish(self, report: Report) -> Report:
        """Flag a lemon node, record this run (counters, outcome); the report with the
        node.history result added."""
        if not self.usable or self.inventory is None:
            return report
        failing = [r.id for r in report.results if r.status in (Status.FAIL, Status.ERROR)]
        passing = [r.id for r in report.results if r.status in (Status.PASS, Status.WARN)]
        result = history_result(self.doc["history"], failing)
        rdma, aer = observed_counters(self.inventory, report)
        entry = {
            "at": report.started_at,
            "status": report.status.value,
            "failing": failing[:MAX_FAILING],
            "passing": passing[:MAX_FAILING],
        }
        counters = {
            "at": report.started_at,
            "time": self.started,
            "boot_id": self.boot,
            "rdma": rdma,
            "aer_correctable": aer,
        }

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            doc["history"] = [*doc["history"], entry][-HISTORY:]
            doc["counters"] = counters
            return doc

        update(self.path, change, self.say, said=self.warned)
        return replace(report, results=(*report.results, result))


def history_result(history: Sequence[Mapping[str, Any]], failing: Sequence[str]) -> CheckResult:
    """node.history: WARN naming each check that failed again after passing."""
    findings = lemon(history, failing)
    if not findings:
        summary = f"no check failed again after passing, in {len(history)} earlier runs"
    elif len(findings) == 1:
        summary = f"{findings[0].subject}: {findings[0].message}"
    else:
        names = ", ".join(f.subject for f in findings)
        summary = f"{len(findings)} checks failed again after passing: {names}"
    status = Status.WARN if findings else Status.PASS
    return CheckResult(HISTORY_STAGE.id, HISTORY_STAGE.title, status, summary, 0.0, tuple(findings))
