"""Steps of a run that are not checks but report as a result row: gathering the facts (a row
only when that fails) and, with `--state`, the node's history.

Such a row sits among the checks in every format (table, JSON, JUnit, Prometheus) and counts
in the exit code like a check's, so `preflight explain ID` explains it and `preflight list`
shows it, like a check. `--only`/`--skip` select checks, not these.
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
    runs: str = "every run"
    """Which runs take this step."""
    row: str = "only when it fails"
    """When it reports a row."""

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

HISTORY = Stage(
    id="node.history",
    title="Node does not fail again after a repair (lemon node)",
    runs="runs with --state",
    row="in every such run",
    raw_doc="""
    With `--state DIR`, each run records its failing and passing checks (the last 20 runs) and
    adds this row: a check that fails now, failed before, and passed in between was repaired
    and failed again.

    ## Why
    A GPU, cable or HCA that keeps failing after each reseat, reset or firmware flash costs a
    job every time it comes back. Past the first repair, the part should be replaced (RMA)
    rather than repaired once more; one run alone cannot see that.

    ## Reads
    The history in `DIR/state.json` (written by earlier runs with the same `--state`), and this
    run's results. Nothing on the node.

    ## Verdicts
    - PASS: no check failed again after passing (the summary says over how many earlier runs).
    - WARN: each check that failed, passed (repaired?) and fails now, with when it failed and
      when it passed. A run that did not judge the check (another `--only`, a skip, an error)
      is no pass.

    ## Fix
    Replace the part the named check points at instead of repairing it again; the check's own
    finding says which (`preflight explain ID` for that check). Once replaced, the warning ends
    when the check passes on the next runs.
    """,
)

STAGES = (HISTORY, FACTS)
"""Every stage, by id order."""


def stage(stage_id: str) -> Stage | None:
    """The stage with this id, if any."""
    return next((s for s in STAGES if s.id == stage_id), None)
