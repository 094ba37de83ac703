"""Host settings: locked-memory and stack limits, /dev/shm, BIOS identity, kernel command line."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.inventory import Inventory
from preflight.inventory.system import UNLIMITED
from preflight.model import Action, Evidence, Finding, Status, Verdict
from preflight.registry import check, param

GIB = 1 << 30


def fmt_limit(value: int) -> str:
    """A limit as ulimit prints it."""
    return "unlimited" if value == UNLIMITED else str(value)


@dataclass(frozen=True)
class MemlockParams:
    """min_bytes: accept a finite limit at least this large (default: only unlimited)."""

    min_bytes: int | None = param(
        None, "Accept a finite RLIMIT_MEMLOCK at least this large, bytes; unset: only unlimited."
    )


def judge_memlock(soft: int, hard: int, min_bytes: int | None) -> Finding:
    """Soft and hard RLIMIT_MEMLOCK must be unlimited (or at least min_bytes)."""
    want = "unlimited" if min_bytes is None else f">= {min_bytes} bytes"
    ev = (
        Evidence(
            "getrlimit(RLIMIT_MEMLOCK)",
            f"{fmt_limit(soft)}/{fmt_limit(hard)}",
            f"soft and hard {want}",
        ),
    )

    def ok(v: int) -> bool:
        return v == UNLIMITED or (min_bytes is not None and v >= min_bytes)

    if ok(soft) and ok(hard):
        return Finding("process", Status.PASS, f"memlock {fmt_limit(soft)}/{fmt_limit(hard)}", ev)
    return Finding(
        "process",
        Status.FAIL,
        f"memlock soft {fmt_limit(soft)}, hard {fmt_limit(hard)} bytes, expected {want}",
        ev,
    )


@check(
    "host.memlock",
    title="Locked memory is unlimited",
    tags=("host", "rdma", "limits"),
    params=MemlockParams,
    action=Action.FIX_CONFIG,
)
def memlock(inv: Inventory, params: MemlockParams) -> Verdict:
    """The locked-memory limit (ulimit -l) is unlimited.

    ## Why
    RDMA registers (pins) every buffer it sends from. With a finite memlock limit NCCL fails
    with `Call to ibv_create_qp failed` or `ibv_reg_mr failed`, often only at scale.

    ## Reads
    `getrlimit(RLIMIT_MEMLOCK)` of the preflight process (run it the way jobs are launched:
    under slurmd or the container runtime, whose limits jobs inherit).

    ## Verdicts
    - pass: soft and hard limits unlimited (or at least `min_bytes`).
    - fail: either is finite and below that.

    ## Fix
    `* soft memlock unlimited` and `* hard memlock unlimited` in /etc/security/limits.conf;
    `LimitMEMLOCK=infinity` for slurmd/containerd; `--ulimit memlock=-1` for Docker.
    """
    lim = inv.limits.limits.get("memlock")
    if lim is None:
        return Verdict.skip("memlock limit not available")
    finding = judge_memlock(lim.soft, lim.hard, params.min_bytes)
    return Verdict.single(finding)


@check(
    "host.stack",
    title="Stack size limit is finite",
    tags=("host", "limits"),
    action=Action.FIX_CONFIG,
)
def stack(inv: Inventory, params: object) -> Verdict:
    """The stack size limit (ulimit -s) is finite, e.g. 8192 KiB.

    ## Why
    With `ulimit -s unlimited`, glibc gives new threads a 2 MiB default stack instead of the
    soft limit; NCCL and CUDA runtime threads have crashed on that (NCCL ≥ 2.28 corrects it).

    ## Reads
    `getrlimit(RLIMIT_STACK)` of the preflight process.

    ## Verdicts
    - pass: the soft limit is finite.
    - warn: it is unlimited.

    ## Fix
    Remove `ulimit -s unlimited` from job scripts and limits.conf; 8192 KiB is the default.
    """
    lim = inv.limits.limits.get("stack")
    if lim is None:
        return Verdict.skip("stack limit not available")
    ev = (Evidence("getrlimit(RLIMIT_STACK)", fmt_limit(lim.soft), "finite"),)
    if lim.soft == UNLIMITED:
        f = Finding(
            "process",
            Status.WARN,
            "stack soft limit unlimited, expected finite (8388608 bytes)",
            ev,
        )
    else:
        f = Finding("process", Status.PASS, f"stack soft limit {lim.soft} bytes", ev)
    return Verdict.single(f)


@dataclass(frozen=True)
class ShmParams:
    """NCCL needs several MiB per peer in /dev/shm; 1 GiB is a safe floor for 8 GPUs."""

    min_gib: float = param(
        1.0, "Smallest /dev/shm size, GiB (NCCL needs several MiB per peer; 1 is safe for 8 GPUs)."
    )


@check(
    "host.shm",
    title="/dev/shm is large enough for NCCL",
    tags=("host", "limits", "nccl"),
    params=ShmParams,
    action=Action.FIX_CONFIG,
)
def shm(inv: Inventory, params: ShmParams) -> Verdict:
    """/dev/shm is mounted and at least `min_gib` large.

    ## Why
    NCCL's intra-node transports allocate shared-memory segments in /dev/shm; when it is too
    small (Docker's default is 64 MiB) NCCL fails with `failed to extend /dev/shm/nccl-…`.

    ## Reads
    `statvfs("/dev/shm")`.

    ## Verdicts
    - pass: size at least `min_gib`.
    - warn: smaller.
    - fail: /dev/shm is not mounted.

    ## Fix
    Mount a larger tmpfs (`mount -o remount,size=50% /dev/shm`), `--shm-size` / `--ipc=host`
    for containers.
    """
    usage = inv.limits.shm
    if usage is None:
        f = Finding(
            "/dev/shm",
            Status.FAIL,
            "/dev/shm is not mounted",
            (Evidence("statvfs(/dev/shm)", None, "mounted"),),
        )
        return Verdict.single(f)
    size_gib = usage.size_bytes / GIB
    ev = (Evidence("statvfs(/dev/shm)", usage.size_bytes, f">= {int(params.min_gib * GIB)} bytes"),)
    if usage.size_bytes < params.min_gib * GIB:
        f = Finding(
            "/dev/shm",
            Status.WARN,
            f"{size_gib:.2f} GiB, expected at least {params.min_gib:g} GiB",
            ev,
        )
    else:
        f = Finding("/dev/shm", Status.PASS, f"{size_gib:.1f} GiB", ev)
    return Verdict.single(f)


@dataclass(frozen=True)
class BiosParams:
    """Pins; unset fields are only recorded."""

    bios_vendor: str | None = param(None, "Expected DMI BIOS vendor; unset: only recorded.")
    bios_version: str | None = param(None, "Expected DMI BIOS version; unset: only recorded.")
    product_name: str | None = param(None, "Expected DMI product name; unset: only recorded.")


@check(
    "host.bios",
    title="BIOS vendor and version as pinned by the baseline",
    tags=("host", "bios"),
    params=BiosParams,
    action=Action.FIX_CONFIG,
)
def bios(inv: Inventory, params: BiosParams) -> Verdict:
    """The BIOS vendor, version and platform are the ones the fleet runs.

    ## Why
    A node with a different BIOS version often has different PCIe, ACS, power or memory
    settings; pinning the version finds it before its settings do. Values are always
    recorded in the report's facts (`dmi.*`) for `preflight compare`.

    ## Reads
    `/sys/class/dmi/id/{bios_vendor,bios_version,bios_date,product_name,sys_vendor,board_name}`.

    ## Verdicts
    - pass: every pinned field equals the node's value.
    - fail: a pinned field differs.
    - skip: the baseline pins nothing (values still recorded).

    ## Fix
    Flash the fleet's BIOS version and re-apply its settings profile.
    """
    values = inv.dmi.values
    pins = {
        "bios_vendor": params.bios_vendor,
        "bios_version": params.bios_version,
        "product_name": params.product_name,
    }
    if not any(values.values()):
        return Verdict.skip("the firmware exposes no DMI data (/sys/class/dmi/id)")
    recorded = (
        f"{values.get('bios_vendor')} {values.get('bios_version')} "
        f"({values.get('bios_date')}), {values.get('product_name')}"
    )
    findings = [
        Finding(
            field,
            Status.PASS if values.get(field) == want else Status.FAIL,
            f"{values.get(field)!r}"
            + ("" if values.get(field) == want else f", expected {want!r}"),
            (Evidence(f"sysfs:/sys/class/dmi/id/{field}", values.get(field), want),),
        )
        for field, want in pins.items()
        if want is not None
    ]
    if not findings:
        return Verdict.skip(f"recorded {recorded}; the baseline pins no BIOS")
    return Verdict.from_findings(findings, ok=recorded)


@dataclass(frozen=True)
class CmdlineParams:
    """Tokens (exact, or NAME= prefixes) that must or must not be on the kernel command line."""

    required: tuple[str, ...] = param(
        (), "Tokens that must be on the kernel command line: exact, or NAME= for any value."
    )
    forbidden: tuple[str, ...] = param(
        (), "Tokens that must not be on it: exact, or NAME= for any value."
    )


def judge_cmdline(
    tokens: list[str], required: tuple[str, ...], forbidden: tuple[str, ...]
) -> list[Finding]:
    """Each required token present, each forbidden token absent (NAME= matches any value)."""

    def present(tok: str) -> bool:
        return any(t == tok or (tok.endswith("=") and t.startswith(tok)) for t in tokens)

    src = "procfs:/proc/cmdline"
    out = [
        Finding(
            tok,
            Status.PASS if present(tok) else Status.FAIL,
            "present" if present(tok) else "missing from the kernel command line",
            (Evidence(src, present(tok), "present"),),
        )
        for tok in required
    ]
    out += [
        Finding(
            tok,
            Status.FAIL if present(tok) else Status.PASS,
            "present, but forbidden" if present(tok) else "absent",
            (Evidence(src, present(tok), "absent"),),
        )
        for tok in forbidden
    ]
    return out


@check(
    "host.kernel_cmdline",
    title="Kernel command line has the settings the baseline requires",
    tags=("host", "kernel"),
    params=CmdlineParams,
    action=Action.FIX_CONFIG,
)
def kernel_cmdline(inv: Inventory, params: CmdlineParams) -> Verdict:
    """The kernel command line carries the required settings and none of the forbidden ones.

    ## Why
    Options such as `iommu=pt`, `pci=realloc`, `pcie_aspm=off` or `numa_balancing=disable`
    are how fleets fix platform defaults; a node booted from a stale image loses them. The
    full line is always recorded in facts (`kernel.cmdline`).

    ## Reads
    `/proc/cmdline`.

    ## Verdicts
    - pass: all `required` tokens present, no `forbidden` token present.
    - fail: a required token missing or a forbidden one present.
    - skip: the baseline requires and forbids nothing (the line is still recorded).

    ## Fix
    Fix the bootloader configuration (GRUB_CMDLINE_LINUX, PXE template) and reboot.
    """
    line = inv.kernel.cmdline
    if line is None:
        return Verdict(Status.ERROR, "/proc/cmdline is not readable")
    if not params.required and not params.forbidden:
        return Verdict.skip("recorded in facts; the baseline requires nothing")
    return Verdict.from_findings(
        judge_cmdline(inv.kernel.cmdline_tokens, params.required, params.forbidden),
        ok="required settings present",
    )
