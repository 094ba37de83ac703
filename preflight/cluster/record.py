"""One node's JSON report → a small node record (who, how it went, what failed) and its facts."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from preflight import safeio
from preflight.cluster import fastparse, figures
from preflight.cluster.detail import CheckDetail
from preflight.errors import ConfigError, UsageError
from preflight.model import ACTIONS, SCHEMA_VERSION, Action, Scalar, strongest

CLASSES = frozenset(a.value for a in ACTIONS)
FAILING = ("fail", "error")
"""Result statuses that keep a node out of service (the exit-code rule of `preflight run`)."""


class ReportError(Exception):
    """A report that cannot be used: not JSON, another schema version, a missing field."""


@dataclass(frozen=True)
class NodeRecord:
    """What compare keeps of one report besides its facts."""

    name: str
    source: str
    status: str
    started_at: str
    baseline: str
    profile: str | None
    failing: tuple[tuple[str, str, str], ...] = ()
    """(check id, status, summary) of every failed or errored check."""
    results: tuple[tuple[str, str], ...] = ()
    """(check id, status) of every check: only when compare was asked for detail (HTML)."""
    details: tuple[CheckDetail, ...] = ()
    """The warning, failing and erroring checks' findings: only with detail, like results."""
    figures: tuple[tuple[str, float], ...] = ()
    """(metric, value) measured on the node (see cluster.figures)."""
    action: str | None = None
    """The strongest remediation class of its failing checks (None: they carry none)."""


FactsReader = Callable[[NodeRecord, str], "dict[str, Scalar] | None"]
"""Reads a report's facts from their text given its record, or None to have them decoded."""


def parse(
    data: bytes | str, source: str, read_facts: FactsReader | None = None
) -> tuple[NodeRecord, dict[str, Scalar]]:
    """Decode one JSON report (its findings only when the verified shortcut cannot be used), with
    its figures (see cluster.figures). `read_facts` may read a shortcut report's facts without
    decoding them (the group templates of aggregate); the facts it returns are taken as they
    are."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    quick = fastparse.split(raw)
    if quick is not None:
        header, text = quick
        record = _record(header, [], source)
        facts = read_facts(record, text) if read_facts is not None else None
        if facts is None:
            decoded = fastparse.facts(text)
            facts = _scalars(decoded) if decoded is not None else None
        if facts is not None:
            return _measured(record, raw, facts, header), facts
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ReportError(f"not a JSON report: {exc}") from None
    except RecursionError:
        raise ReportError("not a JSON report: nested too deeply") from None
    record, facts = from_document(doc, source)
    return _measured(record, raw, facts, doc), facts


def _measured(
    record: NodeRecord, raw: bytes, facts: dict[str, Scalar], header: Mapping[str, Any]
) -> NodeRecord:
    """The record with the report's figures: its `figures` when it has them, else read from its
    results."""
    found = figures.extract(raw, facts, header.get("figures"))
    return dataclasses.replace(record, figures=found) if found else record


def read_file(path: str) -> tuple[NodeRecord, dict[str, Scalar]]:
    """One report file named on the command line (--golden): a missing file is a usage error,
    a file that is no report a configuration error."""
    try:
        data = safeio.read_regular(path, safeio.REPORT_MAX_BYTES)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    except safeio.InputRefused as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return parse(data, path)
    except ReportError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _field(doc: Mapping[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind):
        raise ReportError(f"{name!r} missing or not a {kind.__name__}")
    return value


def from_document(doc: Any, source: str) -> tuple[NodeRecord, dict[str, Scalar]]:
    """A decoded report document → its record and facts; ReportError when it is not one."""
    if not isinstance(doc, dict):
        raise ReportError("not a preflight run report (no tool.name 'preflight')")
    _check_header(doc)
    results = _field(doc, "results", list)
    facts = _scalars(_field(doc, "facts", dict))
    failing = []
    actions = []
    for r in results:
        if not isinstance(r, dict):
            raise ReportError("'results' holds something that is not a result")
        if r.get("status") in FAILING:
            failing.append((str(r.get("id")), str(r.get("status")), str(r.get("summary", ""))))
            actions.extend(_classes(r))
    record = _record(doc, failing, source)
    top = strongest(actions)
    if top is not None:
        record = dataclasses.replace(record, action=top.value)
    return record, facts


def _classes(result: Mapping[str, Any]) -> list[Action]:
    """The remediation classes a failing result and its findings name (unknown names left out:
    a report is anyone's file)."""
    named = [result.get("action")]
    findings = result.get("findings")
    if isinstance(findings, list):
        named.extend(f.get("action") for f in findings if isinstance(f, dict))
    return [Action(a) for a in named if isinstance(a, str) and a in CLASSES]


def _scalars(facts: dict[str, Any]) -> dict[str, Scalar]:
    """The facts, when every value is a string, number, boolean or null, as `run` writes them."""
    if not _SCALAR_TYPES.issuperset(map(type, facts.values())):  # one pass in C
        key, value = next((k, v) for k, v in facts.items() if type(v) not in _SCALAR_TYPES)
        raise ReportError(f"fact {key!r} is a {type(value).__name__}, not a single value")
    return facts


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def _check_header(doc: Mapping[str, Any]) -> None:
    tool = doc.get("tool")
    if not isinstance(tool, dict) or tool.get("name") != "preflight":
        raise ReportError("not a preflight run report (no tool.name 'preflight')")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"schema_version {version!r} is not supported (this preflight reads {SCHEMA_VERSION})"
        )


def _record(doc: Mapping[str, Any], failing: list[tuple[str, str, str]], source: str) -> NodeRecord:
    """The node record from a report's header fields and its failing results."""
    _check_header(doc)
    host = _field(doc, "host", dict)
    name = host.get("hostname")
    if not isinstance(name, str) or not name:
        raise ReportError("'host.hostname' missing")
    summary = doc.get("summary")
    status = summary.get("status") if isinstance(summary, dict) else None
    baseline = doc.get("baseline")
    worst = "pass" if not failing else ("error" if failing[0][1] == "error" else "fail")
    return NodeRecord(
        name=name,
        source=source,
        # A summary that says pass over failing results is not believed.
        status=str(status) if status in FAILING or (status and not failing) else worst,
        started_at=str(doc.get("started_at", "")),
        baseline=str(baseline.get("name", "")) if isinstance(baseline, dict) else "",
        profile=host.get("profile") if isinstance(host.get("profile"), str) else None,
        failing=tuple(failing),
    )
