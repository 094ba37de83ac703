"""Files of a profile, answered from memory: the tree `profile.materialize` would write.

A profile run reads ~2,000 files; writing them to a sysroot, reading them back through
lstat/open and removing them at exit cost ~230 ms of a ~1 s run. This source keeps the
validated profile's entries in dictionaries and answers every question as SysrootFiles
answers over the materialized tree: symlinks resolve with the root as "/" (preflight.
sysroot_path.walk, the resolver SysrootFiles uses), the same size limit applies per read,
and a hang entry ({"fifo": true}) blocks the reading thread as a FIFO with no writer does, so
the runner's timeout abandons it and `blocked_in` names the path.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

from preflight.errors import HostReadError
from preflight.sources.files import FileSource
from preflight.sysroot_path import DIR, LINK, OTHER, Resolved, walk

Parts = tuple[str, ...]


class _Dir:
    """A directory: its entries' names."""

    __slots__ = ("names",)

    def __init__(self) -> None:
        self.names: set[str] = set()


class _Link:
    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target


_NEVER = threading.Event()
"""Never set: a read of a hang entry waits on it for good, as open() of a FIFO nobody writes."""


def _parts(path: str) -> Parts:
    return tuple(path[1:].split("/")) if path != "/" else ()


class ProfileFiles(FileSource):
    """A validated profile's `files`, `symlinks` and `dirs`, held in memory.

    The entries must have passed profile.validate: one thing per path, nothing below a file
    or a link, no link that climbs out. Files are the profile's values (a string, a hex dict
    or a hang marker), encoded only when read.
    """

    def __init__(
        self,
        files: Mapping[str, Any],
        symlinks: Mapping[str, str],
        dirs: Iterable[str],
        name: str = "profile",
    ) -> None:
        super().__init__()
        self.root = f"(profile {name} in memory)"
        top = _Dir()
        self._nodes: dict[Parts, Any] = {(): top}
        # Directories first, then files, then links: the order materialize() creates them in.
        for path in dirs:
            parts = _parts(path)
            if parts not in self._nodes:
                self._add(parts, _Dir())
        for path, content in files.items():
            self._add(_parts(path), content)
        for path, target in symlinks.items():
            self._add(_parts(path), _Link(target))
        self._resolved: dict[str, Resolved] = {}

    def _add(self, parts: Parts, node: Any) -> None:
        self._nodes[parts] = node
        child = parts
        while child:
            parent = self._nodes.get(child[:-1])
            if parent is not None:
                parent.names.add(child[-1])
                return
            made = _Dir()
            made.names.add(child[-1])
            child = child[:-1]
            self._nodes[child] = made

    def _probe(self, parts: Parts) -> tuple[str, str | None] | None:
        node = self._nodes.get(parts)
        if node is None:
            return None
        if isinstance(node, _Dir):
            return DIR, None
        if isinstance(node, _Link):
            return LINK, node.target
        return OTHER, None

    def _resolve(self, path: str, follow_last: bool = True) -> Parts | None:
        return walk(self._probe, path, follow_last, self._resolved)

    def _node(self, path: str, follow_last: bool = True) -> Any:
        parts = self._resolve(path, follow_last)
        return None if parts is None else self._nodes[parts]

    # -- FileSource ------------------------------------------------------------------------
    def local(self, path: str, follow_last: bool = True) -> str | None:
        """The canonical path on the node (this source has no path on this machine)."""
        parts = self._resolve(path, follow_last)
        return None if parts is None else "/" + "/".join(parts)

    def _open(self, path: str, real: str) -> BinaryIO:
        node = self._nodes[_parts(real)]
        if isinstance(node, (_Dir, _Link)):
            raise HostReadError(path, "not a regular file")
        if isinstance(node, str):
            return io.BytesIO(node.encode("utf-8"))
        if list(node) == ["fifo"]:  # profile._is_fifo: {"fifo": true} and nothing else
            _NEVER.wait()  # a hung device: the runner abandons this thread at its timeout
        raw = bytes.fromhex(node["hex"])
        return io.BytesIO(raw + bytes(node.get("size", len(raw)) - len(raw)))

    def _list(self, real: str) -> list[str]:
        node = self._nodes[_parts(real)]
        if not isinstance(node, _Dir):
            raise NotADirectoryError(real)
        return list(node.names)

    def exists(self, path: str) -> bool:
        return self._resolve(path) is not None

    def is_dir(self, path: str) -> bool:
        return isinstance(self._node(path), _Dir)

    def realpath(self, path: str) -> str | None:
        return self.local(path)

    def readlink(self, path: str) -> str | None:
        """The target as the materialized tree stores it: an absolute target relative to the
        link's directory (materialize writes it so, to keep it under the sysroot)."""
        parts = self._resolve(path, follow_last=False)
        node = None if parts is None else self._nodes[parts]
        if not isinstance(node, _Link):
            return None
        if not node.target.startswith("/"):
            return node.target
        here = "/" + "/".join(parts or ())
        return os.path.relpath("/" + node.target.lstrip("/"), os.path.dirname(here))

    def access(self, path: str) -> bool:
        # The materialized tree is this process's own (files 0644, FIFOs 0600, directories
        # 0755): whatever exists there may be opened for reading and writing.
        return self.exists(path)

    def kind(self, path: str) -> str | None:
        node = self._node(path, follow_last=False)
        if node is None:
            return None
        return DIR if isinstance(node, _Dir) else LINK if isinstance(node, _Link) else OTHER
