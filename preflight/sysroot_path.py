"""Resolve a node's path under a root as the kernel would with that root as "/".

`walk` resolves over any tree that answers what each path is (a sysroot directory on disk, or a
profile held in memory); `confine` is that walk over a directory on this machine.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, MutableMapping

MAX_LINKS = 40
"""Symlinks followed while resolving one path, as the kernel's ELOOP limit."""

Resolved = tuple[tuple[str, ...], int]
"""A directory prefix's real components under the root, and the links followed to reach it."""

DIR, LINK, OTHER = "dir", "link", "other"
Probe = Callable[[tuple[str, ...]], "tuple[str, str | None] | None"]
"""What the real components name without following a last link: (DIR | LINK | OTHER, the
link's target for LINK), or None when nothing is there."""


def walk(
    probe: Probe,
    path: str,
    follow_last: bool = True,
    cache: MutableMapping[str, Resolved] | None = None,
) -> tuple[str, ...] | None:
    """The real components under the root that `path` names, or None when it does not exist.

    Resolves one component at a time: an absolute link target starts again at the root, and a
    `..` that would climb above the root, a loop or more than MAX_LINKS links makes the path not
    exist. Every component of the result but the last is a real directory, never a link.

    `cache` (one per tree) keeps each directory prefix of `path` once resolved: a profile's
    ~2,000 reads share a few hundred directories. It is only valid while the tree does not
    change.
    """
    if not path.startswith("/"):
        raise ValueError(f"Host paths are absolute, got {path!r}")
    names = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    start = 0
    if cache is not None:
        for count in range(len(names) - 1, 0, -1):
            hit = cache.get("/".join(names[:count]))
            if hit is not None:
                done, links, start = list(hit[0]), hit[1], count
                break
    for index in range(start, len(names)):
        last = index == len(names) - 1
        todo = [names[index]]
        while todo:
            part = todo.pop()
            if part == ".":
                continue
            if part == "..":
                if not done:
                    return None  # above the root: outside, so not there
                done.pop()
                continue
            found = probe((*done, part))
            if found is None:
                return None
            kind, target = found
            more = bool(todo) or not last
            if kind == LINK and (more or follow_last):
                links += 1
                if links > MAX_LINKS or target is None:
                    return None
                if target.startswith("/"):
                    done = []
                todo.extend(p for p in reversed(target.split("/")) if p)
                continue
            if more and kind != DIR:
                return None
            done.append(part)
        if cache is not None and not last:
            cache["/".join(names[: index + 1])] = (tuple(done), links)
    return tuple(done)


def confine(
    root: str,
    path: str,
    follow_last: bool = True,
    cache: MutableMapping[str, Resolved] | None = None,
) -> str | None:
    """The real path under the directory `root` that `path` names (`walk` with lstat and
    readlink), or None when it does not exist. Every component of the result but the last is a
    real directory, never a link, so the result can be opened with O_NOFOLLOW and nothing
    outside the root is reached. `cache` is only valid for a private 0700 sysroot that only
    root could change."""

    def probe(parts: tuple[str, ...]) -> tuple[str, str | None] | None:
        here = os.path.join(root, *parts)
        try:
            mode = os.lstat(here).st_mode
        except (OSError, ValueError):
            return None
        if stat.S_ISLNK(mode):
            try:
                return LINK, os.readlink(here)
            except OSError:
                return LINK, None
        return (DIR if stat.S_ISDIR(mode) else OTHER), None

    done = walk(probe, path, follow_last, cache)
    return None if done is None else os.path.join(root, *done)
