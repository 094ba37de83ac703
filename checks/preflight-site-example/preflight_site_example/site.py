"""Site checks: the shared filesystems a job needs are mounted and answer; the kernel modules a
site depends on are loaded, at the versions it pinned.

Each check reads the node only through the Inventory it is handed, like preflight's own checks,
so it runs the same on a live node, on a profile and on a snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from preflight.inventory import Inventory
from preflight.inventory.mounts import Mount, MountProbe
from preflight.model import Action, Evidence, Finding, Status, Verdict
from preflight.registry import check, param

MOUNTS_SRC = "procfs:/proc/self/mounts"
MODULES_SRC = "procfs:/proc/modules"


@dataclass(frozen=True)
class MountsParams:
    """required: mount points, each `PATH` or `PATH:FSTYPE` (`/data:nfs4`); timeout_s: how long
    statvfs on each may take."""

    required: tuple[str, ...] = param((), "Mount points, each PATH or PATH:FSTYPE (/data:nfs4).")
    timeout_s: float = param(2.0, "Seconds statvfs on each mount may take.")


def split_required(entry: str, sep: str) -> tuple[str, str | None]:
    """`/data:nfs4` → ("/data", "nfs4"); `/data` → ("/data", None)."""
    name, found, want = entry.partition(sep)
    return name.strip(), (want.strip() or None) if found else None


def judge_mounts(
    mounts: Mapping[str, Mount],
    probes: Mapping[str, MountProbe],
    required: tuple[str, ...],
    timeout_s: float,
) -> Verdict:
    """Every required point mounted (with the required type) and answering statvfs in time."""
    findings = []
    for entry in required:
        point, fstype = split_required(entry, ":")
        mount = mounts.get(point)
        if mount is None:
            findings.append(
                Finding(
                    point,
                    Status.FAIL,
                    "not mounted",
                    (Evidence(MOUNTS_SRC, None, fstype or "mounted"),),
                )
            )
            continue
        seen = Evidence(MOUNTS_SRC, f"{mount.source} {mount.fstype}", fstype or "mounted")
        if fstype is not None and mount.fstype != fstype:
            findings.append(
                Finding(point, Status.FAIL, f"{mount.fstype}, expected {fstype}", (seen,))
            )
            continue
        probe = probes.get(point)
        if probe is None or not probe.answered:
            findings.append(
                Finding(
                    point,
                    Status.FAIL,
                    f"statvfs did not answer within {timeout_s:g} s (server unreachable?)",
                    (seen, Evidence(f"statvfs:{point}", None, f"answer < {timeout_s:g} s")),
                )
            )
            continue
        if probe.usage is None:
            findings.append(
                Finding(
                    point,
                    Status.FAIL,
                    "statvfs failed (stale file handle or I/O error)",
                    (seen, Evidence(f"statvfs:{point}", None, "an answer")),
                )
            )
            continue
        findings.append(Finding(point, Status.PASS, f"{mount.fstype} from {mount.source}", (seen,)))
    return Verdict.from_findings(
        findings, ok=f"{len(findings)} required mounts present and answering"
    )


@check(
    "site.mounts",
    title="Required filesystems are mounted and answer",
    tags=("site",),
    params=MountsParams,
    action=Action.FIX_CONFIG,
)
def mounts(inv: Inventory, params: MountsParams) -> Verdict:
    """The filesystems jobs need are mounted, of the right type, and answer within a deadline.

    ## Why
    A job that starts on a node without its dataset or checkpoint mount fails after queueing,
    or worse, writes checkpoints to the node's root disk. A mount whose server is gone makes
    every `stat` block in the kernel: the job hangs on its first read, holding all its GPUs.

    ## Reads
    `/proc/self/mounts`; statvfs(2) on each required mount point, each in its own thread, with
    `timeout_s` as the deadline.

    ## Verdicts
    - pass: every required point is mounted (with the required type) and answered in time.
    - fail: a point is not mounted, has another type, did not answer within `timeout_s`, or
      statvfs failed on it (a stale NFS handle, an I/O error).
    - skip: no `required` mounts are configured, or /proc/self/mounts is not readable.

    ## Fix
    Mount what is missing (`mount -a`, or the site's automounter); for a mount that does not
    answer, check the file server and the node's route to it, then `umount -l` and remount.
    Drain the node until it answers.
    """
    if not params.required:
        return Verdict.skip("no required mounts configured (set site.mounts.required)")
    table = inv.mounts
    if not table.readable:
        return Verdict.skip(f"cannot read the mount table: {table.error}")
    points = [split_required(e, ":")[0] for e in params.required]
    present = [p for p in points if p in table.mounts]
    probes = inv.probe_mounts(present, params.timeout_s)
    return judge_mounts(table.mounts, probes, params.required, params.timeout_s)


@dataclass(frozen=True)
class ModulesParams:
    """required: kernel modules, each `NAME` or `NAME=VERSION` to pin its version
    (`nvidia=565.57.01`)."""

    required: tuple[str, ...] = param(
        (), "Kernel modules, each NAME or NAME=VERSION to pin its version (nvidia=565.57.01)."
    )


def judge_modules(
    state: Mapping[str, str], version: Mapping[str, str | None], required: tuple[str, ...]
) -> Verdict:
    """Every required module loaded and Live, at its pinned version where one is given."""
    findings = []
    for entry in required:
        name, pin = split_required(entry, "=")
        src = f"sysfs:/sys/module/{name}/version"
        if name not in state:
            findings.append(
                Finding(name, Status.FAIL, "not loaded", (Evidence(MODULES_SRC, None, "loaded"),))
            )
            continue
        if state[name] != "Live":
            findings.append(
                Finding(
                    name,
                    Status.WARN,
                    f"state {state[name]}",
                    (Evidence(MODULES_SRC, state[name], "Live"),),
                )
            )
            continue
        have = version.get(name)
        if pin is not None and have != pin:
            findings.append(
                Finding(
                    name,
                    Status.FAIL,
                    f"version {have or 'not declared'}, pinned {pin}",
                    (Evidence(src, have, pin),),
                )
            )
            continue
        findings.append(Finding(name, Status.PASS, f"loaded{f' {have}' if have else ''}"))
    return Verdict.from_findings(findings, ok=f"{len(findings)} required modules loaded")


@check(
    "site.kernel_modules",
    title="Required kernel modules are loaded",
    tags=("site",),
    params=ModulesParams,
    action=Action.FIX_CONFIG,
)
def kernel_modules(inv: Inventory, params: ModulesParams) -> Verdict:
    """The kernel modules the site relies on are loaded, at their pinned versions.

    ## Why
    A module that failed to load after a kernel or driver update (nvidia_peermem, a parallel
    filesystem client, a site's monitoring driver) leaves the node up but unable to run the
    jobs that need it; a driver at another version than the fleet's breaks NCCL or CUDA
    compatibility in ways that surface only under load.

    ## Reads
    `/proc/modules` (loaded modules and their state); `/sys/module/<name>/version` for pins.

    ## Verdicts
    - pass: every required module is loaded, Live, at its pinned version.
    - fail: a module is not loaded, or its version differs from the pin (or it declares none).
    - warn: a module is still loading or is being unloaded.
    - skip: no `required` modules are configured, or /proc/modules is not readable.

    ## Fix
    `modprobe NAME`, and make it load at boot (`/etc/modules-load.d/`); for a version
    mismatch, install the pinned driver package and reboot the node.
    """
    if not params.required:
        return Verdict.skip("no required modules configured (set site.kernel_modules.required)")
    mods = inv.kernel_modules
    if not mods.readable:
        return Verdict.skip(f"cannot read the loaded modules: {mods.error}")
    return judge_modules(mods.state, mods.version, params.required)
