"""NCCL settings: the NCCL_IB_HCA / NCCL_SOCKET_IFNAME grammar (a table of cases and a property
test against a transliteration of NCCL's C), config-file precedence, and the nccl.* checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflight.checks.nccl import EnvParams, judge_ib_hca, judge_setting, judge_socket_ifname
from preflight.errors import ParseError
from preflight.inventory.nccl_env import (
    DeviceList,
    NcclEnv,
    Setting,
    closest_name,
    parse_conf,
    parse_device_list,
)
from preflight.inventory.rdma import IbPort
from preflight.inventory.rdma_sysfs_text import PortState
from preflight.model import Status
from tests.rdma_sysroot import Device, Netdev, Port, build, host
from tests.test_rdma_checks import eight, run

DEVICES = [f"mlx5_{i}" for i in range(12)] + ["mlx5_bond_0"]


def selected(value: str, devices: list[str] = DEVICES, port: int = 1) -> list[str]:
    parsed = parse_device_list(value)
    return [d for d in devices if parsed.selects(d, port)]


ALL = DEVICES
TABLE = [
    # (NCCL_IB_HCA, devices selected (port 1)), from env.rst's rules and examples
    ("", ALL),  # empty: no list, every device
    ("mlx5_0", ["mlx5_0"]),
    ("mlx5_1", ["mlx5_1", "mlx5_10", "mlx5_11"]),  # "mlx5_1 ... also mlx5_10 to mlx5_19"
    ("=mlx5_1", ["mlx5_1"]),
    ("^mlx5_1", [d for d in ALL if d not in ("mlx5_1", "mlx5_10", "mlx5_11")]),
    ("^=mlx5_1", [d for d in ALL if d != "mlx5_1"]),
    ("^=mlx5_1,mlx5_4", [d for d in ALL if d not in ("mlx5_1", "mlx5_4")]),  # env.rst example
    ("=mlx5_0:1,mlx5_1:1", ["mlx5_0", "mlx5_1"]),  # env.rst example
    ("mlx5_0:2", []),  # port 2 does not exist
    ("mlx5_0::0:0", ["mlx5_0"]),  # empty port field: any port, positions kept
    ("mlx5", ALL),
    ("mlx5_bond", ["mlx5_bond_0"]),
    ("^", []),  # NCCL: an empty exclude list excludes everything
    ("=", ALL),
    ("mlx5_0,,mlx5_2,", ["mlx5_0", "mlx5_2"]),  # empty entries are skipped
    (":1,mlx5_3", ["mlx5_3"]),  # an entry without a name is dropped
    (" mlx5_0", []),  # NCCL keeps whitespace: matches nothing
    ("=mlx5_9", ["mlx5_9"]),
    ("=mlx5_99", []),
    ("=^mlx5_0", []),  # '^' after '=' is part of the name
]


@pytest.mark.parametrize(("value", "expected"), TABLE)
def test_grammar_table(value: str, expected: list[str]) -> None:
    assert selected(value) == expected


@pytest.mark.parametrize(
    "value", ["mlx5_0:x", "mlx5_0:1:2:3:4", "mlx5_0:1:rail", "=mlx5_0:-1", "mlx5_0:99999"]
)
def test_grammar_rejects(value: str) -> None:
    with pytest.raises(ParseError, match=r"mlx5_0"):
        parse_device_list(value)


def test_grammar_fields_and_limits() -> None:
    parsed = parse_device_list("^=mlx5_0:1:2:3")
    assert parsed.exclude and parsed.exact
    assert (parsed.entries[0].port, parsed.entries[0].rail, parsed.entries[0].plane) == (1, 2, 3)
    many = parse_device_list(",".join(f"mlx5_{i}" for i in range(40)))
    assert len(many.entries) == 32 and many.ignored == tuple(f"mlx5_{i}" for i in range(32, 40))
    socket = parse_device_list(",".join(f"eth{i}" for i in range(20)), max_entries=16)
    assert len(socket.entries) == 16


def nccl_reference(value: str, name: str, port: int, max_list: int = 32) -> bool:
    """NCCL's net_ib/init.cc + misc/utils.cc, transliterated: '^', '=', strtok_r(',')
    (empty entries skipped), strsep(':') fields, atoi or -1, matchIf/matchPort, XOR."""
    s = value
    search_not = s[:1] == "^"
    if search_not:
        s = s[1:]
    search_exact = s[:1] == "="
    if search_exact:
        s = s[1:]
    user: list[tuple[str, int]] = []
    for entry in [e for e in s.split(",") if e]:
        if len(user) >= max_list:
            break
        fields = entry.split(":")
        if fields[0] == "":
            continue
        p = int(fields[1]) if len(fields) > 1 and fields[1] != "" else -1
        user.append((fields[0], p))
    if not user:
        matched = True
    else:
        matched = any(
            (name == prefix if search_exact else name.startswith(prefix))
            and (port == -1 or p == -1 or p == port)
            for prefix, p in user
        )
    return matched != search_not


@given(
    st.text(alphabet="mlx5_0123:,^= ", max_size=30),
    st.sampled_from([*DEVICES, "mlx5_", "mlx", ""]),
    st.integers(min_value=1, max_value=3),
)
def test_grammar_is_nccls(value: str, name: str, port: int) -> None:
    try:
        parsed = parse_device_list(value)
    except ParseError:
        return  # a non-numeric or over-long field, or more than 4 fields: NCCL would atoi() it
    assert parsed.selects(name, port) == nccl_reference(value, name, port)


@given(st.text(max_size=100), st.integers(min_value=1, max_value=64))
def test_only_parse_error_escapes(value: str, limit: int) -> None:
    try:
        parsed = parse_device_list(value, limit)
    except ParseError:
        return
    assert isinstance(parsed, DeviceList) and len(parsed.entries) <= limit


@given(st.text(max_size=200))
def test_conf_parser_never_raises(text: str) -> None:
    for s in parse_conf(text, "/etc/nccl.conf"):
        assert "=" not in s.name and s.source.startswith("/etc/nccl.conf:")


# -- reading the settings ----------------------------------------------------------------------


def write(root: Path, path: str, text: str) -> None:
    real = root / path.lstrip("/")
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_text(text)


def test_precedence_environment_then_conf_file_then_etc(tmp_path: Path) -> None:
    write(
        tmp_path, "/etc/nccl.conf", "# site\nNCCL_DEBUG=WARN\nNCCL_IB_HCA==mlx5_0\nNCCL_ALGO=Ring\n"
    )
    write(tmp_path, "/opt/job.conf", "NCCL_IB_HCA=mlx5\nNCCL_SOCKET_IFNAME==ib0\n")
    env = {"NCCL_CONF_FILE": "/opt/job.conf", "NCCL_DEBUG": "INFO", "HOME": "/root"}
    write(tmp_path, "/root/.nccl.conf", "NCCL_PROTO=LL\n")  # not read: NCCL_CONF_FILE wins
    nccl = NcclEnv.read(host(tmp_path, env))
    assert nccl.get("NCCL_DEBUG") == "INFO"
    assert nccl.settings["NCCL_DEBUG"].source == "environment"
    assert nccl.get("NCCL_IB_HCA") == "mlx5"
    assert nccl.settings["NCCL_IB_HCA"].source == "/opt/job.conf:1"
    assert nccl.get("NCCL_ALGO") == "Ring" and nccl.get("NCCL_PROTO") is None
    assert {s.source for s in nccl.shadowed} == {"/etc/nccl.conf:2", "/etc/nccl.conf:3"}
    assert [f.path for f in nccl.files] == ["/opt/job.conf", "/etc/nccl.conf"]


def test_home_conf_and_verbatim_lines(tmp_path: Path) -> None:
    write(
        tmp_path, "/home/u/.nccl.conf", "NCCL_DEBUG = INFO\nNCCL_IB_HCA==mlx5_0, mlx5_1\nnoequals\n"
    )
    nccl = NcclEnv.read(host(tmp_path, {"HOME": "/home/u"}))
    assert nccl.get("NCCL_IB_HCA") == "=mlx5_0, mlx5_1"  # the space stays in the value
    assert [s.name for s in nccl.suspicious_names] == ["NCCL_DEBUG "]
    assert nccl.get("NCCL_DEBUG") is None


def test_unreadable_conf_and_missing_topo_file(tmp_path: Path) -> None:
    (tmp_path / "etc/nccl.conf").mkdir(parents=True)  # a directory: reading it fails
    nccl = NcclEnv.read(host(tmp_path, {"NCCL_TOPO_FILE": "/nope.xml"}))
    assert nccl.files[0].error and nccl.topo_file_exists is False


# -- nccl.ib_hca ---------------------------------------------------------------------------------


def env_setting(name: str, value: str) -> Setting:
    return Setting(name, value, "environment")


def test_ib_hca_unset_skips(tmp_path: Path) -> None:
    assert run("nccl.ib_hca", eight(tmp_path)).status is Status.SKIP


def test_ib_hca_exact_ports_pass(tmp_path: Path) -> None:
    value = "=" + ",".join(f"mlx5_{i}:1" for i in range(8))
    v = run("nccl.ib_hca", eight(tmp_path), env={"NCCL_IB_HCA": value})
    assert v.status is Status.PASS
    assert v.summary.startswith(f"{value!r} selects 8 active ports: mlx5_0/1, mlx5_1/1")


def test_ib_hca_selecting_nothing_fails_naming_the_variable(tmp_path: Path) -> None:
    v = run("nccl.ib_hca", eight(tmp_path), env={"NCCL_IB_HCA": "=mlx5_9"})
    assert v.status is Status.FAIL
    assert v.summary.startswith("NCCL_IB_HCA: '=mlx5_9' selects no RDMA port (devices: mlx5_0")
    assert v.findings[0].evidence[0].source == "env:NCCL_IB_HCA"


def test_ib_hca_from_etc_nccl_conf(tmp_path: Path) -> None:
    root = eight(tmp_path)
    write(root, "/etc/nccl.conf", "NCCL_IB_HCA=^mlx5\n")
    v = run("nccl.ib_hca", root)
    assert v.status is Status.FAIL
    assert v.findings[0].evidence[0].source == "file:/etc/nccl.conf:1"


def test_ib_hca_down_port_fails(tmp_path: Path) -> None:
    root = eight(tmp_path, p3={"state": "1: DOWN", "phys_state": "3: Disabled"})
    v = run("nccl.ib_hca", root, env={"NCCL_IB_HCA": "=mlx5_2,mlx5_3"})
    assert v.status is Status.FAIL
    assert v.summary == (
        "mlx5_3/1: NCCL_IB_HCA='=mlx5_2,mlx5_3' selects mlx5_3/1, which is 1: DOWN: NCCL skips it"
    )
    # Excluding it passes.
    assert run("nccl.ib_hca", root, env={"NCCL_IB_HCA": "^=mlx5_3"}).status is Status.PASS


def ports(names: list[str], layer: str = "InfiniBand") -> list[IbPort]:
    return [
        IbPort(n, 1, PortState(4, "ACTIVE"), PortState(5, "LinkUp"), link_layer=layer)
        for n in names
    ]


def test_ib_hca_prefix_catching_more_warns() -> None:
    found = judge_ib_hca(env_setting("NCCL_IB_HCA", "mlx5_1"), ports(DEVICES[:12]))
    warn = [f for f in found if f.status is Status.WARN]
    assert len(warn) == 1
    assert "'mlx5_1' is a prefix: it also selects mlx5_10, mlx5_11" in warn[0].message
    assert "'=mlx5_1'" in warn[0].message
    # A prefix that names no device by itself is meant as a prefix: no warning.
    assert all(
        f.status is Status.PASS
        for f in judge_ib_hca(env_setting("NCCL_IB_HCA", "mlx5"), ports(DEVICES[:12]))
    )


def test_ib_hca_typo_entry_and_mixed_link_layers_warn() -> None:
    mixed = ports(["mlx5_0"]) + ports(["mlx5_bond_0"], "Ethernet")
    found = judge_ib_hca(env_setting("NCCL_IB_HCA", "=mlx5_0,mlx5_bond_0,mlx5_7"), mixed)
    messages = [f.message for f in found if f.status is Status.WARN]
    assert any("'mlx5_7' matches no device" in m for m in messages)
    assert any("different link layers (Ethernet, InfiniBand)" in m for m in messages)


def test_ib_hca_unparsable_fails() -> None:
    (f,) = judge_ib_hca(env_setting("NCCL_IB_HCA", "mlx5_0:one"), ports(["mlx5_0"]))
    assert f.status is Status.FAIL and "cannot be parsed" in f.message


# -- nccl.socket_ifname --------------------------------------------------------------------------

NETDEVS: dict[str, str | None] = {
    "lo": "unknown",
    "eth0": "up",
    "ib0": "up",
    "ib1": "down",
    "ib10": "up",
    "docker0": "up",
}


def test_socket_ifname_unset_skips(tmp_path: Path) -> None:
    assert run("nccl.socket_ifname", eight(tmp_path)).status is Status.SKIP


def test_socket_ifname_pass_and_fail(tmp_path: Path) -> None:
    root = eight(tmp_path)
    v = run("nccl.socket_ifname", root, env={"NCCL_SOCKET_IFNAME": "=ib0"})
    assert v.status is Status.PASS and v.summary == "'=ib0' selects ib0"
    v = run("nccl.socket_ifname", root, env={"NCCL_SOCKET_IFNAME": "eth"})
    assert v.status is Status.FAIL
    assert v.summary.startswith("NCCL_SOCKET_IFNAME: 'eth' selects no interface (have ib0")


@pytest.mark.parametrize(
    ("value", "status", "needle"),
    [
        ("=ib1", Status.FAIL, "only interfaces that are not up: ib1 (down)"),
        ("ib", Status.WARN, "also selects interfaces that are not up: ib1 (down)"),
        ("=ib0,ib10", Status.PASS, "selects ib0, ib10"),
        ("ib1", Status.WARN, "'ib1' is a prefix: it also selects ib10"),
        ("^docker,lo", Status.WARN, "not up: ib1"),
        ("^=docker0,lo,ib1", Status.PASS, "selects eth0, ib0, ib10"),
    ],
)
def test_judge_socket_ifname(value: str, status: Status, needle: str) -> None:
    found = judge_socket_ifname(env_setting("NCCL_SOCKET_IFNAME", value), NETDEVS)
    from preflight.model import worst

    assert worst(f.status for f in found) is status
    assert any(needle in f.message for f in found), [f.message for f in found]


# -- nccl.env ------------------------------------------------------------------------------------


def test_env_nothing_set_passes(tmp_path: Path) -> None:
    v = run("nccl.env", eight(tmp_path))
    assert v.status is Status.PASS and v.summary == "no NCCL_* settings"


@pytest.mark.parametrize(
    ("name", "value", "status", "needle"),
    [
        ("NCCL_IB_HCAS", "mlx5_0", Status.WARN, "did you mean NCCL_IB_HCA?"),
        ("NCCL_SOCKET_IFNAMES", "ib0", Status.WARN, "did you mean NCCL_SOCKET_IFNAME?"),
        ("NCCL_TIMEOUT", "1800", Status.WARN, "NCCL has no such variable"),
        ("NCCL_P2P_DISABLE", "1", Status.WARN, "disables NVLink/PCIe peer-to-peer"),
        ("NCCL_P2P_DISABLE", "0", Status.PASS, "NCCL's default"),
        ("NCCL_IB_DISABLE", "1", Status.WARN, "falls back to TCP sockets"),
        ("NCCL_ALGO", "Ring", Status.WARN, "forces the collective algorithm"),
        ("NCCL_PROTO", "Simple", Status.WARN, "debugging setting"),
        ("NCCL_NET_GDR_LEVEL", "LOC", Status.WARN, "forces GPUDirect RDMA off"),
        ("NCCL_NET_GDR_LEVEL", "0", Status.WARN, "forces GPUDirect RDMA off"),
        ("NCCL_ASYNC_ERROR_HANDLING", "1", Status.PASS, "TORCH_NCCL_ASYNC_ERROR_HANDLING"),
    ],
)
def test_judge_setting(name: str, value: str, status: Status, needle: str) -> None:
    f = judge_setting(env_setting(name, value), False, None, EnvParams())
    assert f is not None and f.status is status and needle in f.message, f


def test_judge_setting_allow_and_extra_known() -> None:
    s = env_setting("NCCL_ALGO", "Tree")
    f = judge_setting(s, False, None, EnvParams(allow=("NCCL_ALGO",)))
    assert f is not None and f.status is Status.PASS
    plugin = env_setting("NCCL_SHARP_GROUP_SIZE", "8")
    f = judge_setting(plugin, False, None, EnvParams())
    assert f is not None and f.status is Status.WARN
    assert (
        judge_setting(plugin, False, None, EnvParams(extra_known=("NCCL_SHARP_GROUP_SIZE",)))
        is None
    )
    assert judge_setting(env_setting("NCCL_DEBUG", "INFO"), False, None, EnvParams()) is None


def test_gid_index_warns_on_roce_only() -> None:
    s = env_setting("NCCL_IB_GID_INDEX", "3")
    f = judge_setting(s, True, None, EnvParams())
    assert f is not None and f.status is Status.WARN and "2.21" in f.message
    assert judge_setting(s, False, None, EnvParams()) is None


def test_topo_file(tmp_path: Path) -> None:
    root = eight(tmp_path)
    missing = run("nccl.env", root, env={"NCCL_TOPO_FILE": "/etc/nccl/topo.xml"})
    assert missing.status is Status.FAIL and "does not exist" in missing.summary
    write(root, "/etc/nccl/topo.xml", "<system/>\n")
    present = run("nccl.env", root, env={"NCCL_TOPO_FILE": "/etc/nccl/topo.xml"})
    assert present.status is Status.PASS and present.summary == "1 NCCL setting, none of concern"
    relative = run("nccl.env", root, env={"NCCL_TOPO_FILE": "topo.xml"})
    assert relative.status is Status.WARN


def test_env_check_reports_whitespace_names_and_shadowing(tmp_path: Path) -> None:
    root = eight(tmp_path)
    write(root, "/etc/nccl.conf", "NCCL_DEBUG =WARN\nNCCL_IB_HCA=mlx5\n")
    v = run("nccl.env", root, env={"NCCL_IB_HCA": "=mlx5_0"})
    assert v.status is Status.WARN
    messages = [f.message for f in v.findings]
    assert any("'NCCL_DEBUG '" in m and "no effect" in m for m in messages)
    assert any("overridden by environment" in m for m in messages)


def test_env_gid_index_with_roce_ports(tmp_path: Path) -> None:
    port = Port(link_layer="Ethernet", lid="0x0", sm_lid="0x0")
    root = build(
        tmp_path, [Device("mlx5_0", 0x19, ports=[port], netdevs={"eth0": Netdev(type="1")})]
    )
    v = run("nccl.env", root, env={"NCCL_IB_GID_INDEX": "3"})
    assert v.status is Status.WARN and "NCCL_IB_GID_INDEX" in v.summary


def test_closest_name() -> None:
    assert closest_name("NCCL_IB_HCAS") == "NCCL_IB_HCA"
    assert closest_name("NCCL_DEBGU") == "NCCL_DEBUG"
    assert closest_name("NCCL_COMPLETELY_DIFFERENT_THING") is None
