"""Bad input: random profile JSON raises only ProfileError; random kernel log lines never break
the Xid parser; the CLI's remaining bad-input paths are one line on stderr with the right code."""

from __future__ import annotations

import contextlib
import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from preflight.cli import app
from preflight.errors import ProfileError
from preflight.inventory.xid import XidEvent, parse_xid_line, parse_xids
from preflight.profile import PROFILE_KEYS, resolve

runner = CliRunner()
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(sorted(PROFILE_KEYS - {"extends"})) | st.text(max_size=10)
paths = st.sampled_from(["/sys/x", "/proc/cmdline", "relative", "/a/../b", ""])
file_values = (
    st.text(max_size=10)
    | st.fixed_dictionaries({"hex": st.text(alphabet="0123456789abcdefxyz", max_size=8)})
    | st.fixed_dictionaries({"hex": st.just("00ff"), "size": json_values})
    | st.fixed_dictionaries({"fifo": json_values})
    | json_values
)
profiles = st.one_of(
    json_values,
    st.dictionaries(keys, json_values, max_size=5),
    st.fixed_dictionaries(
        {},
        optional={
            "files": st.dictionaries(paths, file_values, max_size=3) | json_values,
            "symlinks": st.dictionaries(paths, json_values, max_size=2),
            "dirs": st.lists(paths | json_values, max_size=3) | json_values,
            "limits": st.dictionaries(
                st.sampled_from(["memlock", "stack", "nofile", "cpu"]), json_values, max_size=2
            ),
            "statvfs": st.dictionaries(st.just("/dev/shm"), json_values, max_size=1),
            "env": st.dictionaries(st.text(max_size=5), json_values, max_size=2),
            "kernel_log": st.lists(json_values, max_size=3) | json_values,
            "privileged": json_values,
            "nvml": json_values,
            "extends": st.sampled_from(["dgx-h100", "nope", 3, None]),
        },
    ),
)


@PROPERTY
@given(data=profiles)
def test_random_profile_json_raises_only_profile_error(data: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.json"
        path.write_text(json.dumps(data))
        message = ""
        try:
            resolve(str(path))
        except ProfileError as exc:
            message = str(exc)
        assert "\n" not in message


GZIP = gzip.compress(b'{"hostname": "x"}', mtime=0)


@PROPERTY
@given(raw=st.binary(max_size=200) | st.binary(max_size=40).map(lambda b: GZIP[:10] + b))
def test_random_profile_bytes_raise_only_profile_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.json.gz"
        path.write_bytes(raw)
        with contextlib.suppress(ProfileError):
            resolve(str(path))


xid_lines = st.builds(
    lambda ts, pci, xid, rest: f"{ts}NVRM: Xid (PCI:{pci}): {xid}, {rest}",
    st.sampled_from(["", "[  12.5] ", "[bad] ", "kernel: "]),
    st.from_regex(r"[0-9a-fA-F:.]{0,14}", fullmatch=True),
    st.integers(min_value=-5, max_value=10**30) | st.text(max_size=5),
    st.text(max_size=80)
    | st.sampled_from(
        [
            "pid=1, name=x, GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot)",
            "GPU recovery action changed from to",
            "pid='<unknown>', name=<unknown>, ",
        ]
    ),
)


@PROPERTY
@given(line=st.text(max_size=300) | xid_lines)
def test_kernel_log_lines_never_break_the_xid_parser(line: str) -> None:
    event = parse_xid_line(line)
    assert event is None or isinstance(event, XidEvent)
    assert len(parse_xids([line, line])) == (0 if event is None else 2)


def one_line(result: Any, code: int, needle: str) -> None:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("preflight: error:"), result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ([1, 2], "must be a JSON object"),
        ({"filez": {}}, "did you mean"),
        ({"files": {"relative": "x"}}, "must be absolute"),
        ({"dirs": "/sys"}, "dirs must be"),
        ({"limits": {"memlock": [1]}}, "limits.memlock"),
        ({"nvml": {"gpus": 5}}, "nvml"),
        ({"extends": "no-such-profile"}, "unknown profile"),
    ],
)
def test_bad_profile_shapes_are_one_line_exit_3(tmp_path: Path, doc: Any, needle: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    one_line(runner.invoke(app, ["run", "--profile", str(path)]), 3, needle)


def test_a_pattern_matching_no_check_is_exit_2() -> None:
    one_line(
        runner.invoke(app, ["run", "--profile", "dgx-h100", "--only", "nosuch.*"]), 2, "nosuch"
    )


def test_snapshot_nonpositive_timeout_is_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["snapshot", "--output", str(tmp_path / "s.json"), "--timeout", "0"]
    )
    one_line(result, 2, "positive")
