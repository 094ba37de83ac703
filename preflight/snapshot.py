"""`preflight snapshot`: capture what the checks read on this node into a replayable profile.

Every check runs against a recording Host. The profile then holds the content each file had
when a check first read it, each directory listing (entries nobody read become empty files,
symlinks or empty directories, so a replayed listing has the same names), every symlink met
along those paths, the limits, the sizes of the filesystems asked about, privilege, hostname,
the environment variables the checks asked for (by name, or by a word of their names), the
kernel log lines containing a word some reader searched for (other lines become empty strings)
and the NVML record. Nothing here lists what to keep: the recording Host
(preflight.sources.recording) kept what was read. `--mask`
replaces serial numbers, GUIDs, MACs, UUIDs and the hostname with placeholders that keep their
format.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from preflight.execute import RunOptions, execute
from preflight.host import UNLIMITED, Host
from preflight.model import Report
from preflight.outfile import write_output
from preflight.sources.files import FileSource
from preflight.sources.nvml import LiveNvml
from preflight.sources.recording import RecordingEnvironment, RecordingFiles

MAX_LINK_HOPS = 40


def capture(timeout_s: float = 10.0, nvml_timeout_s: float = 5.0) -> tuple[dict[str, Any], Report]:
    """Run every check on this machine through a recording Host: the profile of what they
    read, and the live run's report."""
    host = Host(nvml=LiveNvml(nvml_timeout_s)).recorded()
    report = execute(RunOptions(timeout_s=timeout_s, nvml_timeout_s=nvml_timeout_s), host=host)
    return profile_from(host), report


def profile_from(host: Host) -> dict[str, Any]:
    """The profile of what a recording Host (`Host.recorded()`) read, live or on a sysroot."""
    rec = host.recording
    if rec is None:
        raise ValueError("profile_from needs a recording Host (Host.recorded())")
    files = host.files
    if isinstance(files, RecordingFiles):
        files = files.inner  # what the tree is made of is no check's reading
    tree = _Tree(files)
    for path in sorted(rec.paths | set(rec.captured) | set(rec.listed)):
        tree.add(path, rec.captured.get(path))
    for path, entries in sorted(rec.listed.items()):
        canon = tree.canonical(path)
        if canon is None:
            continue
        for name in entries:
            tree.add_entry(os.path.join(canon, name))
    limits = {
        name: ["unlimited" if v == UNLIMITED else v for v in (lim.soft, lim.hard)]
        for name, lim in host.limits().items()
    }
    env = host.env.inner if isinstance(host.env, RecordingEnvironment) else host.env
    profile: dict[str, Any] = {
        "description": f"snapshot of {host.hostname}",
        "hostname": host.hostname,
        "privileged": host.privileged,
        "env": rec.environment(env),
        "limits": limits,
        "statvfs": {
            path: {"size_bytes": usage.size_bytes, "free_bytes": usage.free_bytes}
            for path, usage in sorted(rec.sizes.items())
            if usage is not None
        },
    }
    host.kernel_log(())  # readable or not, and how many lines, when no reader asked
    log = rec.kept_log()
    profile["kernel_log"] = False if log is None else log
    profile["files"] = dict(sorted(tree.files.items()))
    profile["symlinks"] = dict(sorted(tree.links.items()))
    parents = {os.path.dirname(p) for p in (*tree.files, *tree.links, *tree.dirs)}
    profile["dirs"] = sorted(tree.dirs - parents)  # the others are made as parents anyway
    if host.nvml_started:
        from preflight.nvml.probe import NvmlRecord

        result = host.nvml()
        if isinstance(result, NvmlRecord):
            profile["nvml"] = result.data
    return profile


def _encode(data: bytes) -> str | dict[str, Any]:
    if b"\0" not in data:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"hex": data.rstrip(b"\0").hex(), "size": len(data)}


class _Tree:
    """Files, symlinks and directories at their canonical paths on the node, as `files`
    (live, a sysroot or a profile in memory) shows them."""

    def __init__(self, files: FileSource) -> None:
        self.source = files
        self.files: dict[str, str | dict[str, Any]] = {}
        self.links: dict[str, str] = {}
        self.dirs: set[str] = set()

    def canonical(self, path: str, hops: int = 0) -> str | None:
        """The path with every symlink resolved, recording each link met; None if missing."""
        if hops > MAX_LINK_HOPS:
            return None
        current = "/"
        parts = [p for p in path.split("/") if p and p != "."]
        for i, part in enumerate(parts):
            if part == "..":
                current = os.path.dirname(current) or "/"
                continue
            candidate = os.path.join(current, part)
            kind = self.source.kind(candidate)
            if kind is None:
                return None
            if kind == "link":
                target = self.source.readlink(candidate)
                if target is None:
                    return None
                self.links[candidate] = target
                joined = os.path.normpath(os.path.join(current, target))
                resolved = self.canonical(joined, hops + 1)
                if resolved is None:
                    return None
                current = resolved
            else:
                current = candidate
            if i < len(parts) - 1:
                self.dirs.add(current)
        return current

    def add(self, path: str, content: bytes | None) -> None:
        canon = self.canonical(path)
        if canon is None or canon in self.files or not self.source.exists(canon):
            return
        if self.source.is_dir(canon):
            self.dirs.add(canon)
        elif content is not None:
            self.files[canon] = _encode(content)
        else:
            # Probed (exists, access) but not read: present, with no content.
            self.files[canon] = ""

    def add_entry(self, path: str) -> None:
        if path in self.files or path in self.links or path in self.dirs:
            return
        kind = self.source.kind(path)
        if kind == "link":
            target = self.source.readlink(path)
            if target is not None:
                self.links[path] = target
        elif kind == "dir":
            self.dirs.add(path)
        elif kind is not None:
            self.files[path] = ""


def write(profile: Mapping[str, Any], output: Path) -> int:
    """Write the profile as JSON (gzip-compressed when the name ends .gz); the bytes written."""
    data = json.dumps(profile, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    if output.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    write_output(output, data)
    return len(data)
