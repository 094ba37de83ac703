"""Tool-output parsers (preflight.inventory.rdma_text): every real sample in tests/data/real/
{ibstat,ibv_devinfo,ibstatus} replayed against its truth, the classes rdma-core's printing code
allows, and hypothesis properties (only ParseError may escape)."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight.errors import ParseError
from preflight.inventory.rdma_sysfs_text import parse_rate
from preflight.inventory.rdma_text import (
    ToolGid,
    parse_ibstat,
    parse_ibstatus,
    parse_ibv_devinfo,
)

REAL = Path(__file__).parent / "data" / "real"


def _samples(topic: str) -> list[Path]:
    return sorted((REAL / topic).glob("*.txt"))


def _body(text: str) -> str:
    """The sample without its provenance and comment lines."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def _truth(topic: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((REAL / topic / "truth.json").read_text())
    return loaded


# ibstat_CX6-MT4123-HDR200-with-Down-Disabled-port_nccl-tests-issue128.txt (first two CAs).
IBSTAT_CX6 = """\
CA 'mlx5_0'
        CA type: MT4123
        Number of ports: 1
        Firmware version: 20.33.1048
        Hardware version: 0
        Node GUID: 0x1070fd03008eb580
        System image GUID: 0x1070fd03008eb580
        Port 1:
                State: Active
                Physical state: LinkUp
                Rate: 200
                Base lid: 569
                LMC: 0
                SM lid: 393
                Capability mask: 0xa651e848
                Port GUID: 0x1070fd03008eb580
                Link layer: InfiniBand
CA 'mlx5_1'
        CA type: MT4123
        Number of ports: 1
        Firmware version: 20.33.1048
        Hardware version: 0
        Node GUID: 0x1070fd03008ea7a4
        System image GUID: 0x1070fd03008ea7a4
        Port 1:
                State: Down
                Physical state: Disabled
                Rate: 10
                Base lid: 65535
                LMC: 0
                SM lid: 0
                Capability mask: 0xa651e848
                Port GUID: 0x1070fd03008ea7a4
                Link layer: InfiniBand
"""
# ibstat_partial-with-ibpanic-error_gpud-pr752.txt (verbatim, values elided by its author).
IBSTAT_PANIC = """\
...

CA 'mlx5_7'
\tCA type: ...
\tNumber of ports: 1
\tFirmware version: ...
\tHardware version: 0
\tNode GUID: ...
\tSystem image GUID: ...
\tPort 1:
\t\tState: Active
\t\tPhysical state: LinkUp
\t\tRate: 200
\t\tBase lid: 13305
\t\tLMC: 0
\t\tSM lid: 1
\t\tCapability mask: ...
\t\tPort GUID: ...
\t\tLink layer: InfiniBand
ibpanic: [1323906] main: stat of IB device 'mlx5_8' failed: No such file or directory
"""


def test_ibstat_prints_a_bare_rate() -> None:
    out = parse_ibstat(IBSTAT_CX6)
    assert [ca.name for ca in out.cas] == ["mlx5_0", "mlx5_1"]
    up, down = out.cas[0].ports[1], out.cas[1].ports[1]
    assert (up.state, up.phys_state, up.rate_gbps, up.lid, up.sm_lid) == (4, 5, 200.0, 569, 393)
    assert (down.state, down.phys_state, down.rate_gbps, down.lid) == (1, 3, 10.0, 65535)
    assert out.cas[0].ca_type == "MT4123" and out.cas[0].fw_ver == "20.33.1048"
    assert out.error is None
    # The bare number is not a sysfs rate.
    with pytest.raises(ParseError):
        parse_rate(str(up.rate_gbps))


def test_ibstat_ibpanic_ends_the_listing() -> None:
    out = parse_ibstat(IBSTAT_PANIC)
    assert [ca.name for ca in out.cas] == ["mlx5_7"]
    assert out.cas[0].ca_type is None and out.cas[0].ports[1].lid == 13305
    assert out.error is not None and "mlx5_8" in out.error


# ibv_devinfo-vv_2xCX6-MT4123-HDR_active-and-disabled_ucx-issue.txt (port sections, verbatim).
DEVINFO = """\
hca_id:\tmlx5_0
\ttransport:\t\t\tInfiniBand (0)
\tfw_ver:\t\t\t\t20.37.1700
\tvendor_part_id:\t\t\t4123
\tphys_port_cnt:\t\t\t1
\t\tport:\t1
\t\t\tstate:\t\t\tPORT_ACTIVE (4)
\t\t\tmax_mtu:\t\t4096 (5)
\t\t\tsm_lid:\t\t\t1
\t\t\tport_lid:\t\t4
\t\t\tlink_layer:\t\tInfiniBand
\t\t\tactive_width:\t\t4X (2)
\t\t\tactive_speed:\t\t50.0 Gbps (64)
\t\t\tphys_state:\t\tLINK_UP (5)
\t\t\tGID[  0]:\t\tfe80:0000:0000:0000:88e9:a4ff:ff25:a462

hca_id:\tmlx5_1
\tfw_ver:\t\t\t\t20.37.1700
\t\tport:\t1
\t\t\tstate:\t\t\tPORT_DOWN (1)
\t\t\tsm_lid:\t\t\t0
\t\t\tport_lid:\t\t65535
\t\t\tactive_width:\t\t4X (2)
\t\t\tactive_speed:\t\tinvalid speed (0)
\t\t\tphys_state:\t\tDISABLED (3)
"""


def test_ibv_devinfo_states_and_speeds() -> None:
    out = parse_ibv_devinfo(DEVINFO)
    a, d = out.cas[0].ports[1], out.cas[1].ports[1]
    assert (a.state, a.phys_state, a.active_width, a.active_speed) == (4, 5, 4, "50.0 Gbps (64)")
    assert a.gids == [ToolGid(0, "fe80:0000:0000:0000:88e9:a4ff:ff25:a462", None)]
    assert (d.state, d.phys_state, d.lid, d.active_speed) == (1, 3, 65535, "invalid speed (0)")
    assert out.cas[0].ca_type == "4123"


def test_ibv_devinfo_starting_mid_output() -> None:
    # Comment B of the DeepEP#38 capture starts inside a port section.
    text = "                        max_mtu:                4096 (5)\n" + DEVINFO
    assert [ca.name for ca in parse_ibv_devinfo(text).cas] == ["mlx5_0", "mlx5_1"]


# -- replay of the real samples ------------------------------------------------------------------


def test_every_sample_has_provenance_and_truth() -> None:
    for topic in ("ibstat", "ibv_devinfo", "ibstatus"):
        names = {p.name for p in _samples(topic)}
        assert names == set(_truth(topic)), topic
        assert len(names) >= 5, topic
        for path in _samples(topic):
            assert path.read_text().startswith("# SOURCE: "), path.name


@pytest.mark.parametrize("path", _samples("ibstat"), ids=lambda p: p.stem)
def test_ibstat_replay(path: Path) -> None:
    text = path.read_text()
    out = parse_ibstat(text)
    got = {
        "cas": [
            {
                "name": c.name,
                "ca_type": c.ca_type,
                "fw_ver": c.fw_ver,
                "ports": {
                    str(n): [
                        p.state,
                        p.phys_state,
                        p.rate_gbps,
                        p.fdr10,
                        p.lid,
                        p.sm_lid,
                        p.link_layer,
                    ]
                    for n, p in c.ports.items()
                },
            }
            for c in out.cas
        ],
        "error": out.error,
        "warnings": out.warnings,
    }
    assert got == _truth("ibstat")[path.name]
    # Cross-checks against the raw text, independent of the parser's structure.
    text = _body(text)
    assert len(out.cas) == len(re.findall(r"^CA '", text, re.M))
    ports = [p for c in out.cas for p in c.ports.values()]
    assert sum(p.state == 4 for p in ports) == text.count("State: Active")
    assert sum(p.fdr10 for p in ports) == text.count("(FDR10)")
    assert len(out.warnings) == len(re.findall(r"^ibwarn: ", text, re.M))


@pytest.mark.parametrize("path", _samples("ibv_devinfo"), ids=lambda p: p.stem)
def test_ibv_devinfo_replay(path: Path) -> None:
    text = path.read_text()
    out = parse_ibv_devinfo(text)
    got = {
        "cas": [
            {
                "name": c.name,
                "ca_type": c.ca_type,
                "fw_ver": c.fw_ver,
                "ports": {
                    str(n): {
                        "state": p.state,
                        "phys_state": p.phys_state,
                        "lid": p.lid,
                        "sm_lid": p.sm_lid,
                        "link_layer": p.link_layer,
                        "width": p.active_width,
                        "speed": p.active_speed,
                        "gids": [[g.index, g.gid, g.type] for g in p.gids],
                    }
                    for n, p in c.ports.items()
                },
            }
            for c in out.cas
        ]
    }
    assert got == _truth("ibv_devinfo")[path.name]
    text = _body(text)
    gids = [g for c in out.cas for p in c.ports.values() for g in p.gids]
    assert len(gids) == len(re.findall(r"GID\[", text))
    assert sum(g.type == "RoCE v2" for g in gids) == text.count(", RoCE v2")


@pytest.mark.parametrize("path", _samples("ibstatus"), ids=lambda p: p.stem)
def test_ibstatus_replay(path: Path) -> None:
    text = path.read_text()
    ports = parse_ibstatus(text)
    got = [
        [
            p.name,
            p.gid,
            p.lid,
            p.sm_lid,
            str(p.state) if p.state else None,
            str(p.phys_state) if p.phys_state else None,
            str(p.rate) if p.rate else None,
            p.link_layer,
        ]
        for p in ports
    ]
    assert got == _truth("ibstatus")[path.name]
    text = _body(text)
    assert len(ports) == text.count("Infiniband device '")


# -- the classes rdma-core's printing code allows ------------------------------------------------


def test_ibwarn_before_the_listing_is_a_warning() -> None:
    # libibumad's IBWARN line (real, from openmpi-users) before a real listing: ibstat goes on.
    warn = (REAL / "ibstat" / "openmpi-users_ibwarn-ibpanic.txt").read_text().splitlines()[3]
    assert warn.startswith("ibwarn: ")
    out = parse_ibstat(warn + "\n" + IBSTAT_CX6)
    assert [ca.name for ca in out.cas] == ["mlx5_0", "mlx5_1"]
    assert out.warnings == [warn] and out.error is None


def test_ibwarn_then_ibpanic() -> None:
    out = parse_ibstat((REAL / "ibstat" / "openmpi-users_ibwarn-ibpanic.txt").read_text())
    assert out.cas == [] and len(out.warnings) == 1
    assert out.error is not None and "can't init UMAD library" in out.error


@pytest.mark.parametrize(
    ("line", "rate", "fdr10"),
    [("Rate: 10 (FDR10)", 10.0, True), ("Rate: 2.5", 2.5, False), ("Rate: 400", 400.0, False)],
)
def test_ibstat_rates(line: str, rate: float, fdr10: bool) -> None:
    port = parse_ibstat(f"CA 'x'\n\tPort 1:\n\t\t{line}\n").cas[0].ports[1]
    assert (port.rate_gbps, port.fdr10) == (rate, fdr10)


def test_ibstat_unknown_states_and_node_types() -> None:
    text = (
        "iWARP RNIC 'i40iw0'\n\tiWARP RNIC type: \n\tFirmware version: \n\tPort 1:\n"
        "\t\tState: ???\n\t\tPhysical state: ???\n\t\tRate: 10\n"
        "\t\tEffective speed: 12.5\n"
    )
    ca = parse_ibstat(text).cas[0]
    assert (ca.name, ca.node_type, ca.ca_type, ca.fw_ver) == ("i40iw0", "iWARP RNIC", None, None)
    port = ca.ports[1]
    assert (port.state, port.phys_state, port.effective_gbps) == (None, None, 12.5)
    # ibstat's PhyTest spelling and "No state change" (code 0).
    text = "CA 'x'\n Port 1:\n  Physical state: PhyTest\n"
    assert parse_ibstat(text).cas[0].ports[1].phys_state == 7
    text = "CA 'x'\n Port 1:\n  Physical state: No state change\n"
    assert parse_ibstat(text).cas[0].ports[1].phys_state == 0


def test_ibstat_single_port_form() -> None:
    # `ibstat mlx5_0 1` prints "CA: 'mlx5_0'" and an unindented port block.
    out = parse_ibstat("CA: 'mlx5_0'\nPort 1:\nState: Active\nRate: 400\nBase lid: 7\n")
    port = out.cas[0].ports[1]
    assert (out.cas[0].name, port.state, port.rate_gbps, port.lid) == ("mlx5_0", 4, 400.0, 7)


@pytest.mark.parametrize(
    "line",
    ["State: Sleeping", "Rate: 400 Gb/sec (4X NDR)", "Base lid: 0x1a", "Physical state: Up"],
)
def test_ibstat_rejects(line: str) -> None:
    with pytest.raises(ParseError):
        parse_ibstat(f"CA 'x'\n\tPort 1:\n\t\t{line}\n")


@pytest.mark.parametrize(
    ("value", "gid", "kind"),
    [
        ("fe80::ac0:ebff:fef0:28b2, RoCE v2", "fe80:0000:0000:0000:0ac0:ebff:fef0:28b2", "RoCE v2"),
        ("::ffff:10.0.0.1, RoCE v2", "0000:0000:0000:0000:0000:ffff:0a00:0001", "RoCE v2"),
        (
            "fe80:0000:0000:0000:0ac0:ebff:fef0:28b2, RoCE v1",
            "fe80:0000:0000:0000:0ac0:ebff:fef0:28b2",
            "RoCE v1",
        ),
        (
            "fe80:0000:0000:0000:0ac0:ebff:fef0:28b2",
            "fe80:0000:0000:0000:0ac0:ebff:fef0:28b2",
            None,
        ),
    ],
)
def test_devinfo_gid_forms(value: str, gid: str, kind: str | None) -> None:
    text = f"hca_id:\tx\n\t\tport:\t1\n\t\t\tGID[  3]:\t\t{value}\n"
    assert parse_ibv_devinfo(text).cas[0].ports[1].gids == [ToolGid(3, gid, kind)]


@pytest.mark.parametrize(
    ("line", "attr", "value"),
    [
        ("state:\t\tinvalid state (7)", "state", 7),
        ("phys_state:\t\tPORT_CONFIGURATION TRAINNING (4)", "phys_state", 4),
        ("phys_state:\t\tPHY TEST (7)", "phys_state", 7),
        ("active_width:\t\t2X (16)", "active_width", 2),
        ("active_width:\t\t12X (8)", "active_width", 12),
        ("active_width:\t\tinvalid widthX (3)", "active_width", None),
        ("effective_speed:\t400.0 Gbps", "effective_gbps", 400.0),
    ],
)
def test_devinfo_coded_fields(line: str, attr: str, value: object) -> None:
    port = parse_ibv_devinfo(f"hca_id:\tx\n\t\tport:\t1\n\t\t\t{line}\n").cas[0].ports[1]
    assert getattr(port, attr) == value


@pytest.mark.parametrize(
    "line",
    [
        "GID[  1]:\t\tfe80::zz, RoCE v2",
        "GID[  1]:\t\tfe80::1, RoCE v3",
        "GID[  1]:\t\t10.0.0.1",
        "state:\t\tPORT_ACTIVE",
        "active_width:\t\t4X",
        "port_lid:\t\t0x1",
    ],
)
def test_devinfo_rejects(line: str) -> None:
    with pytest.raises(ParseError):
        parse_ibv_devinfo(f"hca_id:\tx\n\t\tport:\t1\n\t\t\t{line}\n")


def test_ibstatus_defaults_of_the_script() -> None:
    text = (
        "Infiniband device 'qib0' port 1 status:\n\tdefault gid:\t unknown\n"
        "\tbase lid:\t 0x1\n\tstate:\t\t 4: ACTIVE\n\tlink_layer:\t IB\n"
    )
    (port,) = parse_ibstatus(text)
    assert (port.name, port.gid, port.lid, port.link_layer) == ("qib0/1", None, 1, "InfiniBand")
    with pytest.raises(ParseError):
        parse_ibstatus("Fatal error:  No devices\n")
    with pytest.raises(ParseError):
        parse_ibstatus("Infiniband device 'x' port 1 status:\n\trate:\t 400 (4X NDR)\n")


# -- properties ------------------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        "CA 'mlx5_0'",
        "Port 1:",
        "State: ",
        "Rate: ",
        "(FDR10)",
        "ibwarn: ",
        "ibpanic: ",
        "???",
        "hca_id:\t",
        "port:\t",
        "GID[  1]:\t",
        ", RoCE v2",
        "::ffff:",
        "fe80::",
        "state:\t",
        "active_width:\t",
        "X (",
        ")",
        "Infiniband device 'x' port 1 status:",
        "rate:\t",
        "4: ACTIVE",
        "0x",
        "\n",
        "\t",
        " ",
        ":",
        "1",
        "400",
        "\x00",
        "\u00e9",
    ]
)


@pytest.mark.parametrize("parser", [parse_ibstat, parse_ibv_devinfo, parse_ibstatus])
@given(text=st.text(max_size=300))
def test_only_parse_error_escapes(parser, text: str) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(ParseError):
        parser(text)


@pytest.mark.parametrize("parser", [parse_ibstat, parse_ibv_devinfo, parse_ibstatus])
@given(parts=st.lists(_FRAGMENTS, max_size=40))
def test_only_parse_error_escapes_on_tool_like_text(parser, parts: list[str]) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(ParseError):
        parser("".join(parts))


def test_non_text_is_a_parse_error() -> None:
    for parser in (parse_ibstat, parse_ibv_devinfo, parse_ibstatus):
        with pytest.raises(ParseError):
            parser(b"CA 'x'")  # type: ignore[arg-type]
