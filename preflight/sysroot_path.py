"""Resolve a node's path under a sysroot as the kernel would with the sysroot as "/"."""

from __future__ import annotations

import os
import stat
from collections.abc import MutableMapping

MAX_LINKS = 40
"""Symlinks followed while resolving one path, as the kernel's ELOOP limit."""

Resolved = tuple[tuple[str, ...], int]
"""A directory prefix's real components under the root, and the links followed to reach it."""


def confine(
    root: str,
    path: str,
    follow_last: bool = True,
    cache: MutableMapping[str, Resolved] | None = None,
) -> str | None:
    """The real path under `root` that `path` names, or None when it does not exist.

    Resolves one component at a time with lstat/readlink: an absolute link target starts again
    at the root, and a `..` that would climb above the root, a loop or more than MAX_LINKS links
    makes the path not exist. Every component of the result but the last is a real directory,
    never a link, so the result can be opened with O_NOFOLLOW and nothing outside the root is
    reached.

    `cache` (one per sysroot) keeps each directory prefix of `path` once resolved: a profile's
    ~2,000 reads share a few hundred directories, and resolving each again costs an lstat per
    component. It is only valid while the tree does not change: a private 0700 sysroot that
    only root could change.
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
            here = os.path.join(root, *done, part)
            try:
                mode = os.lstat(here).st_mode
            except (OSError, ValueError):
                return None
            more = bool(todo) or not last
            if stat.S_ISLNK(mode) and (more or follow_last):
                links += 1
                if links > MAX_LINKS:
                    return None
                try:
                    target = os.readlink(here)
                except OSError:
                    return None
                if target.startswith("/"):
                    done = []
                todo.extend(p for p in reversed(target.split("/")) if p)
                continue
            if more and not stat.S_ISDIR(mode):
                return None
            done.append(part)
        if cache is not None and not last:
            cache["/".join(names[: index + 1])] = (tuple(done), links)
    return os.path.join(root, *done)
