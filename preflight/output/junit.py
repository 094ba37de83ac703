"""JUnit XML: one testcase per check; warn passes with a note, skip is skipped, error is error."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TextIO

from preflight.model import CheckResult, Report, Status
from preflight.output import RenderOptions
from preflight.safetext import clean


def _details(result: CheckResult) -> str:
    lines = []
    if result.action is not None:
        lines.append(f"action: {result.action.value}: {result.action_text or ''}".rstrip(": "))
    for f in result.findings:
        if f.status.rank > 0:
            lines.append(f"{f.status.value.upper()} {f.subject}: {f.message}")
            if f.action is not None:
                lines.append(f"    action: {f.action.value}: {f.action_text or ''}".rstrip(": "))
            lines.extend(
                f"    {e.source}: observed {e.observed!r}, expected {e.expected}"
                for e in f.evidence
            )
    lines.append(f"why and how to fix: preflight explain {result.id}")
    return "\n".join(lines)


def _message(result: CheckResult) -> str:
    """The summary, with the action class CI dashboards show in their one-line view."""
    if result.action is None:
        return result.summary
    return f"{result.summary} [action: {result.action.value}]"


def _slurm(report: Report) -> list[tuple[str, str]]:
    """What --slurm-drain did (`held`: the breaker kept the node in service), and why."""
    if report.slurm is None:
        return []
    return [
        ("slurm_action", str(report.slurm.get("action", ""))),
        ("slurm_message", str(report.slurm.get("message", ""))),
    ]


def render(report: Report, out: TextIO, options: RenderOptions) -> None:
    """Write a <testsuites> document with one <testsuite> for the node."""
    counts = report.counts
    suites = ET.Element("testsuites", name="preflight")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=report.hostname,
        hostname=report.hostname,
        timestamp=report.started_at,
        tests=str(len(report.results)),
        failures=str(counts["fail"]),
        errors=str(counts["error"]),
        skipped=str(counts["skip"]),
        time=f"{report.duration_s:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("tool_version", report.tool_version),
        ("baseline", report.baseline),
        ("profile", report.profile or ""),
        ("action", report.action.value if report.action is not None else "none"),
        *_slurm(report),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"preflight.{r.id.split('.')[0]}",
            name=r.id,
            time=f"{r.duration_s:.3f}",
        )
        if r.status is Status.FAIL:
            ET.SubElement(case, "failure", message=_message(r), type="fail").text = _details(r)
        elif r.status is Status.ERROR:
            ET.SubElement(case, "error", message=r.summary, type="error").text = r.traceback or ""
        elif r.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=r.summary)
        elif r.status is Status.WARN:
            ET.SubElement(case, "system-out").text = f"WARN: {r.summary}\n{_details(r)}"
    ET.indent(suites)
    # XML 1.0 has no way to carry most control characters: they are written as visible escapes.
    out.write(clean(ET.tostring(suites, encoding="unicode", xml_declaration=True)))
    out.write("\n")
