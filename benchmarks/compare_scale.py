"""`preflight compare` at cluster scale: 12,500 node reports (100,000 GPUs) in under 10 s and 2 GiB.

Usage: python benchmarks/compare_scale.py [--nodes 1250 5000 12500] [--dir DIR] [--keep] [--jobs N]

Reports are made from the built-in profiles, each run once through `preflight.execute.execute`, then
copied per node with realistic variation, in the JSON layout `run --format json --output` writes:
- mix: 78 % dgx-h100, 20 % hgx-h200, 2 % spread over the other built-in profiles, the faulty
  variants (ACS on, IOMMU translated, a GPU link at x8, run unprivileged…);
- per node: hostname, start time, the root-disk UUID on the kernel command line, and every fact
  the unique-key rule leaves out (serials, GUIDs…) differ, as on a real fleet;
- drift that no check judges: 0.3 % of nodes on an older BIOS, 1 % on an older kernel, 0.5 % on
  an older driver, 5 % with busy GPUs (links at 32 GT/s instead of the idle 2.5 GT/s).

Reports are written in folders of 1,250 so that the smaller sizes are subsets of the larger one.
Each size runs `python -m preflight compare FOLDERS --format json` as one process tree and
records wall time, CPU time (process and workers; on a shared machine the wall time depends on
what else runs, so the load average is printed too) and peak memory (sum of the resident sets of
the process and its workers, sampled every 20 ms). The files are read from the page cache (they
were just written). Exits 1 when the largest size misses the targets or compare misses a planted
fault.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from preflight import result_figures
from preflight.cluster.rules import UUID_RE, is_naturally_unique
from preflight.execute import RunOptions, execute
from preflight.profile import builtin_names

FOLDER = 1250
TARGET_S = 10.0
TARGET_BYTES = 2 * 2**30


@dataclass
class Template:
    """One profile's report as text, with what the variations replace in it."""

    profile: str
    text: str
    facts: dict[str, Any]
    failing: bool
    hostname: str
    started_at: str

    @property
    def unique(self) -> list[str]:
        """Facts the unique-key rule leaves out (serials, GUIDs…): each node gets its own."""
        cached = self.__dict__.get("_unique")
        if cached is None:
            cached = [
                k
                for k, v in self.facts.items()
                if is_naturally_unique(k) and isinstance(v, (str, int)) and not isinstance(v, bool)
            ]
            self.__dict__["_unique"] = cached
        return cached


HEALTHY = ("dgx-h100", "hgx-h200")
"""The other built-in profiles are faulty variants of these (each extends one)."""


def templates() -> tuple[list[Template], list[Template]]:
    """Healthy and faulty-variant templates, one per built-in profile."""
    healthy, faulty = [], []
    for name in builtin_names():
        report = execute(RunOptions(profile=name))
        doc = report.to_dict()
        text = json.dumps(doc, indent=2) + "\n"
        bad = report.status.value in ("fail", "error")
        t = Template(name, text, doc["facts"], bad, report.hostname, report.started_at)
        (healthy if name in HEALTHY else faulty).append(t)
    return healthy, faulty


def fact_line(key: str, value: Any) -> str:
    """How json.dumps(indent=2) writes one fact inside "facts"."""
    return f"    {json.dumps(key)}: {json.dumps(value)}"


def swap(text: str, key: str, old: Any, new: Any) -> str:
    """Replace one fact's value in the report text."""
    return text.replace(fact_line(key, old), fact_line(key, new), 1)


Variation = Callable[[Template, str, random.Random], str]


def older_bios(t: Template, text: str, rng: random.Random) -> str:
    old = t.facts.get("dmi.bios_version")
    return swap(text, "dmi.bios_version", old, "1.5.1") if old else text


def older_kernel(t: Template, text: str, rng: random.Random) -> str:
    release = t.facts.get("kernel.release")
    if not release:
        return text
    older = "5.15.0-1063-nvidia"
    text = swap(text, "kernel.release", release, older)
    return text.replace(f"vmlinuz-{release}", f"vmlinuz-{older}")


def older_driver(t: Template, text: str, rng: random.Random) -> str:
    old = t.facts.get("nvidia.driver_version")
    return swap(text, "nvidia.driver_version", old, "550.90.07") if old else text


def busy_gpus(t: Template, text: str, rng: random.Random) -> str:
    for key, value in t.facts.items():
        gpu = key.endswith(".current_link_speed") and f"{key[:-19]}.bar1_bytes" in t.facts
        if gpu and value != "32.0 GT/s":
            text = swap(text, key, value, "32.0 GT/s")
    return text


DRIFT: list[tuple[float, Variation]] = [
    (0.003, older_bios),
    (0.01, older_kernel),
    (0.005, older_driver),
    (0.05, busy_gpus),
]


def node_report(t: Template, index: int, rng: random.Random) -> tuple[str, list[str]]:
    """One node's report text and the names of the variations it got."""
    name = f"gpu-{index // 8:04d}-{index % 8:02d}"
    text = t.text.replace(f'"hostname": {json.dumps(t.hostname)}', f'"hostname": "{name}"', 1)
    started = f"2025-06-01T03:{(index // 60) % 60:02d}:{index % 60:02d}+00:00"
    text = text.replace(f'"started_at": {json.dumps(t.started_at)}', f'"started_at": "{started}"')
    for found in set(UUID_RE.findall(str(t.facts.get("kernel.cmdline", "")))):
        text = text.replace(found, str(uuid.UUID(int=rng.getrandbits(128))))
    for key in t.unique:
        old = t.facts[key]
        text = swap(text, key, old, f"{old}-{index}" if isinstance(old, str) else old + index)
    applied = []
    for share, vary in DRIFT:
        if rng.random() < share:
            text = vary(t, text, rng)
            applied.append(vary.__name__)
    return text, applied


LOW_BUSBW = 0.005
"""--figures: share of nodes planted with a low all-reduce bus bandwidth (an outlier)."""


def busbw_result() -> str:
    """A bench.allreduce result as `run --bench` writes it (the real judge, a made-up
    measurement of 123.45 GB/s at the 1 GiB gate, which each node's value replaces)."""
    from preflight.bench.expected import Theoretical
    from preflight.bench.measurement import MEASURED, Measurement
    from preflight.bench.result import RankInfo, Row, SweepResult
    from preflight.checks.bench import judge_allreduce
    from preflight.model import CheckResult

    ranks = tuple(RankInfo(r, r, "h", "h", r, f"cuda:{r}") for r in range(8))
    gib = 1 << 30
    row = Row(gib, gib // 4, "float", 8000.0, 130.0, 123.45, 0, (), (0,) * 8)
    result = SweepResult(
        "nccl",
        "float32",
        20,
        5,
        "nproc",
        ranks,
        (row,),
        {},
        Theoretical(450.0, "NVLink 18 links × 25 GB/s per GPU"),
    )
    v = judge_allreduce(Measurement(MEASURED, "", result, "nccl", 8), gib, 0.0)
    doc = CheckResult("bench.allreduce", "All-reduce", v.status, v.summary, 1.0, v.findings)
    return json.dumps(doc.to_dict(), indent=2).replace("\n", "\n    ")


def with_busbw(text: str, result: str, rng: random.Random) -> tuple[str, bool]:
    """The report with a bench.allreduce result first among its results and its figure in the
    report's figures, as `run --bench` writes them; whether it is low."""
    low = rng.random() < LOW_BUSBW
    value = rng.uniform(250.0, 300.0) if low else rng.uniform(355.0, 365.0)
    filled = result.replace("123.45", f"{value:.2f}")
    measured = dict(result_figures.from_result(json.loads(filled)))
    text = text.replace('"figures": {}', '"figures": ' + json.dumps(measured), 1)
    return text.replace('"results": [', '"results": [\n    ' + filled + ",", 1), low


def generate(root: Path, nodes: int, seed: int = 42, figures: bool = False) -> dict[str, Any]:
    """Write `nodes` reports under root/part-NN/; return what was planted."""
    healthy, faulty = templates()
    busbw = busbw_result() if figures else ""
    dgx = next(t for t in healthy if t.profile == "dgx-h100")
    h200 = next((t for t in healthy if t.profile == "hgx-h200"), dgx)
    rng = random.Random(seed)
    planted: dict[str, Any] = {"failing": 0, "variations": {}, "by_profile": {}}
    for index in range(nodes):
        roll = rng.random()
        if roll < 0.02 and faulty:
            t = faulty[index % len(faulty)]
        elif roll < 0.22:
            t = h200
        else:
            t = dgx
        text, applied = node_report(t, index, rng)
        if figures:
            text, low = with_busbw(text, busbw, rng)
            planted["low_busbw"] = planted.get("low_busbw", 0) + low
        planted["failing"] += t.failing
        planted["by_profile"][t.profile] = planted["by_profile"].get(t.profile, 0) + 1
        for name in applied:
            planted["variations"][name] = planted["variations"].get(name, 0) + 1
        folder = root / f"part-{index // FOLDER:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"gpu-{index:05d}.json").write_text(text)
    return planted


def measure(folders: list[Path], jobs: int | None) -> tuple[float, float, int, dict[str, Any]]:
    """Wall seconds, CPU seconds and peak bytes of the process tree, and the comparison."""
    out = folders[0].parent / "compare.json"
    cmd = [sys.executable, "-m", "preflight", "compare", *map(str, folders)]
    cmd += ["--format", "json", "--output", str(out), "--fail-on", "none"]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers were waited for: included
    cpu = sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
    if proc.returncode != 0:
        raise SystemExit(f"compare exited {proc.returncode}")
    return wall, cpu, peak, json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1250, 5000, 12500])
    parser.add_argument("--dir", type=Path, help="where to write the reports (default: a tmp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the reports afterwards")
    parser.add_argument("--jobs", type=int, help="compare --jobs (default: its own)")
    parser.add_argument(
        "--figures",
        action="store_true",
        help="every report carries an all-reduce busbw (0.5 %% planted low: outliers)",
    )
    args = parser.parse_args()
    sizes = sorted(args.nodes)
    if any(n % FOLDER for n in sizes):
        parser.error(f"sizes must be multiples of {FOLDER}")
    root = args.dir or Path(tempfile.mkdtemp(prefix="preflight-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        planted = generate(root, sizes[-1], figures=args.figures)
        size = sum(f.stat().st_size for f in root.rglob("*.json"))
        print(
            f"generated {sizes[-1]:,} reports ({size / 2**30:.2f} GiB) in "
            f"{time.perf_counter() - t0:.0f} s under {root}; {os.cpu_count()} CPUs"
        )
        print(f"planted: {json.dumps(planted)}")
        rows = []
        ok = True
        for n in sizes:
            folders = sorted(root.glob("part-*"))[: n // FOLDER]
            load = os.getloadavg()[0]
            wall, cpu, peak, doc = measure(folders, args.jobs)
            rows.append((n, wall, peak))
            print(
                f"{n:>7,} nodes: {wall:6.2f} s wall, {cpu:6.2f} s CPU, "
                f"peak {peak / 2**20:5.0f} MiB, {cpu / n * 1e3:.3f} ms CPU/node (load {load:.1f}); "
                f"{doc['failures']['nodes']} failing nodes, "
                f"{doc['drift']['facts']} drifting facts on {doc['drift']['nodes']} nodes"
            )
        n, wall, peak = rows[-1]
        if n == sizes[-1]:
            found = doc["failures"]["nodes"]
            bios = [d for d in doc["drift"]["items"] if d["fact"] == "dmi.bios_version"]
            if found != planted["failing"]:
                print(f"MISSED: {planted['failing']} failing nodes planted, {found} reported")
                ok = False
            low = sum(len(f["outliers"]) for f in doc.get("figures", []))
            if args.figures and low != planted["low_busbw"]:
                print(f"MISSED: {planted['low_busbw']} low busbw planted, {low} outliers")
                ok = False
            if planted["variations"].get("older_bios") and not bios:
                print("MISSED: the older BIOS was not reported as drift")
                ok = False
        verdict = wall < TARGET_S and peak < TARGET_BYTES
        print(
            f"target at {n:,} nodes: < {TARGET_S:g} s and < {TARGET_BYTES / 2**30:g} GiB: "
            + ("met" if verdict else "MISSED")
        )
        return 0 if ok and verdict else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
