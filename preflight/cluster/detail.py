"""Per-check detail of one report for the HTML fleet view: every check's status, and for the
checks that warn, fail or error their summary, optional action class and first findings.

The table and JSON formats never need this (they read the failing checks only, see fastparse);
`compare --format html` asks for it. Results are found by the same key-order pattern fastparse
relies on (`"id"`, `"title"`, `"status"` in that order: only results have an "id"); only the few
non-passing results are decoded, from their opening brace. A report laid out otherwise is decoded
whole. Node text is hostile and a report may be huge: every string kept is cut to STRING chars,
and at most FINDINGS findings (of EVIDENCE evidence items each) are kept per check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

NOTABLE = ("warn", "fail", "error")
"""Statuses whose findings the fleet view shows on a click."""

STRING = 300
FINDINGS = 8
EVIDENCE = 4

_RESULT = re.compile(
    rb'"id":\s*"([^"\\]*)",\s*"title":\s*"(?:[^"\\]|\\.)*",\s*"status":\s*"([a-z]{1,8})"'
)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class CheckDetail:
    """One non-passing check of one node, trimmed for display."""

    check: str
    status: str
    summary: str
    action: str | None
    findings: tuple[dict[str, Any], ...]


def _cut(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= STRING else text[: STRING - 1] + "…"


def _finding(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    evidence = raw.get("evidence")
    items = []
    for e in evidence[:EVIDENCE] if isinstance(evidence, list) else ():
        if isinstance(e, dict):
            items.append({k: _cut(e.get(k, "")) for k in ("source", "observed", "expected")})
    out: dict[str, Any] = {
        "subject": _cut(raw.get("subject", "")),
        "status": _cut(raw.get("status", "")),
        "message": _cut(raw.get("message", "")),
        "evidence": items,
    }
    if isinstance(raw.get("action"), str):
        out["action"] = _cut(raw["action"])
        if isinstance(raw.get("action_text"), str):
            out["action_text"] = _cut(raw["action_text"])
    return out


def check_detail(result: Any) -> CheckDetail | None:
    """A decoded result → its trimmed detail (its non-passing findings first), None if no result."""
    if not isinstance(result, dict):
        return None
    raw = result.get("findings")
    found = [f for f in raw if isinstance(f, dict)] if isinstance(raw, list) else []
    found.sort(key=lambda f: f.get("status") not in NOTABLE)
    findings = tuple(f for f in map(_finding, found[:FINDINGS]) if f is not None)
    action = result.get("action")
    return CheckDetail(
        check=_cut(result.get("id", "")),
        status=_cut(result.get("status", "")),
        summary=_cut(result.get("summary", "")),
        action=_cut(action) if isinstance(action, str) else None,
        findings=findings,
    )


def scan(data: bytes) -> tuple[tuple[tuple[str, str], ...], tuple[CheckDetail, ...]]:
    """(check id, status) of every result in report order, and the non-passing checks' detail.

    Raises ValueError when the report cannot be read at all.
    """
    results_at = data.find(b'"results":')
    facts_at = data.rfind(b'"facts":')
    if 0 <= results_at < facts_at:
        statuses = []
        details = []
        try:
            for m in _RESULT.finditer(data, results_at, facts_at):
                check, status = m.group(1).decode(), m.group(2).decode()
                statuses.append((check, status))
                if status in NOTABLE:
                    start = data.rfind(b"{", results_at, m.start())
                    result, _ = _DECODER.raw_decode(data[start:facts_at].decode())
                    detail = check_detail(result)
                    if detail is None or detail.check != check:
                        raise ValueError("result out of place")
                    details.append(detail)
        except (ValueError, RecursionError):
            pass
        else:
            if statuses:
                return tuple(statuses), tuple(details)
    return _whole(data)


def _whole(data: bytes) -> tuple[tuple[tuple[str, str], ...], tuple[CheckDetail, ...]]:
    try:
        doc = json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, list):
        raise ValueError("no results")
    statuses = []
    details = []
    for r in results:
        if not isinstance(r, dict):
            continue
        check, status = _cut(r.get("id", "")), _cut(r.get("status", ""))
        statuses.append((check, status))
        if status in NOTABLE:
            detail = check_detail(r)
            if detail is not None:
                details.append(detail)
    return tuple(statuses), tuple(details)
