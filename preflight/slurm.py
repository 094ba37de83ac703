"""Slurm: drain this node when its run fails, resume it when it passes, never what others drained.

`run --slurm-drain` drains with a reason that starts `preflight:` and names the failing checks;
`run --slurm-resume` resumes only a node whose drain reason starts `preflight:`, so a node an
operator drained for maintenance stays drained. Every `scontrol` call is time-boxed: slurmd kills
a HealthCheckProgram after 60 s, and a hung slurmctld must not hang the health check with it.
Its commands run through preflight.subproc (time-boxed, the session killed on timeout).
"""

from __future__ import annotations

import os
import shlex
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from preflight import drain_guard
from preflight.drain_guard import DrainLimit, Guard
from preflight.model import Action as Remedy
from preflight.model import CheckResult, Status, strongest
from preflight.subproc import MAX_OUTPUT, run_in_session

REASON_PREFIX = "preflight:"
REASON_MAX = 200
"""Characters of a drain reason; `sinfo -R` shows reasons in full, but a list of every check of a
badly broken node is noise."""
DEFAULT_TIMEOUT_S = 5.0
SCONTROL = "scontrol"


@dataclass(frozen=True)
class NodeState:
    """What `scontrol show node` says about one node."""

    name: str
    state: str
    """Base state and flags as scontrol prints them: IDLE, IDLE+DRAIN, MIXED+DRAIN, DOWN+DRAIN…"""
    reason: str | None
    """The reason without the `[user@time]` that scontrol appends."""

    @property
    def drained(self) -> bool:
        """DRAIN flag set: draining (jobs still running) or drained."""
        return any(part.startswith("DRAIN") for part in self.state.split("+"))

    @property
    def drained_by_preflight(self) -> bool:
        """Drained with a reason this tool wrote."""
        return self.drained and (self.reason or "").startswith(REASON_PREFIX)


def parse_show_node(name: str, text: str) -> NodeState:
    """The State= and Reason= of `scontrol show node NAME` (multi-line or -o output)."""
    state = ""
    reason = None
    for line in text.splitlines():
        stripped = line.strip()
        if "Reason=" in stripped:
            # Reason is the last field on its line and may contain spaces.
            value = stripped.split("Reason=", 1)[1]
            if value.endswith("]") and " [" in value:
                value = value[: value.rindex(" [")]
            reason = value.strip() or None
            stripped = stripped.split("Reason=", 1)[0]
        for token in stripped.split():
            if token.startswith("State="):
                state = token[len("State=") :]
    return NodeState(name, state, reason)


def failing_checks(results: Sequence[CheckResult], strict: bool = False) -> list[str]:
    """Ids of the checks that fail the run (and warnings with --strict), as the exit code does;
    those with the strongest remediation class first, so a cut reason still names them."""
    bad = {Status.FAIL, Status.ERROR} | ({Status.WARN} if strict else set())
    failing = [r for r in results if r.status in bad]
    failing.sort(key=lambda r: -1 if r.action is None else -r.action.rank)
    return [r.id for r in failing]


def failing_action(results: Sequence[CheckResult], failing: Sequence[str]) -> Remedy | None:
    """The strongest remediation class of the failing checks (None when none carries one)."""
    ids = set(failing)
    return strongest(r.action for r in results if r.id in ids)


def drain_reason(failing: Sequence[str], action: Remedy | None = None) -> str:
    """`preflight: reset-gpu gpu.row_remap,pcie.link`: the node's remediation class (a site's
    automation acts on it) and the failing checks, cut to REASON_MAX characters with a count of
    the rest."""
    head = f"{REASON_PREFIX} " + (f"{action.value} " if action is not None else "")
    reason = head + ",".join(failing)
    if len(reason) <= REASON_MAX:
        return reason
    shown: list[str] = []
    for check_id in failing:
        candidate = head + ",".join([*shown, check_id])
        if len(candidate) + len(f",… (+{len(failing)})") > REASON_MAX:
            break
        shown.append(check_id)
    return head + ",".join(shown) + f",… (+{len(failing) - len(shown)})"


@dataclass(frozen=True)
class Action:
    """What to do to the node, and why (said on stderr either way)."""

    kind: str  # "drain", "resume" or "none"
    why: str
    reason: str | None = None


def decide(
    passed: bool,
    failing: Sequence[str],
    state: NodeState | None,
    drain: bool,
    resume: bool,
    remedy: Remedy | None = None,
) -> Action:
    """The Slurm action for a run's outcome and the node's current state (None: unknown);
    `remedy` is the failing checks' remediation class, which the drain reason starts with."""
    if not passed:
        if not drain:
            return Action("none", "run failed; --slurm-drain not given")
        reason = drain_reason(failing, remedy)
        if state is not None and state.drained and not state.drained_by_preflight:
            return Action(
                "none", f"already drained by someone else (reason {state.reason!r}); left as it is"
            )
        if state is not None and state.drained and state.reason == reason:
            return Action("none", f"already drained with reason {reason!r}")
        # With the state unknown (scontrol show failed), drain anyway: a failing node must not
        # take jobs, and an update that cannot reach slurmctld changes nothing.
        return Action("drain", "run failed", reason)
    if not resume:
        return Action("none", "run passed; --slurm-resume not given")
    if state is None:
        return Action("none", "run passed, but the node's drain reason is unknown; not resumed")
    if not state.drained:
        return Action("none", f"run passed; node not drained (state {state.state})")
    if not state.drained_by_preflight:
        return Action(
            "none", f"run passed; drained by someone else (reason {state.reason!r}), not resumed"
        )
    return Action("resume", f"run passed; drained by preflight (reason {state.reason!r})")


def node_name(env: Mapping[str, str]) -> str:
    """This node's Slurm name: SLURMD_NODENAME (set for HealthCheckProgram, Prolog and tasks),
    else the short hostname, which is what NodeName usually is."""
    return env.get("SLURMD_NODENAME") or socket.gethostname().split(".", 1)[0]


@dataclass(frozen=True)
class CallResult:
    """How one scontrol call ended."""

    ok: bool
    output: str
    error: str | None = None


Runner = Callable[[Sequence[str], float], CallResult]


def _text(data: bytes) -> str:
    # A node name or reason in another encoding is no traceback; newlines as text mode reads them.
    return data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


def run_bounded(argv: Sequence[str], timeout_s: float, max_output: int = MAX_OUTPUT) -> CallResult:
    """Run a command with a hard time limit and a cap on its output; on timeout (or too much
    output) its whole process group is killed (preflight.subproc)."""
    # SINFO_FORMAT, SINFO_PARTITION… would change what sinfo answers to the query it is given.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINFO_")}
    try:
        done = run_in_session(argv, timeout_s, env=env, max_output=max_output)
    except OSError as exc:
        return CallResult(False, "", f"cannot run {argv[0]}: {exc.strerror or exc}")
    if done.timed_out:
        return CallResult(False, "", f"{argv[0]} did not answer within {timeout_s:g} s; abandoned")
    if done.overflowed:
        mib = max_output // (1024 * 1024)
        return CallResult(False, "", f"{argv[0]} printed more than {mib} MiB; abandoned")
    out, err = _text(done.stdout), _text(done.stderr)
    if done.returncode != 0:
        detail = (err or out).strip().splitlines()
        return CallResult(
            False, out, f"{argv[0]} exited {done.returncode}: {detail[-1] if detail else ''}"
        )
    return CallResult(True, out)


def show_node_argv(name: str) -> list[str]:
    """The read-only query."""
    return [SCONTROL, "show", "node", name]


def update_argv(name: str, action: Action) -> list[str]:
    """The scontrol update that carries out an action."""
    if action.kind == "drain":
        return [SCONTROL, "update", f"NodeName={name}", "State=DRAIN", f"Reason={action.reason}"]
    return [SCONTROL, "update", f"NodeName={name}", "State=RESUME"]


@dataclass(frozen=True)
class Outcome:
    """What was done to the node: `drain`, `resume`, `held` (the breaker) or `none`, with the
    line said about it; `ok` False when a Slurm call failed."""

    node: str
    action: str
    message: str
    ok: bool
    guard: Guard | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON form (the report's `slurm`)."""
        return {
            "node": self.node,
            "action": self.action,
            "message": self.message,
            "guard": self.guard.to_dict() if self.guard else None,
        }


def check_guard(
    name: str, limit: DrainLimit, scope: str, timeout_s: float, runner: Runner
) -> Guard:
    """The breaker's answer for draining `name`: one sinfo call, time-boxed like scontrol's."""
    listed = runner(drain_guard.sinfo_argv(), timeout_s)
    if not listed.ok:
        return drain_guard.unknown(limit, scope, listed.error or "sinfo failed")
    try:
        rows = drain_guard.parse_sinfo(listed.output)
        counted = drain_guard.count(rows, name, scope, REASON_PREFIX)
    except drain_guard.SinfoUnreadable as exc:
        return drain_guard.unknown(limit, scope, f"sinfo output unreadable: {exc}")
    return drain_guard.judge(limit, counted)


def carry_out(
    name: str,
    passed: bool,
    failing: Sequence[str],
    *,
    drain: bool,
    resume: bool,
    dry_run: bool,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    runner: Runner = run_bounded,
    say: Callable[[str], None] = print,
    max_drained: DrainLimit | None = None,
    scope: str = "partition",
    remedy: Remedy | None = None,
) -> Outcome:
    """Query the node, decide, ask the breaker before a drain (with `max_drained`), act (or only
    say what it would do); every step is one line through `say`."""
    shown = runner(show_node_argv(name), timeout_s)
    state = parse_show_node(name, shown.output) if shown.ok else None
    if shown.error:
        say(f"preflight: slurm: cannot read node {name}: {shown.error}")
    action = decide(passed, failing, state, drain, resume, remedy)

    def done(kind: str, line: str, ok: bool, guard: Guard | None = None) -> Outcome:
        say(line)
        return Outcome(name, kind, line.removeprefix("preflight: slurm: "), ok, guard)

    if action.kind == "none":
        return done("none", f"preflight: slurm: node {name}: nothing to do: {action.why}", shown.ok)
    guard = None
    if action.kind == "drain" and max_drained is not None:
        guard = check_guard(name, max_drained, scope, timeout_s, runner)
        if not guard.allow:
            return done(
                "held",
                f"preflight: slurm: node {name}: {guard.message}",
                guard.error is None,
                guard,
            )
    argv = update_argv(name, action)
    if dry_run:
        line = f"preflight: slurm: dry run: would run: {shlex.join(argv)} ({action.why})"
        return done("none", line, shown.ok, guard)
    result = runner(argv, timeout_s)
    if not result.ok:
        return done(
            action.kind,
            f"preflight: slurm: cannot {action.kind} node {name}: {result.error}",
            False,
            guard,
        )
    what = f"drained node {name}: {action.reason}" if action.kind == "drain" else f"resumed {name}"
    why = action.why + (f"; {guard.message}" if guard else "")
    return done(action.kind, f"preflight: slurm: {what} ({why})", shown.ok, guard)
