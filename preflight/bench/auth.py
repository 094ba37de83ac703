"""The ranks' shared secret, and a store through which only its holders' values are trusted.

The rendezvous store (torch's TCPStore) is a plaintext key-value server without access control:
whoever reaches its port can list, read, write and delete any key. So the ranks of one job share
a secret, PREFLIGHT_BENCH_TOKEN (the `--nproc` launcher makes a random one), and talk through
AuthStore:

- every key lives under a namespace derived from the token (other jobs and strangers write
  elsewhere, and rank 0 reports the keys it finds outside it);
- every value carries an HMAC-SHA256 of (namespaced key, value) under the token, checked on each
  read, the process group's own keys included: a value written without the token is never
  trusted. Where the ranks poll (the abort message) it is ignored and reported once; where they
  must have the value (a peer's address) the read fails with a message that says why.

What this does not stop (README, "Rendezvous threat model"): counters (`add`) cannot carry a MAC;
anyone can delete or overwrite keys (denial of service, not forgery); the traffic is plaintext,
so an observer on the path reads the values and can replay one under its own key within the run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch.distributed import Store

from preflight.bench.env import TOKEN_ENV
from preflight.bench.errors import BenchError
from preflight.errors import ConfigError

MIN_TOKEN_CHARS = 16
"""Shorter tokens are refused: 16 hex digits are 64 bits, the least worth calling a secret."""
MAC_BYTES = 32


def job_token(environ: Mapping[str, str], world_size: int) -> bytes | None:
    """The job's token; None for a world of one (no store). ConfigError when it is missing."""
    if world_size <= 1:
        return None
    value = environ.get(TOKEN_ENV, "")
    if not value:
        raise ConfigError(
            f"{TOKEN_ENV} is not set: every rank of a {world_size}-rank world needs the same "
            f"secret in it, or the rendezvous store trusts nothing (e.g. export {TOKEN_ENV}="
            "$(openssl rand -hex 16) before srun or torchrun; --nproc makes its own)"
        )
    if len(value) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{TOKEN_ENV} is shorter than {MIN_TOKEN_CHARS} characters")
    return value.encode()


def printable(key: str, limit: int = 60) -> str:
    """A key someone else wrote, safe to print: control characters escaped, length bounded."""
    text = key.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "…"


class AuthStore(Store):  # type: ignore[misc]  # torch is not followed by mypy: Store is Any
    """A torch Store over another that namespaces keys and authenticates values with the token."""

    def __init__(self, inner: Any, token: bytes, scope: str, warn: Callable[[str], None]) -> None:
        super().__init__()
        self.inner = inner
        self._token = token
        tag = hmac.new(token, b"preflight-bench namespace", hashlib.sha256).hexdigest()[:16]
        self.namespace = f"preflight/{scope}{tag}/"
        self._warn = warn
        self._reported: set[tuple[str, bytes]] = set()
        self.keep_alive: object = None  # what the inner store needs open (its listening socket)

    # -- values ---------------------------------------------------------------------------------
    def _mac(self, key: str, value: bytes) -> bytes:
        return hmac.new(self._token, key.encode() + b"\0" + value, hashlib.sha256).digest()

    def _seal(self, key: str, value: bytes | str) -> bytes:
        data = value.encode() if isinstance(value, str) else bytes(value)
        return data + self._mac(self.namespace + key, data)

    def _open(self, key: str, raw: bytes) -> bytes | None:
        data, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if len(raw) >= MAC_BYTES and hmac.compare_digest(
            mac, self._mac(self.namespace + key, data)
        ):
            return data
        return None

    def _forged(self, key: str) -> BenchError:
        return BenchError(
            f"the store's value for {printable(key)!r} was not written by a rank of this job "
            f"(it fails authentication with {TOKEN_ENV}): another process wrote it, or the "
            "ranks were given different tokens"
        )

    def verified(self, key: str) -> bytes | None:
        """The value if a rank of this job wrote it; else None, reported once per value."""
        return self._checked(key, bytes(self.inner.get(self.namespace + key)))

    def verified_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """verified() of each key, in one request."""
        raws = self.inner.multi_get([self.namespace + k for k in keys])
        return [self._checked(k, bytes(raw)) for k, raw in zip(keys, raws, strict=True)]

    def _checked(self, key: str, raw: bytes) -> bytes | None:
        data = self._open(key, raw)
        if data is None and (key, raw) not in self._reported:
            self._reported.add((key, raw))
            self._warn(
                f"ignored a value of {len(raw)} bytes under {printable(key)!r} in the store: it "
                f"fails authentication with {TOKEN_ENV} (written by a process outside this job)"
            )
        return data

    def foreign_keys(self) -> list[str]:
        """Keys in the underlying store outside this job's namespace (when it can list them)."""
        try:
            keys = list(self.inner.list_keys())
        except Exception:  # an older torch, or a store without list_keys
            return []
        return sorted(k for k in keys if not str(k).startswith(self.namespace))

    # -- the torch Store interface -------------------------------------------------------------
    def set(self, key: str, value: bytes | str) -> None:
        self.inner.set(self.namespace + key, self._seal(key, value))

    def get(self, key: str) -> bytes:
        data = self._open(key, bytes(self.inner.get(self.namespace + key)))
        if data is None:
            raise self._forged(key)
        return data

    def multi_get(self, keys: Sequence[str]) -> list[bytes]:
        raws = self.inner.multi_get([self.namespace + k for k in keys])
        out = []
        for key, raw in zip(keys, raws, strict=True):
            data = self._open(key, bytes(raw))
            if data is None:
                raise self._forged(key)
            out.append(data)
        return out

    def multi_set(self, keys: Sequence[str], values: Sequence[bytes | str]) -> None:
        sealed = [self._seal(k, v) for k, v in zip(keys, values, strict=True)]
        self.inner.multi_set([self.namespace + k for k in keys], sealed)

    def compare_set(self, key: str, expected: bytes | str, desired: bytes | str) -> bytes:
        want = self._seal(key, expected) if expected else b""
        raw = bytes(self.inner.compare_set(self.namespace + key, want, self._seal(key, desired)))
        data = self._open(key, raw)
        if data is None:
            raise self._forged(key)
        return data

    def add(self, key: str, amount: int) -> int:
        return int(self.inner.add(self.namespace + key, amount))

    def check(self, keys: Sequence[str]) -> bool:
        return bool(self.inner.check([self.namespace + k for k in keys]))

    def wait(self, keys: Sequence[str], timeout: dt.timedelta | None = None) -> None:
        names = [self.namespace + k for k in keys]
        if timeout is None:
            self.inner.wait(names)
        else:
            self.inner.wait(names, timeout)

    def delete_key(self, key: str) -> bool:
        return bool(self.inner.delete_key(self.namespace + key))

    def num_keys(self) -> int:
        return int(self.inner.num_keys())

    def set_timeout(self, timeout: dt.timedelta) -> None:
        self.inner.set_timeout(timeout)
