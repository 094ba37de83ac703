"""Test hooks: faults a test injects into rank processes through environment variables.

They exist so the failure paths (a dying rank, corrupted data, a slow node, a stuck rank) run
for real in the tests; an operator never sets them. Each is one variable:

- PREFLIGHT_BENCH_TEST_EXIT_AFTER="RANK:N"  rank RANK exits (status 17, no cleanup) once it has
  issued N collectives: a rank that dies mid-sweep.
- PREFLIGHT_BENCH_TEST_HANG_AFTER="RANK:N[:PATH]"  rank RANK stops (sleeps, sockets open) once
  it has issued N collectives, and creates PATH when it does: a rank that hangs mid-sweep, so its
  peers' waits must time out (or a test knows exactly what was measured before it acts).
- PREFLIGHT_BENCH_TEST_CORRUPT="RANK:K"     rank RANK changes K elements of every reduced
  buffer before it is verified: silent data corruption on one GPU.
- PREFLIGHT_BENCH_TEST_SLOW="NODE:S[;A+B:S]" before each collective of B bytes, every rank of
  node NODE sleeps B×S/1e9 seconds (S seconds per GB) when NODE is in the collective's group;
  "A+B" sleeps only when both nodes A and B are in it: a slow node, or a bad pair.
- PREFLIGHT_BENCH_TEST_STALL="RANK"          rank RANK ignores SIGTERM and sleeps before the
  rendezvous: a stuck rank, which only the `--nproc` parent's SIGKILL ends.
- PREFLIGHT_BENCH_TEST_HOLD="RANK:PATH"      rank RANK waits before the rendezvous until PATH
  exists (at most HOLD_MAX_S): a late rank, so that a test acts while the others wait for it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from preflight.errors import ConfigError

EXIT_AFTER = "PREFLIGHT_BENCH_TEST_EXIT_AFTER"
HANG_AFTER = "PREFLIGHT_BENCH_TEST_HANG_AFTER"
CORRUPT = "PREFLIGHT_BENCH_TEST_CORRUPT"
SLOW = "PREFLIGHT_BENCH_TEST_SLOW"
STALL = "PREFLIGHT_BENCH_TEST_STALL"
HOLD = "PREFLIGHT_BENCH_TEST_HOLD"
EXIT_STATUS = 17
HOLD_MAX_S = 120.0


def _rank_count(env: Mapping[str, str], name: str) -> tuple[int, int] | None:
    if not env.get(name):
        return None
    rank, _, count = env[name].partition(":")
    try:
        return int(rank), int(count)
    except ValueError:
        raise ConfigError(f"{name}={env[name]!r}: expected RANK:COUNT") from None


@dataclass
class Hooks:
    """The hooks that apply to one rank."""

    rank: int
    node: str
    exit_after: int | None = None
    hang_after: int | None = None
    hang_mark: str = ""
    corrupt: int = 0
    slow: dict[frozenset[str], float] = field(default_factory=dict)
    stall: bool = False
    hold: str | None = None
    issued: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str], rank: int, node: str) -> Hooks:
        """Parse the variables for this rank."""
        hooks = cls(rank, node)
        ea = _rank_count(env, EXIT_AFTER)
        if ea and ea[0] == rank:
            hooks.exit_after = ea[1]
        parts = env.get(HANG_AFTER, "").split(":", 2)
        mark = parts[2] if len(parts) == 3 else ""
        ha = _rank_count({HANG_AFTER: ":".join(parts[:2])}, HANG_AFTER)
        if ha and ha[0] == rank:
            hooks.hang_after, hooks.hang_mark = ha[1], mark
        co = _rank_count(env, CORRUPT)
        if co and co[0] == rank:
            hooks.corrupt = co[1]
        for item in filter(None, env.get(SLOW, "").split(";")):
            who, _, rate = item.rpartition(":")
            try:
                hooks.slow[frozenset(who.split("+"))] = float(rate)
            except ValueError:
                raise ConfigError(f"{SLOW}: {item!r}: expected NODE:SECONDS_PER_GB") from None
        hooks.stall = env.get(STALL, "") == str(rank)
        who, _, path = env.get(HOLD, "").partition(":")
        if path and who == str(rank):
            hooks.hold = path
        return hooks

    @property
    def active(self) -> bool:
        """Whether any hook can act during collectives."""
        return self.exit_after is not None or self.hang_after is not None or bool(self.slow)

    def before_rendezvous(self) -> None:
        """STALL: block here, deaf to SIGTERM. HOLD: wait for the file."""
        if self.hold is not None:
            deadline = time.monotonic() + HOLD_MAX_S
            while not os.path.exists(self.hold) and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.stall:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(3600)

    def before_collective(self, nbytes: int, group_nodes: Collection[str]) -> None:
        """SLOW: sleep for this node (or pair); EXIT/HANG_AFTER: die or hang after N collectives."""
        if self.exit_after is not None and self.issued >= self.exit_after:
            os._exit(EXIT_STATUS)
        if self.hang_after is not None and self.issued >= self.hang_after:
            if self.hang_mark:
                with open(self.hang_mark, "w") as mark:
                    mark.write(f"rank {self.rank} hangs after {self.issued} collectives\n")
            while True:
                time.sleep(3600)
        self.issued += 1
        delay = 0.0
        for nodes, seconds_per_gb in self.slow.items():
            if self.node in nodes and nodes <= set(group_nodes):
                delay += nbytes * seconds_per_gb / 1e9
        if delay:
            time.sleep(delay)
