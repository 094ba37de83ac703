"""Decode a passing report without decoding its results: the header and the facts.

Four fifths of a report's bytes are per-device findings that compare never reads (a DGX report
is ~240 kB, its facts ~36 kB), and decoding them dominates a 12,500-node compare. A report as
`preflight run` writes it has its keys in a fixed order (header, "results", "facts" last), so,
working on the raw bytes:
- the header is the text before the `"results":` key, closed and decoded;
- the facts are the text from the last `"facts":` key to the document's closing brace, returned
  as text for the caller to decode (anything else in between makes that decode fail; most nodes
  are read through their group's template, see facts_text);
- the results are not decoded when the header's `summary.counts` says none failed or errored
  and the results agree: no `"fail"` or `"error"` string occurs in them at all (two byte
  searches), and no `\\u00XX` escape of a printable ASCII character (which json.dumps never
  writes, and which could spell a status that no byte search sees). A report is anyone's file
  and its counts may lie (0 failures while pcie.acs fails), so a report that counts failures
  or has those strings is decoded in full: failing reports are few, and their failing results
  are then exactly what the full decode finds.
Unescaped `"results":`/`"facts":` can only be keys (a quote inside a string is escaped). Any
surprise (keys reordered by another tool, a count that disagrees, no summary) returns None and
the caller decodes the whole document.
"""

from __future__ import annotations

import json
from typing import Any

from preflight.model import Scalar

FAILING = (b'"fail"', b'"error"')


def split(data: bytes) -> tuple[dict[str, Any], str] | None:
    """(header, facts text) of a report whose results verifiably hold no fail or error; None to
    decode it all."""
    results_at = data.find(b'"results":')
    facts_at = data.rfind(b'"facts":')
    closing = data.rfind(b"}")
    if results_at < 0 or facts_at < results_at or closing < facts_at or data[closing + 1 :].strip():
        return None
    if any(data.find(word, results_at, facts_at) >= 0 for word in FAILING):
        return None
    if _ascii_escape(data, results_at, facts_at):
        return None
    try:
        header = json.loads(data[:results_at].rstrip().rstrip(b",") + b"}")
        facts = data[facts_at + len(b'"facts":') : closing].decode("utf-8")
    except (ValueError, RecursionError):
        return None
    if not isinstance(header, dict) or not _counts_none(header):
        return None
    return header, facts


def facts(text: str) -> dict[str, Scalar] | None:
    """The facts text decoded; None when it is not a JSON object (decode it all to say why)."""
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


def _ascii_escape(data: bytes, start: int, end: int) -> bool:
    """A `\\u0020`…`\\u007f` escape between start and end. Backslashes are rare in a report
    (a few dozen), and finding one byte is a memchr: far cheaper than a pattern search."""
    at = data.find(b"\\", start, end)
    while at >= 0:
        if data[at + 1 : at + 4] == b"u00" and 0x32 <= data[at + 4] <= 0x37:  # u0020…u007f
            return True
        at = data.find(b"\\", at + 2, end)  # past an escaped character (\\\\ included)
    return False


def _counts_none(header: dict[str, Any]) -> bool:
    """summary.counts says no result failed or errored (and they are counts)."""
    summary = header.get("summary")
    counts = summary.get("counts") if isinstance(summary, dict) else None
    if not isinstance(counts, dict):
        return False
    return all(
        counts.get(key, 0) == 0 and type(counts.get(key, 0)) is int for key in ("fail", "error")
    )
