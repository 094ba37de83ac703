"""Parsers of preflight.inventory.rdma and .net: the strings of real captures, edge cases, and
hypothesis properties (only ParseError may escape)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight.errors import ParseError
from preflight.inventory.net import parse_decimal, parse_operstate, parse_speed
from preflight.inventory.rdma_sysfs_text import (
    LANE_GBPS,
    LinkRate,
    PortState,
    counter_saturated,
    gid_ipv4,
    parse_counter,
    parse_fw_version,
    parse_gid,
    parse_gid_type,
    parse_guid,
    parse_kernel_release,
    parse_lid,
    parse_link_layer,
    parse_phys_state,
    parse_port_state,
    parse_rate,
)
from preflight.inventory.sortkeys import natural_key
from tests.paths import CAPTURES
from tests.rdma_sysroot import ibstatus_ports

# ibstatus_BF3-RoCE-NDR400-and-HDR200_8xH20_DeepEP-issue17.txt (ibstatus prints the sysfs files).
IBSTATUS_BF3 = """\
Infiniband device 'mlx5_0' port 1 status:
        default gid:     fe80:0000:0000:0000:0216:3eff:fe43:ac58
        base lid:        0x0
        sm lid:          0x0
        state:           4: ACTIVE
        phys state:      5: LinkUp
        rate:            200 Gb/sec (4X HDR)
        link_layer:      Ethernet

Infiniband device 'mlx5_1' port 1 status:
        default gid:     fe80:0000:0000:0000:5e25:73ff:febc:a460
        base lid:        0x0
        sm lid:          0x0
        state:           4: ACTIVE
        phys state:      5: LinkUp
        rate:            400 Gb/sec (4X NDR)
        link_layer:      Ethernet
"""
# ibstatus_IB-HDR200_nccl-issue1412.txt
IBSTATUS_HDR = """\
Infiniband device 'mlx5_0' port 1 status:
        default gid:     fe80:0000:0000:0000:88e9:a4ff:ff4c:2bdc
        base lid:        0x22
        sm lid:          0x47
        state:           4: ACTIVE
        phys state:      5: LinkUp
        rate:            200 Gb/sec (4X HDR)
        link_layer:      InfiniBand
"""
# ibstatus_RoCE-100G-EDR-string_nccl-issue1866.txt: 100 GbE RoCE shows the IB pair "4X EDR".
IBSTATUS_ROCE100 = """\
Infiniband device 'mlx5_0' port 1 status:
        default gid:     fe80:0000:0000:0000:8ae9:a4ff:fe9c:7f1a
        base lid:        0x0
        sm lid:          0x0
        state:           4: ACTIVE
        phys state:      5: LinkUp
        rate:            100 Gb/sec (4X EDR)
        link_layer:      Ethernet
"""


# -- sysfs strings of the captures ----------------------------------------------------------


@pytest.mark.parametrize("text", [IBSTATUS_BF3, IBSTATUS_HDR, IBSTATUS_ROCE100])
def test_ibstatus_strings_are_sysfs_strings(text: str) -> None:
    for name, fields in ibstatus_ports(text).items():
        assert parse_port_state(fields["state"]) == PortState(4, "ACTIVE"), name
        assert parse_phys_state(fields["phys_state"]) == PortState(5, "LinkUp")
        assert parse_rate(fields["rate"]).width == 4
        assert parse_link_layer(fields["link_layer"]) in ("InfiniBand", "Ethernet")
        assert parse_lid(fields["base_lid"]) >= 0
        assert parse_gid(fields["default_gid"]).startswith("fe80:")


def test_rate_strings_of_the_captures() -> None:
    assert parse_rate("400 Gb/sec (4X NDR)") == LinkRate(400.0, 4, "NDR")
    assert parse_rate("200 Gb/sec (4X HDR)\n") == LinkRate(200.0, 4, "HDR")
    assert parse_rate("100 Gb/sec (4X EDR)") == LinkRate(100.0, 4, "EDR")
    assert str(parse_rate("400 Gb/sec (4X NDR)")) == "400 Gb/sec (4X NDR)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10 Gb/sec (4X SDR)", LinkRate(10.0, 4, "SDR")),  # a down port on current kernels
        ("10 Gb/sec (4X)", LinkRate(10.0, 4, "")),  # the same on kernels before " SDR" was added
        ("2.5 Gb/sec (1X SDR)", LinkRate(2.5, 1, "SDR")),  # ".5" when rate % 10
        ("200 Gb/sec (2X NDR)", LinkRate(200.0, 2, "NDR")),  # NDR200 split port
        ("800 Gb/sec (4X XDR)", LinkRate(800.0, 4, "XDR")),
        ("56 Gb/sec (4X FDR)", LinkRate(56.0, 4, "FDR")),
        ("40 Gb/sec (4X FDR10)", LinkRate(40.0, 4, "FDR10")),
        ("600 Gb/sec (12X HDR)", LinkRate(600.0, 12, "HDR")),
    ],
)
def test_rate_edge_cases(text: str, expected: LinkRate) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "400",  # ibstat's "Rate: 400" is a tool's rendering, never a sysfs rate
        "Rate: 400",
        "400 Gb/sec",
        "400 Gb/s (4X NDR)",
        "400 Gb/sec (3X NDR)",  # no 3X link width
        "400 Gb/sec (4X ndr)",
        "",
        "Unknown",
    ],
)
def test_rate_rejects_other_shapes(text: str) -> None:
    with pytest.raises(ParseError, match="Gb/sec"):
        parse_rate(text)


@pytest.mark.parametrize(
    ("text", "code", "name"),
    [
        ("4: ACTIVE", 4, "ACTIVE"),
        ("1: DOWN\n", 1, "DOWN"),
        ("2: INIT", 2, "INIT"),
        ("5: ACTIVE_DEFER", 5, "ACTIVE_DEFER"),
        ("0: NOP", 0, "NOP"),
    ],
)
def test_port_states(text: str, code: int, name: str) -> None:
    assert parse_port_state(text) == PortState(code, name)


@pytest.mark.parametrize(
    ("text", "code", "name"),
    [("5: LinkUp", 5, "LinkUp"), ("3: Disabled", 3, "Disabled"), ("7: Phy Test", 7, "Phy Test")],
)
def test_phys_states(text: str, code: int, name: str) -> None:
    assert parse_phys_state(text) == PortState(code, name)


@pytest.mark.parametrize("text", ["ACTIVE", "Active", "4", "PORT_ACTIVE (4)", ": ACTIVE", ""])
def test_port_state_rejects_tool_renderings(text: str) -> None:
    with pytest.raises(ParseError, match="4: ACTIVE"):
        parse_port_state(text)


# ib-sysfs-counters_CX7-MT4129-fw28.41_saturated-counters_gpud-pr943.txt (verbatim values).
SATURATED = {
    "port_xmit_wait": "4294967295",
    "link_downed": "255",
    "port_xmit_discards": "65535",
    "excessive_buffer_overrun_errors": "15",
    "port_rcv_switch_relay_errors": "2",
    "port_xmit_data": "205143497464492",
    "symbol_error": "0",
}


def test_counters_of_the_saturated_capture() -> None:
    values = {name: parse_counter(text + "\n") for name, text in SATURATED.items()}
    assert values["port_xmit_data"] == 205143497464492
    assert counter_saturated("link_downed", values["link_downed"])
    assert counter_saturated("port_xmit_discards", values["port_xmit_discards"])
    assert counter_saturated(
        "excessive_buffer_overrun_errors", values["excessive_buffer_overrun_errors"]
    )
    assert counter_saturated("counters/port_xmit_wait", values["port_xmit_wait"])
    assert not counter_saturated(
        "port_rcv_switch_relay_errors", values["port_rcv_switch_relay_errors"]
    )
    assert not counter_saturated("symbol_error", 0)
    assert not counter_saturated("port_xmit_data", values["port_xmit_data"])  # 64-bit: no cap
    assert not counter_saturated("link_downed", 254)
    assert not counter_saturated("link_downed", None)


def test_counter_no_pma() -> None:
    # ib-sysfs-counters_i40iw-iWARP_NA-no-PMA_node_exporter-issue966.txt
    assert parse_counter("N/A (no PMA)\n") is None


@pytest.mark.parametrize("text", ["-1", "0x10", "1e3", "N/A", "", "18446744073709551616"])
def test_counter_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        parse_counter(text)


def test_lids_guids_gids_fw() -> None:
    assert parse_lid("0x11f") == 287
    assert parse_lid("0xffff") == 0xFFFF
    assert parse_lid("0x0\n") == 0
    with pytest.raises(ParseError):
        parse_lid("287")  # ibstat's "Base lid: 287" is decimal; sysfs prints 0x%x
    assert parse_guid("58a2:e103:001b:2576") == 0x58A2E103001B2576
    with pytest.raises(ParseError):
        parse_guid("0x58a2e103001b2576")  # ibstat's rendering
    gid = "0000:0000:0000:0000:0000:ffff:0a0a:000b"
    assert parse_gid(gid) == gid
    assert gid_ipv4(gid) == "10.10.0.11"
    assert gid_ipv4("fe80:0000:0000:0000:0216:3eff:fe43:ac58") is None
    with pytest.raises(ParseError):
        parse_gid("fe80::1")
    assert parse_gid_type("RoCE v2\n") == "RoCE v2"
    assert parse_gid_type("IB/RoCE v1") == "IB/RoCE v1"
    with pytest.raises(ParseError):
        parse_gid_type("RoCEv2")
    assert parse_fw_version("28.41.1000") == (28, 41, 1000)
    assert parse_fw_version("28.39.2048") < parse_fw_version("28.41.1000")
    with pytest.raises(ParseError):
        parse_fw_version("28.41.1000 (MT_0000000838)")
    assert parse_kernel_release("5.15.0-1067-nvidia") == (5, 15)
    assert parse_kernel_release("6.8.0-60-generic") == (6, 8)
    with pytest.raises(ParseError):
        parse_kernel_release("linux")


def test_link_layer() -> None:
    assert parse_link_layer("InfiniBand\n") == "InfiniBand"
    with pytest.raises(ParseError):
        parse_link_layer("IB")


def test_natural_order_is_not_ibstat_order() -> None:
    # ibstat lists CAs lexically (mlx5_10 before mlx5_2, CAP_TOPO); natural order does not.
    names = ["mlx5_0", "mlx5_1", "mlx5_10", "mlx5_11", "mlx5_2", "mlx5_9"]
    assert sorted(names, key=natural_key) == [
        "mlx5_0",
        "mlx5_1",
        "mlx5_2",
        "mlx5_9",
        "mlx5_10",
        "mlx5_11",
    ]


def test_net_parsers() -> None:
    assert parse_operstate("up\n") == "up"
    assert parse_operstate("lowerlayerdown") == "lowerlayerdown"
    with pytest.raises(ParseError):
        parse_operstate("UP")
    assert parse_decimal("4092\n") == 4092
    assert parse_speed("400000") == 400000
    assert parse_speed("-1") is None  # SPEED_UNKNOWN while the link is down
    with pytest.raises(ParseError):
        parse_speed("-2")
    with pytest.raises(ParseError):
        parse_decimal("0x20")


def _capture_files(pattern: str) -> list[Path]:
    return sorted(CAPTURES.glob(pattern))


@pytest.mark.parametrize("path", _capture_files("ibstatus_*.txt"), ids=lambda p: p.name[:40])
def test_every_ibstatus_capture_holds_sysfs_strings(path: Path) -> None:
    ports = ibstatus_ports(path.read_text())
    assert ports
    for fields in ports.values():
        parse_port_state(fields["state"])
        parse_phys_state(fields["phys_state"])
        if "rate" in fields:  # cut off by the index in one capture
            parse_rate(fields["rate"])


def test_counter_captures_parse() -> None:
    na = (
        CAPTURES / "ib-sysfs-counters_i40iw-iWARP_NA-no-PMA_node_exporter-issue966.txt"
    ).read_text()
    values = [
        line.rsplit(":", 1)[1]
        for line in na.splitlines()
        if "/counters/" in line and not line.startswith("#")
    ]
    assert values and all(parse_counter(v) is None for v in values)
    sat = CAPTURES / "ib-sysfs-counters_CX7-MT4129-fw28.41_saturated-counters_gpud-pr943.txt"
    lines = sat.read_text().splitlines()
    parsed = {
        lines[i].strip("= ./"): parse_counter(lines[i + 1])
        for i in range(len(lines) - 1)
        if lines[i].startswith("=== ./")
    }
    assert parsed["link_downed"] == 255 and counter_saturated("link_downed", 255)
    assert len(parsed) == 21


# -- properties --------------------------------------------------------------------------------

PARSERS = [
    parse_rate,
    parse_port_state,
    parse_phys_state,
    parse_counter,
    parse_lid,
    parse_guid,
    parse_gid,
    parse_gid_type,
    parse_fw_version,
    parse_link_layer,
    parse_kernel_release,
    parse_operstate,
    parse_decimal,
    parse_speed,
]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@given(text=st.text(max_size=200))
def test_only_parse_error_escapes(parser, text: str) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(ParseError):
        parser(text)


@given(
    st.sampled_from(sorted(LANE_GBPS)),
    st.sampled_from([1, 2, 4, 8, 12]),
    st.sampled_from(["\n", "", " \n"]),
    st.booleans(),
)
def test_rate_round_trip(speed: str, width: int, tail: str, old_sdr: bool) -> None:
    """Format exactly as rate_show() does and parse it back."""
    deci = {
        "SDR": 25,
        "DDR": 50,
        "QDR": 100,
        "FDR10": 100,
        "FDR": 140,
        "EDR": 250,
        "HDR": 500,
        "NDR": 1000,
        "XDR": 2000,
    }[speed] * width
    name = "" if (speed == "SDR" and old_sdr) else f" {speed}"
    text = f"{deci // 10}{'.5' if deci % 10 else ''} Gb/sec ({width}X{name}){tail}"
    rate = parse_rate(text)
    assert rate.gbps == deci / 10
    assert rate.width == width
    assert rate.speed == name.strip()
    assert rate.gbps == pytest.approx(LANE_GBPS[speed] * width)


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_counter_round_trip(value: int) -> None:
    assert parse_counter(f"{value}\n") == value


@given(st.binary(max_size=16))
def test_gid_ipv4_never_raises(raw: bytes) -> None:
    gid = ":".join(raw.hex().ljust(32, "0")[i : i + 4] for i in range(0, 32, 4))
    address = gid_ipv4(gid)
    assert address is None or address.count(".") == 3
