"""Slurm: drain this node when its run fails, resume it when it passes, never what others drained.

`run --slurm-drain` drains with a reason that starts `preflight:` and names the failing checks;
`run --slurm-resume` resumes only a node whose drain reason starts `preflight:`, so a node an
operator drained for maintenance stays drained. Every `scontrol` call is time-boxed: slurmd kills
a HealthCheckProgram after 60 s, and a hung slurmctld must not hang the health check with it.
Besides the NVML collector, this is the one module that starts processes.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from preflight import drain_guard
from preflight.drain_guard import DrainLimit, Guard
from preflight.model import CheckResult, Status

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
    """Ids of the checks that fail the run (and warnings with --strict), as the exit code does."""
    bad = {Status.FAIL, Status.ERROR} | ({Status.WARN} if strict else set())
    return [r.id for r in results if r.status in bad]


def drain_reason(failing: Sequence[str]) -> str:
    """`preflight: pcie.acs,pcie.link`, cut to REASON_MAX characters with a count of the rest."""
    reason = f"{REASON_PREFIX} " + ",".join(failing)
    if len(reason) <= REASON_MAX:
        return reason
    shown: list[str] = []
    for check_id in failing:
        candidate = f"{REASON_PREFIX} " + ",".join([*shown, check_id])
        if len(candidate) + len(f",… (+{len(failing)})") > REASON_MAX:
            break
        shown.append(check_id)
    return f"{REASON_PREFIX} " + ",".join(shown) + f",… (+{len(failing) - len(shown)})"


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
) -> Action:
    """The Slurm action for a run's outcome and the node's current state (None: unknown)."""
    if not passed:
        if not drain:
            return Action("none", "run failed; --slurm-drain not given")
        reason = drain_reason(failing)
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


MAX_OUTPUT = 64 * 1024 * 1024
"""Bytes of output read from one call: `sinfo --Node` of a 100,000-node cluster is a few MiB;
a command that prints more is killed rather than let it fill memory."""


def run_bounded(argv: Sequence[str], timeout_s: float, max_output: int = MAX_OUTPUT) -> CallResult:
    """Run a command with a hard time limit and a cap on its output; on timeout (or too much
    output) its whole process group is killed.

    The command runs in a session of its own, so that a wrapper script's children (which would
    keep the output pipe open and block the read) die with it.
    """
    # SINFO_FORMAT, SINFO_PARTITION… would change what sinfo answers to the query it is given.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINFO_")}
    try:
        proc = subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return CallResult(False, "", f"cannot run {argv[0]}: {exc.strerror or exc}")
    deadline = time.monotonic() + timeout_s
    try:
        chunks, why = _read_bounded(proc, deadline, timeout_s, max_output)
    finally:
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    if why is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.05, deadline - time.monotonic()))
        if proc.returncode is None:
            why = f"did not answer within {timeout_s:g} s"
    if why is not None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        # A process in uninterruptible sleep survives SIGKILL: abandoned, the run goes on.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1.0)
        return CallResult(False, "", f"{argv[0]} {why}; abandoned")
    # A node name or reason in another encoding is no traceback.
    out = b"".join(chunks[1]).decode("utf-8", "replace")
    err = b"".join(chunks[2]).decode("utf-8", "replace")
    if proc.returncode != 0:
        detail = (err or out).strip().splitlines()
        return CallResult(
            False, out, f"{argv[0]} exited {proc.returncode}: {detail[-1] if detail else ''}"
        )
    return CallResult(True, out)


def _read_bounded(
    proc: subprocess.Popen[bytes], deadline: float, timeout_s: float, max_output: int
) -> tuple[dict[int, list[bytes]], str | None]:
    """Both pipes until they close; the reason to give up (time, size) or None."""
    chunks: dict[int, list[bytes]] = {1: [], 2: []}
    if proc.stdout is None or proc.stderr is None:  # Popen was given PIPE for both
        return chunks, "has no output pipe"
    total = 0
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, 1)
        sel.register(proc.stderr, selectors.EVENT_READ, 2)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return chunks, f"did not answer within {timeout_s:g} s"
            for key, _ in sel.select(left):
                data = os.read(key.fd, 1 << 16)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                total += len(data)
                if total > max_output:
                    return chunks, f"printed more than {max_output // (1024 * 1024)} MiB"
                chunks[key.data].append(data)
    return chunks, None


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


def apply(
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
) -> bool:
    """Query the node, decide, act (or only say what it would do); False when a call failed."""
    return carry_out(
        name,
        passed,
        failing,
        drain=drain,
        resume=resume,
        dry_run=dry_run,
        timeout_s=timeout_s,
        runner=runner,
        say=say,
    ).ok


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
) -> Outcome:
    """Query the node, decide, ask the breaker before a drain (with `max_drained`), act (or only
    say what it would do); every step is one line through `say`."""
    shown = runner(show_node_argv(name), timeout_s)
    state = parse_show_node(name, shown.output) if shown.ok else None
    if shown.error:
        say(f"preflight: slurm: cannot read node {name}: {shown.error}")
    action = decide(passed, failing, state, drain, resume)

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
