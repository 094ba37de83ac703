"""AuthStore over torch's own in-memory store: what a holder of the token writes is read back,
what anyone else writes (or replays under another key) is never trusted."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from preflight.bench.env import TOKEN_ENV
from preflight.errors import ConfigError

torch_dist = pytest.importorskip("torch.distributed")

from preflight.bench.auth import AuthStore, job_token, printable  # noqa: E402
from preflight.bench.errors import BenchError  # noqa: E402

TOKEN = b"0123456789abcdef0123"


def stores(token: bytes = TOKEN) -> tuple[AuthStore, Any, list[str]]:
    inner = torch_dist.HashStore()
    warnings: list[str] = []
    return AuthStore(inner, token, "", warnings.append), inner, warnings


def test_values_round_trip_under_a_namespace_only_the_token_gives() -> None:
    store, inner, warnings = stores()
    store.set("rank/0", '{"host": "a"}')
    store.multi_set(["x", "y"], [b"1", b"2"])
    assert store.get("rank/0") == b'{"host": "a"}'
    assert store.multi_get(["x", "y"]) == [b"1", b"2"]
    assert store.verified("x") == b"1" and not warnings
    assert store.check(["rank/0", "x"]) and not store.check(["missing"])
    assert store.add("arrived", 2) == 2 and store.add("arrived", 0) == 2
    keys = inner.list_keys()
    assert keys and all(k.startswith(store.namespace) for k in keys)
    other, _, _ = stores(b"another token, same length")
    assert other.namespace != store.namespace
    assert store.foreign_keys() == []


def test_a_stranger_value_is_refused_or_ignored_and_reported_once() -> None:
    store, inner, warnings = stores()
    inner.set(store.namespace + "abort", "stranger: stop the job")
    assert store.verified("abort") is None
    assert store.verified("abort") is None
    assert warnings == [
        f"ignored a value of 22 bytes under 'abort' in the store: it fails authentication "
        f"with {TOKEN_ENV} (written by a process outside this job)"
    ]
    with pytest.raises(BenchError, match="'abort' was not written by a rank of this job"):
        store.get("abort")
    with pytest.raises(BenchError):
        store.multi_get(["abort"])
    store.set("rank/0", "mine")
    assert store.verified_many(["rank/0", "abort"]) == [b"mine", None]
    assert len(warnings) == 1  # the same stranger value is reported once


def test_a_value_replayed_under_another_key_or_truncated_is_refused() -> None:
    store, inner, _ = stores()
    store.set("rank/0", "rank zero")
    sealed = inner.get(store.namespace + "rank/0")
    inner.set(store.namespace + "rank/1", sealed)
    assert store.verified("rank/1") is None
    inner.set(store.namespace + "short", sealed[-5:])
    assert store.verified("short") is None
    other, _, _ = stores(b"another token, same length")
    other.inner = inner
    other.namespace = store.namespace  # even knowing the namespace, another token cannot sign
    other.set("abort", "forged")
    assert store.verified("abort") is None


def test_compare_set_seals_both_sides() -> None:
    store, _, _ = stores()
    assert store.compare_set("k", "", "first") == b"first"
    assert store.compare_set("k", "first", "second") == b"second"
    assert store.compare_set("k", "wrong", "third") == b"second"


def test_keys_outside_the_namespace_are_listed_for_the_report() -> None:
    store, inner, _ = stores()
    store.set("rank/0", "x")
    inner.set("preflight/abort", "stranger")
    inner.set("\x1b[31mred", "stranger")
    assert store.foreign_keys() == ["\x1b[31mred", "preflight/abort"]
    assert printable("\x1b[31mred") == "\\x1b[31mred"
    assert printable("k" * 100).endswith("…") and len(printable("k" * 100)) == 61


def test_wait_and_delete_pass_through() -> None:
    store, _, _ = stores()
    store.set("ready", "1")
    store.wait(["ready"], dt.timedelta(seconds=1))
    store.wait(["ready"])
    assert store.delete_key("ready") and not store.check(["ready"])
    assert store.num_keys() >= 0


@pytest.mark.parametrize(
    ("environ", "world", "expected"),
    [
        ({}, 1, None),
        ({TOKEN_ENV: "x" * 16}, 1, None),
        ({TOKEN_ENV: "x" * 16}, 2, b"x" * 16),
        ({}, 2, "is not set"),
        ({TOKEN_ENV: ""}, 8, "is not set"),
        ({TOKEN_ENV: "short"}, 2, "shorter than 16"),
    ],
)
def test_job_token(environ: dict[str, str], world: int, expected: bytes | str | None) -> None:
    if isinstance(expected, str):
        with pytest.raises(ConfigError, match=expected):
            job_token(environ, world)
    else:
        assert job_token(environ, world) == expected
