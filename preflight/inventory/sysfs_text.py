"""Pure parsers for the text of Linux sysfs/procfs files.

Every public function either returns a typed value or raises :class:`ParseError` with a one-line
message that names what was expected.  No other exception escapes, whatever the input (the test
suite checks this with hypothesis).  Nothing here touches the filesystem: callers read the file
(through ``Host``) and hand the text over, so the same code serves a real host and a fake tree.

Kernel format facts are cited next to the code that depends on them (paths are in the Linux source
tree).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from preflight.errors import ParseError

__all__ = [
    "Bar",
    "IommuCmdline",
    "ProcLimit",
    "format_link_speed",
    "link_speed_generation",
    "parse_aer_counters",
    "parse_bracketed_choice",
    "parse_cmdline",
    "parse_cpulist",
    "parse_int",
    "parse_iommu_cmdline",
    "parse_kv_lines",
    "parse_limit_value",
    "parse_link_speed",
    "parse_nvidia_version",
    "parse_proc_limits",
    "parse_resource",
]

# Longest excerpt of offending input quoted in an error message; keeps messages on one short line.
_QUOTE_MAX = 60


def _quote(text: str) -> str:
    """repr() of ``text`` cut to a readable length; repr escapes newlines, so one line."""
    if len(text) > _QUOTE_MAX:
        return repr(text[:_QUOTE_MAX]) + "..."
    return repr(text)


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ParseError(f"expected {what} as text, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------------------------
# PCIe link speed: /sys/bus/pci/devices/<bdf>/{max,current}_link_speed
# --------------------------------------------------------------------------------------------
#
# Current kernels: drivers/pci/pci-sysfs.c prints "%s\n" of pci_speed_string(), whose table
# speed_strings[] in drivers/pci/probe.c holds "2.5 GT/s PCIe", "5.0 GT/s PCIe", "8.0 GT/s PCIe",
# "16.0 GT/s PCIe", "32.0 GT/s PCIe", "64.0 GT/s PCIe" and falls back to "Unknown".
# Kernels up to 5.6 had their own switch in pci-sysfs.c printing "2.5 GT/s", "5 GT/s", "8 GT/s",
# "16 GT/s", "32 GT/s" or "Unknown speed" (NCCL's src/graph/topo.cc accepts both spellings).
# The same table also holds conventional-PCI/PCI-X bus strings ("33 MHz PCI", "PCI-X 266", ...);
# those are bus speeds, never link speeds, so they are rejected here.
_LINK_SPEED_RE = re.compile(r"([0-9]{1,4}(?:\.[0-9]{1,4})?)[ \t]*GT/s(?:[ \t]+PCIe)?")
_LINK_SPEED_UNKNOWN = frozenset({"Unknown", "Unknown speed"})

# PCIe generation by signalling rate in GT/s (PCIe base spec; the LnkCap/LnkSta speed codes 1..6
# in include/uapi/linux/pci_regs.h map to the same rates).
_GENERATION_BY_GTS: tuple[tuple[float, int], ...] = (
    (2.5, 1),
    (5.0, 2),
    (8.0, 3),
    (16.0, 4),
    (32.0, 5),
    (64.0, 6),
)


def parse_link_speed(text: str) -> float | None:
    """GT/s from a ``*_link_speed`` file; ``None`` when the kernel says the speed is unknown."""
    s = _require_str(text, "a PCIe link speed").strip()
    if s in _LINK_SPEED_UNKNOWN:
        return None
    m = _LINK_SPEED_RE.fullmatch(s)
    if m is None:
        raise ParseError(
            f"expected a PCIe link speed like '32.0 GT/s PCIe', '8 GT/s' or 'Unknown', "
            f"got {_quote(text)}"
        )
    gts = float(m.group(1))
    if gts <= 0.0:
        raise ParseError(f"expected a positive PCIe link speed, got {_quote(text)}")
    return gts


def link_speed_generation(gts: float) -> int:
    """PCIe generation (1..6) for a signalling rate in GT/s."""
    if isinstance(gts, bool) or not isinstance(gts, (int, float)):
        raise ParseError(f"expected a PCIe link speed in GT/s as a number, got {gts!r}")
    for rate, gen in _GENERATION_BY_GTS:
        if math.isclose(float(gts), rate, rel_tol=0.0, abs_tol=1e-6):
            return gen
    raise ParseError(
        f"expected a PCIe link speed of 2.5, 5, 8, 16, 32 or 64 GT/s, got {gts!r} GT/s"
    )


def format_link_speed(gts: float) -> str:
    """``32.0`` -> ``'32.0 GT/s'``, ``2.5`` -> ``'2.5 GT/s'`` (the kernel's own spelling)."""
    if isinstance(gts, bool) or not isinstance(gts, (int, float)):
        raise ParseError(f"expected a PCIe link speed in GT/s as a number, got {gts!r}")
    value = float(gts)
    one_decimal = f"{value:.1f}"
    # Keep more digits only if one decimal would misreport the value (never for real PCIe rates).
    if math.isfinite(value) and float(one_decimal) != value:
        return f"{value!r} GT/s"
    return f"{one_decimal} GT/s"


# --------------------------------------------------------------------------------------------
# Integers: vendor/device/class ("0x%04x\n", "0x%06x\n"), numa_node ("%d\n", -1 = no locality),
# *_link_width ("%u\n"), /proc/sys/* values.
# --------------------------------------------------------------------------------------------
_INT_RE = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)")


def parse_int(text: str) -> int:
    """Decimal or ``0x`` hex integer, optional sign, surrounding whitespace allowed."""
    s = _require_str(text, "an integer").strip()
    if _INT_RE.fullmatch(s) is None:
        raise ParseError(f"expected a decimal or 0x-hex integer, got {_quote(text)}")
    try:
        return int(s, 16) if s.lstrip("+-")[:2] in ("0x", "0X") else int(s, 10)
    except ValueError as exc:  # e.g. more decimal digits than sys.int_info allows
        raise ParseError(f"expected an integer of sane length, got {_quote(text)}") from exc


def _parse_uint(token: str, what: str) -> int:
    if not token.isascii() or not token.isdigit():
        raise ParseError(f"expected {what} as a non-negative decimal integer, got {_quote(token)}")
    try:
        return int(token, 10)
    except ValueError as exc:
        raise ParseError(f"expected {what} of sane length, got {_quote(token)}") from exc


# --------------------------------------------------------------------------------------------
# AER counters: /sys/bus/pci/devices/<bdf>/aer_dev_{correctable,fatal,nonfatal}
# --------------------------------------------------------------------------------------------
#
# drivers/pci/pcie/aer.c (aer_stats_dev_attr) prints, per error bit, "%s %llu\n" with the name
# from aer_{correctable,uncorrectable}_error_string[]; bits without a name are printed only when
# non-zero, as "<stats_array>_bit[%d] %llu\n"; the last line is "TOTAL_ERR_COR %llu\n" /
# "TOTAL_ERR_FATAL %llu\n" / "TOTAL_ERR_NONFATAL %llu\n".  Names changed between kernels: current
# ones are single words ("RxErr", "BadTLP", "CmpltTO"), older ones had spaces ("Receiver Error",
# "Bad TLP", "RELAY_NUM Rollover"), so the count is whatever follows the LAST whitespace.


def parse_aer_counters(text: str) -> dict[str, int]:
    """``{name: count}`` from an ``aer_dev_*`` file, ``TOTAL_ERR_*`` lines included."""
    _require_str(text, "AER counter lines")
    counters: dict[str, int] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        parts = stripped.rsplit(None, 1)
        if len(parts) != 2:
            raise ParseError(f"expected an AER counter line '<name> <count>', got {_quote(line)}")
        name = " ".join(parts[0].split())  # old multi-word names: normalise inner whitespace
        count = _parse_uint(parts[1], f"the AER count of {name!r}")
        if name in counters:
            raise ParseError(f"expected each AER counter once, got {name!r} twice")
        counters[name] = count
    return counters


# --------------------------------------------------------------------------------------------
# CPU lists: local_cpulist, /sys/devices/system/node/node*/cpulist, .../cpu/online
# --------------------------------------------------------------------------------------------
#
# Written with bitmap_print_to_pagebuf(list=true) / "%*pbl" (lib/bitmap-str.c, lib/vsprintf.c):
# comma-separated "N" or "A-B" ranges in ascending order, "\n" alone for an empty mask.
# The parser also takes bitmap_parselist()'s group form "A-B:used/group" (e.g. "0-15:2/4" =
# 0,1,4,5,8,9,12,13), which users write in isolcpus= and cpuset files.  A bare "A-B:2" is NOT
# kernel syntax (bitmap_parselist demands the "/group" part) and is rejected.
# NR_CPUS is at most 8192 on any mainline architecture; ids are capped well above that so a
# corrupt "0-4294967295" cannot make us build a four-billion-element list.
_MAX_CPU_ID = 1 << 16
_CPU_RANGE_RE = re.compile(r"([0-9]+)(?:-([0-9]+)(?::([0-9]+)/([0-9]+))?)?")


def parse_cpulist(text: str) -> list[int]:
    """Sorted, de-duplicated CPU (or node) ids from a kernel list like ``0-55,112-167``."""
    s = _require_str(text, "a CPU list").strip()
    if not s:
        return []
    cpus: set[int] = set()
    for raw in s.split(","):
        token = raw.strip()
        m = _CPU_RANGE_RE.fullmatch(token)
        if m is None:
            raise ParseError(
                f"expected a CPU list of 'N', 'A-B' or 'A-B:used/group' items, got {_quote(text)}"
            )
        first = _parse_uint(m.group(1), "a CPU id")
        last = first if m.group(2) is None else _parse_uint(m.group(2), "a CPU id")
        if last < first:
            raise ParseError(f"expected an ascending CPU range, got {_quote(token)}")
        if last >= _MAX_CPU_ID:
            raise ParseError(f"expected CPU ids below {_MAX_CPU_ID}, got {_quote(token)}")
        if m.group(3) is None:
            cpus.update(range(first, last + 1))
            continue
        used = _parse_uint(m.group(3), "a CPU group used-size")
        group = _parse_uint(m.group(4), "a CPU group size")
        # lib/bitmap-str.c bitmap_check_region(): group_len != 0 and off <= group_len.
        if group == 0 or used > group:
            raise ParseError(
                f"expected 0 < used <= group in a CPU group range, got {_quote(token)}"
            )
        cpus.update(c for c in range(first, last + 1) if (c - first) % group < used)
    return sorted(cpus)


# --------------------------------------------------------------------------------------------
# "[active]" choice files
# --------------------------------------------------------------------------------------------
#
# Several kernel files print every allowed value with the active one in brackets:
# mm/huge_memory.c (transparent_hugepage/enabled: "always [madvise] never"; defrag),
# drivers/pci/pcie/aspm.c (pcie_aspm/parameters/policy: "default performance powersave
# [powersupersave]"), block/elevator.c (queue/scheduler: "[mq-deadline] kyber bfq none").


def parse_bracketed_choice(text: str) -> str:
    """The bracketed (active) word of a choice file such as THP ``enabled`` or ASPM ``policy``."""
    s = _require_str(text, "a bracketed choice list")
    chosen: list[str] = []
    for word in s.split():
        if "[" not in word and "]" not in word:
            continue
        inner = word[1:-1]
        if len(word) < 3 or word[0] != "[" or word[-1] != "]" or "[" in inner or "]" in inner:
            chosen = []  # a stray or nested bracket: not the kernel's format
            break
        chosen.append(inner)
    if len(chosen) == 1:
        return chosen[0]
    raise ParseError(
        f"expected a choice list with exactly one '[active]' word, e.g. 'always [madvise] never', "
        f"got {_quote(text)}"
    )


# --------------------------------------------------------------------------------------------
# /proc/cmdline
# --------------------------------------------------------------------------------------------
#
# kernel/params.c next_arg(): an argument ends at whitespace outside double quotes; a '"' toggles
# quoting anywhere in the argument.  The kernel then drops the quotes around a whole argument
# ("foo bar" -> foo bar) and around a value (foo="a b" -> foo=a b); other quotes stay.  An
# unterminated quote runs to the end of the line.  isspace() there is the kernel's ctype: ASCII
# space, \t, \n, \v, \f, \r.
_CMDLINE_SPACE = " \t\n\v\f\r"


def parse_cmdline(text: str) -> list[str]:
    """Tokens of ``/proc/cmdline``, unquoted the way the kernel's ``next_arg()`` does it.

    Everything is returned, including ``--`` and the init arguments after it.
    """
    s = _require_str(text, "a kernel command line")
    tokens: list[str] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in _CMDLINE_SPACE:
            i += 1
        if i >= n:
            return tokens
        quoted = s[i] == '"'
        if quoted:
            i += 1
        start = i
        in_quote = quoted
        while i < n and (in_quote or s[i] not in _CMDLINE_SPACE):
            if s[i] == '"':
                in_quote = not in_quote
            i += 1
        arg = s[start:i]
        # next_arg() takes the first '=' after the first character as the name/value split.
        eq = arg.find("=", 1)
        if eq > 0 and arg[eq + 1 : eq + 2] == '"':
            # param="value": drop the value's opening quote and the argument's closing quote.
            value = arg[eq + 2 :]
            if value.endswith('"'):
                value = value[:-1]
            arg = arg[: eq + 1] + value
        elif quoted and arg.endswith('"'):
            arg = arg[:-1]
        tokens.append(arg)


# --------------------------------------------------------------------------------------------
# IOMMU options on the kernel command line
# --------------------------------------------------------------------------------------------
#
# Where each option is parsed (all are applied in command-line order, so later ones win):
# * intel_iommu=  drivers/iommu/intel/iommu.c intel_iommu_setup(), __setup("intel_iommu=", ...):
#   comma list of on, off, igfx_off, forcedac, strict, sp_off, sm_on, sm_off, tboot_noforce.
# * amd_iommu=    drivers/iommu/amd/init.c parse_amd_iommu_options(): comma list of fullflush,
#   force_enable, off, force_isolation, pgtbl_v1/v2, ... (there is no "on": the AMD IOMMU is
#   used whenever the firmware describes one).
# * iommu=        arch/x86/kernel/pci-dma.c iommu_setup(), early_param("iommu", ...): comma list of
#   off, force, noforce, pt, nopt, soft, ... ("off" sets no_iommu, which stops both the Intel and
#   the AMD driver from initialising).
# * iommu.passthrough=, iommu.strict=  drivers/iommu/iommu.c early_param()s parsed with
#   kstrtobool() (lib/kstrtox.c: first char y/Y/1 -> true, n/N/0 -> false, "on"/"off"; newer
#   kernels also take t/T and f/F);
#   an unparsable value is ignored by the kernel, so it is ignored here too.
# Arguments after "--" are handed to init, not to the kernel (kernel/params.c parse_args()).
# Option values are matched exactly; the kernel's own parsers use strncmp() prefixes, so e.g.
# "iommu=ptx" also means pt there.  Nobody writes that on purpose.
_KSTRTOBOOL_TRUE = frozenset("yYtT1")
_KSTRTOBOOL_FALSE = frozenset("nNfF0")


def _kstrtobool(value: str) -> bool | None:
    if not value:
        return None
    if value[0] in _KSTRTOBOOL_TRUE:
        return True
    if value[0] in _KSTRTOBOOL_FALSE:
        return False
    if value[0] in "oO" and len(value) > 1:
        if value[1] in "nN":
            return True
        if value[1] in "fF":
            return False
    return None


def _options(value: str | None) -> list[str]:
    return [] if value is None else [opt for opt in value.split(",") if opt]


def _join(previous: str | None, value: str) -> str:
    return value if previous is None else f"{previous},{value}"


@dataclass(frozen=True)
class IommuCmdline:
    """IOMMU options found on the kernel command line.

    ``intel_iommu``, ``amd_iommu`` and ``iommu`` hold the raw option lists, comma-joined in
    command-line order when an option is repeated (the kernel applies every occurrence).
    ``passthrough`` is the last explicit default-domain request: ``iommu.passthrough=<bool>``,
    ``iommu=pt`` (True) or ``iommu=nopt`` (False), whichever came last.  ``strict`` is
    ``iommu.strict=<bool>``.  ``None`` means "not on the command line".
    """

    intel_iommu: str | None = None
    amd_iommu: str | None = None
    iommu: str | None = None
    passthrough: bool | None = None
    strict: bool | None = None

    def mode(self, vendor: str | None = None) -> str:
        """``"off"``, ``"passthrough"``, ``"translated"`` or ``"default"``.

        ``vendor`` (``"intel"`` or ``"amd"``, from /proc/cpuinfo ``vendor_id`` GenuineIntel /
        AuthenticAMD or HygonGenuine) says which vendor option the kernel actually acts on: an
        ``intel_iommu=`` option means nothing to the AMD driver and vice versa.  Without it both
        are taken at face value, except that ``amd_iommu=off`` does not override an explicit
        ``intel_iommu=on``.

        Precedence, strongest first:

        1. ``off``: ``iommu=off`` (x86 no_iommu stops both drivers), ``intel_iommu=off`` (the
           last of on/off wins) or ``amd_iommu=off``.  With the IOMMU driver not initialised
           nothing is translated, whatever else the command line asks for, so this beats any
           passthrough request.
        2. ``passthrough``: ``iommu=pt`` or ``iommu.passthrough=1`` (the last of those and
           ``iommu=nopt``/``iommu.passthrough=0`` wins): identity default domains.
        3. ``translated``: an explicit ``iommu=nopt``/``iommu.passthrough=0``, or
           ``intel_iommu=on`` without any passthrough request (distro kernels then build DMA or
           DMA-FQ default domains).
        4. ``default``: nothing decisive was said; the kernel's build-time defaults
           (CONFIG_INTEL_IOMMU_DEFAULT_ON, CONFIG_IOMMU_DEFAULT_PASSTHROUGH/DMA_*) decide, and
           ``/sys/kernel/iommu_groups/<N>/type`` is the truth.
        """
        if vendor not in (None, "intel", "amd"):
            raise ParseError(f"expected IOMMU vendor 'intel', 'amd' or None, got {vendor!r}")
        intel_on: bool | None = None
        if vendor != "amd":
            for opt in _options(self.intel_iommu):
                if opt == "on":
                    intel_on = True
                elif opt == "off":
                    intel_on = False
        amd_off = vendor != "intel" and "off" in _options(self.amd_iommu)
        iommu_opts = _options(self.iommu)
        if "off" in iommu_opts or intel_on is False or (amd_off and intel_on is not True):
            return "off"
        passthrough = self.passthrough
        if passthrough is None:
            for opt in iommu_opts:
                if opt == "pt":
                    passthrough = True
                elif opt == "nopt":
                    passthrough = False
        if passthrough is True:
            return "passthrough"
        if passthrough is False or intel_on is True:
            return "translated"
        return "default"


def parse_iommu_cmdline(tokens: list[str]) -> IommuCmdline:
    """IOMMU settings from :func:`parse_cmdline` tokens (those after ``--`` are ignored)."""
    if not isinstance(tokens, (list, tuple)):
        raise ParseError(f"expected a list of command-line tokens, got {type(tokens).__name__}")
    intel: str | None = None
    amd: str | None = None
    iommu: str | None = None
    passthrough: bool | None = None
    strict: bool | None = None
    for token in tokens:
        token = _require_str(token, "a command-line token")
        if token == "--":
            break
        name, eq, value = token.partition("=")
        if not eq:
            continue
        # kernel/params.c parameq()/parameqn() (used for early_param and __setup alike) treat
        # '-' and '_' in a parameter name as the same character.
        name = name.replace("-", "_")
        if name == "intel_iommu":
            intel = _join(intel, value)
        elif name == "amd_iommu":
            amd = _join(amd, value)
        elif name == "iommu":
            iommu = _join(iommu, value)
            for opt in _options(value):
                if opt == "pt":
                    passthrough = True
                elif opt == "nopt":
                    passthrough = False
        elif name == "iommu.passthrough":
            parsed = _kstrtobool(value)
            if parsed is not None:
                passthrough = parsed
        elif name == "iommu.strict":
            parsed = _kstrtobool(value)
            if parsed is not None:
                strict = parsed
    return IommuCmdline(
        intel_iommu=intel, amd_iommu=amd, iommu=iommu, passthrough=passthrough, strict=strict
    )


# --------------------------------------------------------------------------------------------
# BARs: /sys/bus/pci/devices/<bdf>/resource
# --------------------------------------------------------------------------------------------
#
# drivers/pci/pci-sysfs.c resource_show() prints one line per struct resource of the device,
# "0x%016llx 0x%016llx 0x%016llx\n" = start, end (inclusive), flags; the line number is the
# resource index (0-5 standard BARs, 6 expansion ROM, 7-12 SR-IOV VF BARs, bridge windows after
# that).  Unused resources print as all zeros.  Flag bits from include/linux/ioport.h.
IORESOURCE_TYPE_BITS = 0x00001F00
IORESOURCE_IO = 0x00000100
IORESOURCE_MEM = 0x00000200
IORESOURCE_PREFETCH = 0x00002000
IORESOURCE_MEM_64 = 0x00100000
_U64_MAX = (1 << 64) - 1
_RESOURCE_FIELD_RE = re.compile(r"0[xX][0-9a-fA-F]{1,16}")


@dataclass(frozen=True)
class Bar:
    """One line of a PCI ``resource`` file."""

    index: int
    start: int
    end: int
    flags: int

    @property
    def size(self) -> int:
        """Bytes decoded (``end - start + 1``); 0 for an unused (all-zero) or inverted entry."""
        if (self.start == 0 and self.end == 0) or self.end < self.start:
            return 0
        return self.end - self.start + 1

    @property
    def is_io(self) -> bool:
        # The resource type is a field, not independent bits: IORESOURCE_REG is 0x300.
        return (self.flags & IORESOURCE_TYPE_BITS) == IORESOURCE_IO

    @property
    def is_mem(self) -> bool:
        return (self.flags & IORESOURCE_TYPE_BITS) == IORESOURCE_MEM

    @property
    def prefetchable(self) -> bool:
        return bool(self.flags & IORESOURCE_PREFETCH)

    @property
    def is_64bit(self) -> bool:
        return bool(self.flags & IORESOURCE_MEM_64)


def parse_resource(text: str) -> list[Bar]:
    """Every line of a PCI ``resource`` file, index = line number (empty BARs included)."""
    s = _require_str(text, "PCI resource lines")
    lines = s.split("\n")
    if lines and lines[-1].strip() == "":
        lines.pop()  # the final "\n"
    bars: list[Bar] = []
    for index, line in enumerate(lines):
        fields = line.split()
        if len(fields) != 3 or not all(_RESOURCE_FIELD_RE.fullmatch(f) for f in fields):
            raise ParseError(
                f"expected a PCI resource line '0x<start> 0x<end> 0x<flags>' (line {index}), "
                f"got {_quote(line)}"
            )
        start, end, flags = (int(f, 16) for f in fields)
        bars.append(Bar(index=index, start=start, end=end, flags=flags))
    return bars


# --------------------------------------------------------------------------------------------
# Resource limits: /proc/<pid>/limits and profile values
# --------------------------------------------------------------------------------------------
#
# fs/proc/base.c proc_pid_limits(): header "%-25s %-20s %-20s %-10s\n" (Limit, Soft Limit,
# Hard Limit, Units), then per limit "%-25s " name, soft and hard each as "%-20lu " or
# "unlimited" (RLIM_INFINITY), then "%-10s\n" unit or just "\n" when the limit has no unit
# (Max nice priority, Max realtime priority).  Names contain spaces ("Max locked memory").
UNLIMITED = -1


@dataclass(frozen=True)
class ProcLimit:
    """Soft and hard value of one resource limit; ``-1`` means unlimited (RLIM_INFINITY)."""

    soft: int
    hard: int


def _limit_field(token: str) -> int | None:
    if token == "unlimited":
        return UNLIMITED
    if token.isascii() and token.isdigit():
        return _parse_uint(token, "a resource limit")
    return None


def parse_proc_limits(text: str) -> dict[str, ProcLimit]:
    """``{"Max locked memory": ProcLimit(soft, hard), ...}`` from ``/proc/<pid>/limits``."""
    _require_str(text, "/proc/<pid>/limits text")
    limits: dict[str, ProcLimit] = {}
    for line in text.splitlines():
        words = line.split()
        if not words or words[:3] == ["Limit", "Soft", "Limit"]:
            continue  # blank line or the header
        # Parse from the right: [unit] hard soft, everything before is the name.
        if len(words) >= 4 and _limit_field(words[-1]) is None:
            words = words[:-1]
        hard = _limit_field(words[-1]) if len(words) >= 3 else None
        soft = _limit_field(words[-2]) if len(words) >= 3 else None
        if hard is None or soft is None:
            raise ParseError(
                "expected a limits line '<name> <soft|unlimited> <hard|unlimited> [unit]', "
                f"got {_quote(line)}"
            )
        name = " ".join(words[:-2])
        if name in limits:
            raise ParseError(f"expected each limit once, got {name!r} twice")
        limits[name] = ProcLimit(soft=soft, hard=hard)
    return limits


def parse_limit_value(v: str | int) -> int:
    """Profile limit value: ``"unlimited"``/``"infinity"``/``-1`` -> ``-1``, else an int >= 0."""
    if isinstance(v, bool):
        raise ParseError(f"expected a limit as an integer or 'unlimited', got {v!r}")
    if isinstance(v, int):
        if v < UNLIMITED:
            raise ParseError(f"expected a limit >= 0 or -1 (unlimited), got {v}")
        return v
    if not isinstance(v, str):
        raise ParseError(f"expected a limit as an integer or 'unlimited', got {type(v).__name__}")
    s = v.strip()
    if s.lower() in ("unlimited", "infinity"):
        return UNLIMITED
    if s == "-1":
        return UNLIMITED
    if s.isascii() and s.isdigit():
        return _parse_uint(s, "a limit")
    raise ParseError(f"expected a limit as an integer, 'unlimited' or 'infinity', got {_quote(v)}")


# --------------------------------------------------------------------------------------------
# "Key: value" files: /proc/driver/nvidia/gpus/<bdf>/information, /proc/driver/nvidia/params
# --------------------------------------------------------------------------------------------
#
# The NVIDIA driver prints "Model: \t\t NVIDIA H100 80GB HBM3", "Bus Location: \t 0000:18:00.0":
# the value may itself contain the separator, so each line is split at its FIRST separator.


def parse_kv_lines(text: str, sep: str = ":") -> dict[str, str]:
    """``{key: value}`` with both sides stripped; blank lines ignored; keys must be unique."""
    _require_str(text, "key/value lines")
    if not isinstance(sep, str) or not sep:
        raise ParseError(f"expected a non-empty key/value separator, got {sep!r}")
    result: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, found, value = line.partition(sep)
        key = key.strip()
        if not found or not key:
            raise ParseError(f"expected a '<key>{sep} <value>' line, got {_quote(line)}")
        if key in result:
            raise ParseError(f"expected each key once, got {key!r} twice")
        result[key] = value.strip()
    return result


# --------------------------------------------------------------------------------------------
# /proc/driver/nvidia/version
# --------------------------------------------------------------------------------------------
#
# First line, open kernel modules:
#   "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build  (...)"
# proprietary modules:
#   "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.135  <date>"
# (aarch64 builds say "for aarch64" / "aarch64").  The version is the first dotted number after
# "Kernel Module"; "Open Kernel Module" marks the open GPU kernel modules (needed for DMA-BUF).
_NVRM_PREFIX = "NVRM version:"
_NV_VERSION_RE = re.compile(r"(?<!\S)([0-9]{1,4}(?:\.[0-9]{1,4}){1,3})(?!\S)")


def parse_nvidia_version(text: str) -> tuple[str, bool] | None:
    """``(version, is_open_module)`` from /proc/driver/nvidia/version; ``None`` if no NVRM line."""
    _require_str(text, "/proc/driver/nvidia/version text")
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith(_NVRM_PREFIX):
            continue
        marker = stripped.find("Kernel Module")
        if marker < 0:
            raise ParseError(
                f"expected 'NVRM version: NVIDIA UNIX ... Kernel Module <version> ...', "
                f"got {_quote(line)}"
            )
        m = _NV_VERSION_RE.search(stripped, marker + len("Kernel Module"))
        if m is None:
            raise ParseError(
                "expected a driver version like 565.57.01 after 'Kernel Module', "
                f"got {_quote(line)}"
            )
        is_open = "Open Kernel Module" in stripped[: marker + len("Kernel Module")]
        return m.group(1), is_open
    return None
