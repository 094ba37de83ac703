"""The pure judge functions of the checks, with plain values: one passing and failing case each."""

from __future__ import annotations

from preflight.checks.cpu import judge_governors
from preflight.checks.iommu import judge_iommu_group
from preflight.checks.numa import judge_affinity
from preflight.checks.pcie import (
    aer_total,
    judge_acs,
    judge_aer,
    judge_bar1,
    judge_devctl,
    judge_link,
)
from preflight.checks.system import judge_cmdline, judge_memlock
from preflight.model import Status

GIB = 1 << 30


class TestLink:
    def test_full_link_passes(self) -> None:
        f = judge_link("GPU0", (32.0, 16), (32.0, 16), (2.5, 16), (32.0, 16), False, "s/")
        assert f.status is Status.PASS
        assert "32.0 GT/s x16" in f.message

    def test_idle_gpu_speed_is_not_judged(self) -> None:
        f = judge_link("GPU0", (32.0, 16), (32.0, 16), (2.5, 16), (None, None), False, "s/")
        assert f.status is Status.PASS

    def test_trained_at_x8_fails(self) -> None:
        f = judge_link("GPU2", (32.0, 16), (32.0, 16), (32.0, 8), (32.0, 16), False, "s/")
        assert f.status is Status.FAIL
        assert "trained at x8, expected x16" in f.message

    def test_upstream_port_caps_the_link(self) -> None:
        f = judge_link("GPU0", (32.0, 16), (16.0, 16), (16.0, 16), (None, None), False, "s/")
        assert f.status is Status.FAIL
        assert "16.0 GT/s only, expected 32.0 GT/s" in f.message

    def test_nic_current_speed_is_judged(self) -> None:
        f = judge_link("mlx5_0", (32.0, 16), (32.0, 16), (16.0, 16), (32.0, 16), True, "s/")
        assert f.status is Status.FAIL
        assert "running at 16.0 GT/s" in f.message

    def test_below_baseline_generation_fails(self) -> None:
        f = judge_link("GPU0", (16.0, 16), None, (16.0, 16), (32.0, 16), False, "s/")
        assert f.status is Status.FAIL

    def test_missing_attributes_skip(self) -> None:
        assert (
            judge_link("x", (None, None), None, (None, None), (None, None), False, "s/").status
            is Status.SKIP
        )


class TestAcs:
    def test_all_off_passes(self) -> None:
        assert judge_acs("port", True, 0x0000, [], False, "s").status is Status.PASS

    def test_no_acs_capability_passes(self) -> None:
        assert judge_acs("port", True, None, [], False, "s").status is Status.PASS

    def test_redirect_fails(self) -> None:
        f = judge_acs(
            "port", True, 0x001D, ["SrcValid", "ReqRedir", "CmpltRedir", "UpstreamFwd"], False, "s"
        )
        assert f.status is Status.FAIL
        assert "ReqRedir" in f.message and "CmpltRedir" in f.message
        assert f.evidence[0].observed == "0x001d (SrcValid ReqRedir CmpltRedir UpstreamFwd)"

    def test_source_validation_alone_passes(self) -> None:
        assert judge_acs("port", True, 0x0001, ["SrcValid"], False, "s").status is Status.PASS

    def test_redirect_allowed_in_vm(self) -> None:
        assert (
            judge_acs("port", True, 0x000C, ["ReqRedir", "CmpltRedir"], True, "s").status
            is Status.PASS
        )

    def test_short_config_is_unknown(self) -> None:
        assert judge_acs("port", False, None, [], False, "s").status is Status.WARN


class TestDevCtl:
    def test_as_pinned_passes(self) -> None:
        assert judge_devctl("nic", 4096, 256, True, 4096, 512, 256, True, "s").status is Status.PASS

    def test_mrrs_differs_from_pin_fails(self) -> None:
        f = judge_devctl("nic", 512, 256, True, 4096, 512, None, None, "s")
        assert f.status is Status.FAIL
        assert "MaxReadReq 512 bytes, expected 4096" in f.message

    def test_relaxed_ordering_off_fails(self) -> None:
        assert (
            judge_devctl("nic", 4096, 256, False, None, 512, None, True, "s").status is Status.FAIL
        )

    def test_small_mrrs_warns(self) -> None:
        assert (
            judge_devctl("gpu", 128, 256, False, None, 512, None, None, "s").status is Status.WARN
        )


class TestAer:
    def test_totals_from_total_lines_or_sums(self) -> None:
        assert aer_total({"RxErr": 2, "BadTLP": 1, "TOTAL_ERR_COR": 3}, "correctable") == 3
        assert aer_total({"RxErr": 2, "BadTLP": 1}, "correctable") == 3

    def test_clean_passes(self) -> None:
        f = judge_aer("GPU0", {"correctable": 5, "nonfatal": 0, "fatal": 0}, 100, "s/")
        assert f.status is Status.PASS

    def test_fatal_fails(self) -> None:
        f = judge_aer("GPU0", {"correctable": 0, "nonfatal": 0, "fatal": 1}, 100, "s/")
        assert f.status is Status.FAIL

    def test_root_port_nonfatal_fails(self) -> None:
        f = judge_aer("root port", {"rootport_nonfatal": 2}, 100, "s/")
        assert f.status is Status.FAIL and "root-port nonfatal" in f.message

    def test_many_correctable_warn(self) -> None:
        assert judge_aer("GPU0", {"correctable": 101}, 100, "s/").status is Status.WARN


class TestBar1:
    def test_full_bar1_passes(self) -> None:
        assert judge_bar1("GPU0", 128 * GIB, 128, 256, "s").status is Status.PASS

    def test_small_bar1_fails_against_pin(self) -> None:
        f = judge_bar1("GPU0", 256 << 20, 128, 256, "s")
        assert f.status is Status.FAIL and "BAR1 256 MiB" in f.message

    def test_small_bar1_warns_without_pin(self) -> None:
        assert judge_bar1("GPU0", 256 << 20, None, 256, "s").status is Status.WARN


class TestIommu:
    def test_identity_passes(self) -> None:
        assert (
            judge_iommu_group("GPU0", "12", "identity", "passthrough", False).status is Status.PASS
        )

    def test_no_group_passes(self) -> None:
        assert judge_iommu_group("GPU0", None, None, "off", False).status is Status.PASS

    def test_translated_fails(self) -> None:
        for domain in ("DMA", "DMA-FQ"):
            f = judge_iommu_group("GPU0", "12", domain, "translated", False)
            assert f.status is Status.FAIL and domain in f.message

    def test_translated_allowed(self) -> None:
        assert judge_iommu_group("GPU0", "12", "DMA", "translated", True).status is Status.PASS


class TestHost:
    def test_memlock_unlimited_passes(self) -> None:
        assert judge_memlock(-1, -1, None).status is Status.PASS

    def test_memlock_finite_fails(self) -> None:
        f = judge_memlock(65536, 65536, None)
        assert f.status is Status.FAIL and "65536" in f.message

    def test_memlock_min_bytes(self) -> None:
        assert judge_memlock(1 << 40, 1 << 40, 1 << 30).status is Status.PASS

    def test_cmdline_required_and_forbidden(self) -> None:
        tokens = ["ro", "iommu=pt", "intel_iommu=on"]
        ok = judge_cmdline(tokens, ("iommu=pt",), ("pcie_aspm=",))
        assert all(f.status is Status.PASS for f in ok)
        bad = judge_cmdline(tokens, ("pci=realloc",), ("intel_iommu=",))
        assert [f.status for f in bad] == [Status.FAIL, Status.FAIL]


class TestCpu:
    def test_all_performance_passes(self) -> None:
        assert (
            judge_governors({0: "performance", 1: "performance"}, "performance").status
            is Status.PASS
        )

    def test_powersave_warns(self) -> None:
        v = judge_governors({0: "performance", 1: "powersave", 2: "powersave"}, "performance")
        assert v.status is Status.WARN and "2 CPUs on powersave" in v.summary

    def test_no_cpufreq_skips(self) -> None:
        assert judge_governors({}, "performance").status is Status.SKIP


class TestAffinity:
    def test_same_node_passes(self) -> None:
        assert judge_affinity("GPU0", 0, "mlx5_0", 0, "PIX").status is Status.PASS

    def test_cross_socket_warns(self) -> None:
        f = judge_affinity("GPU0", 0, "mlx5_4", 1, "SYS")
        assert f.status is Status.WARN and "NUMA node 1" in f.message

    def test_unknown_numa_warns(self) -> None:
        assert judge_affinity("GPU0", -1, "mlx5_0", -1, "PIX").status is Status.WARN
