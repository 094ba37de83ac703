"""Is `preflight bench allreduce` as fast as a hand-written torch.distributed loop?

Usage: python benchmarks/allreduce_overhead.py [--nproc 2] [--backend gloo] [--sizes 1M,4M,16M,64M]
                                          [--iters 20] [--warmup 5] [--repeats 10]

In one run: N rank processes share one process group, and for every size alternate, `--repeats`
times, between the tool's own measurement (`Sweeper.measure`: warm-up, alignment, `iters` timed
all_reduces with the watchdog beating, device sync, verification, the slowest rank's time) and a
minimal loop (warm-up, barrier, `iters` all_reduces, device sync, the slowest rank's time). Both
see the same ranks, buffers, machine state and noise; the medians of each are compared. Exits 1
when the tool's median busbw at a size >= 1 MiB is below --target (0.97) × the loop's.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time

from preflight.bench.env import TOKEN_ENV
from preflight.bench.launch import free_port
from preflight.bench.metrics import busbw_gbps, format_size, parse_size


def rank_main(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from preflight.bench.auth import job_token
    from preflight.bench.dist import close_session, open_session
    from preflight.bench.env import rank_env
    from preflight.bench.hooks import Hooks
    from preflight.bench.sweep import Sweeper, SweepOptions
    from preflight.bench.watchdog import Watchdog

    env = rank_env(os.environ)
    token = job_token(os.environ, env.world_size)
    session = open_session(env, args.backend, "local", 60, 60, Watchdog(f"rank {env.rank}"), token)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    opts = SweepOptions(sizes=tuple(sizes), iters=args.iters, warmup=args.warmup)
    sweeper = Sweeper(session, opts, Hooks(env.rank, "local"))
    n = env.world_size
    out: dict[str, dict[int, list[float]]] = {"tool": {}, "loop": {}}
    for size in sizes:
        for _ in range(args.repeats):
            row = sweeper.measure(size, 0, 1)
            out["tool"].setdefault(size, []).append(row.busbw_gbps)
            buf = torch.zeros(size // 4, device=session.device)
            for _ in range(args.warmup):
                dist.all_reduce(buf)
            dist.barrier()
            session.sync()
            start = time.perf_counter()
            for _ in range(args.iters):
                dist.all_reduce(buf)
            session.sync()
            seconds = (time.perf_counter() - start) / args.iters
            t = torch.tensor([seconds], dtype=torch.float64, device=session.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            out["loop"].setdefault(size, []).append(busbw_gbps(size, t.item(), n))
    close_session(session)
    if env.rank == 0:
        print(json.dumps(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--backend", default="gloo")
    parser.add_argument("--sizes", default="1M,4M,16M,64M")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.97)
    parser.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank:
        rank_main(args)
        return 0
    port = str(free_port())
    token = secrets.token_hex(32)
    procs = []
    start = time.monotonic()
    for rank in range(args.nproc):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(args.nproc), LOCAL_RANK=str(rank))
        env.update(LOCAL_WORLD_SIZE=str(args.nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        env[TOKEN_ENV] = token
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--rank", *sys.argv[1:]],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    if any(p.returncode for p in procs):
        print("a rank failed", file=sys.stderr)
        return 2
    data = json.loads(outs[0])
    print(
        f"{args.nproc} ranks, {args.backend}, iters {args.iters}, warmup {args.warmup}, "
        f"{args.repeats} alternating repeats per size ({time.monotonic() - start:.0f} s)"
    )
    print(f"{'size':>8} {'loop median':>12} {'tool median':>12} {'tool/loop':>10} {'spread':>16}")
    worst = float("inf")
    for key in data["tool"]:
        size = int(key)
        tool, loop = data["tool"][key], data["loop"][key]
        ratio = statistics.median(tool) / statistics.median(loop)
        spread = f"{min(loop + tool):.2f}-{max(loop + tool):.2f}"
        if size >= 1 << 20:
            worst = min(worst, ratio)
        print(
            f"{format_size(size):>8} {statistics.median(loop):12.3f} "
            f"{statistics.median(tool):12.3f} {ratio:10.3f} {spread:>16}"
        )
    print(f"lowest median ratio at >= 1 MiB: {worst:.3f} (target {args.target})")
    return 0 if worst >= args.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
