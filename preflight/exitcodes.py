"""Exit codes and the one rule that maps a report to one."""

from __future__ import annotations

import enum

from preflight.model import Report, Status


class ExitCode(enum.IntEnum):
    """Process exit status of every preflight command."""

    OK = 0  # no fail or error (warn allowed unless --strict)
    FAILED = 1  # at least one fail or error: the node should not take jobs
    USAGE = 2  # bad command line
    CONFIG = 3  # bad profile, baseline or --set: nothing was run
    INTERNAL = 4  # a bug in preflight: one line on stderr, never a traceback
    SIGINT = 130  # interrupted (128 + signal number): nothing drained, resumed or reported
    BROKEN_PIPE = 141  # stdout closed early (`preflight list | head -1`): ends quietly
    SIGTERM = 143


def for_report(report: Report, strict: bool = False) -> ExitCode:
    """FAILED when any check failed or errored (or warned, with strict; or an essential check
    could not run, with strict or the baseline's unchecked_fails)."""
    statuses = {r.status for r in report.results}
    if statuses & {Status.FAIL, Status.ERROR}:
        return ExitCode.FAILED
    if strict and Status.WARN in statuses:
        return ExitCode.FAILED
    if report.unchecked and (strict or report.unchecked_fails):
        return ExitCode.FAILED
    return ExitCode.OK
