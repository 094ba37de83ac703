"""One rank of `preflight bench allreduce`: the timed sweep over sizes, verified element by element.

Per size: warm-up calls, the ranks aligned, `iters` back-to-back all_reduces timed on the wall
clock and closed by a device synchronize (nccl-tests' default method), then one all_reduce of a
known fill whose exact sum every rank checks. The time reported is the slowest rank's.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from preflight import __version__
from preflight.bench import interrupt
from preflight.bench.dist import (
    Session,
    close_session,
    first_line,
    gather_floats,
    join_world,
    versions,
)
from preflight.bench.errors import BenchError, BenchInterrupted
from preflight.bench.expected import Theoretical, node_topology, theoretical_busbw
from preflight.bench.hooks import Hooks
from preflight.bench.metrics import DType, busbw_gbps, dtype, element_count, fill_for, format_size
from preflight.bench.render import sweep_progress
from preflight.bench.result import Row, SweepResult, judge_gate


@dataclass(frozen=True)
class SweepOptions:
    """What one sweep measures and how long each wait may take."""

    sizes: tuple[int, ...]
    backend: str = "auto"
    iters: int = 20
    warmup: int = 5
    dtype: str = "float32"
    init_timeout_s: float = 60.0
    op_timeout_s: float = 30.0
    gate_bytes: int | None = None
    min_busbw_gbps: float | None = None
    theoretical_gbps: float | None = None
    node_id: str | None = None
    progress: bool = False


def torch_dtype(dt: DType) -> torch.dtype:
    """The torch dtype of a DType."""
    return getattr(torch, dt.name)


def tiled(values: list[int], count: int, dt: torch.dtype, device: torch.device) -> torch.Tensor:
    """values repeated to count elements."""
    base = torch.tensor(values, dtype=dt, device=device)
    return base.repeat(math.ceil(count / len(values)))[:count].contiguous()


class Sweeper:
    """Measures one size at a time in an open session."""

    def __init__(self, session: Session, opts: SweepOptions, hooks: Hooks) -> None:
        self.s = session
        self.opts = opts
        self.hooks = hooks
        self.dt = dtype(opts.dtype)
        self.tdt = torch_dtype(self.dt)
        self.world = session.env.world_size
        self.fill = fill_for(self.world, self.dt)
        self.nodes = set(session.node_ranks())

    def _loop(self, buf: torch.Tensor, n: int, nbytes: int) -> None:
        wd = self.s.watchdog
        if self.hooks.active:
            for _ in range(n):
                self.hooks.before_collective(nbytes, self.nodes)
                dist.all_reduce(buf)
                wd.beat()
        else:
            for _ in range(n):
                dist.all_reduce(buf)
                wd.beat()

    def measure(self, nbytes: int, index: int, total: int) -> Row:
        """Time and verify one size; BenchError when a collective fails."""
        count = element_count(nbytes, self.dt)
        nbytes = count * self.dt.size
        what = f"all_reduce of {format_size(nbytes)} (size {index + 1} of {total})"
        s = self.s
        try:
            with s.watchdog.waiting(what, s.op_timeout_s):
                buf = torch.zeros(count, dtype=self.tdt, device=s.device)
                self._loop(buf, self.opts.warmup, nbytes)
                align = torch.zeros(1, device=s.device)
                dist.all_reduce(align)
                s.sync()
                start = time.perf_counter()
                self._loop(buf, self.opts.iters, nbytes)
                s.sync()
                seconds = (time.perf_counter() - start) / self.opts.iters
                wrong = self._verify(buf, count, nbytes)
                per_rank = gather_floats(s, [seconds, float(wrong)])
        except BenchError:
            raise
        except Exception as exc:
            raise BenchError(
                f"rank {s.env.rank} ({s.me.host}): {what} failed: {first_line(exc)}"
            ) from None
        times = [p[0] for p in per_rank]
        wrongs = [int(p[1]) for p in per_rank]
        slowest = max(times)
        return Row(
            bytes=nbytes,
            count=count,
            type=self.dt.nccl_name,
            time_us=slowest * 1e6,
            algbw_gbps=nbytes / slowest / 1e9 if slowest > 0 else 0.0,
            busbw_gbps=busbw_gbps(nbytes, slowest, self.world),
            wrong=sum(wrongs),
            rank_time_us=tuple(t * 1e6 for t in times),
            rank_wrong=tuple(wrongs),
        )

    def _verify(self, buf: torch.Tensor, count: int, nbytes: int) -> int:
        """All-reduce the known fill once; count elements that differ from the exact sum."""
        s = self.s
        buf.copy_(tiled(self.fill.rank_values(s.env.rank), count, self.tdt, s.device))
        self._loop(buf, 1, nbytes)
        if self.hooks.corrupt:
            k = min(self.hooks.corrupt, count)
            # Expected sums are >= 0, so -1 - x differs from x in every type.
            buf[:k] = -1 - buf[:k]
        expected = tiled(self.fill.expected(self.world), count, self.tdt, s.device)
        return int(torch.ne(buf, expected).sum().item())


def theoretical_for(session: Session, given: float | None) -> tuple[Theoretical | None, str]:
    """The bound: as given on the command line, else from this node's topology."""
    if given is not None:
        return Theoretical(given, "given with --theoretical-gbps"), ""
    per_node = max(len(r) for r in session.node_ranks().values())
    nodes = len(session.node_ranks())
    try:
        from preflight.host import Host
        from preflight.inventory import Inventory

        topo = node_topology(Inventory(Host()), session.device.type, per_node, nodes)
    except Exception as exc:
        return None, f"this node's topology could not be read: {first_line(exc)}"
    return theoretical_busbw(topo)


@dataclass(frozen=True)
class PartialSweep:
    """What an interrupted sweep had measured: the rows of its first sizes, of `planned`."""

    result: SweepResult
    planned: int


def _result(
    session: Session,
    sweeper: Sweeper,
    opts: SweepOptions,
    rows: list[Row],
    theoretical: Theoretical | None,
    note: str,
) -> SweepResult:
    return SweepResult(
        backend=session.backend,
        dtype=sweeper.dt.name,
        iters=opts.iters,
        warmup=opts.warmup,
        launcher=session.env.launcher,
        ranks=session.ranks,
        rows=tuple(rows),
        environment=versions(session.backend),
        theoretical=theoretical,
        theoretical_note=note,
        tool_version=__version__,
    )


def run_sweep(opts: SweepOptions, environ: Mapping[str, str]) -> tuple[SweepResult, bool]:
    """Run this rank's part; returns the result (complete on every rank) and whether it leads.

    A stop signal (interrupt.raise_on_stop_signals) raises BenchInterrupted with a PartialSweep.
    """
    joined = join_world(environ, opts.node_id, opts.backend, opts.init_timeout_s, opts.op_timeout_s)
    env, hooks, watchdog, session = joined.env, joined.hooks, joined.watchdog, joined.session
    sweeper = Sweeper(session, opts, hooks)
    sizes = sorted({element_count(b, sweeper.dt) * sweeper.dt.size for b in opts.sizes} - {0})
    if not sizes:
        raise BenchError(f"every size is smaller than one {sweeper.dt.name} element")
    rows: list[Row] = []
    show = opts.progress and env.is_leader
    try:
        with sweep_progress(len(sizes), show, sys.stderr) as progress:
            for i, nbytes in enumerate(sizes):
                progress.size(nbytes, i)
                rows.append(sweeper.measure(nbytes, i, len(sizes)))
            progress.done(len(sizes))
    except (BenchError, BenchInterrupted):
        signum = interrupt.received()
        if signum is None:
            raise
        partial = _result(session, sweeper, opts, rows, None, "interrupted")
        raise BenchInterrupted(signum, PartialSweep(partial, len(sizes))) from None
    theoretical, note = (None, "")
    if env.is_leader:
        theoretical, note = theoretical_for(session, opts.theoretical_gbps)
    result = _result(session, sweeper, opts, rows, theoretical, note)
    gate_bytes = opts.gate_bytes or sizes[-1]
    result = result.with_gate(judge_gate(result.rows, gate_bytes, opts.min_busbw_gbps, theoretical))
    close_session(session)
    watchdog.close()
    return result, env.is_leader
