"""Every registered check, end to end through `execute()`: at least one passing and one failing
case each, on the built-in profiles or on small profiles that extend one.

A failing case expects FAIL, or WARN for a check whose docstring's "## Verdicts" section has no
fail line. `EXEMPT` lists the few (check, side) pairs a profile cannot show, each with the test
that covers it instead; the meta-tests keep the table and the registry in step.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from preflight.app import RunOptions, execute
from preflight.model import Status
from preflight.registry import Registry, discover

TESTS = Path(__file__).parent

PASS, WARN, FAIL = Status.PASS, Status.WARN, Status.FAIL

# dgx-h100 sysfs paths used by the profile edits below.
NIC0 = "/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:01.0/0000:19:00.0"
GPU0 = "/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/0000:18:00.0"
PORT0 = NIC0 + "/infiniband/mlx5_0/ports/1"
ROCE_IF0 = NIC0 + "/net/enp25s0np0"


def gpu0(**fields: Any) -> dict[str, Any]:
    """A profile edit of GPU0's NVML record."""
    return {"nvml": {"gpus": {"0000:18:00.0": fields}}}


@dataclass(frozen=True)
class Case:
    """One run of one check: `extra_profile` (when given) is written to a JSON file that
    `extends` `profile` and is run instead of it."""

    check_id: str
    expect: Status
    profile: str
    sets: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    baseline: str | None = None
    extra_profile: Mapping[str, Any] | None = None

    @property
    def label(self) -> str:
        how = [*self.sets, *(f"{k}={v}" for k, v in self.env.items())]
        if self.extra_profile:
            how.append("+edit")
        return f"{self.check_id}-{self.expect.value}-{self.profile}" + (
            "-" + ",".join(how) if how else ""
        )


H100 = "dgx-h100"
H200 = "hgx-h200"
ROCE = "dgx-h100-roce"

CASES: list[Case] = [
    # cpu
    Case("cpu.governor", PASS, H100),
    Case("cpu.governor", WARN, H100, sets=("cpu.governor.expected=powersave",)),
    Case("cpu.smt", PASS, H200),
    Case("cpu.smt", FAIL, H100, sets=("cpu.smt.expected=false",)),
    # GPUDirect RDMA
    Case("gdr.peermem", PASS, H100),
    Case("gdr.peermem", FAIL, "dgx-h100-no-peermem"),
    Case("gdr.uverbs", PASS, H100),
    Case("gdr.uverbs", FAIL, H100, extra_profile={"files": {"/dev/infiniband/uverbs0": None}}),
    # GPU (NVML)
    Case("gpu.clocks", PASS, H100),
    Case("gpu.clocks", FAIL, H100, extra_profile=gpu0(clock_event_reasons=0x8)),
    Case("gpu.driver", PASS, H200),
    Case("gpu.driver", FAIL, H100, sets=("gpu.driver.min_version=999.0",)),
    Case("gpu.ecc", PASS, H100),
    Case("gpu.ecc", FAIL, "dgx-h100-ecc-uncorrected"),
    Case("gpu.fabric", PASS, H100),
    Case("gpu.fabric", FAIL, H100, extra_profile=gpu0(fabric={"state": 1})),
    Case("gpu.mig", PASS, H100),
    Case("gpu.mig", FAIL, H100, sets=("gpu.mig.enabled=true",)),
    Case("gpu.nvlink", PASS, H100),
    Case("gpu.nvlink", FAIL, "dgx-h100-nvlink-down"),
    Case("gpu.nvml_available", PASS, H100),
    # Xid 79 (GPU fell off the bus): NVML answers GpuIsLost; no hang to wait for.
    Case("gpu.nvml_available", FAIL, "dgx-h100-xid-79"),
    Case("gpu.nvml_devices", PASS, H200),
    Case("gpu.nvml_devices", FAIL, "dgx-h100-gpu-missing"),
    Case("gpu.pcie", PASS, H100),
    Case("gpu.pcie", FAIL, H100, sets=("gpu.pcie.gen=6",)),
    Case("gpu.persistence", PASS, H100),
    Case("gpu.persistence", FAIL, H100, extra_profile=gpu0(persistence_mode=0)),
    Case("gpu.power", PASS, H100),
    Case("gpu.power", FAIL, H100, sets=("gpu.power.min_limit_w=800",)),
    Case("gpu.processes", PASS, H100),
    Case("gpu.processes", FAIL, H100, sets=("gpu.processes.max_used_mib=0",)),
    Case("gpu.row_remap", PASS, H100),
    Case("gpu.row_remap", FAIL, "dgx-h100-row-remap-pending"),
    Case("gpu.temperature", PASS, H100),
    Case("gpu.temperature", FAIL, H100, sets=("gpu.temperature.max_c=20",)),
    Case("gpu.vbios", PASS, H100),
    Case("gpu.vbios", FAIL, H100, sets=("gpu.vbios.versions=1.0",)),
    # host
    Case("host.bios", PASS, H100, sets=("host.bios.bios_version=1.6.7",)),
    Case("host.bios", FAIL, H100, sets=("host.bios.bios_version=0.0",)),
    Case("host.kernel_cmdline", PASS, H100, sets=("host.kernel_cmdline.required=iommu=pt",)),
    Case("host.kernel_cmdline", FAIL, H100, sets=("host.kernel_cmdline.forbidden=iommu=pt",)),
    Case("host.memlock", PASS, H100),
    Case("host.memlock", FAIL, H100, extra_profile={"limits": {"memlock": [65536, 65536]}}),
    Case("host.shm", PASS, H100),
    Case("host.shm", FAIL, H100, extra_profile={"statvfs": {"/dev/shm": None}}),
    Case("host.stack", PASS, H100),
    Case("host.stack", WARN, H100, extra_profile={"limits": {"stack": ["unlimited", "unlimited"]}}),
    Case("iommu.mode", PASS, H100),
    # kernel log beyond Xids
    Case("kernel.events", PASS, H100),
    Case(
        "kernel.events",
        FAIL,
        H100,
        extra_profile={
            "kernel_log": [
                "nvidia-nvswitch1: SXid (PCI:0000:aa:00.0): 24007, Severity 1 Engine instance 12"
            ]
        },
    ),
    Case("iommu.mode", FAIL, "dgx-h100-iommu-translated"),
    # NCCL environment
    Case("nccl.env", PASS, H100),
    Case("nccl.env", FAIL, H100, env={"NCCL_TOPO_FILE": "/nonexistent/topo.xml"}),
    Case("nccl.ib_hca", PASS, H100, env={"NCCL_IB_HCA": "=mlx5_0:1"}),
    Case("nccl.ib_hca", FAIL, "dgx-h100-ib-port-down", env={"NCCL_IB_HCA": "mlx5"}),
    Case("nccl.socket_ifname", PASS, H100, env={"NCCL_SOCKET_IFNAME": "=ib0"}),
    Case("nccl.socket_ifname", FAIL, H100, env={"NCCL_SOCKET_IFNAME": "=nosuch0"}),
    # network, node inventory, NUMA
    Case("net.netdev", PASS, H100),
    Case("net.netdev", FAIL, "dgx-h100-ib-port-down"),
    Case("node.gpu_count", PASS, H100),
    Case("node.gpu_count", FAIL, H100, sets=("node.gpu_count.expected=9",)),
    Case("node.nic_count", PASS, H100),
    Case("node.nic_count", FAIL, H100, sets=("node.nic_count.expected=9",)),
    Case("numa.balancing", PASS, H100),
    Case("numa.balancing", WARN, H100, sets=("numa.balancing.expected=1",)),
    Case("numa.gpu_nic_affinity", PASS, H100),
    Case(
        "numa.gpu_nic_affinity", WARN, H100, extra_profile={"files": {NIC0 + "/numa_node": "1\n"}}
    ),
    Case("numa.nodes", PASS, H100),
    Case("numa.nodes", FAIL, H100, sets=("numa.nodes.expected=4",)),
    # PCIe
    Case("pcie.acs", PASS, H100),
    Case("pcie.acs", FAIL, "dgx-h100-acs-enabled"),
    Case("pcie.aer", PASS, H100),
    Case(
        "pcie.aer",
        FAIL,
        H100,
        extra_profile={"files": {GPU0 + "/aer_dev_fatal": "DLP 1\nTOTAL_ERR_FATAL 1\n"}},
    ),
    Case("pcie.bar1", PASS, H100),
    Case("pcie.bar1", FAIL, H100, sets=("pcie.bar1.min_bar1_gib=1024",)),
    Case("pcie.devctl", PASS, H100),
    Case("pcie.devctl", FAIL, H100, sets=("pcie.devctl.nic_max_read_request=512",)),
    Case("pcie.link", PASS, H100),
    Case("pcie.link", FAIL, "dgx-h100-gpu-link-x8"),
    # RDMA
    Case("rdma.counters", PASS, H100),
    # Counts since boot only warn; FAIL needs growth between two samples (see EXEMPT).
    Case("rdma.counters", WARN, "dgx-h100-ib-symbol-errors"),
    Case("rdma.devices", PASS, H100),
    Case("rdma.devices", FAIL, H100, sets=("rdma.devices.expected=9",)),
    Case("rdma.fw_version", PASS, H100),
    Case("rdma.fw_version", FAIL, "dgx-h100-nic-fw-mismatch"),
    Case("rdma.link_layer", PASS, ROCE, baseline=ROCE),
    Case("rdma.link_layer", FAIL, H100, sets=("rdma.link_layer.expected=Ethernet",)),
    Case("rdma.port_rate", PASS, H100),
    Case("rdma.port_rate", FAIL, "dgx-h100-ib-rate-hdr"),
    Case("rdma.port_state", PASS, H100),
    Case("rdma.port_state", FAIL, "dgx-h100-ib-port-down"),
    Case("rdma.roce_ecn", PASS, ROCE, baseline=ROCE),
    Case(
        "rdma.roce_ecn",
        FAIL,
        ROCE,
        sets=("rdma.roce_ecn.required=true",),
        baseline=ROCE,
        extra_profile={"files": {ROCE_IF0 + "/ecn/roce_np/enable/3": "0\n"}},
    ),
    Case("rdma.roce_gid", PASS, ROCE, baseline=ROCE),
    Case(
        "rdma.roce_gid",
        FAIL,
        ROCE,
        baseline=ROCE,
        extra_profile={
            "files": {
                PORT0 + "/gid_attrs/types/1": "IB/RoCE v1\n",
                PORT0 + "/gid_attrs/types/3": "IB/RoCE v1\n",
            }
        },
    ),
    Case("rdma.subnet_manager", PASS, H100),
    Case("rdma.subnet_manager", FAIL, H100, extra_profile={"files": {PORT0 + "/sm_lid": "0x0\n"}}),
    # topology, kernel log
    Case("topology.gpu_nic_distance", PASS, H100),
    Case("topology.gpu_nic_distance", FAIL, "dgx-h100-gpu-nic-cross-socket"),
    Case("xid.events", PASS, H100),
    Case("xid.events", FAIL, "dgx-h100-xid-79"),
    # A GPU that fell off the bus at a driver probe: the driver's message, no Xid line.
    Case("xid.events", FAIL, "dgx-h100-gpu-lost-no-xid"),
]

# (check id, "pass" or "fail") that no profile run can show, each with the test covering it.
EXEMPT: dict[tuple[str, str], str] = {
    # The all-reduce benchmark never runs on a profile (it skips there): its verdicts are judged
    # on synthetic measurements.
    ("bench.allreduce", "pass"): (
        "tests/test_bench_check.py::TestJudge::test_pass_says_share_of_theoretical"
    ),
    ("bench.allreduce", "fail"): "tests/test_bench_check.py::TestJudge::test_below_floor_fails",
    # FAIL means a counter grew between the runner's first sample and the check's: a profile's
    # files do not change during a run.
    ("rdma.counters", "fail"): (
        "tests/test_rdma_checks.py::test_counters_growing_during_the_run_fail"
    ),
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return discover(include_plugins=False)


def profile_for(case: Case, tmp_path: Path) -> str:
    if case.extra_profile is None:
        return case.profile
    path = tmp_path / "case-profile.json"
    path.write_text(json.dumps({"extends": case.profile, **case.extra_profile}))
    return str(path)


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_case(case: Case, registry: Registry, tmp_path: Path) -> None:
    options = RunOptions(
        profile=profile_for(case, tmp_path),
        only=(case.check_id,),
        sets=case.sets,
        env=dict(case.env),
        baseline=case.baseline,
        nvml_timeout_s=1.0,
    )
    report = execute(options, registry)
    results = {r.id: r for r in report.results}
    assert case.check_id in results, sorted(results)
    result = results[case.check_id]
    assert result.status is case.expect, (
        f"{case.check_id} on {case.profile}: {result.status.value}, expected "
        f"{case.expect.value}: {result.summary}"
    )


def has_fail_verdict(doc: str) -> bool:
    """Whether the docstring's "## Verdicts" section has a `- fail:` line."""
    match = re.search(r"^## Verdicts\n(.*?)(?=^## |\Z)", doc, re.S | re.M)
    assert match, "no '## Verdicts' section"
    return re.search(r"^\s*- fail:", match.group(1), re.M) is not None


def failing_status(registry: Registry, check_id: str) -> Status:
    return FAIL if has_fail_verdict(registry.specs[check_id].doc or "") else WARN


def test_every_check_has_a_passing_and_a_failing_case(registry: Registry) -> None:
    covered = {(c.check_id, "pass") for c in CASES if c.expect is PASS}
    covered |= {
        (c.check_id, "fail") for c in CASES if c.expect is failing_status(registry, c.check_id)
    }
    needed = {(i, side) for i in registry.specs for side in ("pass", "fail")}
    missing = needed - covered - EXEMPT.keys()
    assert not missing, sorted(missing)
    redundant = covered & EXEMPT.keys()
    assert not redundant, f"exempt but covered here, drop from EXEMPT: {sorted(redundant)}"


def test_cases_name_known_checks_and_statuses(registry: Registry) -> None:
    unknown = {c.check_id for c in CASES} - registry.specs.keys()
    assert not unknown, sorted(unknown)
    assert not {i for i, _ in EXEMPT} - registry.specs.keys()
    odd = [c.label for c in CASES if c.expect not in (PASS, WARN, FAIL)]
    assert not odd
    labels = [c.label for c in CASES]
    assert len(labels) == len(set(labels)), "duplicate cases"


def test_exemptions_name_existing_tests() -> None:
    for node in EXEMPT.values():
        path, *names = node.split("::")
        tree = ast.parse((TESTS.parent / path).read_text())
        scope: list[ast.stmt] = tree.body
        for name in names:
            found = next(
                (
                    n
                    for n in scope
                    if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name == name
                ),
                None,
            )
            assert found is not None, f"{node}: no {name}"
            scope = found.body
