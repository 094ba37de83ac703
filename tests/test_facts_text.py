"""compare reads most nodes' facts through their group reference's text (cluster.facts_text): what
it reads must be exactly what decoding the whole text gives, and anything else must not match."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflight.cluster.facts_text import cut
from preflight.model import Scalar

REFERENCE: dict[str, Scalar] = {
    "dmi.product_serial": "1654223003812",
    "kernel.cmdline": "BOOT_IMAGE=/vmlinuz root=UUID=88753928-2400-6e8c-7b8d-d10c2224d21c ro",
    "kernel.release": "5.15.0-1067-nvidia",
    "gpu.count": 8,
    "rdma.mlx5_0.port1.lid": 17,
    "nvidia.persistence": True,
    "pci.0000:18:00.0.max_payload": None,
    "numa.balancing": 0.0,
}
VARIABLE = ("dmi.product_serial", "kernel.cmdline", "rdma.mlx5_0.port1.lid")
LAYOUTS: tuple[dict[str, Any], ...] = ({"indent": 2}, {"separators": (",", ":")}, {})


def text(facts: dict[str, Any], **layout: Any) -> str:
    return json.dumps(facts, **layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"dmi.product_serial": "X" * 40},  # longer: every later run moves
        {"dmi.product_serial": ""},
        {"rdma.mlx5_0.port1.lid": 65535},
        {"rdma.mlx5_0.port1.lid": None},  # another scalar type
        {"rdma.mlx5_0.port1.lid": 1.5e3},
        {"kernel.cmdline": 'quote " backslash \\ newline \n, "gpu.count": 9'},  # escaped in JSON
        {"kernel.cmdline": "é ü — ☃"},
        {"dmi.product_serial": "a", "kernel.cmdline": "b", "rdma.mlx5_0.port1.lid": 3},
    ],
)
def test_a_node_that_differs_in_cut_values_reads_as_its_whole_text_decodes(
    layout: dict[str, Any], changes: dict[str, Any]
) -> None:
    template = cut(text(REFERENCE, **layout), REFERENCE, VARIABLE)
    assert template is not None and template.keys == VARIABLE
    node = text({**REFERENCE, **changes}, **layout)
    assert template.read(node) == json.loads(node)


@pytest.mark.parametrize(
    "node",
    [
        text({**REFERENCE, "gpu.count": 7}, indent=2),  # a constant fact drifts
        text({**REFERENCE, "kernel.release": "5.15.0-1063-nvidia"}, indent=2),
        text({**REFERENCE, "extra": 1}, indent=2),  # a key the reference lacks
        text({k: v for k, v in REFERENCE.items() if k != "gpu.count"}, indent=2),
        text({**REFERENCE, "dmi.product_serial": [1, 2]}, indent=2),  # not a scalar
        text({**REFERENCE, "dmi.product_serial": {"a": 1}}, indent=2),
        text(REFERENCE, indent=2) + " x",  # trailing text
        text(REFERENCE, indent=4),  # another layout
        text(REFERENCE, indent=2).replace('"1654223003812"', "[" * 100_000 + "]" * 100_000),
        text(REFERENCE, indent=2).replace('"1654223003812"', '"unterminated'),
        text(REFERENCE, indent=2).replace('"1654223003812"', "nul"),
        text(REFERENCE, indent=2).replace("17", "17 , 18"),  # two tokens in one cut
        "",
    ],
)
def test_a_node_that_differs_elsewhere_does_not_match(node: str) -> None:
    template = cut(text(REFERENCE, indent=2), REFERENCE, VARIABLE)
    assert template is not None
    assert template.read(node) is None


@pytest.mark.parametrize(
    "reference",
    ["", "[]", '{"a": [1]}', '{"a": {"b": 1}}', '{"a" 1}', '{"a": 1,}', '{"a": 1} x', '{"a": 1'],
)
def test_a_reference_that_is_no_flat_object_has_no_template(reference: str) -> None:
    assert cut(reference, {}, ("a",)) is None


def test_a_key_written_twice_reads_as_json_does_the_last_one_wins() -> None:
    reference = '{"serial": "a", "n": 1, "serial": "b"}'
    template = cut(reference, json.loads(reference), ("serial",))
    assert template is not None and template.keys == ("serial", "serial")
    node = '{"serial": "x", "n": 1, "serial": "y"}'
    assert template.read(node) == json.loads(node) == {"serial": "y", "n": 1}


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(
    reference=st.dictionaries(st.text(max_size=8), SCALARS, min_size=1, max_size=12),
    data=st.data(),
)
def test_whatever_matches_is_what_json_decodes(reference: dict[str, Any], data: Any) -> None:
    variable = data.draw(st.sets(st.sampled_from(sorted(reference))))
    layout = data.draw(st.sampled_from(LAYOUTS))
    template = cut(text(reference, **layout), reference, variable)
    assert template is not None
    # only cut values change: always read, and read right
    node = {**reference, **{k: data.draw(SCALARS) for k in variable}}
    assert template.read(text(node, **layout)) == node
    # anything may change: never read wrong
    other = data.draw(st.dictionaries(st.text(max_size=8), SCALARS, max_size=12))
    hostile = text({**node, **other}, **layout)
    assert template.read(hostile) in (None, json.loads(hostile))
