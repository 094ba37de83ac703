"""Shell-completion candidates for option values (check ids, profiles, baselines, formats).

Each function takes what the user has typed so far and returns (value, help) pairs; the shell
asks by running `preflight` with `_PREFLIGHT_COMPLETE=complete_<shell>` in the environment. A
completion must never print an error into the user's prompt, so a registry that fails to load
(a broken plugin) completes nothing instead.
"""

from __future__ import annotations

from collections.abc import Callable

from preflight.errors import PreflightError

Candidates = list[tuple[str, str]]


def _matching(candidates: Candidates, incomplete: str) -> Candidates:
    return [(value, text) for value, text in candidates if value.startswith(incomplete)]


def check_ids(incomplete: str) -> Candidates:
    """A check id, for `explain`."""
    from preflight.registry import discover
    from preflight.stages import STAGES

    try:
        registry = discover()
    except PreflightError:
        return []
    ids = [(s.id, s.title) for s in registry] + [(s.id, s.title) for s in STAGES]
    return _matching(sorted(ids), incomplete)


def check_patterns(incomplete: str) -> Candidates:
    """--only/--skip: ids, area globs (`pcie.*`) and `tag:NAME`, after the last comma of a
    comma list (`pcie.acs,pcie.l` completes the second item)."""
    from preflight.registry import discover

    head, comma, item = incomplete.rpartition(",")
    prefix = head + comma
    try:
        registry = discover()
    except PreflightError:
        return []
    areas = sorted({s.area for s in registry})
    tags = sorted({t for s in registry for t in s.tags})
    candidates = (
        [(s.id, s.title) for s in registry]
        + [(f"{a}.*", f"every {a} check") for a in areas]
        + [(f"tag:{t}", f"checks tagged {t}") for t in tags]
    )
    return [(prefix + value, text) for value, text in _matching(candidates, item)]


def profile_names(incomplete: str) -> Candidates:
    """A built-in profile (a path completes as a file name where the shell does that)."""
    from preflight.profile import builtin_names

    return _matching([(n, "built-in profile") for n in builtin_names()], incomplete)


def baseline_names(incomplete: str) -> Candidates:
    """A built-in baseline."""
    from preflight.baseline import builtin_names

    return _matching([(n, "built-in baseline") for n in builtin_names()], incomplete)


def choices(*values: str) -> Callable[[str], Candidates]:
    """A completer offering fixed values (`--format table|json|…`)."""

    def complete(incomplete: str) -> Candidates:
        return _matching([(v, "") for v in values], incomplete)

    return complete
