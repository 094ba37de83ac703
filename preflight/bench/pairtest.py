"""One rank of `preflight bench locate`: rounds of concurrent pair all-reduces between nodes.

Every rank computes the same schedule from the same results (locate.next_round), so no plan is
broadcast. In a round, each pair's ranks form a process group and time `iters` all_reduces of
one size; the pair's lowest rank posts the slowest member's time to the store, where every rank
collects the round before planning the next.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from preflight.bench import interrupt
from preflight.bench.dist import Session, close_session, first_line, join_world
from preflight.bench.errors import BenchError, BenchInterrupted
from preflight.bench.hooks import Hooks
from preflight.bench.locate import (
    LocateRun,
    Pair,
    PairResult,
    full_rounds_for,
    judge,
    next_round,
)
from preflight.bench.metrics import busbw_gbps, dtype, element_count, format_size

MAX_EXTRA_ROUNDS = 16
"""Re-test rounds after the scheduled ones; each resolves at least one suspect or stops."""


@dataclass(frozen=True)
class LocateOptions:
    """One size, its repetitions, and the judgement's knobs."""

    nbytes: int = 64 << 20
    backend: str = "auto"
    iters: int = 10
    warmup: int = 3
    dtype: str = "float32"
    init_timeout_s: float = 60.0
    op_timeout_s: float = 30.0
    rounds: int | None = None  # scheduled round-robin rounds; None = every pair up to 8 nodes
    slow_ratio: float = 0.75
    min_busbw_gbps: float | None = None
    node_id: str | None = None


class PairTester:
    """Runs the pair rounds in an open session."""

    def __init__(self, session: Session, opts: LocateOptions, hooks: Hooks) -> None:
        self.s = session
        self.opts = opts
        self.hooks = hooks
        dt_ = dtype(opts.dtype)
        self.count = element_count(opts.nbytes, dt_)
        if self.count < 1:
            raise BenchError(f"--bytes {opts.nbytes} is smaller than one {dt_.name} element")
        self.nbytes = self.count * dt_.size
        self.buf = torch.zeros(self.count, dtype=getattr(torch, dt_.name), device=session.device)
        self.node_ranks = session.node_ranks()

    def _time_pair(self, pair: Pair, group: Any) -> float:
        """The median over the timed iterations of the slowest member's time.

        Each iteration is timed on its own (closed by a device sync): a pair test judges one
        pair against the others, and a median shrugs off the one iteration a busy host delayed.
        """
        s = self.s
        members = set(pair)
        for _ in range(self.opts.warmup):
            self.hooks.before_collective(self.nbytes, members)
            dist.all_reduce(self.buf, group=group)
            s.watchdog.beat()
        align = torch.zeros(1, device=s.device)
        dist.all_reduce(align, group=group)
        s.sync()
        times = []
        for _ in range(self.opts.iters):
            start = time.perf_counter()
            self.hooks.before_collective(self.nbytes, members)
            dist.all_reduce(self.buf, group=group)
            s.sync()
            times.append(time.perf_counter() - start)
            s.watchdog.beat()
        mine = torch.tensor(times, dtype=torch.float64, device=s.device)
        dist.all_reduce(mine, op=dist.ReduceOp.MAX, group=group)
        return float(mine.median().item())

    def run_round(self, index: int, pairs: list[Pair]) -> list[PairResult]:
        """Test the pairs concurrently; every rank returns every pair's result."""
        s = self.s
        me = s.env.rank
        mine: tuple[int, Pair, list[int], Any] | None = None
        groups = []
        for i, (a, b) in enumerate(pairs):
            ranks = sorted(self.node_ranks[a] + self.node_ranks[b])
            what = f"process group for pair {a}–{b}"
            with s.watchdog.waiting(what, s.op_timeout_s):
                group = dist.new_group(ranks, timeout=dt.timedelta(seconds=s.op_timeout_s))
            groups.append(group)
            if me in ranks:
                mine = (i, (a, b), ranks, group)
        if mine is not None:
            i, pair, ranks, group = mine
            what = f"all_reduce of {format_size(self.nbytes)} between nodes {pair[0]} and {pair[1]}"
            try:
                with s.watchdog.waiting(what, s.op_timeout_s):
                    seconds = self._time_pair(pair, group)
            except Exception as exc:
                raise BenchError(
                    f"rank {me} ({s.me.host}): {what} failed: {first_line(exc)}"
                ) from None
            if me == ranks[0]:
                s.store.set(f"locate/{index}/{i}", repr(seconds))
        keys = [f"locate/{index}/{i}" for i in range(len(pairs))]
        budget = s.op_timeout_s * (self.opts.warmup + self.opts.iters + 3)
        what = f"round {index + 1} pair results ({len(pairs)} pairs)"
        try:
            with s.watchdog.waiting(what, budget + 5):
                s.store.wait(keys, dt.timedelta(seconds=budget))
                values = s.store.multi_get(keys)
        except Exception as exc:
            raise BenchError(f"rank {me}: {what} not posted in time: {first_line(exc)}") from None
        for group in groups:
            if group is not None and group != dist.GroupMember.NON_GROUP_MEMBER:
                dist.destroy_process_group(group)
        out = []
        for (a, b), raw in zip(pairs, values, strict=True):
            seconds = float(raw.decode() if isinstance(raw, bytes) else raw)
            n = len(self.node_ranks[a]) + len(self.node_ranks[b])
            out.append(PairResult(a, b, index, seconds * 1e6, busbw_gbps(self.nbytes, seconds, n)))
        return out


@dataclass(frozen=True)
class PartialLocate:
    """What an interrupted search had measured: the pair tests of its finished rounds."""

    results: tuple[PairResult, ...]
    rounds: int
    nbytes: int
    backend: str

    def table(self, signal_name: str) -> str:
        """The pair tests so far, one per line, and why there is no verdict."""
        lines = [
            f"# preflight bench locate: interrupted by {signal_name} after {self.rounds} rounds "
            f"({len(self.results)} pair tests of {format_size(self.nbytes)}, backend "
            f"{self.backend}): no verdict",
            f"{'pair':<33} {'round':>5} {'busbw':>8}",
        ]
        for r in self.results:
            lines.append(f"{r.a + ' - ' + r.b:<33} {r.round + 1:>5} {r.busbw_gbps:8.2f}")
        return "\n".join(lines) + "\n"

    def to_dict(self, signal_name: str) -> dict[str, Any]:
        """The JSON document printed instead of the report."""
        return {
            "schema": "preflight-bench-locate/1",
            "status": "interrupted",
            "interrupted": signal_name,
            "rounds": self.rounds,
            "bytes": self.nbytes,
            "backend": self.backend,
            "pairs": [
                {
                    "nodes": [r.a, r.b],
                    "round": r.round,
                    "time_us": round(r.time_us, 3),
                    "busbw_gbps": round(r.busbw_gbps, 4),
                }
                for r in self.results
            ],
        }


def run_locate(opts: LocateOptions, environ: Mapping[str, str]) -> tuple[LocateRun, bool]:
    """Run this rank's part of the search; the result is the same on every rank.

    A stop signal (interrupt.raise_on_stop_signals) raises BenchInterrupted with a PartialLocate.
    """
    joined = join_world(environ, opts.node_id, opts.backend, opts.init_timeout_s, opts.op_timeout_s)
    env, hooks, watchdog, session = joined.env, joined.hooks, joined.watchdog, joined.session
    node_ranks = session.node_ranks()
    nodes = list(node_ranks)
    if len(nodes) < 2:
        raise BenchError(
            f"locate needs at least 2 nodes; all {env.world_size} ranks report node "
            f"{nodes[0]!r} (set --node-id or {'$'}PREFLIGHT_NODE_ID per node)"
        )
    tester = PairTester(session, opts, hooks)
    full = opts.rounds if opts.rounds is not None else full_rounds_for(len(nodes))
    results: list[PairResult] = []
    index = 0
    try:
        while index < full + MAX_EXTRA_ROUNDS:
            pairs = next_round(nodes, results, index, full, opts.slow_ratio, opts.min_busbw_gbps)
            if not pairs:
                break
            results += tester.run_round(index, pairs)
            index += 1
    except (BenchError, BenchInterrupted):
        signum = interrupt.received()
        if signum is None:
            raise
        partial = PartialLocate(tuple(results), index, tester.nbytes, session.backend)
        raise BenchInterrupted(signum, partial) from None
    verdicts = judge(nodes, results, opts.slow_ratio, opts.min_busbw_gbps)
    hosts: dict[str, list[str]] = {}
    for r in session.ranks:
        hosts.setdefault(r.node_id, [])
        if r.host not in hosts[r.node_id]:
            hosts[r.node_id].append(r.host)
    run = LocateRun(
        nodes=node_ranks,
        hosts=hosts,
        results=tuple(results),
        judgement=verdicts,
        nbytes=tester.nbytes,
        dtype=dtype(opts.dtype).name,
        backend=session.backend,
        rounds=index,
    )
    close_session(session)
    watchdog.close()
    return run, env.is_leader
