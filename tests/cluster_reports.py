"""Node reports for the cluster tests: real runs of the built-in profiles under chosen hostnames."""

from __future__ import annotations

import copy
import functools
import json
import tempfile
from pathlib import Path
from typing import Any

from preflight.execute import RunOptions, execute
from preflight.result_figures import EACH, GPU_MEDIAN, merged, of

FLEET = [
    *[(f"node{i:02d}", "dgx-h100") for i in range(1, 7)],
    ("node07", "dgx-h100-acs-enabled"),
    ("node08", "hgx-h200"),
    ("node09", "hgx-h200"),
]
"""Six healthy DGX H100, one with ACS redirect on, two HGX H200."""


def report(profile: str, hostname: str, workdir: Path) -> dict[str, Any]:
    """The JSON report of `profile` run as a node called `hostname`."""
    path = workdir / f"{hostname}.profile.json"
    path.write_text(json.dumps({"extends": profile, "hostname": hostname}))
    return execute(RunOptions(profile=str(path))).to_dict()


_WORK = tempfile.TemporaryDirectory(prefix="preflight-cluster-tests-")


@functools.cache
def _cached(profile: str, hostname: str) -> dict[str, Any]:
    # Each (profile, hostname) runs once per test session; callers get their own copy.
    return report(profile, hostname, Path(_WORK.name))


def with_results(doc: dict[str, Any], results: list[dict[str, Any]], older: bool) -> None:
    """Put measuring results first in a report, with their figures as `run` lists them; `older`:
    as a preflight before `figures` wrote it (compare then reads the figures from the results)."""
    doc["results"][:0] = results
    doc["summary"]["counts"]["pass"] += sum(r["status"] == "pass" for r in results)
    kinds = {"bench.": EACH, "gpu.": GPU_MEDIAN}
    found = (f for r in results for f in of(kinds[r["id"].split(".")[0] + "."], r))
    doc["figures"] = dict(merged(found))
    if older:
        del doc["figures"]


def write_fleet(folder: Path, fleet: list[tuple[str, str]] = FLEET) -> dict[str, dict[str, Any]]:
    """One `<hostname>.json` per node in folder (indented, as `run --output` writes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = {}
    for hostname, profile in fleet:
        doc = copy.deepcopy(_cached(profile, hostname))
        (folder / f"{hostname}.json").write_text(json.dumps(doc, indent=2) + "\n")
        docs[hostname] = doc
    return docs
