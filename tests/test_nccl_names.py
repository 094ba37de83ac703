"""NCCL variable names and values from NCCL's source (preflight/inventory/nccl_names.json, made
by tools/nccl_env_names.py), judged on real job scripts (tests/data/real/nccl-env) and real
topology files (tests/data/real/nccl-topo)."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight.checks import nccl as N
from preflight.errors import ParseError
from preflight.host import Host
from preflight.inventory import Inventory
from preflight.inventory.nccl_env import (
    GRAMMARS,
    KNOWN_NAMES,
    NAMES,
    NCCL_SOURCE,
    Setting,
    TopoFile,
    parse_algo_list,
    parse_topo_xml,
    strtoll,
)
from preflight.model import Status

ROOT = Path(__file__).parent.parent
REAL = Path(__file__).parent / "data" / "real"


def _tool() -> Any:
    spec = importlib.util.spec_from_file_location(
        "nccl_env_names", ROOT / "tools/nccl_env_names.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["nccl_env_names"] = module
    spec.loader.exec_module(module)
    return module


# -- the data file ---------------------------------------------------------------------------------


def test_data_records_its_source() -> None:
    assert NCCL_SOURCE["repository"] == "https://github.com/NVIDIA/nccl"
    assert NCCL_SOURCE["version"] == "2.30.7"
    assert len(NCCL_SOURCE["commit"]) == 40
    assert len(KNOWN_NAMES) > 200


@pytest.mark.parametrize(
    ("name", "status", "detail"),
    [
        ("NCCL_MIN_NRINGS", "deprecated", "NCCL_MIN_NCHANNELS"),  # still read: not a typo
        ("NCCL_MAX_NRINGS", "deprecated", "NCCL_MAX_NCHANNELS"),
        ("NCCL_CHECK_POINTERS", "deprecated", "NCCL_CHECK_MODE"),
        ("NCCL_IB_CUDA_SUPPORT", "removed", "2.3.7"),  # no longer read
        ("NCCL_LL_THRESHOLD", "removed", "2.4.8"),
        ("NCCL_SOCKET_FAMILY", "current", None),
        ("NCCL_IB_HCA", "current", None),
        ("NCCL_NET_GDR_LEVEL", "current", None),
    ],
)
def test_statuses(name: str, status: str, detail: str | None) -> None:
    info = NAMES[name]
    assert info.status == status
    if status == "deprecated":
        assert info.use == detail
    if status == "removed":
        assert info.last == detail


def test_grammars_are_nccls_tables() -> None:
    assert GRAMMARS["protocols"] == ["LL", "LL128", "Simple"]
    assert "Ring" in GRAMMARS["algorithms"] and "NVLSTree" in GRAMMARS["algorithms"]
    assert GRAMMARS["levels"][0] == "LOC" and GRAMMARS["levels"][-1] == "SYS"
    assert GRAMMARS["socket_families"] == ["AF_INET", "AF_INET6"]


def test_tool_extracts_what_nccl_reads() -> None:
    tool = _tool()
    src = {
        "src/a.cc": 'NCCL_PARAM(IbDisable, "IB_DISABLE", 0);\n'
        'NCCL_PARAM(MinNrings, "MIN_NRINGS", -2);\n'
        'const char* e = ncclGetEnv("NCCL_SOCKET_FAMILY");\n'
        'NCCLCHECK(ncclGetLevel(&l, "NCCL_P2P_DISABLE", "NCCL_P2P_LEVEL"));\n'
        'WARN("NCCL_NOT_A_READ was set");\n'
        "DEFINE_NCCL_PARAM(ncclParamDebugLevel, ncclDebugLogLevel, NCCL_DEBUG, NCCL_LOG_NONE,\n",
    }
    found = tool.names_in(src)
    assert found["NCCL_IB_DISABLE"] == {"kind": "integer", "default": "0"}
    assert found["NCCL_MIN_NRINGS"]["default"] == "-2"
    assert found["NCCL_SOCKET_FAMILY"]["kind"] == "string"
    assert {"NCCL_P2P_DISABLE", "NCCL_P2P_LEVEL", "NCCL_DEBUG"} <= set(found)
    assert "NCCL_NOT_A_READ" not in found
    assert tool.table('const char* x[3] = {"A", "B",\n "C"};', "x") == ["A", "B", "C"]


# -- value grammars --------------------------------------------------------------------------------

_LIBC = ctypes.CDLL(None)
_LIBC.strtoll.restype = ctypes.c_longlong
_LIBC.strtoll.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]


@given(st.text(alphabet=" \t+-0123456789xXabcdefABCDEFghz", max_size=24))
def test_strtoll_is_libcs(text: str) -> None:
    """The real C library is the oracle for what NCCL_PARAM reads."""
    value, rest = strtoll(text)
    if value is None:  # ERANGE: NCCL keeps the default
        return
    assert value == _LIBC.strtoll(text.encode(), None, 0)
    if rest == text:
        assert value == 0


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Ring", True),
        ("ring,tree", True),
        ("^NVLS", True),
        ("allreduce:tree;broadcast:ring", True),
        ("LL128", False),  # a protocol is no algorithm
        ("Auto", False),
        ("tree;ring", False),  # entries after the first need a prefix
        ("Allgatherv:ring", False),
    ],
)
def test_algo_lists(text: str, ok: bool) -> None:
    if ok:
        parse_algo_list(text, GRAMMARS["algorithms"])
    else:
        with pytest.raises(ParseError):
            parse_algo_list(text, GRAMMARS["algorithms"])


@pytest.mark.parametrize(
    ("name", "value", "status", "words"),
    [
        ("NCCL_SOCKET_FAMILY", "ipv4", Status.WARN, "ignored"),
        ("NCCL_SOCKET_FAMILY", "AF_INET6", None, ""),
        ("NCCL_NET_GDR_LEVEL", "pix", Status.WARN, "case-sensitive"),
        ("NCCL_NET_GDR_LEVEL", "PHB", None, ""),
        ("NCCL_NET_GDR_LEVEL", "3", None, ""),
        ("NCCL_P2P_LEVEL", "NVL", None, ""),
        ("NCCL_IB_DISABLE", "true", Status.WARN, "reads it as 0"),
        ("NCCL_IB_TIMEOUT", "22s", Status.WARN, "reads it as 22"),
        ("NCCL_IB_TIMEOUT", "0x16", None, ""),
        ("NCCL_BUFFSIZE", "99999999999999999999", Status.WARN, "out of range"),
        ("NCCL_PROTO", "simple", None, ""),
        ("NCCL_PROTO", "LL,LL256", Status.FAIL, "LL256"),
        ("NCCL_ALGO", "Auto", Status.FAIL, "ncclInvalidUsage"),
    ],
)
def test_values(name: str, value: str, status: Status | None, words: str) -> None:
    info = NAMES[name]
    finding = N.judge_value(name, value, info.kind, info.default)
    assert (finding.status if finding else None) is status
    if finding is not None:
        assert words in finding.message


# -- real job scripts ------------------------------------------------------------------------------


def _settings(path: Path) -> list[Setting]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            out.append(Setting(name, value, "environment"))
    return out


ENV_SAMPLES = sorted((REAL / "nccl-env").glob("*.env"))


def test_env_samples_have_provenance_and_truth() -> None:
    truth = json.loads((REAL / "nccl-env" / "truth.json").read_text())
    assert {p.name for p in ENV_SAMPLES} == set(truth) - {"_what"}
    assert len(ENV_SAMPLES) >= 5
    for path in ENV_SAMPLES:
        assert path.read_text().startswith("# SOURCE: ")
        assert [s.name for s in _settings(path)] == list(truth[path.name])


@pytest.mark.parametrize("path", ENV_SAMPLES, ids=lambda p: p.stem)
def test_env_replay(path: Path) -> None:
    truth = json.loads((REAL / "nccl-env" / "truth.json").read_text())[path.name]
    for setting in _settings(path):
        finding = N.judge_setting(setting, False, False, N.EnvParams())
        want = truth[setting.name]
        if want is None:
            assert finding is None, (setting, finding)
        else:
            assert finding is not None, setting
            assert finding.status.value == want[0], (setting, finding)
            assert want[1] in finding.message, (setting, finding)


# -- NCCL_TOPO_FILE --------------------------------------------------------------------------------

TOPO_SAMPLES = sorted((REAL / "nccl-topo").glob("*.xml"))


@pytest.mark.parametrize("path", TOPO_SAMPLES, ids=lambda p: p.stem)
def test_topo_replay(path: Path) -> None:
    truth = json.loads((REAL / "nccl-topo" / "truth.json").read_text())[path.name]
    assert path.read_text().startswith("<!-- SOURCE: ")
    topo = parse_topo_xml(path.read_text())
    assert list(topo.gpus) == truth["gpus"]
    assert [[b, list(n)] for b, n in topo.nics] == truth["nics"]


def test_topo_file_against_the_node() -> None:
    topo = parse_topo_xml((REAL / "nccl-topo" / "gb10-spark_nccl-dump.xml").read_text())
    nics = {"0000:01:00.0": ["rocep1s0f0"], "0002:01:00.0": ["roceP2p1s0f0"]}
    (ok,) = N.judge_topo_file("/t.xml", topo, ["000f:01:00.0"], nics)
    assert ok.status is Status.PASS
    # The same file on a DGX A100: every device it names is elsewhere.
    stale = N.judge_topo_file("/t.xml", topo, ["0000:07:00.0"], {"0000:0c:00.0": ["mlx5_0"]})
    assert [f.status for f in stale].count(Status.FAIL) == 3
    renamed = N.judge_topo_file(
        "/t.xml", TopoFile((), (("0000:01:00.0", ("mlx5_0",)),)), [], {"0000:01:00.0": ["x"]}
    )
    assert renamed[0].status is Status.WARN


def test_topo_file_read_through_the_inventory(tmp_path: Path) -> None:
    """A stale file (the DGX A100 dump) on a node with none of its devices: nccl.env FAILs."""
    src = REAL / "nccl-topo" / "nccl-issue1505_dgx-a100-fragment.xml"
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/topo.xml").write_text(src.read_text())
    host = Host(
        root=str(tmp_path), privileged=True, env={"NCCL_TOPO_FILE": "/etc/topo.xml"}, hostname="t"
    )
    v = N.env.func(Inventory(host), N.EnvParams())
    assert v.status is Status.FAIL
    assert "0000:07:00.0" in v.summary or any("0000:07:00.0" in f.message for f in v.findings)


@pytest.mark.parametrize(
    "text", ["", "hello", '<!DOCTYPE x [<!ENTITY a "b">]><system/>', '<pci busid="x"><gpu/></pci>']
)
def test_topo_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        parse_topo_xml(text)


def test_topo_parse_is_linear_on_hostile_input() -> None:
    start = time.monotonic()
    with contextlib.suppress(ParseError):
        parse_topo_xml(("<pci" + " " * 4000) * 250 + '<pci busid="0000:01:00.0"><gpu/>')
    assert time.monotonic() - start < 5


_TOPO_BITS = st.sampled_from(
    [
        '<system version="1">',
        "<cpu>",
        '<pci busid="0000:01:00.0">',
        "<gpu dev='0'/>",
        "<nic>",
        '<net name="mlx5_0"/>',
        "</nic>",
        "</pci>",
        "</cpu>",
        "</system>",
        "<",
        ">",
        '"',
        "/",
        " ",
        "<!--",
        "-->",
        "<pci busid=",
        "\x00",
    ]
)


@given(st.lists(_TOPO_BITS, max_size=40))
def test_topo_only_parse_error_escapes(parts: list[str]) -> None:
    with contextlib.suppress(ParseError):
        parse_topo_xml("".join(parts))


@given(st.text(max_size=200))
def test_algo_list_only_parse_error_escapes(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_algo_list(text, GRAMMARS["protocols"])
