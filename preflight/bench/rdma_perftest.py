"""perftest (ib_write_bw, ib_read_bw, ib_send_bw, ib_write_lat, ib_send_lat): its command lines
and a parser for what it prints.

The formats are perftest's own (src/perftest_parameters.h of linux-rdma/perftest):

* bandwidth header ``#bytes #iterations BW peak[Gb/sec] BW average[Gb/sec] MsgRate[Mpps]``,
  ``[MiB/sec]`` without --report_gbits (``[MB/sec]`` before perftest 4.5; both are 2^20 bytes);
  rows ``%-7lu %-10lu %-7.2lf %-7.2lf %-7.6lf`` (6 decimals everywhere for small messages of
  ``-a`` sweeps), an optional CPU_Util column after them;
* latency header ``#bytes #iterations t_min t_max t_typical t_avg t_stdev 99% percentile
  99.9% percentile`` (µs), every value ``%-7.2f``; with ``-D`` only ``t_avg`` and
  ``tps average``.

``%-7.2f`` pads but never truncates, so a value wider than its field runs into the next one: a
soft-RoCE capture shows ``2465.901216.65`` for a stdev of 2465.90 and a p99 of 1216.65. Fused
values are split by their known number of decimals.

Errors perftest prints (``Couldn't connect to HOST:PORT``, ``Unable to find the Infiniband/RoCE
device``, ``Couldn't get context for the device``, ``Completion with error`` …) and warnings
(``WARNING: BW peak won't be measured in this run.``, ``Conflicting CPU frequency values
detected: A != B. CPU Frequency is not max.``) are kept as lines with a kind. The parser never
raises on what perftest may print; only a result row that starts like one and then has no
numbers raises :class:`ParseError` (one line).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any

from preflight.errors import ConfigError, ParseError

MAX_TEXT = 4 * 1024 * 1024  # a sweep of -a prints 23 rows; 4 MiB is far beyond any real output
MAX_ROWS = 4096

# The mark a stand-in (tests/standins) prints first on stderr: its output replays a capture and
# is never a measurement.
STANDIN_MARK = "preflight-standin:"

MIB_GBPS = 2**20 * 8 / 1e9  # one MiB/s in Gb/s ("Factor=10^9/(2^20*8)=119.2" in perftest's help)

_BW_HEADER = re.compile(r"#bytes\s+(?:#sl\s+)?#iterations\s+BW peak\[([A-Za-z/]{2,8})\]")
_LAT_HEADER = re.compile(r"#bytes\s+#iterations\s+t_min\[usec\]")
_LAT_DUR_HEADER = re.compile(r"#bytes\s+#iterations\s+t_avg\[usec\]\s+tps average")
_TITLE = re.compile(r"^\s{2,}([A-Za-z_ ]{2,60} (?:BW|Latency) Test)\s*$")
_FIELD = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.*/ -]{1,30}?)\s*:\s*(\S[^\t]*?)\s*$")
_FIELD_START = re.compile(r"^\s*[A-Za-z][A-Za-z0-9_.*/ -]{1,30}:\s")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_CPU_FREQ = re.compile(r"Conflicting CPU frequency values detected: ([0-9.]+) != ([0-9.]+)")
# What perftest prints while it sets up a --use_cuda buffer (src/cuda_memory.c).
_CUDA_LINES = ("CUDA", "cuMemAlloc", "GPU buffer", "Picking device", "device name = [")
_CONNECT = re.compile(r"Couldn't connect to (\S{1,300})")

# Error lines, by what they mean. The first match names the kind.
ERROR_KINDS: tuple[tuple[str, str], ...] = (
    ("Couldn't connect to", "connect"),
    ("Unable to init the socket connection", "connect"),
    ("Unable to open file descriptor for socket connection", "connect"),
    ("Unable to find the Infiniband/RoCE device", "no_device"),
    ("Did not detect devices", "no_device"),
    ("No IB devices found", "no_device"),
    ("not found", "no_device"),  # "IB device mlx5_9 not found"
    ("Couldn't get context for the device", "device_context"),
    ("Completion with error", "completion"),
    ("Couldn't read remote address", "exchange"),
    ("Failed to exchange data", "exchange"),
    ("Failed to", "failed"),
    ("Couldn't", "failed"),
    ("Unable to", "failed"),
    ("failed", "failed"),
)


@dataclass(frozen=True)
class Message:
    """A warning or error line perftest printed, with what kind of thing it says."""

    kind: str
    text: str


@dataclass(frozen=True)
class BwRow:
    """One bandwidth result row, in Gb/s whatever unit perftest printed."""

    bytes: int
    iterations: int
    peak_gbps: float
    average_gbps: float
    msg_rate_mpps: float


@dataclass(frozen=True)
class LatRow:
    """One latency result row in µs; the percentiles are None in duration (-D) mode."""

    bytes: int
    iterations: int
    t_avg_us: float
    t_min_us: float | None = None
    t_max_us: float | None = None
    t_typical_us: float | None = None
    t_stdev_us: float | None = None
    p99_us: float | None = None
    p999_us: float | None = None
    tps: float | None = None


@dataclass
class PerftestOutput:
    """What one perftest process printed (stdout and stderr together)."""

    title: str | None = None  # "RDMA_Write BW Test", "Send Latency Test"
    device: str | None = None
    link_type: str | None = None  # "IB" or "Ethernet"
    gid_index: int | None = None
    qps: int | None = None
    mtu: int | None = None
    rdma_cm: bool | None = None
    unit: str | None = None  # as printed: Gb/sec, MiB/sec, MB/sec
    bw_rows: list[BwRow] = field(default_factory=list)
    lat_rows: list[LatRow] = field(default_factory=list)
    warnings: list[Message] = field(default_factory=list)
    errors: list[Message] = field(default_factory=list)
    cuda: list[str] = field(default_factory=list)  # the CUDA set-up lines of --use_cuda
    waited_for_client: bool = False  # the server banner
    standin: bool = False

    @property
    def bidirectional(self) -> bool:
        """A -b run: perftest reports the sum of both directions."""
        return self.title is not None and "Bidirectional" in self.title

    @property
    def latency(self) -> bool:
        return bool(self.lat_rows) or (self.title is not None and "Latency" in self.title)

    @property
    def peak_measured(self) -> bool:
        """False when perftest said BW peak is not measured (-D runs print 0.00 for it)."""
        return not any(w.kind == "no_peak" for w in self.warnings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "device": self.device,
            "link_type": self.link_type,
            "gid_index": self.gid_index,
            "qps": self.qps,
            "bidirectional": self.bidirectional,
            "unit": self.unit,
            "bw_rows": [vars(r) for r in self.bw_rows],
            "lat_rows": [vars(r) for r in self.lat_rows],
            "warnings": [vars(m) for m in self.warnings],
            "errors": [vars(m) for m in self.errors],
            "standin": self.standin,
        }


def _split_fused(token: str, decimals: tuple[int, ...]) -> list[str]:
    """``2465.901216.65`` → ``2465.90``, ``1216.65``: values printed without a gap."""
    if token.count(".") <= 1:
        return [token]
    for d in decimals:
        parts = re.findall(rf"[0-9]+\.[0-9]{{{d}}}", token)
        if "".join(parts) == token:
            return parts
    return [token]


def _numbers(line: str, what: str, decimals: tuple[int, ...]) -> list[float]:
    values: list[float] = []
    for token in line.split():
        for part in _split_fused(token, decimals):
            if not _NUMBER.fullmatch(part):
                raise ParseError(f"expected a perftest {what} row of numbers, got {line[:80]!r}")
            values.append(float(part))
    return values


def _to_gbps(value: float, unit: str) -> float:
    return value if unit == "Gb/sec" else value * MIB_GBPS


def _classify_error(line: str) -> str | None:
    for needle, kind in ERROR_KINDS:
        if needle in line:
            return kind
    return None


def _note_field(out: PerftestOutput, line: str) -> None:
    # Two fields on one line: " Dual-port       : OFF\t\tDevice         : mlx5_0".
    for chunk in re.split(r"\t+|\s{3,}(?=[A-Z][A-Za-z ]{2,20}:)", line):
        m = _FIELD.match(chunk)
        if m is None:
            continue
        key, value = m.group(1).strip(), m.group(2).strip()
        if key == "Device":
            out.device = value[:64]
        elif key == "Link type":
            out.link_type = value[:16]
        elif key == "GID index" and value.isdigit():
            out.gid_index = int(value[:4])
        elif key == "Number of qps" and value.isdigit():
            out.qps = int(value[:6])
        elif key == "Mtu":
            digits = value.split("[", 1)[0]
            out.mtu = int(digits[:6]) if digits.isdigit() else None
        elif key == "rdma_cm QPs":
            out.rdma_cm = value == "ON"


def parse_perftest(text: str) -> PerftestOutput:
    """Read one perftest run's output. Unknown lines are skipped; see the module doc."""
    if not isinstance(text, str):
        raise ParseError(f"expected perftest output as text, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise ParseError(f"perftest output of {len(text)} characters is beyond {MAX_TEXT}")
    out = PerftestOutput()
    table: str | None = None  # "bw", "lat", "lat_dur" while inside a result table
    for raw in text.splitlines():
        line = raw.replace("\r", "").rstrip()
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(STANDIN_MARK):
            out.standin = True
            continue
        if stripped.startswith("---"):
            table = None
            continue
        if table is not None and stripped[0].isdigit():
            if len(out.bw_rows) + len(out.lat_rows) >= MAX_ROWS:
                raise ParseError(f"perftest output has more than {MAX_ROWS} result rows")
            _add_row(out, table, stripped)
            continue
        table = None
        m = _BW_HEADER.search(line)
        if m:
            out.unit = m.group(1)
            if out.unit not in ("Gb/sec", "MiB/sec", "MB/sec"):
                raise ParseError(f"unknown perftest bandwidth unit {out.unit!r}")
            table = "bw"
            continue
        if _LAT_HEADER.search(line):
            table = "lat"
            continue
        if _LAT_DUR_HEADER.search(line):
            table = "lat_dur"
            continue
        m = _TITLE.match(line)
        if m and out.title is None:
            out.title = m.group(1).strip()
            continue
        if "Waiting for client" in line:
            out.waited_for_client = True
            continue
        m = _CPU_FREQ.search(line)
        if m:
            out.warnings.append(Message("cpu_frequency", stripped[:200]))
            continue
        if "BW peak won't be measured" in line:
            out.warnings.append(Message("no_peak", stripped[:200]))
            continue
        if "warning" in stripped[:40].lower() or "might be too big" in line:
            if len(out.warnings) < 64:
                out.warnings.append(Message("warning", stripped[:200]))
            continue
        if any(k in line for k in _CUDA_LINES) and len(out.cuda) < 64:
            out.cuda.append(stripped[:200])
            continue
        kind = _classify_error(line)
        if kind is not None:
            if len(out.errors) < 64:
                out.errors.append(Message(kind, stripped[:200]))
            continue
        if stripped.startswith(("local address", "remote address", "GID:")):
            continue
        if _FIELD_START.match(line):
            _note_field(out, line)
    return out


def _add_row(out: PerftestOutput, table: str, line: str) -> None:
    if table == "bw":
        v = _numbers(line, "bandwidth", (2, 6))
        if len(v) < 5 or out.unit is None:
            raise ParseError(f"expected 5 values in a perftest bandwidth row, got {line[:80]!r}")
        out.bw_rows.append(
            BwRow(int(v[0]), int(v[1]), _to_gbps(v[2], out.unit), _to_gbps(v[3], out.unit), v[4])
        )
    elif table == "lat":
        v = _numbers(line, "latency", (2,))
        if len(v) < 9:
            raise ParseError(f"expected 9 values in a perftest latency row, got {line[:80]!r}")
        out.lat_rows.append(
            LatRow(
                int(v[0]),
                int(v[1]),
                t_avg_us=v[5],
                t_min_us=v[2],
                t_max_us=v[3],
                t_typical_us=v[4],
                t_stdev_us=v[6],
                p99_us=v[7],
                p999_us=v[8],
            )
        )
    else:
        v = _numbers(line, "latency", (2,))
        if len(v) < 4:
            raise ParseError(f"expected 4 values in a perftest latency row, got {line[:80]!r}")
        out.lat_rows.append(LatRow(int(v[0]), int(v[1]), t_avg_us=v[2], tps=v[3]))


def connect_target(out: PerftestOutput) -> str | None:
    """The HOST:PORT of a ``Couldn't connect to`` line, if any."""
    for e in out.errors:
        m = _CONNECT.search(e.text)
        if m:
            return m.group(1)
    return None


# --------------------------------------------------------------------------------------------
# Command lines
# --------------------------------------------------------------------------------------------
# Test name → perftest binary. The *_lat tests have no --use_cuda in the perftest releases of
# Debian/Ubuntu (SuperBench drops it for them); their buffers are in host memory.
BINARIES = {
    "write_bw": "ib_write_bw",
    "read_bw": "ib_read_bw",
    "send_bw": "ib_send_bw",
    "write_lat": "ib_write_lat",
    "send_lat": "ib_send_lat",
}
PACKAGE = "perftest"  # the Debian/Ubuntu (and RHEL) package that provides every binary above


class PerftestMissing(ConfigError):
    """A perftest binary is not on PATH (exit 3: nothing was run)."""

    def __init__(self, binary: str) -> None:
        super().__init__(
            f"{binary} is not on PATH: install the package '{PACKAGE}' "
            f"(apt-get install {PACKAGE} / dnf install {PACKAGE})"
        )


def is_bandwidth(test: str) -> bool:
    return test.endswith("_bw")


def find_binary(test: str, path: str | None) -> str:
    """The absolute path of the test's perftest binary on PATH, or PerftestMissing."""
    name = BINARIES[test]
    found = shutil.which(name, path=path)
    if found is None:
        raise PerftestMissing(name)
    return os.path.abspath(found)


@dataclass(frozen=True)
class Endpoint:
    """One side of a test: the HCA port, its RoCE v2 GID index, and the GPU buffer (if any)."""

    hca: str
    ib_port: int = 1
    gid_index: int | None = None  # RoCE only: the RoCE v2 entry of the port's GID table
    cuda_bus_id: str | None = None  # GPUDirect: the GPU's PCI address
    dmabuf: bool = False  # GPUDirect through DMA-BUF instead of nvidia-peermem


@dataclass(frozen=True)
class PerftestSpec:
    """What one perftest run measures."""

    test: str
    size: int
    duration_s: int | None = 5  # -D; None → iterations
    iterations: int = 5000  # -n, when there is no duration (latency tests always)
    qps: int = 1
    bidirectional: bool = False


def command(
    binary: str, spec: PerftestSpec, end: Endpoint, tcp_port: int, server: str | None
) -> list[str]:
    """The argv of one side: the server when server is None, else the client connecting to it.

    GPUDirect uses --use_cuda_bus_id: a CUDA ordinal depends on CUDA_DEVICE_ORDER, the PCI address
    does not.
    """
    argv = [binary, "-d", end.hca, "-i", str(end.ib_port), "-p", str(tcp_port)]
    if end.gid_index is not None:
        argv += ["-x", str(end.gid_index)]
    argv += ["-s", str(spec.size)]
    if is_bandwidth(spec.test):
        argv += ["--report_gbits", "-q", str(spec.qps)]
        if spec.bidirectional:
            argv.append("-b")
        if spec.duration_s is not None:
            argv += ["-D", str(spec.duration_s)]
        else:
            argv += ["-n", str(spec.iterations)]
        if end.cuda_bus_id is not None:
            argv.append(f"--use_cuda_bus_id={end.cuda_bus_id}")
            if end.dmabuf:
                argv.append("--use_cuda_dmabuf")
    else:
        argv += ["-n", str(spec.iterations)]
    if server is not None:
        argv.append(server)
    return argv
