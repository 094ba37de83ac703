"""Drift: for one fact, the value nodes of a group should hold, and the nodes that hold another.

The expected value is the majority's (the most common value; ties go to the value that sorts
first, so the result does not depend on input order), or the golden node's. A node without the
fact at all holds ABSENT, which is a value like any other: a node missing one GPU lacks that
GPU's `pci.<bdf>.*` facts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from preflight.model import Scalar


class _Absent:
    """The fact is missing from a node's report."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()
Value = Scalar | _Absent


@dataclass(frozen=True)
class Drift:
    """One fact on which a group's nodes disagree."""

    group: str
    key: str
    expected: Value
    expected_nodes: int
    """How many nodes hold the expected value."""
    differs: tuple[tuple[Value, tuple[int, ...]], ...]
    """Other values and the node ids holding them, fewest nodes first."""

    @property
    def deviating(self) -> int:
        """Number of nodes that differ from the expected value."""
        return sum(len(ids) for _, ids in self.differs)


def _order(value: Value) -> tuple[int, str]:
    return (1, "") if value is ABSENT else (0, f"{type(value).__name__}:{value!r}")


def judge_fact(
    group: str,
    key: str,
    values: Mapping[Scalar, Sequence[int]],
    members: Collection[int],
    golden: Value | None = None,
) -> Drift | None:
    """The drift of one fact in one group, or None when every member agrees with the expectation.

    `values` maps each value to the ids of the members holding it; members missing from every
    list lack the fact (a set of them is fastest: a fleet's group has thousands). `golden` (a
    value, or ABSENT) replaces the majority as the expectation.
    """
    held: dict[Value, Sequence[int]] = {}
    for value, ids in values.items():
        held[value] = ids
    holding = sum(len(ids) for ids in values.values())
    if holding < len(members):
        held[ABSENT] = list(_as_set(members).difference(*values.values()))  # in C
    if golden is None:
        expected: Value = min(held, key=lambda v: (-len(held[v]), _order(v)))
    else:
        expected = golden
    differs = [(v, tuple(sorted(ids))) for v, ids in held.items() if ids and not _same(v, expected)]
    if not differs:
        return None
    differs.sort(key=lambda d: (len(d[1]), _order(d[0])))
    return Drift(group, key, expected, len(held.get(expected, ())), tuple(differs))


def _as_set(members: Collection[int]) -> set[int] | frozenset[int]:
    return members if isinstance(members, (set, frozenset)) else set(members)


def _same(value: Value, expected: Value) -> bool:
    if value is ABSENT or expected is ABSENT:
        return value is expected
    return type(value) is type(expected) and value == expected


def find_drift(
    facts: Mapping[str, Mapping[str, Mapping[Scalar, Sequence[int]]]],
    groups: Mapping[str, Sequence[int]],
    golden: Mapping[str, Scalar] | None = None,
) -> list[Drift]:
    """Every drifting fact of every group, rarest first (fewest differing nodes, then by key).

    With `golden`, each node is compared with that node's facts instead of the majority: a fact
    the golden node has and a node lacks, or the reverse, is drift too.
    """
    out = []
    for group, listed in groups.items():
        members = frozenset(listed)
        keys = facts.get(group, {})
        names = set(keys)
        if golden is not None:
            names.update(golden)
        for key in names:
            expected: Value | None = None
            if golden is not None:
                expected = golden.get(key, ABSENT)
            drift = judge_fact(group, key, keys.get(key, {}), members, expected)
            if drift is not None:
                out.append(drift)
    out.sort(key=lambda d: (d.deviating, d.group, d.key))
    return out
