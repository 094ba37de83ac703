"""Result model: what checks return (Verdict), what the runner records (CheckResult), the Report."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from preflight.result_figures import merged

Scalar = str | int | float | bool | None


class Status(str, enum.Enum):
    """Outcome of a check or of one finding."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Severity for "worst of": a check that could not run (ERROR) counts like a failure."""
        return _RANK[self]


_RANK = {Status.PASS: 0, Status.SKIP: 0, Status.WARN: 1, Status.ERROR: 2, Status.FAIL: 3}


class Action(str, enum.Enum):
    """What a failing or warning finding asks of the operator (its remediation class)."""

    NONE = "none"  # nothing to do: informational
    MONITOR = "monitor"  # the node stays in service; watch the figure, act if it grows
    RESTART_JOB = "restart-job"  # the job's own fault: resubmit it; the node is fine
    FIX_CONFIG = "fix-config"  # a setting (BIOS, kernel, driver, firmware, env) to change
    RESET_GPU = "reset-gpu"  # reset the GPU (nvidia-smi -r) or reboot, then check again
    REBOOT = "reboot"  # reboot the node, then check again
    REPLACE = "replace"  # hardware to reseat or replace (RMA)

    @property
    def rank(self) -> int:
        """Strength for "strongest of": what takes the node out longest, and wider, ranks higher.

        fix-config ranks above restart-job: a setting keeps the node out of service until
        someone changes it, while a restarted job can run on the node at once.
        """
        return ACTIONS.index(self)


ACTIONS = (
    Action.NONE,
    Action.MONITOR,
    Action.RESTART_JOB,
    Action.FIX_CONFIG,
    Action.RESET_GPU,
    Action.REBOOT,
    Action.REPLACE,
)
"""Remediation classes, weakest first."""

NEEDS_ACTION = (Status.FAIL, Status.WARN)
"""Finding statuses that carry a remediation class."""


def strongest(actions: Iterable[Action | None]) -> Action | None:
    """The strongest class of those given (None when none is)."""
    known = [a for a in actions if a is not None]
    return max(known, key=lambda a: a.rank) if known else None


def passed(findings: Iterable[Finding]) -> int:
    """How many findings passed: what an `ok` summary may count."""
    return sum(f.status is Status.PASS for f in findings)


def worst(statuses: Iterable[Status], default: Status = Status.PASS) -> Status:
    """The most severe status; SKIP only when everything skipped."""
    items = list(statuses)
    if not items:
        return default
    top = max(items, key=lambda s: (s.rank, s is not Status.SKIP))
    if top is Status.SKIP and any(s is Status.PASS for s in items):
        return Status.PASS
    return top


@dataclass(frozen=True)
class Evidence:
    """One observation: where it was read, what was seen, what a healthy node shows."""

    source: str
    observed: Scalar
    expected: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"source": self.source, "observed": self.observed, "expected": self.expected}


@dataclass(frozen=True)
class Finding:
    """A judgement about one subject (a device, a port, the node)."""

    subject: str
    status: Status
    message: str
    evidence: tuple[Evidence, ...] = ()
    action: Action | None = None
    """Remediation class; every FAIL/WARN finding of a built-in check carries one (a check
    declares its default, see registry.check; the runner fills it in)."""
    action_text: str | None = None
    """What to do, naming the device to touch first (`reset GPU2 0000:3a:00.0`)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (action keys only on findings that carry a class)."""
        out: dict[str, Any] = {
            "subject": self.subject,
            "status": self.status.value,
            "message": self.message,
            "evidence": [e.to_dict() for e in self.evidence],
        }
        if self.action is not None:
            out["action"] = self.action.value
            out["action_text"] = self.action_text or ""
        return out


@dataclass(frozen=True)
class Verdict:
    """What a check returns: one status and summary, per-subject findings underneath."""

    status: Status
    summary: str
    findings: tuple[Finding, ...] = ()

    @classmethod
    def from_findings(
        cls,
        findings: Iterable[Finding],
        *,
        ok: str,
        empty: str | None = None,
        empty_status: Status = Status.SKIP,
    ) -> Verdict:
        """Worst of the findings; the summary names the failing subjects, or `ok` when all pass.

        With no findings at all the verdict is `empty_status` with `empty` as the reason, so
        "nothing to check" is never reported as a silent pass.
        """
        items = tuple(findings)
        if not items:
            return cls(empty_status, empty or "nothing to check on this node")
        status = worst(f.status for f in items)
        # A summary never claims what was not checked: when everything skipped, the skips are
        # the summary; when some passed and some skipped, `ok` is followed by what was not.
        bad = [
            f for f in items if f.status is status and (status.rank > 0 or status is Status.SKIP)
        ]
        if not bad:
            skipped = [f for f in items if f.status is Status.SKIP]
            if not skipped:
                return cls(status, ok, items)
            first = skipped[0]
            more = "; …" if len(skipped) > 1 else ""
            summary = (
                f"{ok}; {len(skipped)} of {len(items)} not checked: "
                f"{first.subject}: {first.message}{more}"
            )
            return cls(status, summary, items)
        if len(bad) == 1:
            summary = f"{bad[0].subject}: {bad[0].message}"
        else:
            summary = (
                f"{len(bad)} of {len(items)} {status.value}: {bad[0].subject}: {bad[0].message}; …"
            )
        return cls(status, summary, items)

    @classmethod
    def single(cls, finding: Finding) -> Verdict:
        """A verdict about one subject: the finding's status and message."""
        return cls(finding.status, finding.message, (finding,))

    @classmethod
    def skip(cls, reason: str) -> Verdict:
        """A check that cannot judge this node, with the reason."""
        return cls(Status.SKIP, reason)


@dataclass(frozen=True)
class CheckResult:
    """What the runner records for one check."""

    id: str
    title: str
    status: Status
    summary: str
    duration_s: float
    findings: tuple[Finding, ...] = ()
    traceback: str | None = None
    action: Action | None = None
    """The strongest class of its failing and warning findings (see remediation.judged)."""
    action_text: str | None = None
    """The text of the first finding with that class."""
    figures: tuple[tuple[str, float], ...] = ()
    """(metric, value) it measured (see result_figures); the report lists them as `figures`."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "duration_s": round(self.duration_s, 6),
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.action is not None:
            out["action"] = self.action.value
            out["action_text"] = self.action_text or ""
        if self.traceback:
            out["traceback"] = self.traceback
        return out


SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Report:
    """One run on one node."""

    tool_version: str
    hostname: str
    started_at: str
    duration_s: float
    baseline: str
    baseline_source: str
    profile: str | None
    results: tuple[CheckResult, ...]
    facts: Mapping[str, Scalar] = field(default_factory=dict)
    strict: bool = False
    # Essential checks (the baseline's) that skipped: (id, why), and whether that fails the run.
    unchecked: tuple[tuple[str, str], ...] = ()
    unchecked_fails: bool = False
    hints: tuple[str, ...] = ()  # what the operator likely meant (`--baseline dgx-h100-roce`)
    slurm: Mapping[str, Any] | None = None  # what --slurm-drain/--slurm-resume did (Outcome)

    @property
    def counts(self) -> dict[str, int]:
        """Number of results per status."""
        counts = {s.value: 0 for s in Status}
        for r in self.results:
            counts[r.status.value] += 1
        return counts

    @property
    def status(self) -> Status:
        """The node's overall status (worst result; FAIL when an essential check could not run
        and that fails the run)."""
        status = worst((r.status for r in self.results), default=Status.SKIP)
        if self.unchecked and self.unchecked_fails and status.rank < Status.FAIL.rank:
            return Status.FAIL
        return status

    @property
    def action(self) -> Action | None:
        """The node's remediation class: the strongest of its failing and warning checks'."""
        return strongest(r.action for r in self.results if r.status in NEEDS_ACTION)

    @property
    def figures(self) -> tuple[tuple[str, float], ...]:
        """What the run measured, by metric: its results' figures (the first of each metric)."""
        return merged(f for r in self.results for f in r.figures)

    @property
    def action_checks(self) -> list[str]:
        """Ids of the checks whose class is the node's (what the drain reason names first)."""
        top = self.action
        return [r.id for r in self.results if top is not None and r.action is top]

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (schema: preflight/schema/report.schema.json)."""
        out = self._dict()
        if self.slurm is not None:
            out["slurm"] = dict(self.slurm)
        return out

    def _dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "preflight", "version": self.tool_version},
            "host": {"hostname": self.hostname, "profile": self.profile},
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 6),
            "baseline": {"name": self.baseline, "source": self.baseline_source},
            "summary": {
                "status": self.status.value,
                "counts": self.counts,
                "unchecked": [{"id": i, "reason": why} for i, why in self.unchecked],
                "unchecked_fails": self.unchecked_fails,
                "hints": list(self.hints),
                "action": None if self.action is None else self.action.value,
                "action_checks": self.action_checks,
            },
            "figures": dict(self.figures),
            "results": [r.to_dict() for r in self.results],
            "facts": dict(sorted(self.facts.items())),
        }
