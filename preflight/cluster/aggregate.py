"""Many reports → one Fleet: node records, and per group and fact, which nodes hold which value.

Reading is most of the cost (a DGX report is ~240 kB: `fastparse` verifies its results in two
byte searches and decodes its header; the ~36 kB of facts are read through the group
reference's text template, see facts_text, or decoded), so batches of reports are read in
worker processes, each folding its batch into a Partial; the parent merges the partials. A node
equal to one of its group's reference nodes costs one append to that reference's class; the
others cost one dict lookup and one append per fact. Node ids are stored in compact arrays (4
bytes each), so time and memory grow linearly with the number of nodes."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context

from preflight import safeio
from preflight.cluster import detail as node_detail
from preflight.cluster import facts_text
from preflight.cluster.record import NodeRecord, ReportError, parse
from preflight.cluster.rules import FactRule, mask
from preflight.cluster.sources import Item
from preflight.errors import PreflightError
from preflight.model import Scalar

GROUP_BY_BASELINE = "baseline"
GROUP_BY_NONE = "none"
ALL = "all"

REFERENCES = 3
"""References per group and batch: each node that matches none costs a comparison with each."""

BATCH = 256
"""Reports per worker task: large enough that pickling a Partial back is cheap per report, small
enough that the batches in flight (two per worker) of a tarball's reports stay ~250 MB."""

Values = dict[Scalar, "array[int]"]
"""A fact's values → the ids of the nodes that hold them. JSON true and 1 are one dict key, which
is harmless: a fact key carries one type on every node."""


@dataclass
class Partial:
    """What one batch (or the merge of many) adds up to. Node ids are input positions."""

    nodes: dict[int, NodeRecord] = field(default_factory=dict)
    group_of: dict[int, str] = field(default_factory=dict)
    facts: dict[str, dict[str, Values]] = field(default_factory=dict)
    """group → fact key → values."""
    classes: dict[str, list[tuple[dict[str, Scalar], array[int]]]] = field(default_factory=dict)
    """group → (masked facts, the ids of the nodes holding exactly those): the nodes found equal
    to a reference, kept whole until finish() so that merging a batch's thousands of them costs a
    dict comparison per reference instead of an array extension per fact."""
    left_out: dict[str, str] = field(default_factory=dict)
    """Keys left out of drift by the rule → why (unique, ignored)."""
    unreadable: list[tuple[int, str, str]] = field(default_factory=list)


def group_name(record: NodeRecord, facts: dict[str, Scalar], group_by: str) -> str:
    """The node's peer group: its baseline (node type), everyone, or the value of one fact."""
    if group_by == GROUP_BY_BASELINE:
        return record.baseline or "(no baseline)"
    if group_by == GROUP_BY_NONE:
        return ALL
    value = facts.get(group_by)
    return f"{group_by}={value}" if group_by in facts else f"{group_by} absent"


def _read(item: Item) -> bytes:
    if item.data is not None:
        return item.data
    try:
        return safeio.read_regular(item.source, safeio.REPORT_MAX_BYTES)
    except OSError as exc:
        raise ReportError(f"cannot read: {exc.strerror or exc}") from None
    except safeio.InputRefused as exc:
        raise ReportError(f"cannot read: {exc}") from None


@dataclass
class _Reference:
    """A node of a group in a batch that the others are compared with as a whole.

    Most nodes of a fleet equal their group's first node in every fact except the naturally
    unique ones and UUIDs inside values. Such a node is found by its facts text (the reference's
    template, see facts_text) or else with a dict comparison (or a set difference) in C, and
    recorded once per batch instead of once per fact; only the others take the per-fact path.
    A group has up to REFERENCES of them: its first node, and the first nodes that differ from
    those before (when the first is the odd one out, the others still take the short path).
    """

    items: set[tuple[str, Scalar]]
    masked: dict[str, Scalar]
    exact: dict[str, Scalar]
    """The facts whose values hold no UUID, as they are."""
    with_uuid: dict[str, Scalar]
    """The facts whose values hold a UUID (a kernel command line's root=UUID=), masked."""
    facts: dict[str, Scalar]
    text: str | None = None
    """Its facts as the report writes them, when read by the shortcut (see facts_text)."""
    plain: array[int] = field(default_factory=lambda: array("I"))
    template: facts_text.Template | None = None
    cut: bool = False

    def read(self, text: str, left_out: Mapping[str, str]) -> dict[str, Scalar] | None:
        """The facts of a node whose facts text is this node's up to its left-out and UUID
        values, when those values mask to this node's; None for any other node (decode it)."""
        if not self.cut:  # at the group's second node: a lone node never pays for the cut
            self.cut = True
            if self.text is not None:
                variable = {k for k in self.facts if k in left_out} | self.with_uuid.keys()
                self.template = facts_text.cut(self.text, self.facts, variable)
        facts = self.template.read(text) if self.template is not None else None
        if facts is None:
            return None
        for key, expected in self.with_uuid.items():
            if mask(facts[key]) != expected:
                return None
        return facts


def _reference(
    facts: dict[str, Scalar], rule: FactRule, left_out: dict[str, str], text: str | None
) -> _Reference:
    kept = {}
    for key, value in facts.items():
        if key not in left_out:
            reason = rule.left_out(key)
            if reason:
                left_out[key] = reason
                continue
            kept[key] = value
    masked = {k: mask(v) for k, v in kept.items()}
    exact = {k: v for k, v in kept.items() if masked[k] == v}
    with_uuid = {k: m for k, m in masked.items() if k not in exact}
    return _Reference(set(kept.items()), masked, exact, with_uuid, facts, text)


def _same(facts: dict[str, Scalar], ref: _Reference, left_out: dict[str, str]) -> bool:
    """The common case, in C: the node's facts less the left-out ones equal the reference's.

    True is exact; False may be wrong (a key never seen before), so _is_plain decides then.
    """
    probe = dict(facts)
    for key in left_out:
        probe.pop(key, None)
    for key, expected in ref.with_uuid.items():
        if key not in probe or mask(probe.pop(key)) != expected:
            return False
    return probe == ref.exact


def _is_plain(
    facts: dict[str, Scalar], ref: _Reference, rule: FactRule, left_out: dict[str, str]
) -> bool:
    """Whether the node holds the reference's facts (up to masking) and no other drifting one."""
    diff = facts.items() - ref.items  # TypeError on an unhashable value, before anything is added
    for key, value in diff:
        if key in left_out:
            continue
        expected = ref.masked.get(key, _MISSING)
        if expected is _MISSING:
            reason = rule.left_out(key)
            if reason:
                left_out[key] = reason
                continue
            return False
        if mask(value) != expected:
            return False
    return facts.keys() >= ref.masked.keys()


_MISSING = object()


def _equal_peer(
    facts: dict[str, Scalar], peers: list[_Reference], rule: FactRule, left_out: dict[str, str]
) -> _Reference | None:
    """The first reference whose facts the node holds (up to masking), if any."""
    for ref in peers:
        if _same(facts, ref, left_out) or _is_plain(facts, ref, rule, left_out):
            return ref
    return None


def fold(
    batch: Sequence[tuple[int, Item]], rule: FactRule, group_by: str, detail: bool = False
) -> Partial:
    """Decode a batch of reports and fold their facts into a Partial (runs in a worker); with
    `detail`, each record also gets every check's status and the non-passing checks' findings."""
    out = Partial()
    left_out = out.left_out
    refs: dict[str, list[_Reference]] = {}
    reader = _TemplateReader(refs, group_by, left_out)
    for index, item in batch:
        if item.error is not None:
            out.unreadable.append((index, item.source, item.error))
            continue
        try:
            data = _read(item)
            reader.text = None
            reader.hit = None
            record, facts = parse(data, item.source, reader)
            if detail:
                try:
                    results, details = node_detail.scan(data)
                except ValueError as exc:
                    raise ReportError(f"cannot read its results: {exc}") from None
                record = dataclasses.replace(record, results=results, details=details)
            group = group_name(record, facts, group_by)
            peers = refs.setdefault(group, [])
            ref = reader.hit or _equal_peer(facts, peers, rule, left_out)
            if ref is None and len(peers) < REFERENCES:
                ref = _reference(facts, rule, left_out, reader.text)
                peers.append(ref)
            if ref is not None:
                ref.plain.append(index)
            else:
                _add(out.facts.setdefault(group, {}), facts, index, rule, left_out)
        except ReportError as exc:
            out.unreadable.append((index, item.source, str(exc)))
            continue
        except TypeError:
            out.unreadable.append((index, item.source, "a fact value is not a scalar"))
            continue
        out.nodes[index] = record
        out.group_of[index] = group
    for group, peers in refs.items():
        for ref in peers:
            _add_class(out.classes.setdefault(group, []), ref.masked, ref.plain)
    return out


def _add_class(
    classes: list[tuple[dict[str, Scalar], array[int]]], facts: dict[str, Scalar], ids: array[int]
) -> None:
    """Nodes holding exactly `facts`, into the classes of their group."""
    for have, members in classes:
        if have == facts:
            members.extend(ids)
            return
    classes.append((facts, ids))


@dataclass
class _TemplateReader:
    """Reads a shortcut report's facts through its group references' templates (a FactsReader);
    remembers the text it was given and which reference's template read it."""

    refs: Mapping[str, list[_Reference]]
    group_by: str
    left_out: Mapping[str, str]
    text: str | None = None
    hit: _Reference | None = None
    """The reference whose template read the last report."""

    def __call__(self, record: NodeRecord, text: str) -> dict[str, Scalar] | None:
        self.text = text
        if self.group_by not in (GROUP_BY_BASELINE, GROUP_BY_NONE):
            return None  # the group is a fact's value: known only once the facts are read
        for ref in self.refs.get(group_name(record, {}, self.group_by), ()):
            facts = ref.read(text, self.left_out)
            if facts is not None:
                self.hit = ref
                return facts
        return None


def _add(
    per_key: dict[str, Values],
    facts: dict[str, Scalar],
    index: int,
    rule: FactRule,
    left_out: dict[str, str],
) -> None:
    """One node, fact by fact."""
    for key, value in facts.items():
        slot = per_key.get(key)
        if slot is None:
            if key in left_out:
                continue
            reason = rule.left_out(key)
            if reason:
                left_out[key] = reason
                continue
            slot = per_key[key] = {}
        ids = slot.get(value)
        if ids is None:
            ids = slot[value] = array("I")
        ids.append(index)


def merge(into: Partial, part: Partial) -> None:
    """Add a partial's nodes and facts to another."""
    into.nodes.update(part.nodes)
    into.group_of.update(part.group_of)
    into.left_out.update(part.left_out)
    into.unreadable.extend(part.unreadable)
    for group, classes in part.classes.items():
        known = into.classes.setdefault(group, [])
        for facts, ids in classes:
            _add_class(known, facts, ids)
    for group, keys in part.facts.items():
        mine = into.facts.setdefault(group, {})
        for key, values in keys.items():
            slot = mine.get(key)
            if slot is None:
                mine[key] = values
                continue
            for value, ids in values.items():
                have = slot.get(value)
                if have is None:
                    slot[value] = ids
                else:
                    have.extend(ids)


@dataclass
class Fleet:
    """Every readable node, its group, and per group and fact the nodes holding each value."""

    nodes: dict[int, NodeRecord]
    groups: dict[str, list[int]]
    facts: dict[str, dict[str, Values]]
    left_out: dict[str, str]
    unreadable: list[tuple[str, str]]
    duplicates: list[tuple[str, str, str]]
    """(hostname, source kept, source dropped): the newest report of a node wins."""
    reports: int = 0

    def name(self, node_id: int) -> str:
        """The node's hostname."""
        return self.nodes[node_id].name


def finish(total: Partial, reports: int) -> Fleet:
    """Drop older duplicate reports and mask UUIDs in values. Node ids stay in compact arrays,
    in no particular order: drift sorts the few it reports."""
    for group, classes in total.classes.items():
        per_key = total.facts.setdefault(group, {})
        for held, members in classes:
            for key, value in held.items():
                slot = per_key.setdefault(key, {})
                ids = slot.get(value)
                if ids is None:
                    slot[value] = array("I", members)
                else:
                    ids.extend(members)
    total.classes.clear()
    latest: dict[str, int] = {}
    duplicates = []
    dropped: set[int] = set()
    for index in sorted(total.nodes):
        record = total.nodes[index]
        seen = latest.get(record.name)
        if seen is None:
            latest[record.name] = index
            continue
        old = total.nodes[seen]
        keep, drop = (index, seen) if record.started_at >= old.started_at else (seen, index)
        latest[record.name] = keep
        dropped.add(drop)
        duplicates.append((record.name, total.nodes[keep].source, total.nodes[drop].source))
    nodes = {i: r for i, r in total.nodes.items() if i not in dropped}
    groups: dict[str, list[int]] = {}
    for index in sorted(nodes):
        groups.setdefault(total.group_of[index], []).append(index)
    facts: dict[str, dict[str, Values]] = {}
    for group, keys in total.facts.items():
        out = facts.setdefault(group, {})
        for key, values in keys.items():
            masked: Values = {}
            for value, ids in values.items():
                if dropped:
                    ids = array("I", (i for i in ids if i not in dropped))
                if not ids:
                    continue
                into = mask(value)
                have = masked.get(into)
                if have is None:
                    masked[into] = ids
                else:
                    have.extend(ids)
            if masked:
                out[key] = masked
    unreadable = [(source, reason) for _, source, reason in sorted(total.unreadable)]
    return Fleet(nodes, groups, facts, total.left_out, unreadable, duplicates, reports)


SAFE_SPAWN = sys.version_info >= (3, 11)
"""Whether worker processes can be started without the working directory on their sys.path
(PYTHONSAFEPATH); on Python 3.10 reports are decoded in this process."""


@contextlib.contextmanager
def _safe_path_for_children() -> Iterator[None]:
    """PYTHONSAFEPATH=1 in the environment while the block runs, then as it was."""
    before = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONSAFEPATH"]
        else:
            os.environ["PYTHONSAFEPATH"] = before


def default_jobs() -> int:
    """Worker processes: the CPUs this process may run on, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def _batches(items: Iterable[Item]) -> Iterator[list[tuple[int, Item]]]:
    numbered = enumerate(items)
    while True:
        batch = list(itertools.islice(numbered, BATCH))
        if not batch:
            return
        yield batch


def collect(
    items: Iterable[Item],
    rule: FactRule | None = None,
    group_by: str = GROUP_BY_BASELINE,
    jobs: int | None = None,
    detail: bool = False,
) -> Fleet:
    """Read every report and build the Fleet; more than one batch is decoded in parallel.
    `detail`: keep every check's status and the non-passing findings per node (the HTML view)."""
    rule = rule or FactRule()
    jobs = default_jobs() if jobs is None else max(1, jobs)
    total = Partial()
    batches = _batches(items)
    first = next(batches, [])
    second = next(batches, None)
    if second is None or jobs == 1 or not SAFE_SPAWN:
        count = 0
        for batch in itertools.chain([first], [second] if second else [], batches):
            merge(total, fold(batch, rule, group_by, detail))
            count += len(batch)
        return finish(total, count)
    try:
        batches = itertools.chain([first, second], batches)
        count = _in_workers(total, batches, rule, group_by, jobs, detail)
    except BrokenProcessPool as exc:
        raise PreflightError(
            f"a worker process decoding reports died ({exc}); --jobs 1 decodes in this process"
        ) from None
    return finish(total, count)


def _in_workers(
    total: Partial,
    batches: Iterable[list[tuple[int, Item]]],
    rule: FactRule,
    group_by: str,
    jobs: int,
    detail: bool,
) -> int:
    # spawn, not fork: the parent may hold threads (abandoned check threads) that fork would copy
    # mid-lock. At most two batches per worker are in flight, so a tarball streams in bounded
    # memory instead of being read whole ahead of the workers.
    count = 0
    # A spawned worker starts as `python -c …`, which puts the working directory first on
    # sys.path before it imports multiprocessing: a `multiprocessing/` folder wherever root runs
    # `compare` would run as root. PYTHONSAFEPATH (Python 3.11+) keeps it off. The workers are
    # all started by the first submit (spawn never starts them on demand), so the variable is
    # set for this block only and nothing else this process starts inherits it.
    with (
        _safe_path_for_children(),
        ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool,
    ):
        pending: set[Future[Partial]] = set()
        for batch in batches:
            count += len(batch)
            pending.add(pool.submit(fold, batch, rule, group_by, detail))
            while len(pending) >= 2 * jobs:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    merge(total, fut.result())
        for fut in pending:
            merge(total, fut.result())
    return count
