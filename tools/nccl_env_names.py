"""Regenerate preflight/inventory/nccl_names.json from NCCL's source.

    python tools/nccl_env_names.py /path/to/nccl.git [--ref REF]

`/path/to/nccl.git` is a clone (bare or not) of https://github.com/NVIDIA/nccl. The names NCCL
reads are collected from its C++ sources under src/ at REF (default HEAD):

* ``NCCL_PARAM(Name, "SUFFIX", default)``: an integer read with strtoll(str, NULL, 0) as
  ``NCCL_SUFFIX`` (src/include/param.h, src/misc/param.cc ncclLoadParam());
* ``DEFINE_NCCL_PARAM(var, type, NCCL_KEY, ...)``: the typed parameters of src/include/param/;
* a ``"NCCL_KEY"`` literal passed to ncclGetEnv(), getenv() or ncclGetLevel().

The same extraction over the last release of every minor version since 2.3 gives, for each name,
the first and last release that read it; a name no longer read at REF is "removed". Deprecated
names (still read, superseded) are the DEPRECATED table below, each checked against the comment
NCCL's source carries for it, so a newer NCCL that drops the comment fails loudly. The value
grammars (algorithm, protocol, path-level and socket-family names) are read from their tables
in the source too.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "preflight" / "inventory" / "nccl_names.json"
SOURCE_SUFFIXES = (".cc", ".cu", ".h", ".c", ".cpp")

_PARAM_RE = re.compile(r'NCCL_PARAM\(\s*\w+\s*,\s*"([A-Z0-9_]+)"\s*,\s*([^)]*?)\)')
_DEFINE_RE = re.compile(r"DEFINE_NCCL_PARAM\(\s*\w+\s*,\s*[^,]+,\s*(NCCL_[A-Z0-9_]+)\s*,")
_CALL_RE = re.compile(r"\b(?:ncclGetEnv|getenv|std::getenv|ncclGetLevel)\s*\(([^;]*?)\)", re.S)
_LITERAL_RE = re.compile(r'"(NCCL_[A-Z0-9_]+)"')

# name -> (replacement, file, text that must be in that file at REF: NCCL's own word for it)
DEPRECATED = {
    "NCCL_MIN_NRINGS": ("NCCL_MIN_NCHANNELS", "src/graph/connect.cc", "// Legacy naming"),
    "NCCL_MAX_NRINGS": ("NCCL_MAX_NCHANNELS", "src/graph/connect.cc", "// Legacy naming"),
    "NCCL_CHECK_POINTERS": ("NCCL_CHECK_MODE", "src/init.cc", "@deprecated: use NCCL_CHECK_MODE"),
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def sources(repo: Path, ref: str) -> dict[str, str]:
    files = git(repo, "ls-tree", "-r", "--name-only", ref, "--", "src").split()
    wanted = [f for f in files if f.endswith(SOURCE_SUFFIXES)]
    return {f: git(repo, "show", f"{ref}:{f}") for f in wanted}


def names_in(texts: dict[str, str]) -> dict[str, dict[str, str]]:
    """name -> {"kind": "integer" | "typed" | "string", "default": …} read by this source."""
    found: dict[str, dict[str, str]] = {}
    for text in texts.values():
        for m in _PARAM_RE.finditer(text):
            found.setdefault(
                "NCCL_" + m.group(1), {"kind": "integer", "default": m.group(2).strip()}
            )
        for m in _DEFINE_RE.finditer(text):
            found.setdefault(m.group(1), {"kind": "typed"})
        for m in _CALL_RE.finditer(text):
            for lit in _LITERAL_RE.findall(m.group(1)):
                found.setdefault(lit, {"kind": "string"})
    return found


def releases(repo: Path) -> list[tuple[str, str]]:
    """(version, tag) of the last release of each minor version since 2.3 (the first tag)."""
    tags = git(repo, "tag", "--list", "v2.*-1").split()
    best: dict[tuple[int, int], tuple[tuple[int, int, int], str]] = {}
    for tag in tags:
        m = re.fullmatch(r"v2\.([0-9]+)\.([0-9]+)-1", tag)
        if not m or int(m.group(1)) < 3:
            continue
        key = (2, int(m.group(1)))
        version = (2, int(m.group(1)), int(m.group(2)))
        if key not in best or version > best[key][0]:
            best[key] = (version, tag)
    return [(".".join(map(str, v)), t) for _, (v, t) in sorted(best.items())]


def table(text: str, name: str) -> list[str]:
    m = re.search(re.escape(name) + r"\[[^\]]*\]\s*=\s*\{([^}]*)\}", text)
    if m is None:
        raise SystemExit(f"table {name} not found")
    return re.findall(r'"([^"]*)"', m.group(1))


def grammars(texts: dict[str, str]) -> dict[str, list[str]]:
    init, topo = texts["src/init.cc"], texts["src/graph/topo.cc"]
    socket = texts["src/misc/socket.cc"]
    levels = table(topo, "topoPathTypeStr")
    families = re.findall(r'strcmp\(env, "(AF_INET6?)"\)', socket)
    if not families:
        raise SystemExit("NCCL_SOCKET_FAMILY values not found in src/misc/socket.cc")
    return {
        "algorithms": table(init, "ncclAlgoStr"),
        "protocols": table(init, "ncclProtoStr"),
        "functions": table(init, "ncclFuncStr"),
        # ncclGetLevel() accepts the path types up to SYS, or old numbers (a leading digit).
        "levels": levels[: levels.index("SYS") + 1],
        "socket_families": families,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", type=Path)
    ap.add_argument("--ref", default="HEAD")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    repo: Path = args.repo
    texts = sources(repo, args.ref)
    version_mk = git(repo, "show", f"{args.ref}:makefiles/version.mk")
    parts = [
        re.search(rf"NCCL_{k}\s*:=\s*([0-9]+)", version_mk) for k in ("MAJOR", "MINOR", "PATCH")
    ]
    version = ".".join(m.group(1) for m in parts if m)
    commit = git(repo, "rev-parse", args.ref).strip()
    current = names_in(texts)
    history: dict[str, list[str]] = {}
    for rel, tag in releases(repo):
        for name in names_in(sources(repo, tag)):
            history.setdefault(name, []).append(rel)
    for name, (_, path, needle) in DEPRECATED.items():
        if needle not in texts.get(path, "") or name not in current:
            raise SystemExit(f"{name}: {path} no longer says {needle!r}; review DEPRECATED")
    names: dict[str, dict[str, str | None]] = {}
    for name in sorted(set(current) | set(history)):
        seen = history.get(name, [version])
        entry: dict[str, str | None] = {"since": seen[0]}
        if name in current:
            entry.update(current[name])
            if name in DEPRECATED:
                entry["status"] = "deprecated"
                entry["use"] = DEPRECATED[name][0]
            else:
                entry["status"] = "current"
        else:
            entry["status"] = "removed"
            entry["last"] = seen[-1]
        names[name] = entry
    data = {
        "source": {
            "repository": "https://github.com/NVIDIA/nccl",
            "version": version,
            "commit": commit,
        },
        "grammars": grammars(texts),
        "names": names,
    }
    args.out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"{args.out}: {len(names)} names from NCCL {version} ({commit[:12]})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
