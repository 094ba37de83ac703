"""Decode a report without decoding its findings: the header, the facts, the failing results.

Four fifths of a report's bytes are per-device findings that compare never reads (a DGX report
is ~240 kB, its facts ~36 kB), and decoding them dominates a 12,500-node compare. A report as
`preflight run` writes it has its keys in a fixed order (header, "results", "facts" last), so,
working on the raw bytes:
- the header is the text before the `"results":` key, closed and decoded;
- the facts are the text from the last `"facts":` key to the document's closing brace, decoded
  (anything else in between makes that decode fail);
- failing results are found by a pattern over the results' text (`"id"`, `"title"`, `"status"`,
  `"summary"` in that order: only results have an "id"), when the header's `summary.counts`
  has any fail or error; the number found must equal them. With none counted the results are
  not scanned (scanning 190 kB twice was a third of the time): `preflight run` writes the
  counts from the results themselves (`Report.counts`).
Unescaped `"results":`/`"facts":` can only be keys (a quote inside a string is escaped). Any
surprise (keys reordered by another tool, a count that disagrees, no summary) returns None and
the caller decodes the whole document.
"""

from __future__ import annotations

import json
import re
from typing import Any

from preflight.model import Scalar

_FAILING = re.compile(
    rb'"id":\s*"([^"\\]*)",\s*"title":\s*"(?:[^"\\]|\\.)*",\s*"status":\s*"(fail|error)",'
    rb'\s*"summary":\s*("(?:[^"\\]|\\.)*")'
)


def split(
    data: bytes,
) -> tuple[dict[str, Any], list[tuple[str, str, str]], dict[str, Scalar]] | None:
    """(header, failing results as (id, status, summary), facts), or None to decode it all."""
    results_at = data.find(b'"results":')
    facts_at = data.rfind(b'"facts":')
    closing = data.rfind(b"}")
    if results_at < 0 or facts_at < results_at or closing < facts_at or data[closing + 1 :].strip():
        return None
    try:
        header = json.loads(data[:results_at].rstrip().rstrip(b",") + b"}")
        facts = json.loads(data[facts_at + len(b'"facts":') : closing])
    except (ValueError, RecursionError):
        return None
    if not isinstance(header, dict) or not isinstance(facts, dict):
        return None
    summary = header.get("summary")
    counts = summary.get("counts") if isinstance(summary, dict) else None
    if not isinstance(counts, dict):
        return None
    failing: list[tuple[str, str, str]] = []
    expected = counts.get("fail", 0) + counts.get("error", 0)
    if expected:
        try:
            failing = [
                (m.group(1).decode(), m.group(2).decode(), json.loads(m.group(3)))
                for m in _FAILING.finditer(data, results_at, facts_at)
            ]
        except ValueError:
            return None
    if len(failing) != expected:
        return None
    return header, failing, facts
