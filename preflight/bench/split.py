"""`bench allreduce --split`: the sweep inside one node, then network only (as AWS compares).

NCCL: the intra-node leg is NCCL as it is (NVLink, P2P, SHM, NVLS), one node only; the network
leg turns those off (NCCL_P2P_DISABLE=1, NCCL_SHM_DISABLE=1, NCCL_NVLS_ENABLE=0), so even ranks
of one node exchange through the NIC (NCCL's NET transport). gloo has no NVLink or shared-memory
path: every byte crosses TCP sockets, so its legs (loopback `lo`, then the job's interface) show
the socket path twice and are no NVLink vs network split; the report says so and gives no ratio.
Each leg runs as the per-rail children do (preflight.bench.rails.run_legs). No torch here.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from preflight.bench.rails import RAIL_ENV, RailOutcome, run_legs
from preflight.outfile import write_output

SCHEMA = "preflight-bench-allreduce-split/1"
NETWORK_ONLY = {"NCCL_P2P_DISABLE": "1", "NCCL_SHM_DISABLE": "1", "NCCL_NVLS_ENABLE": "0"}
GLOO_NOTE = (
    "gloo moves every byte through TCP sockets: both legs are the socket path (lo, then the "
    "job's interface), not NVLink vs network; that split needs --backend nccl"
)
MULTI_NODE_NOTE = "intra-node leg not run: it needs every rank on one node (run it per node)"


def legs(
    backend: str, one_node: bool, environ: Mapping[str, str]
) -> list[tuple[str, dict[str, str]]]:
    """(name, variables) of each leg for this backend and world."""
    out: list[tuple[str, dict[str, str]]] = []
    if backend == "gloo":
        if one_node:
            out.append(("intra-node (lo)", {"GLOO_SOCKET_IFNAME": "lo", RAIL_ENV: "split"}))
        iface = environ.get("GLOO_SOCKET_IFNAME", "")
        name = f"network ({iface})" if iface else "network (gloo's default interface)"
        out.append((name, {RAIL_ENV: "split"}))
        return out
    if one_node:
        out.append(("intra-node (NVLink/P2P/SHM)", {RAIL_ENV: "split"}))
    out.append(("network only (P2P, SHM, NVLS off)", {**NETWORK_ONLY, RAIL_ENV: "split"}))
    return out


def leg_busbw(o: RailOutcome) -> float | None:
    """busbw at the largest size of a leg's sweep."""
    rows = (o.result or {}).get("rows") or []
    return float(max(rows, key=lambda r: r["bytes"])["busbw_gbps"]) if rows else None


def report(outcomes: Sequence[RailOutcome], backend: str, one_node: bool) -> dict[str, Any]:
    """The JSON document of `bench allreduce --split --format json`."""
    notes = ([] if one_node else [MULTI_NODE_NOTE]) + ([GLOO_NOTE] if backend == "gloo" else [])
    values = [leg_busbw(o) for o in outcomes]
    ratio = None
    if backend == "nccl" and len(values) == 2 and values[0] and values[1] is not None:
        ratio = values[1] / values[0]
    failed = [o.rail for o, v in zip(outcomes, values, strict=True) if v is None or o.code != 0]
    if failed:
        summary = "FAIL: leg(s) without an exact result: " + ", ".join(failed)
    elif ratio is not None:
        summary = f"network-only busbw = {ratio:.0%} of intra-node at the largest size"
    else:
        summary = "measured; no NVLink vs network ratio (see the notes)"
    return {
        "schema": SCHEMA,
        "backend": backend,
        "legs": [
            {"leg": o.rail, "exit_code": o.code, "busbw_gbps": v, "sweep": o.result}
            for o, v in zip(outcomes, values, strict=True)
        ],
        "network_to_intra_ratio": ratio,
        "notes": notes,
        "status": "fail" if failed else "pass",
        "summary": summary,
    }


def table(doc: Mapping[str, Any]) -> str:
    """One line per leg with its busbw at the largest size, the notes, the summary."""
    lines = [f"# preflight bench allreduce --split ({doc['backend']}): busbw at the largest size"]
    for leg in doc["legs"]:
        v = leg["busbw_gbps"]
        shown = "-" if v is None else f"{v:9.3f} GB/s"
        lines.append(f"{leg['leg']:<40} {shown:>14}")
    lines += [f"# note: {n}" for n in doc["notes"]]
    lines.append(doc["summary"])
    return "\n".join(lines) + "\n"


def split_command(
    argv: Sequence[str], backend: str, fmt: str, output: str | None, timeout_s: float
) -> int:
    """This rank's part of `--split`: the legs as children, then (rank 0) the report."""
    from preflight.bench.env import rank_env
    from preflight.errors import PreflightError

    if backend not in ("nccl", "gloo"):
        sys.stderr.write("preflight: error: --split needs --backend nccl or gloo\n")
        return 2
    try:
        me = rank_env(os.environ)
    except PreflightError as exc:
        sys.stderr.write(f"preflight: error: {exc}\n")
        return exc.exit_code
    one_node = me.local_world_size == me.world_size
    chosen = legs(backend, one_node, os.environ)
    outcomes = run_legs(argv, chosen, os.environ, me.master_port, me.rank == 0, timeout_s)
    if me.rank != 0:
        return 0 if all(o.code == 0 for o in outcomes) else 1
    doc = report(outcomes, backend, one_node)
    text = json.dumps(doc, indent=1) + "\n" if fmt == "json" else table(doc)
    # Replaced atomically; a write that fails is an OutputError: one line, exit 2.
    write_output(output, text)
    return 0 if doc["status"] == "pass" else 1
