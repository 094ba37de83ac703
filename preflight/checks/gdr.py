"""GPUDirect RDMA: a peer-memory path between the NIC and GPU memory, and the verbs devices."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.errors import ParseError
from preflight.inventory import Inventory
from preflight.inventory.rdma import PEERMEM_PATHS, VerbsDevice
from preflight.inventory.rdma_sysfs_text import parse_kernel_release
from preflight.model import Action, Evidence, Finding, Status, Verdict
from preflight.registry import check, param


@dataclass(frozen=True)
class PeermemParams:
    """allow_dmabuf = accept DMA-BUF instead of nvidia-peermem (NVIDIA's recommendation)."""

    allow_dmabuf: bool = param(
        True, "Accept DMA-BUF instead of nvidia-peermem (NVIDIA's recommendation)."
    )
    min_dmabuf_kernel: str = param(
        "5.12", "Oldest kernel release with DMA-BUF support for GPUDirect RDMA."
    )


def _release(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        return parse_kernel_release(text)
    except ParseError:
        return None


def judge_peermem(
    peermem: dict[str, str],
    driver: str | None,
    open_module: bool | None,
    kernel: str | None,
    dmabuf_env: str | None,
    params: PeermemParams,
) -> Finding:
    """nvidia-peermem (or nv_peer_mem) loaded, or DMA-BUF usable: open module, new enough kernel,
    NCCL_DMABUF_ENABLE not 0."""
    ev = [Evidence("sysfs:" + " | ".join(PEERMEM_PATHS), ", ".join(peermem) or None, "present")]
    if peermem:
        path, version = next(iter(peermem.items()))
        module = "nvidia_peermem" if "nvidia_peermem" in path else "nv_peer_mem (legacy)"
        message = f"{module} loaded (version {version or '?'})"
        return Finding("node", Status.PASS, message, tuple(ev))
    ev.append(
        Evidence(
            "procfs:/proc/driver/nvidia/version",
            f"{driver} {'open' if open_module else 'proprietary'}" if driver else None,
            "open kernel module",
        )
    )
    ev.append(
        Evidence("procfs:/proc/sys/kernel/osrelease", kernel, f">= {params.min_dmabuf_kernel}")
    )
    why_not = []
    if not params.allow_dmabuf:
        why_not.append("the baseline requires nvidia-peermem")
    if driver is None:
        why_not.append("no NVIDIA kernel module loaded")
    elif not open_module:
        why_not.append(
            f"driver {driver} is the proprietary kernel module (DMA-BUF needs the open one)"
        )
    release, need = _release(kernel), _release(params.min_dmabuf_kernel)
    if release is None or need is None or release < need:
        why_not.append(f"kernel {kernel or 'unknown'} older than {params.min_dmabuf_kernel}")
    if dmabuf_env is not None and dmabuf_env.strip() == "0":
        why_not.append("NCCL_DMABUF_ENABLE=0")
    if not why_not:
        return Finding(
            "node",
            Status.PASS,
            f"DMA-BUF: open kernel module {driver}, kernel {kernel} (nvidia-peermem not needed)",
            tuple(ev),
        )
    return Finding(
        "node",
        Status.FAIL,
        "no GPUDirect RDMA path: nvidia_peermem not loaded and DMA-BUF unusable ("
        + "; ".join(why_not)
        + ")",
        tuple(ev),
    )


@check(
    "gdr.peermem",
    title="GPUDirect RDMA has a peer-memory path (nvidia-peermem or DMA-BUF)",
    tags=("gdr", "rdma", "gpu"),
    needs=("gpu", "nic"),
    params=PeermemParams,
    action=Action.FIX_CONFIG,
)
def peermem(inv: Inventory, params: PeermemParams) -> Verdict:
    """The NIC can read and write GPU memory directly (GPUDirect RDMA).

    `nvidia_peermem` is loaded, or DMA-BUF is usable: open GPU kernel module, kernel ≥ 5.12,
    `NCCL_DMABUF_ENABLE` not 0.

    ## Why
    Without GPUDirect RDMA every inter-node transfer is staged through host memory: NCCL still
    works, but inter-node bandwidth drops and CPU load rises. The module "must be loaded on
    each node boot" (NCCL docs); DMA-BUF, which NVIDIA recommends, makes it unnecessary.

    ## Reads
    `/sys/module/nvidia_peermem/version`, `/sys/kernel/mm/memory_peers/nv_mem{,_nc}/version`
    (what NCCL itself tests), `/proc/driver/nvidia/version`, `/proc/sys/kernel/osrelease`,
    and `NCCL_DMABUF_ENABLE`.

    ## Verdicts
    - pass: a peer-memory module is loaded, or (`allow_dmabuf`) DMA-BUF is usable.
    - fail: neither, with the reasons DMA-BUF is not usable.
    - skip: no GPU or no RDMA NIC.

    ## Fix
    `modprobe nvidia-peermem` and load it at boot (`/etc/modules-load.d/`), or install the open
    GPU kernel modules (`nvidia-open`) on a kernel ≥ 5.12 for DMA-BUF.
    """
    k = inv.kernel
    finding = judge_peermem(
        inv.gdr.peermem,
        k.nvidia_driver,
        k.nvidia_open_module,
        k.release,
        inv.nccl.get("NCCL_DMABUF_ENABLE"),
        params,
    )
    return Verdict(finding.status, finding.message, (finding,))


@dataclass(frozen=True)
class UverbsParams:
    """No thresholds: every RDMA device needs its verbs device node."""


def judge_uverbs(
    devices: list[str], verbs: list[VerbsDevice], dev_entries: list[str]
) -> list[Finding]:
    """Each RDMA device has a /dev/infiniband/uverbsN that this process can open read-write."""
    if not dev_entries:
        return [
            Finding(
                "node",
                Status.FAIL,
                "/dev/infiniband is missing or empty: ib_uverbs not loaded, or the container "
                "was started without the RDMA devices",
                (Evidence("devfs:/dev/infiniband", None, "uverbs0 …"),),
            )
        ]
    by_dev = {v.ibdev: v for v in verbs if v.ibdev}
    findings = []
    for name in devices:
        v = by_dev.get(name)
        if v is None:
            findings.append(
                Finding(
                    name,
                    Status.FAIL,
                    "no uverbs device: ib_uverbs not loaded for it",
                    (Evidence("sysfs:/sys/class/infiniband_verbs/*/ibdev", None, name),),
                )
            )
        elif not v.present:
            findings.append(
                Finding(
                    name,
                    Status.FAIL,
                    f"{v.dev_path} missing (not passed into the container?)",
                    (Evidence(f"devfs:{v.dev_path}", None, "present"),),
                )
            )
        elif not v.accessible:
            findings.append(
                Finding(
                    name,
                    Status.FAIL,
                    f"{v.dev_path} not readable and writable by this user",
                    (Evidence(f"devfs:{v.dev_path}", "no access", "rw"),),
                )
            )
        else:
            findings.append(Finding(name, Status.PASS, f"{v.dev_path} read-write"))
    return findings


@check(
    "gdr.uverbs",
    title="RDMA verbs device nodes are present and accessible",
    tags=("gdr", "rdma"),
    needs=("nic",),
    params=UverbsParams,
    action=Action.FIX_CONFIG,
)
def uverbs(inv: Inventory, params: UverbsParams) -> Verdict:
    """Every RDMA device has a `/dev/infiniband/uverbsN` node that the job can open read-write.

    ## Why
    User-space verbs (NCCL, UCX, MPI) open `/dev/infiniband/uverbsN`. In containers it is often
    not passed through, or has the wrong permissions; NCCL then finds no IB device and falls
    back to TCP sockets without failing.

    ## Reads
    `/sys/class/infiniband_verbs/uverbs*/ibdev` and `/dev/infiniband/*` (access checked for the
    user running preflight).

    ## Verdicts
    - pass: each RDMA device has its uverbs node, readable and writable.
    - fail: `/dev/infiniband` missing, a device without a uverbs node, or no access.
    - skip: no RDMA NIC; no RDMA device (see `rdma.devices`).

    ## Fix
    `modprobe ib_uverbs`; in Kubernetes use the RDMA shared device plugin or pass
    `--device=/dev/infiniband`; for Docker `--device /dev/infiniband --cap-add IPC_LOCK`.
    """
    devices = list(inv.rdma.devices)
    if not devices:
        return Verdict.skip("no RDMA device in /sys/class/infiniband (see rdma.devices)")
    gdr = inv.gdr
    return Verdict.from_findings(
        judge_uverbs(devices, gdr.verbs, gdr.dev_infiniband),
        ok=f"{len(devices)} verbs devices, read-write",
    )
