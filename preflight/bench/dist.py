"""Rendezvous and process group for the benchmark ranks, every wait bounded.

torch's own env:// rendezvous waits up to 30 minutes for a missing rank and then does not say
which one is missing. Here each rank registers under `rank/<n>` in the store and counts itself
in; after --init-timeout seconds every rank that is still waiting names the world size, the
ranks that arrived (with their hosts) and the ranks that did not.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import platform
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed import HashStore, PrefixStore, TCPStore

from preflight.bench.auth import AuthStore, job_token, printable
from preflight.bench.env import RankEnv, rank_env
from preflight.bench.env import node_id as resolve_node_id
from preflight.bench.errors import BenchError
from preflight.bench.hooks import Hooks
from preflight.bench.result import RankInfo
from preflight.bench.watchdog import Watchdog
from preflight.errors import ConfigError

STORE_GRACE_S = 5.0
"""Extra time the watchdog allows over a store's own timeout, so the store's error wins."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (torch's carry C++ backtraces after it)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def rank_list(ranks: list[int]) -> str:
    """[0, 1, 2, 5] → 'ranks 0-2, 5'; [3] → 'rank 3'; [] → 'none'."""
    if not ranks:
        return "none"
    spans: list[list[int]] = []
    for r in sorted(ranks):
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)
    return ("ranks " if len(ranks) > 1 else "rank ") + text


def resolve_backend(choice: str) -> str:
    """auto → nccl when torch sees a CUDA GPU and was built with NCCL, else gloo."""
    if choice == "auto":
        return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    if choice == "nccl" and not (torch.cuda.is_available() and dist.is_nccl_available()):
        raise ConfigError(
            "backend nccl needs CUDA GPUs and a torch built with NCCL; torch sees none"
        )
    if choice not in ("nccl", "gloo"):
        raise ConfigError(f"unknown backend {choice!r} (choose from auto, nccl, gloo)")
    return choice


@dataclass
class Session:
    """An initialized world: store, process group, device, and who everyone is."""

    env: RankEnv
    backend: str
    device: torch.device
    store: Any  # a torch.distributed Store (AuthStore over TCPStore, or HashStore)
    ranks: tuple[RankInfo, ...]
    watchdog: Watchdog
    init_timeout_s: float
    op_timeout_s: float
    serves_store: bool

    def sync(self) -> None:
        """Wait for the device to finish queued work (collectives on CUDA are asynchronous)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def me(self) -> RankInfo:
        """This rank."""
        return self.ranks[self.env.rank]

    def node_ranks(self) -> dict[str, list[int]]:
        """Node id → its ranks, nodes in order of their first rank."""
        out: dict[str, list[int]] = {}
        for r in self.ranks:
            out.setdefault(r.node_id, []).append(r.rank)
        return out


def _device(backend: str, env: RankEnv) -> tuple[torch.device, str]:
    if backend != "nccl":
        return torch.device("cpu"), "cpu"
    count = torch.cuda.device_count()
    if env.local_rank >= count:
        raise ConfigError(
            f"local rank {env.local_rank} has no GPU: torch sees {count} (one rank per GPU)"
        )
    torch.cuda.set_device(env.local_rank)
    name = torch.cuda.get_device_name(env.local_rank)
    return torch.device("cuda", env.local_rank), f"cuda:{env.local_rank} {name}"


def loopback(addr: str) -> bool:
    """Whether MASTER_ADDR names this machine's loopback: an address literal, or 'localhost'.

    A host name is never taken for loopback even when it resolves to 127.0.1.1 here (Debian's
    /etc/hosts does that for the machine's own name): the other nodes resolve it to the address
    they can reach.
    """
    if addr.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(addr.strip("[]")).is_loopback
    except ValueError:
        return False


def _listener(addr: str, port: int) -> socket.socket:
    """A socket listening on addr:port only (TCPStore alone listens on every interface)."""
    host = addr.strip("[]")
    if host.lower().rstrip(".") == "localhost":
        host = "127.0.0.1"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def _warn(env: RankEnv) -> Callable[[str], None]:
    def warn(message: str) -> None:
        sys.stderr.write(f"preflight: warning: rank {env.rank}: {message}\n")
        sys.stderr.flush()

    return warn


def _connect_store(
    env: RankEnv, token: bytes | None, timeout_s: float, watchdog: Watchdog
) -> tuple[Any, bool]:
    """The store, and whether this process serves it (rank 0, unless torchrun's agent does).

    Rank 0 serving a loopback MASTER_ADDR (`--nproc`) listens on loopback only; otherwise on
    every interface, as the other nodes must reach it. Either way every key and value goes
    through AuthStore with the job's token.
    """
    if env.world_size == 1:
        return HashStore(), True
    if token is None:
        raise ConfigError(f"a world of {env.world_size} ranks needs the job's token")
    serve = env.rank == 0 and not env.agent_store
    where = f"{env.master_addr}:{env.master_port}"
    listener = None
    with watchdog.waiting(f"rendezvous store {where}", timeout_s + STORE_GRACE_S):
        try:
            if serve and loopback(env.master_addr):
                listener = _listener(env.master_addr, env.master_port)
            store = TCPStore(
                env.master_addr,
                env.master_port,
                env.world_size,
                is_master=serve,
                timeout=dt.timedelta(seconds=timeout_s),
                wait_for_workers=False,
                master_listen_fd=None if listener is None else listener.fileno(),
            )
        except Exception as exc:
            if listener is not None:
                listener.close()
            if serve:
                raise BenchError(
                    f"rendezvous: rank 0 cannot serve the store on {where}: {first_line(exc)}"
                ) from None
            server = "torchrun's agent" if env.agent_store else "rank 0"
            raise BenchError(
                f"rendezvous: the store at {where} (served by {server}) could not be reached "
                f"within {timeout_s:g} s (world size {env.world_size}): {first_line(exc)}"
            ) from None
    scope = f"{env.run_id}/" if env.agent_store else ""
    authed = AuthStore(store, token, scope, _warn(env))
    authed.keep_alive = listener  # the store serves on this socket: keep it open as long
    return authed, serve


def _missing_message(store: Any, env: RankEnv, count: int, timeout_s: float) -> str:
    head = (
        f"rendezvous: {count} of {env.world_size} ranks arrived within {timeout_s:g} s "
        f"(world size {env.world_size})"
    )
    try:
        present = [r for r in range(env.world_size) if store.check([f"rank/{r}"])]
        entries = {r: _authentic(store, f"rank/{r}") for r in present}
        arrived = [r for r, v in entries.items() if v is not None]
        hosts = sorted({json.loads(v)["host"] for v in entries.values() if v is not None})
    except Exception as exc:
        return f"{head}; the store could not list them: {first_line(exc)}"
    missing = [r for r in range(env.world_size) if r not in arrived]
    shown = ", ".join(hosts[:8]) + (f" and {len(hosts) - 8} more hosts" if len(hosts) > 8 else "")
    return f"{head}; arrived: {rank_list(arrived)} (on {shown}); missing: {rank_list(missing)}"


def _arrive(
    store: Any, env: RankEnv, me: RankInfo, timeout_s: float, serves: bool
) -> tuple[RankInfo, ...]:
    """Register, then wait for the world; on timeout every rank says who is missing.

    Rank 0 lists the missing ranks once, posts the message under `abort` for the others to
    read and, when it serves the store, keeps serving for a moment so that they can. The others
    wait STORE_GRACE_S longer than --init-timeout for that message before giving up on their own.
    """
    start = time.monotonic()
    # Every rank polls the store; keep a large world's polling to ~20,000 requests a second.
    poll = min(0.5, max(0.02, env.world_size / 20000))
    store.set(f"rank/{env.rank}", json.dumps(me.to_dict()))
    count = int(store.add("arrived", 1))
    keys = [f"rank/{r}" for r in range(env.world_size)]
    values: list[bytes] | None = None
    try:
        while values is None:
            # The counter cannot be authenticated: it only says when to read the entries.
            if count >= env.world_size:
                values = _entries(store, keys)
                if values is not None:
                    break
            message = _abort_message(store)
            if message is not None:
                # Read the message before saying so: rank 0 stops serving the store once
                # every arrived rank has counted itself in gave_up.
                store.add("gave_up", 1)
                raise BenchError(message)
            waited = time.monotonic() - start
            if env.rank == 0 and waited > timeout_s:
                message = _missing_message(store, env, count, timeout_s)
                if serves:
                    report_strangers(store, _warn(env))
                store.set("abort", message)
                if serves:
                    _linger(store, count - 1)
                raise BenchError(message)
            if waited > timeout_s + STORE_GRACE_S:
                raise BenchError(
                    f"rendezvous: {count} of {env.world_size} ranks arrived within "
                    f"{timeout_s:g} s (world size {env.world_size}); rank 0 did not say which "
                    "are missing"
                )
            time.sleep(poll)
            count = int(store.add("arrived", 0))
    except BenchError:
        raise
    except Exception as exc:
        waited = time.monotonic() - start
        raise BenchError(
            f"rendezvous: lost the store at {env.master_addr}:{env.master_port} after "
            f"{waited:.1f} s with {count} of {env.world_size} ranks arrived (world size "
            f"{env.world_size}): {first_line(exc)}"
        ) from None
    return tuple(RankInfo.from_dict(json.loads(v)) for v in values)


def _authentic(store: Any, key: str) -> bytes | None:
    """The value under key if a rank of this job wrote it (AuthStore), else None."""
    return store.verified(key) if isinstance(store, AuthStore) else bytes(store.get(key))


def _entries(store: Any, keys: list[str]) -> list[bytes] | None:
    """Every rank's entry, when all are there and authentic; None while any is not."""
    if not store.check(keys):
        return None
    if not isinstance(store, AuthStore):
        return [bytes(v) for v in store.multi_get(keys)]
    values = store.verified_many(keys)
    if any(v is None for v in values):
        return None
    return [v for v in values if v is not None]


def _abort_message(store: Any) -> str | None:
    """Rank 0's abort message, if it posted one (a stranger's is ignored, and reported once)."""
    if not store.check(["abort"]):
        return None
    value = _authentic(store, "abort")
    return None if value is None else value.decode(errors="replace")


def _linger(store: Any, others: int, grace_s: float = STORE_GRACE_S) -> None:
    """Serve the store until the other arrived ranks have read the abort message, or grace_s."""
    deadline = time.monotonic() + grace_s
    while int(store.add("gave_up", 0)) < others and time.monotonic() < deadline:
        time.sleep(0.02)


def open_session(
    env: RankEnv,
    backend_choice: str,
    node_id: str,
    init_timeout_s: float,
    op_timeout_s: float,
    watchdog: Watchdog,
    token: bytes | None,
) -> Session:
    """Rendezvous, then the process group; BenchError names what did not happen in time.

    token is the job's secret (auth.job_token), required when the world has more than one rank.
    """
    backend = resolve_backend(backend_choice)
    device, device_name = _device(backend, env)
    if backend == "nccl":
        # 1 = abort the communicator and end the process when a collective times out.
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    me = RankInfo(env.rank, env.local_rank, socket.gethostname(), node_id, os.getpid(), device_name)
    store, serves = _connect_store(env, token, init_timeout_s, watchdog)
    try:
        with watchdog.waiting("rendezvous", init_timeout_s + 2 * STORE_GRACE_S):
            ranks = _arrive(store, env, me, init_timeout_s, serves)
    except BenchError:
        raise
    except Exception as exc:
        raise BenchError(f"rendezvous failed: {first_line(exc)}") from None
    what = f"{backend} process group init ({env.world_size} ranks)"
    try:
        with watchdog.waiting(what, init_timeout_s):
            dist.init_process_group(
                backend,
                store=PrefixStore("pg/", store),
                rank=env.rank,
                world_size=env.world_size,
                timeout=dt.timedelta(seconds=op_timeout_s),
                device_id=device if backend == "nccl" else None,
            )
    except Exception as exc:
        raise BenchError(f"{what} failed: {first_line(exc)}") from None
    return Session(
        env, backend, device, store, ranks, watchdog, init_timeout_s, op_timeout_s, serves
    )


def close_session(session: Session) -> None:
    """Leave together: rank 0 keeps serving the store until every rank has checked out."""
    env = session.env
    with session.watchdog.waiting("teardown", session.op_timeout_s):
        dist.destroy_process_group()
        if env.world_size == 1:
            return
        session.store.add("done", 1)
        if session.serves_store:
            deadline = time.monotonic() + session.op_timeout_s
            while int(session.store.add("done", 0)) < env.world_size:
                if time.monotonic() > deadline:
                    break  # the results are out; a rank that left early changes nothing
                time.sleep(0.02)
            report_strangers(session.store, _warn(env))


def report_strangers(store: Any, warn: Callable[[str], None]) -> None:
    """Name the keys someone without the job's token wrote to the store this rank serves."""
    foreign = store.foreign_keys() if isinstance(store, AuthStore) else []
    if foreign:
        shown = ", ".join(repr(printable(k)) for k in foreign[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        warn(
            f"the store held {len(foreign)} keys outside this job's namespace ({shown}{more}): "
            "a process without the job's token (or a rank given another one) connected and "
            "wrote them; they were ignored"
        )


def gather_floats(session: Session, values: list[float], group: Any = None) -> list[list[float]]:
    """Every rank's values (float64), in rank order of the group."""
    t = torch.tensor(values, dtype=torch.float64, device=session.device)
    size = dist.get_world_size(group)
    out = [torch.empty_like(t) for _ in range(size)]
    dist.all_gather(out, t, group=group)
    return [o.tolist() for o in out]


def versions(backend: str) -> dict[str, str | None]:
    """torch, CUDA, NCCL and Python versions, and the NCCL/gloo variables set."""
    nccl = None
    if backend == "nccl":
        v = torch.cuda.nccl.version()
        nccl = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    out: dict[str, str | None] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "nccl": nccl,
        "python": platform.python_version(),
    }
    for name in sorted(os.environ):
        if name.startswith(("NCCL_", "TORCH_NCCL_", "GLOO_")) or name == "CUDA_VISIBLE_DEVICES":
            out[name] = os.environ[name]
    return out


@dataclass
class Joined:
    """A rank that has joined the world: what a sweep or a pair search runs on."""

    env: RankEnv
    hooks: Hooks
    watchdog: Watchdog
    session: Session


def join_world(
    environ: Mapping[str, str],
    node_id_option: str | None,
    backend: str,
    init_timeout_s: float,
    op_timeout_s: float,
) -> Joined:
    """This rank's environment, test hooks, watchdog and process group, started in that order
    (the hooks may act before rendezvous; the watchdog must run before anything can block)."""
    env = rank_env(environ)
    token = job_token(environ, env.world_size)
    node = resolve_node_id(node_id_option, environ, env)
    hooks = Hooks.from_env(environ, env.rank, node)
    hooks.before_rendezvous()
    watchdog = Watchdog(f"rank {env.rank}")
    session = open_session(env, backend, node, init_timeout_s, op_timeout_s, watchdog, token)
    return Joined(env, hooks, watchdog, session)
