"""Tests for preflight.inventory.sysfs_text: one test per kernel format variant, plus hypothesis
properties proving that every parser raises nothing but ParseError on arbitrary input."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight.errors import ParseError
from preflight.inventory.sysfs_text import (
    Bar,
    IommuCmdline,
    ProcLimit,
    format_link_speed,
    link_speed_generation,
    parse_aer_counters,
    parse_bracketed_choice,
    parse_cmdline,
    parse_cpulist,
    parse_int,
    parse_iommu_cmdline,
    parse_kv_lines,
    parse_limit_value,
    parse_link_speed,
    parse_nvidia_version,
    parse_proc_limits,
    parse_resource,
)

# ----------------------------------------------------------------------------- link speed


@pytest.mark.parametrize(
    ("text", "gts"),
    [
        ("2.5 GT/s PCIe\n", 2.5),
        ("5.0 GT/s PCIe\n", 5.0),
        ("8.0 GT/s PCIe\n", 8.0),
        ("16.0 GT/s PCIe\n", 16.0),
        ("32.0 GT/s PCIe\n", 32.0),
        ("64.0 GT/s PCIe\n", 64.0),
    ],
)
def test_link_speed_current_kernel_strings(text: str, gts: float) -> None:
    assert parse_link_speed(text) == gts


@pytest.mark.parametrize(
    ("text", "gts"),
    [
        ("2.5 GT/s\n", 2.5),
        ("5 GT/s\n", 5.0),
        ("8 GT/s\n", 8.0),
        ("16 GT/s", 16.0),
        ("32 GT/s", 32.0),
    ],
)
def test_link_speed_old_kernel_strings(text: str, gts: float) -> None:
    assert parse_link_speed(text) == gts


@pytest.mark.parametrize("text", ["Unknown\n", "Unknown", "Unknown speed\n"])
def test_link_speed_unknown_is_none(text: str) -> None:
    assert parse_link_speed(text) is None


@pytest.mark.parametrize(
    "text", ["", "\n", "fast", "33 MHz PCI", "PCI-X 266", "GT/s", "0 GT/s", "-8 GT/s", "8 GB/s"]
)
def test_link_speed_rejects_other_text(text: str) -> None:
    with pytest.raises(ParseError, match="PCIe link speed"):
        parse_link_speed(text)


@pytest.mark.parametrize(
    ("gts", "gen"), [(2.5, 1), (5.0, 2), (5, 2), (8.0, 3), (16.0, 4), (32.0, 5), (64.0, 6)]
)
def test_link_speed_generation(gts: float, gen: int) -> None:
    assert link_speed_generation(gts) == gen


@pytest.mark.parametrize("gts", [0.0, 1.0, 10.0, 128.0, float("nan"), float("inf"), -8.0])
def test_link_speed_generation_rejects_unknown_rates(gts: float) -> None:
    with pytest.raises(ParseError, match=r"2\.5, 5, 8, 16, 32 or 64 GT/s"):
        link_speed_generation(gts)


def test_generation_round_trip_from_text() -> None:
    speed = parse_link_speed("16.0 GT/s PCIe\n")
    assert speed is not None
    assert link_speed_generation(speed) == 4


@pytest.mark.parametrize(
    ("gts", "text"),
    [
        (32.0, "32.0 GT/s"),
        (2.5, "2.5 GT/s"),
        (8, "8.0 GT/s"),
        (64.0, "64.0 GT/s"),
        (2.25, "2.25 GT/s"),
    ],
)
def test_format_link_speed(gts: float, text: str) -> None:
    assert format_link_speed(gts) == text


# ----------------------------------------------------------------------------- integers


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0x10de\n", 0x10DE),
        ("0x030200\n", 0x030200),
        ("0X15B3", 0x15B3),
        ("16\n", 16),
        ("-1\n", -1),
        ("  0  ", 0),
        ("+7", 7),
        ("010", 10),  # decimal, not octal
    ],
)
def test_parse_int(text: str, value: int) -> None:
    assert parse_int(text) == value


@pytest.mark.parametrize(
    "text", ["", "\n", "0x", "ten", "1.5", "0o17", "0b1", "1_000", "1 2", "٣", "9" * 5000]
)
def test_parse_int_rejects(text: str) -> None:
    with pytest.raises(ParseError, match="integer"):
        parse_int(text)


# ----------------------------------------------------------------------------- AER

AER_CORRECTABLE_CURRENT = """\
RxErr 0
BadTLP 2
BadDLLP 0
Rollover 0
Timeout 1
NonFatalErr 0
CorrIntErr 0
HeaderOF 0
TOTAL_ERR_COR 3
"""

AER_CORRECTABLE_OLD = """\
Receiver Error 3
Bad TLP 0
Bad DLLP 0
RELAY_NUM Rollover 0
Replay Timer Timeout 0
Advisory Non-Fatal 0
Corrected Internal Error 0
Header Log Overflow 0
TOTAL_ERR_COR 3
"""


def test_aer_current_names() -> None:
    counters = parse_aer_counters(AER_CORRECTABLE_CURRENT)
    assert counters["BadTLP"] == 2
    assert counters["Timeout"] == 1
    assert counters["TOTAL_ERR_COR"] == 3
    assert len(counters) == 9


def test_aer_old_names_with_spaces_split_at_last_whitespace() -> None:
    counters = parse_aer_counters(AER_CORRECTABLE_OLD)
    assert counters["Receiver Error"] == 3
    assert counters["Replay Timer Timeout"] == 0
    assert counters["TOTAL_ERR_COR"] == 3


def test_aer_unnamed_bit_line_and_fatal_total() -> None:
    text = "Undefined 0\nDLP 0\ndev_fatal_errs_bit[31] 4\nTOTAL_ERR_FATAL 4\n"
    assert parse_aer_counters(text) == {
        "Undefined": 0,
        "DLP": 0,
        "dev_fatal_errs_bit[31]": 4,
        "TOTAL_ERR_FATAL": 4,
    }


def test_aer_blank_lines_ignored_and_empty_file() -> None:
    assert parse_aer_counters("\nRxErr 1\n\n\nTOTAL_ERR_COR 1\n\n") == {
        "RxErr": 1,
        "TOTAL_ERR_COR": 1,
    }
    assert parse_aer_counters("") == {}


@pytest.mark.parametrize(
    "text", ["RxErr\n", "RxErr -1\n", "RxErr 1.0\n", "RxErr x\n", "RxErr 1\nRxErr 2\n"]
)
def test_aer_rejects(text: str) -> None:
    with pytest.raises(ParseError, match="AER"):
        parse_aer_counters(text)


# ----------------------------------------------------------------------------- cpulist


def test_cpulist_two_ranges() -> None:
    assert parse_cpulist("0-55,112-167\n") == [*range(56), *range(112, 168)]


def test_cpulist_single_and_mixed() -> None:
    assert parse_cpulist("0\n") == [0]
    assert parse_cpulist("0,2,4-6\n") == [0, 2, 4, 5, 6]


def test_cpulist_empty_mask() -> None:
    assert parse_cpulist("") == []
    assert parse_cpulist("\n") == []


def test_cpulist_group_form() -> None:
    assert parse_cpulist("0-15:2/4") == [0, 1, 4, 5, 8, 9, 12, 13]


@pytest.mark.parametrize(
    "text", ["0-7:2", "5-3", "a", "0,,1", "0-", "-1", "0-99999999", "0-7:3/2", "0-7:1/0", "1 2"]
)
def test_cpulist_rejects(text: str) -> None:
    with pytest.raises(ParseError, match="CPU"):
        parse_cpulist(text)


# ----------------------------------------------------------------------------- [choice]


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("always [madvise] never\n", "madvise"),
        ("[always] madvise never\n", "always"),
        ("always defer defer+madvise [madvise] never\n", "madvise"),
        ("default performance powersave [powersupersave]\n", "powersupersave"),
        ("[mq-deadline] kyber bfq none\n", "mq-deadline"),
    ],
)
def test_bracketed_choice(text: str, choice: str) -> None:
    assert parse_bracketed_choice(text) == choice


@pytest.mark.parametrize(
    "text", ["always madvise never", "", "[a] [b]", "[]", "a[b]", "[a", "[[a]]", "a ] b [c]"]
)
def test_bracketed_choice_rejects(text: str) -> None:
    with pytest.raises(ParseError, match=r"\[active\]"):
        parse_bracketed_choice(text)


# ----------------------------------------------------------------------------- cmdline


def test_cmdline_plain_tokens() -> None:
    text = "BOOT_IMAGE=/vmlinuz-6.8.0 root=UUID=abc ro quiet splash intel_iommu=on iommu=pt\n"
    assert parse_cmdline(text) == [
        "BOOT_IMAGE=/vmlinuz-6.8.0",
        "root=UUID=abc",
        "ro",
        "quiet",
        "splash",
        "intel_iommu=on",
        "iommu=pt",
    ]


def test_cmdline_quoted_value_is_one_token() -> None:
    assert parse_cmdline('foo="a b" bar\n') == ["foo=a b", "bar"]


def test_cmdline_quoted_whole_argument() -> None:
    assert parse_cmdline('"foo bar" x') == ["foo bar", "x"]


def test_cmdline_quote_inside_value_and_unterminated() -> None:
    assert parse_cmdline('a=b"c d"e f') == ['a=b"c d"e', "f"]
    assert parse_cmdline('dyndbg="file x.c +p') == ["dyndbg=file x.c +p"]


def test_cmdline_whitespace_and_empty() -> None:
    assert parse_cmdline("  a\t\tb  \n") == ["a", "b"]
    assert parse_cmdline("") == []


def test_cmdline_keeps_init_args() -> None:
    assert parse_cmdline("ro -- single") == ["ro", "--", "single"]


# ----------------------------------------------------------------------------- IOMMU


def _iommu(cmdline: str) -> IommuCmdline:
    return parse_iommu_cmdline(parse_cmdline(cmdline))


def test_iommu_nothing_said_is_default() -> None:
    parsed = _iommu("ro quiet")
    assert parsed == IommuCmdline(None, None, None, None, None)
    assert parsed.mode() == "default"


def test_iommu_intel_on_is_translated() -> None:
    parsed = _iommu("intel_iommu=on")
    assert parsed.intel_iommu == "on"
    assert parsed.mode() == "translated"


def test_iommu_intel_on_comma_list() -> None:
    parsed = _iommu("intel_iommu=on,sm_on")
    assert parsed.intel_iommu == "on,sm_on"
    assert parsed.mode() == "translated"


def test_iommu_intel_on_with_pt_is_passthrough() -> None:
    parsed = _iommu("intel_iommu=on iommu=pt")
    assert parsed.iommu == "pt"
    assert parsed.passthrough is True
    assert parsed.mode() == "passthrough"


def test_iommu_pt_alone_is_passthrough() -> None:
    assert _iommu("iommu=pt").mode() == "passthrough"


def test_iommu_intel_off() -> None:
    assert _iommu("intel_iommu=off").mode() == "off"


def test_iommu_amd_off() -> None:
    parsed = _iommu("amd_iommu=off")
    assert parsed.amd_iommu == "off"
    assert parsed.mode() == "off"


def test_iommu_amd_options_without_off_are_default() -> None:
    assert _iommu("amd_iommu=force_isolation").mode() == "default"


def test_iommu_amd_with_passthrough_one() -> None:
    parsed = _iommu("amd_iommu=force_enable iommu.passthrough=1")
    assert parsed.passthrough is True
    assert parsed.mode() == "passthrough"


def test_iommu_passthrough_one_alone() -> None:
    assert _iommu("iommu.passthrough=1").mode() == "passthrough"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("y", True), ("Y", True), ("on", True), ("n", False), ("0", False), ("off", False)],
)
def test_iommu_passthrough_kstrtobool_spellings(value: str, expected: bool) -> None:
    assert _iommu(f"iommu.passthrough={value}").passthrough is expected


def test_iommu_passthrough_zero_is_translated() -> None:
    assert _iommu("iommu.passthrough=0").mode() == "translated"
    assert _iommu("intel_iommu=on iommu.passthrough=0").mode() == "translated"


def test_iommu_nopt_is_translated() -> None:
    assert _iommu("iommu=nopt").mode() == "translated"


def test_iommu_off_generic() -> None:
    parsed = _iommu("iommu=off")
    assert parsed.iommu == "off"
    assert parsed.mode() == "off"


def test_iommu_off_beats_passthrough() -> None:
    assert _iommu("intel_iommu=off iommu=pt").mode() == "off"
    assert _iommu("iommu=off iommu.passthrough=1").mode() == "off"


def test_iommu_last_occurrence_wins() -> None:
    assert _iommu("intel_iommu=off intel_iommu=on").mode() == "translated"
    assert _iommu("intel_iommu=on intel_iommu=off").mode() == "off"
    assert _iommu("iommu=pt iommu.passthrough=0").mode() == "translated"
    assert _iommu("iommu.passthrough=0 iommu=pt").mode() == "passthrough"


def test_iommu_strict() -> None:
    assert _iommu("iommu.strict=1").strict is True
    assert _iommu("iommu.strict=0").strict is False
    assert _iommu("iommu.strict=0").mode() == "default"


def test_iommu_bad_bool_is_ignored_like_the_kernel() -> None:
    parsed = _iommu("iommu.passthrough=maybe iommu.strict=")
    assert parsed.passthrough is None
    assert parsed.strict is None


def test_iommu_dash_spelling_and_init_args() -> None:
    assert _iommu("intel-iommu=off").mode() == "off"
    assert _iommu("ro -- iommu=pt").mode() == "default"


def test_iommu_vendor_disambiguates() -> None:
    both = _iommu("intel_iommu=on amd_iommu=off")
    assert both.mode() == "translated"
    assert both.mode(vendor="intel") == "translated"
    assert both.mode(vendor="amd") == "off"
    assert _iommu("intel_iommu=off").mode(vendor="amd") == "default"
    with pytest.raises(ParseError, match="vendor"):
        both.mode(vendor="arm")


def test_iommu_constructed_directly() -> None:
    assert IommuCmdline(iommu="pt").mode() == "passthrough"
    assert IommuCmdline(intel_iommu="on", iommu="pt", passthrough=False).mode() == "translated"


# ----------------------------------------------------------------------------- resource

H100_RESOURCE = """\
0x0000000092000000 0x0000000092ffffff 0x0000000000040200
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000220000000000 0x0000221fffffffff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000222000000000 0x0000222001ffffff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
"""


def test_resource_h100_bar1_is_128gib_prefetchable_64bit() -> None:
    bars = parse_resource(H100_RESOURCE)
    assert len(bars) == 13
    bar1 = bars[2]
    assert bar1 == Bar(index=2, start=0x220000000000, end=0x221FFFFFFFFF, flags=0x14220C)
    assert bar1.size == 128 * 1024**3
    assert bar1.prefetchable
    assert bar1.is_64bit
    assert bar1.is_mem
    assert not bar1.is_io


def test_resource_bar0_is_32bit_non_prefetchable() -> None:
    bar0 = parse_resource(H100_RESOURCE)[0]
    assert bar0.size == 16 * 1024**2
    assert not bar0.prefetchable
    assert not bar0.is_64bit
    assert bar0.is_mem


def test_resource_empty_bars() -> None:
    bars = parse_resource(H100_RESOURCE)
    empty = bars[1]
    assert empty.index == 1
    assert empty.size == 0
    assert not empty.is_io
    assert not empty.is_mem
    assert not empty.prefetchable
    assert not empty.is_64bit
    assert [b.index for b in bars] == list(range(13))


def test_resource_io_bar_and_reg_type() -> None:
    io = parse_resource("0x000000000000e000 0x000000000000e07f 0x0000000000040101\n")[0]
    assert io.is_io
    assert not io.is_mem
    assert io.size == 0x80
    # IORESOURCE_REG (0x300) sets both type bits but is neither IO nor MEM.
    assert not Bar(index=0, start=1, end=2, flags=0x300).is_io


def test_resource_inverted_range_has_no_size() -> None:
    assert Bar(index=0, start=0x1000, end=0xFFF, flags=0x200).size == 0


def test_resource_empty_text() -> None:
    assert parse_resource("") == []


@pytest.mark.parametrize(
    "text",
    [
        "0x0 0x0\n",
        "0x0 0x0 0x0 0x0\n",
        "0 0 0\n",
        "0x0 0x0 0xg\n",
        "0x0 0x0 0x0\n\n0x0 0x0 0x0\n",
        "0x00000000000000000 0x0 0x0\n",
    ],
)
def test_resource_rejects(text: str) -> None:
    with pytest.raises(ParseError, match="PCI resource line"):
        parse_resource(text)


# ----------------------------------------------------------------------------- limits

PROC_LIMITS_FIXED = """\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             96365                96365                processes 
Max open files            20000                20000                files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       96365                96365                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
"""  # noqa: W291 - the kernel pads every field with spaces ("%-10s\n")


def test_proc_limits_fixed_copy() -> None:
    limits = parse_proc_limits(PROC_LIMITS_FIXED)
    assert len(limits) == 16
    assert limits["Max locked memory"] == ProcLimit(soft=8388608, hard=8388608)
    assert limits["Max stack size"] == ProcLimit(soft=8388608, hard=-1)
    assert limits["Max cpu time"] == ProcLimit(soft=-1, hard=-1)
    assert limits["Max nice priority"] == ProcLimit(soft=0, hard=0)  # no unit column
    assert limits["Max realtime timeout"] == ProcLimit(soft=-1, hard=-1)


def test_proc_limits_unlimited_memlock_line() -> None:
    text = "Max locked memory         unlimited            unlimited            bytes     \n"
    assert parse_proc_limits(text) == {"Max locked memory": ProcLimit(-1, -1)}


def _rlim(value: int) -> int:
    return -1 if value == resource.RLIM_INFINITY else value


def test_proc_self_limits_of_this_machine() -> None:
    text = Path("/proc/self/limits").read_text()
    limits = parse_proc_limits(text)
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    assert limits["Max locked memory"] == ProcLimit(_rlim(soft), _rlim(hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limits["Max open files"] == ProcLimit(_rlim(soft), _rlim(hard))


@pytest.mark.parametrize(
    "text",
    [
        "Max locked memory 8388608\n",
        "Max locked memory lots unlimited bytes\n",
        "Max locked memory -5 unlimited bytes\n",
        "1 2\n",
        "Max open files 1 1 files\nMax open files 2 2 files\n",
    ],
)
def test_proc_limits_rejects(text: str) -> None:
    with pytest.raises(ParseError, match="limit"):
        parse_proc_limits(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("unlimited", -1),
        ("infinity", -1),
        ("Unlimited", -1),
        (" unlimited ", -1),
        ("-1", -1),
        (-1, -1),
        (0, 0),
        (65536, 65536),
        ("65536", 65536),
    ],
)
def test_parse_limit_value(value: str | int, expected: int) -> None:
    assert parse_limit_value(value) == expected


@pytest.mark.parametrize("value", ["lots", "", "-2", "1e6", -2, True, 1.5, None])
def test_parse_limit_value_rejects(value: Any) -> None:
    with pytest.raises(ParseError, match="limit"):
        parse_limit_value(value)


# ----------------------------------------------------------------------------- key: value

NVIDIA_GPU_INFORMATION = """\
Model: \t\t NVIDIA H100 80GB HBM3
IRQ:   \t\t 486
GPU UUID: \t GPU-6f1b5b34-3c8a-0d7e-1f2a-0123456789ab
Video BIOS: \t 96.00.74.00.01
Bus Type: \t PCIe
DMA Size: \t 52 bits
DMA Mask: \t 0xfffffffffffff
Bus Location: \t 0000:18:00.0
Device Minor: \t 0
GPU Firmware: \t 565.57.01
GPU Excluded:\t No
"""


def test_kv_lines_nvidia_information() -> None:
    info = parse_kv_lines(NVIDIA_GPU_INFORMATION)
    assert info["Model"] == "NVIDIA H100 80GB HBM3"
    assert info["Bus Location"] == "0000:18:00.0"  # split at the first ':' only
    assert info["GPU Excluded"] == "No"
    assert len(info) == 11


def test_kv_lines_other_separator_blank_lines_and_empty_value() -> None:
    assert parse_kv_lines("a=1\n\nb = x=y\nc=\n", sep="=") == {"a": "1", "b": "x=y", "c": ""}


@pytest.mark.parametrize("text", ["no separator here\n", ": value\n", "a: 1\na: 2\n"])
def test_kv_lines_rejects(text: str) -> None:
    with pytest.raises(ParseError, match="key"):
        parse_kv_lines(text)


def test_kv_lines_rejects_empty_separator() -> None:
    with pytest.raises(ParseError, match="separator"):
        parse_kv_lines("a: b", sep="")


# ----------------------------------------------------------------------------- nvidia version

NV_OPEN = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Tue Oct 22 15:22:05 UTC 2024\n"
    "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04) \n"
)
NV_PROPRIETARY = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.135  Tue Nov 19 21:40:34 UTC 2024\n"
    "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04) \n"
)


def test_nvidia_version_open() -> None:
    assert parse_nvidia_version(NV_OPEN) == ("565.57.01", True)


def test_nvidia_version_proprietary() -> None:
    assert parse_nvidia_version(NV_PROPRIETARY) == ("550.135", False)


def test_nvidia_version_aarch64_open() -> None:
    text = "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  580.95.05  Release Build\n"
    assert parse_nvidia_version(text) == ("580.95.05", True)


def test_nvidia_version_no_nvrm_line() -> None:
    assert parse_nvidia_version("") is None
    assert parse_nvidia_version("GCC version: gcc 12\n") is None


@pytest.mark.parametrize(
    "text",
    ["NVRM version: something else\n", "NVRM version: NVIDIA UNIX x86_64 Kernel Module  beta\n"],
)
def test_nvidia_version_rejects_malformed_nvrm_line(text: str) -> None:
    with pytest.raises(ParseError, match=r"NVRM|version"):
        parse_nvidia_version(text)


# ----------------------------------------------------------------------------- properties

TEXT_PARSERS: list[Callable[[str], object]] = [
    parse_link_speed,
    parse_int,
    parse_aer_counters,
    parse_cpulist,
    parse_bracketed_choice,
    parse_cmdline,
    parse_resource,
    parse_proc_limits,
    parse_kv_lines,
    parse_nvidia_version,
    parse_limit_value,
    lambda t: parse_iommu_cmdline(parse_cmdline(t)).mode(),
]
TEXT_PARSER_IDS = [
    "link_speed",
    "int",
    "aer",
    "cpulist",
    "bracketed",
    "cmdline",
    "resource",
    "limits",
    "kv",
    "nvidia_version",
    "limit_value",
    "iommu",
]

# Text built from the characters these formats are made of, so the parsers get past their first
# check far more often than with uniformly random text.
_FORMAT_ALPHABET = st.sampled_from(
    [*'0123456789abcdefxX-+,:/.=[] \t\n"', "GT/s", "PCIe", "unlimited", "Unknown", "0x"]
)
FORMAT_TEXT = st.lists(_FORMAT_ALPHABET, max_size=40).map("".join)
_PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_parse_error(parser: Callable[[str], object], text: str) -> None:
    try:
        parser(text)
    except ParseError as exc:
        message = str(exc)
        assert message
        assert "\n" not in message  # one-line messages


@pytest.mark.parametrize("parser", TEXT_PARSERS, ids=TEXT_PARSER_IDS)
@_PROPERTY
@given(text=st.text())
def test_parsers_raise_only_parse_error_on_any_text(
    parser: Callable[[str], object], text: str
) -> None:
    _only_parse_error(parser, text)


@pytest.mark.parametrize("parser", TEXT_PARSERS, ids=TEXT_PARSER_IDS)
@_PROPERTY
@given(text=FORMAT_TEXT)
def test_parsers_raise_only_parse_error_on_format_like_text(
    parser: Callable[[str], object], text: str
) -> None:
    _only_parse_error(parser, text)


@_PROPERTY
@given(
    tokens=st.lists(st.text(max_size=30), max_size=10),
    vendor=st.sampled_from([None, "intel", "amd"]),
)
def test_iommu_cmdline_from_any_tokens(tokens: list[str], vendor: str | None) -> None:
    parsed = parse_iommu_cmdline(tokens)
    assert parsed.mode(vendor) in {"off", "passthrough", "translated", "default"}


@_PROPERTY
@given(gts=st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_link_speed_number_functions_raise_only_parse_error(gts: float) -> None:
    with contextlib.suppress(ParseError):
        assert link_speed_generation(gts) in range(1, 7)
    assert format_link_speed(gts).endswith(" GT/s")


@_PROPERTY
@given(value=st.one_of(st.text(), st.integers(), st.none(), st.booleans(), st.floats()))
def test_parse_limit_value_raises_only_parse_error(value: Any) -> None:
    with contextlib.suppress(ParseError):
        assert parse_limit_value(value) >= -1


@_PROPERTY
@given(
    start=st.integers(0, 2**64 - 1),
    end=st.integers(0, 2**64 - 1),
    flags=st.integers(0, 2**64 - 1),
)
def test_resource_round_trip(start: int, end: int, flags: int) -> None:
    line = f"0x{start:016x} 0x{end:016x} 0x{flags:016x}\n"
    (bar,) = parse_resource(line)
    assert (bar.start, bar.end, bar.flags) == (start, end, flags)
    assert bar.size >= 0


@_PROPERTY
@given(cpus=st.sets(st.integers(0, 1023), max_size=64))
def test_cpulist_round_trip(cpus: set[int]) -> None:
    ordered = sorted(cpus)
    ranges: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        ranges.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    assert parse_cpulist(",".join(ranges) + "\n") == ordered


@_PROPERTY
@given(
    words=st.lists(
        st.text(alphabet=st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=8),
        min_size=1,
        max_size=6,
    ),
    data=st.data(),
)
def test_cmdline_round_trip_of_quoted_values(words: list[str], data: st.DataObject) -> None:
    value = " ".join(words)
    name = data.draw(st.sampled_from(["foo", "dyndbg", "intel_iommu"]))
    assert parse_cmdline(f'ro {name}="{value}" quiet\n') == ["ro", f"{name}={value}", "quiet"]
