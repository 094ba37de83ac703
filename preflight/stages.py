"""Steps of a run that are not checks but report as a result row when they fail.

Such a row sits among the checks in every format (table, JSON, JUnit, Prometheus) and counts
as an error in the exit code, so `preflight explain ID` explains it and `preflight list` shows
it, like a check. It always runs: `--only`/`--skip` select checks, not these.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """A step of every run that may end as an ERROR row."""

    id: str
    title: str
    raw_doc: str

    @property
    def doc(self) -> str:
        """The user documentation, in the sections a check's docstring has."""
        return inspect.cleandoc(self.raw_doc)


FACTS = Stage(
    id="preflight.facts",
    title="Node facts gathered",
    raw_doc="""
    The node's facts (BIOS, kernel, PCI settings, firmware…) are read after the checks, for the
    report and for fleet comparison. This row appears only when that failed.

    ## Why
    `preflight compare` finds the node on another BIOS, ACS setting or firmware by comparing
    facts across nodes; a report without facts cannot be compared, and a read that hangs or
    fails points at a node whose sysfs or kernel is not answering.

    ## Reads
    The same sysfs, procfs and DMI files the checks read, once more, under the per-check
    `--timeout`.

    ## Verdicts
    - ERROR: the facts could not be gathered (the reason, or the file a read was blocked on,
      is in the summary); the report carries no facts. There is no PASS row: facts that were
      gathered are the report's `facts` object.

    ## Fix
    Look at the file named in the summary (`cat` it with a timeout; a read that never returns
    is a driver or device that hangs, `dmesg` says which). Rerun with a longer `--timeout` on a
    heavily loaded node.
    """,
)

STAGES = (FACTS,)
"""Every stage, by id order."""


def stage(stage_id: str) -> Stage | None:
    """The stage with this id, if any."""
    return next((s for s in STAGES if s.id == stage_id), None)
