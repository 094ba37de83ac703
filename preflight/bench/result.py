"""What a benchmark run produced: rows per size, the ranks, the gate, as data and as JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from preflight.bench.expected import Theoretical
from preflight.bench.metrics import format_size

SCHEMA = "preflight-bench-allreduce/1"


@dataclass(frozen=True)
class RankInfo:
    """One rank as it introduced itself at the rendezvous."""

    rank: int
    local_rank: int
    host: str
    node_id: str
    pid: int
    device: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "rank": self.rank,
            "local_rank": self.local_rank,
            "host": self.host,
            "node_id": self.node_id,
            "pid": self.pid,
            "device": self.device,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RankInfo:
        """Inverse of to_dict."""
        return cls(
            int(d["rank"]),
            int(d["local_rank"]),
            str(d["host"]),
            str(d["node_id"]),
            int(d["pid"]),
            str(d["device"]),
        )


@dataclass(frozen=True)
class Row:
    """One message size: nccl-tests' columns, plus what each rank saw."""

    bytes: int
    count: int
    type: str
    time_us: float  # the slowest rank's mean time per all_reduce
    algbw_gbps: float
    busbw_gbps: float
    wrong: int  # elements that differ from the exact sum, over all ranks
    rank_time_us: tuple[float, ...] = ()
    rank_wrong: tuple[int, ...] = ()
    redop: str = "sum"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "bytes": self.bytes,
            "count": self.count,
            "type": self.type,
            "redop": self.redop,
            "time_us": round(self.time_us, 3),
            "algbw_gbps": round(self.algbw_gbps, 4),
            "busbw_gbps": round(self.busbw_gbps, 4),
            "wrong": self.wrong,
            "rank_time_us": [round(t, 3) for t in self.rank_time_us],
            "rank_wrong": list(self.rank_wrong),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Row:
        """Inverse of to_dict."""
        return cls(
            bytes=int(d["bytes"]),
            count=int(d["count"]),
            type=str(d["type"]),
            redop=str(d.get("redop", "sum")),
            time_us=float(d["time_us"]),
            algbw_gbps=float(d["algbw_gbps"]),
            busbw_gbps=float(d["busbw_gbps"]),
            wrong=int(d["wrong"]),
            rank_time_us=tuple(float(t) for t in d.get("rank_time_us", ())),
            rank_wrong=tuple(int(w) for w in d.get("rank_wrong", ())),
        )


@dataclass(frozen=True)
class Gate:
    """The judgement at one plateau size: busbw against a floor (and the theoretical bound)."""

    bytes: int
    busbw_gbps: float | None  # None when the size was not measured
    min_busbw_gbps: float | None
    percent_of_theoretical: float | None

    @property
    def passed(self) -> bool:
        """No floor, or busbw at or above it."""
        if self.busbw_gbps is None:
            return False
        return self.min_busbw_gbps is None or self.busbw_gbps >= self.min_busbw_gbps

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "bytes": self.bytes,
            "busbw_gbps": self.busbw_gbps,
            "min_busbw_gbps": self.min_busbw_gbps,
            "percent_of_theoretical": self.percent_of_theoretical,
            "passed": self.passed,
        }


def judge_gate(
    rows: Sequence[Row],
    gate_bytes: int,
    min_busbw_gbps: float | None,
    theoretical: Theoretical | None,
) -> Gate:
    """busbw at exactly gate_bytes against the floor; a missing row fails the gate."""
    row = next((r for r in rows if r.bytes == gate_bytes), None)
    busbw = row.busbw_gbps if row else None
    pct = (
        round(theoretical.percent(busbw), 1)
        if theoretical is not None and busbw is not None
        else None
    )
    return Gate(gate_bytes, busbw, min_busbw_gbps, pct)


@dataclass(frozen=True)
class SweepResult:
    """A whole `bench allreduce` run."""

    backend: str
    dtype: str
    iters: int
    warmup: int
    launcher: str
    ranks: tuple[RankInfo, ...]
    rows: tuple[Row, ...]
    environment: Mapping[str, str | None] = field(default_factory=dict)
    theoretical: Theoretical | None = None
    theoretical_note: str = ""
    gate: Gate | None = None
    tool_version: str = ""

    @property
    def world_size(self) -> int:
        """Number of ranks."""
        return len(self.ranks)

    @property
    def nodes(self) -> list[str]:
        """Node ids in rank order, each once."""
        return list(dict.fromkeys(r.node_id for r in self.ranks))

    @property
    def hosts(self) -> list[str]:
        """Host names in rank order, each once."""
        return list(dict.fromkeys(r.host for r in self.ranks))

    @property
    def wrong(self) -> int:
        """Wrong elements over every size and rank."""
        return sum(r.wrong for r in self.rows)

    def problems(self) -> list[str]:
        """Why this run fails, in words; empty when it passes."""
        out = []
        bad = [r for r in self.rows if r.wrong]
        if bad:
            sizes = ", ".join(format_size(r.bytes) for r in bad[:4])
            out.append(
                f"{self.wrong} wrong elements in the reduced data at {sizes}"
                + ("…" if len(bad) > 4 else "")
                + ": silent data corruption"
            )
        g = self.gate
        if g is not None and not g.passed:
            if g.busbw_gbps is None:
                out.append(f"gate size {format_size(g.bytes)} was not measured")
            else:
                out.append(
                    f"busbw {g.busbw_gbps:.2f} GB/s at {format_size(g.bytes)}, "
                    f"expected >= {g.min_busbw_gbps:g} GB/s"
                )
        return out

    @property
    def passed(self) -> bool:
        """No wrong element and the gate (if any) passed."""
        return not self.problems()

    def with_gate(self, gate: Gate | None) -> SweepResult:
        """A copy with the gate set."""
        return replace(self, gate=gate)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of `bench allreduce --format json`."""
        return {
            "schema": SCHEMA,
            "tool": {"name": "preflight", "version": self.tool_version},
            "op": "all_reduce",
            "backend": self.backend,
            "dtype": self.dtype,
            "world_size": self.world_size,
            "nodes": self.nodes,
            "hosts": self.hosts,
            "iters": self.iters,
            "warmup": self.warmup,
            "launcher": self.launcher,
            "environment": dict(self.environment),
            "ranks": [r.to_dict() for r in self.ranks],
            "rows": [r.to_dict() for r in self.rows],
            "theoretical": None
            if self.theoretical is None
            else {"busbw_gbps": self.theoretical.busbw_gbps, "basis": self.theoretical.basis},
            "theoretical_note": self.theoretical_note,
            "gate": None if self.gate is None else self.gate.to_dict(),
            "status": "pass" if self.passed else "fail",
            "problems": self.problems(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepResult:
        """Inverse of to_dict (the gate is recomputed by whoever judges)."""
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document: schema {d.get('schema')!r}")
        theo = d.get("theoretical")
        gate = d.get("gate")
        return cls(
            backend=str(d["backend"]),
            dtype=str(d["dtype"]),
            iters=int(d["iters"]),
            warmup=int(d["warmup"]),
            launcher=str(d["launcher"]),
            ranks=tuple(RankInfo.from_dict(r) for r in d["ranks"]),
            rows=tuple(Row.from_dict(r) for r in d["rows"]),
            environment=dict(d.get("environment", {})),
            theoretical=None
            if not theo
            else Theoretical(float(theo["busbw_gbps"]), str(theo["basis"])),
            theoretical_note=str(d.get("theoretical_note", "")),
            gate=None
            if not gate
            else Gate(
                int(gate["bytes"]),
                gate["busbw_gbps"],
                gate["min_busbw_gbps"],
                gate["percent_of_theoretical"],
            ),
            tool_version=str(d.get("tool", {}).get("version", "")),
        )
