"""Remediation: the class and the text of every failing or warning finding, and a baseline's
changes to them (a site that wants row-remap-pending as a warning to watch, not a drain)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from preflight.errors import ConfigError
from preflight.inventory import log_actions
from preflight.model import (
    ACTIONS,
    NEEDS_ACTION,
    Action,
    CheckResult,
    Finding,
    Status,
    Verdict,
    strongest,
    worst,
)
from preflight.registry import CheckSpec
from preflight.suggest import did_you_mean

SEVERITIES = {"warn": Status.WARN, "fail": Status.FAIL}
OVERRIDE_KEYS = ("action", "severity", "when")


@dataclass(frozen=True)
class Override:
    """A baseline's change to one check's failing and warning findings."""

    action: Action | None = None
    """The class they carry instead of the check's."""
    severity: Status | None = None
    """WARN or FAIL instead of what the check said."""
    when: Action | None = None
    """Only the findings the check gave this class (None: all of them)."""
    origin: str = ""
    """The baseline that asked for it, named in the finding's action text."""

    def applies(self, action: Action | None) -> bool:
        """Whether a finding the check classed `action` is changed."""
        return self.when is None or self.when is action


def parse_action(value: object, where: str) -> Action:
    """An action class by name, or ConfigError with the closest one."""
    names = [a.value for a in ACTIONS]
    if not isinstance(value, str) or value not in names:
        raise ConfigError(
            f"{where}: unknown action class {value!r}"
            + (did_you_mean(value, names) if isinstance(value, str) else "")
            + f" (classes: {', '.join(names)})"
        )
    return Action(value)


def parse_override(
    values: Mapping[str, Any], spec: CheckSpec[Any], where: str, origin: str
) -> Override:
    """One `[remediation."ID"]` table: action, severity and when, validated against the check;
    `origin` (`baseline site`) is named in the action text of the findings it changes."""
    for key in values:
        if key not in OVERRIDE_KEYS:
            raise ConfigError(
                f"{where}: unknown key {key!r}"
                + did_you_mean(key, OVERRIDE_KEYS)
                + f" (keys: {', '.join(OVERRIDE_KEYS)})"
            )
    if "action" not in values and "severity" not in values:
        raise ConfigError(f"{where}: give an action, a severity, or both")
    action = parse_action(values["action"], f"{where}: action") if "action" in values else None
    severity = None
    if "severity" in values:
        raw = values["severity"]
        if not isinstance(raw, str) or raw not in SEVERITIES:
            raise ConfigError(
                f"{where}: severity must be one of {', '.join(SEVERITIES)}, got {raw!r}"
                + (did_you_mean(raw, SEVERITIES) if isinstance(raw, str) else "")
            )
        severity = SEVERITIES[raw]
    when = None
    if "when" in values:
        when = parse_action(values["when"], f"{where}: when")
        if when not in spec.actions:
            given = ", ".join(a.value for a in spec.actions) or "none"
            raise ConfigError(
                f"{where}: when = {when.value!r}: {spec.id} never gives that class "
                f"(it gives: {given})"
            )
    return Override(action, severity, when, origin)


def _remedied(finding: Finding, spec: CheckSpec[Any], override: Override | None) -> Finding:
    if finding.status not in NEEDS_ACTION:
        return finding
    default = spec.warn_action if finding.status is Status.WARN else None
    action = finding.action or default or spec.action
    if finding.action_text or action is None:
        text = finding.action_text
    elif action is Action.MONITOR and finding.action is None:
        text = (
            f"keep the node in service and watch {finding.subject}; if it grows, act on it "
            f"(`preflight explain {spec.id}`)"
        )
    else:
        text = spec.fix
    status = finding.status
    if override is not None and override.applies(action):
        was = f"{status.value}/{action.value if action else '-'}"
        status = override.severity or status
        action = override.action or action
        now = f"{status.value}/{action.value if action else '-'}"
        text = f"{text or spec.fix} ({override.origin} made it {now}, was {was})"
    if (action, text, status) == (finding.action, finding.action_text, finding.status):
        return finding
    return replace(finding, status=status, action=action, action_text=text)


def judged(
    spec: CheckSpec[Any], verdict: Verdict, duration_s: float, override: Override | None = None
) -> CheckResult:
    """The check's result with every failing and warning finding classed: the finding's own
    class, else the check's default, then the baseline's override. A verdict that fails or
    warns without findings carries the check's class itself."""
    findings = tuple(_remedied(f, spec, override) for f in verdict.findings)
    status, summary = verdict.status, verdict.summary
    if findings and any(
        a.status is not b.status for a, b in zip(findings, verdict.findings, strict=True)
    ):
        status = worst(f.status for f in findings)
        summary = Verdict.from_findings(findings, ok=summary).summary
    action = strongest(f.action for f in findings if f.status in NEEDS_ACTION)
    text = next(
        (f.action_text for f in findings if f.status in NEEDS_ACTION and f.action is action),
        None,
    )
    if action is None and status in NEEDS_ACTION and not findings:
        action, text = spec.action, spec.fix if spec.action is not None else None
        if override is not None and override.applies(action):
            status = override.severity or status
            action = override.action or action
    if status not in NEEDS_ACTION:
        action, text = None, None
    return CheckResult(
        spec.id,
        spec.title,
        status,
        summary,
        duration_s,
        findings,
        action=action,
        action_text=text if action is not None else None,
    )


LOG_ACTION_CLASS = {
    log_actions.IGNORE: Action.NONE,
    log_actions.RESTART_APP: Action.RESTART_JOB,
    log_actions.INVESTIGATE: Action.MONITOR,
    log_actions.RESET_GPU: Action.RESET_GPU,
    log_actions.REBOOT: Action.REBOOT,
    log_actions.DRAIN_RMA: Action.REPLACE,
    log_actions.UNKNOWN: Action.MONITOR,
}
"""The remediation class of a kernel log catalogue's action (Xid, SXid and the rest): NVIDIA's
"drain for service / contact support" is a part to reseat or replace; "investigate" and an Xid
the catalogue does not know leave the node in service to be watched."""


def log_action_text(action: str, device: str, bdf: str | None = None) -> str:
    """What to do for a kernel log catalogue action, naming the device that logged it."""
    if action == log_actions.RESET_GPU:
        how = f" (`nvidia-smi -r -i {bdf}`)" if bdf else ""
        return f"drain the node, reset {device}{how} or reboot, then run preflight again"
    if action == log_actions.REBOOT:
        return f"drain and reboot the node ({device} logged it), then run preflight again"
    if action == log_actions.DRAIN_RMA:
        return (
            f"drain the node; reseat or replace {device} (collect nvidia-bug-report.sh first, "
            "then open a support case)"
        )
    if action == log_actions.RESTART_APP:
        return f"restart the job; {device} stays usable"
    if action == log_actions.IGNORE:
        return "nothing to do"
    return f"keep the node in service and watch {device}; act if it recurs"


def classes(spec: CheckSpec[Any]) -> list[str]:
    """The classes a check's findings may carry, strongest first (`preflight list`, README)."""
    return [a.value for a in sorted(spec.actions, key=lambda a: -a.rank)]


README_BEGIN = "<!-- action classes: begin (generated; tests/test_remediation.py keeps it) -->"
README_END = "<!-- action classes: end -->"


def readme_table(specs: Iterable[CheckSpec[Any]]) -> str:
    """The README's table of action classes per check, between its markers."""
    rows = [
        README_BEGIN,
        "| check | class | other classes its findings may carry |",
        "|---|---|---|",
    ]
    for spec in specs:
        default = spec.action.value if spec.action else "-"
        if spec.warn_action is not None and spec.warn_action is not spec.action:
            default += f" (warnings: {spec.warn_action.value})"
        used = {a for a in (spec.action, spec.warn_action) if a is not None}
        others = [c for c in classes(spec) if Action(c) not in used]
        rows.append(f"| `{spec.id}` | {default} | {', '.join(others)} |")
    rows.append(README_END)
    return "\n".join(rows)


_BDF = re.compile(r"\b[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]\b")


def bdf_of(device: str) -> str:
    """The PCI address in a device label (`GPU4 0000:9a:00.0`), or the label itself."""
    match = _BDF.search(device)
    return match.group(0) if match else device


def gpu_reset_text(device: str, then: str = "run preflight again") -> str:
    """`drain the node, reset GPU4 0000:9a:00.0 (`nvidia-smi -r -i 0000:9a:00.0`) or reboot, …`:
    the device label's PCI address, when it has one, is what nvidia-smi takes."""
    match = _BDF.search(device)
    return log_action_text(
        log_actions.RESET_GPU, device, match.group(0) if match else None
    ).replace("run preflight again", then)
