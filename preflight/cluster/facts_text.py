"""A group's facts as text: read a node that differs from its group's reference node only where
every node differs, by decoding those values alone.

On a fleet nearly every node's facts text is, byte for byte, its group reference's except the
values of the naturally unique keys (serials, GUIDs, addresses…, see rules) and the UUID in a
kernel command line. The reference's text is cut around those values by a walk with json's own
scanner, so the cuts follow JSON tokens exactly. Another node's text matches when each constant
run between the cuts is where the reference has it and each cut holds one JSON scalar: its facts
are then the reference's with those values replaced, exactly what decoding its whole text gives
(the same tokens in the same places, the same scanner at each cut). Comparing the runs is a
memcmp and a DGX has about twenty such values, against ~900 facts (~36 kB) to decode in full.
A text that differs anywhere else (a drifting fact, another layout, a hostile edit) does not
match, and the caller decodes it in full.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from json.decoder import WHITESPACE, scanstring  # type: ignore[attr-defined]

from preflight.model import Scalar

_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_SKIP = WHITESPACE.match


@dataclass(frozen=True)
class Template:
    """The reference's facts text cut around the values of its variable keys."""

    runs: tuple[str, ...]
    """The constant text before the first cut, between cuts, and after the last (one more than
    keys)."""
    keys: tuple[str, ...]
    """The key of each cut value, in text order (a key written twice is cut twice)."""
    facts: dict[str, Scalar]
    """The reference's decoded facts."""

    def read(self, text: str) -> dict[str, Scalar] | None:
        """The facts of a node whose text matches; None when it differs outside the cuts."""
        runs = self.runs
        if not text.startswith(runs[0]):
            return None
        pos = len(runs[0])
        values = []
        for run in runs[1:]:
            try:
                value, pos = _SCAN(text, pos)
            except (ValueError, StopIteration, RecursionError):
                return None
            if type(value) not in _SCALAR_TYPES or not text.startswith(run, pos):
                return None
            pos += len(run)
            values.append(value)
        if pos != len(text):
            return None
        facts = dict(self.facts)
        facts.update(zip(self.keys, values, strict=True))  # in text order: the last one wins
        return facts


def cut(text: str, facts: dict[str, Scalar], variable: Collection[str]) -> Template | None:
    """The template of a reference's facts text (`facts` is its decoded form), cut around the
    values of the `variable` keys; None when the text is not one JSON object of scalars."""
    try:
        return _cut(text, facts, variable)
    except (ValueError, StopIteration, RecursionError):
        return None


def _cut(text: str, facts: dict[str, Scalar], variable: Collection[str]) -> Template | None:
    pos = _SKIP(text, 0).end()
    if not text.startswith("{", pos):
        return None
    pos = _SKIP(text, pos + 1).end()
    runs: list[str] = []
    keys: list[str] = []
    start = 0
    closed = text.startswith("}", pos)
    while not closed:
        if not text.startswith('"', pos):
            return None
        key, pos = scanstring(text, pos + 1)
        pos = _SKIP(text, pos).end()
        if not text.startswith(":", pos):
            return None
        pos = _SKIP(text, pos + 1).end()
        value, end = _SCAN(text, pos)
        if type(value) not in _SCALAR_TYPES:
            return None
        if key in variable:
            runs.append(text[start:pos])
            keys.append(key)
            start = end
        pos = _SKIP(text, end).end()
        if text.startswith(",", pos):
            pos = _SKIP(text, pos + 1).end()
        elif text.startswith("}", pos):
            closed = True
        else:
            return None
    if _SKIP(text, pos + 1).end() != len(text):
        return None
    runs.append(text[start:])
    return Template(tuple(runs), tuple(keys), facts)
