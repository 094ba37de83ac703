"""Start Python children that import only the package this process runs, never the working dir.

`python -m X` and `python -c` put the working directory first on sys.path: a `preflight/` (or
`json/`, `torch/`) folder wherever root happens to `cd` would run as root. A child is therefore
started as `python -I <this file> CONFIG MODULE ARGS…`:

- `-I` (isolated mode, Python 3.4+): the script's directory, the working directory and the user
  site-packages are not on sys.path, and PYTHON* variables are ignored, so nothing but the
  standard library is imported before this file's `_boot` runs.
- `_boot` sets sys.path to the parent's sys.path without the working directory (so packages the
  parent found through PYTHONPATH or a virtualenv stay importable), loads `preflight` from the
  parent's own package directory (never by a path search), and runs MODULE as `__main__`.
- Of the PYTHON* variables that -I drops, the child keeps what changes its output: UTF-8 mode
  (`-X utf8`) and unbuffered streams (`-u`) as flags, PYTHONIOENCODING by reconfiguring the
  streams. PYTHONPATH is replaced by the parent's sys.path, and the sitecustomize module the
  parent ran at startup (if any) runs in the child too, loaded from its file; the others
  (warnings, hash seed, startup file) are not needed.
- A child never outlives its parent: on Linux it asks for SIGKILL when the parent dies
  (PR_SET_PDEATHSIG, checked against a parent that died before that), and a thread watches the
  parent's pid as well (the death signal is tied to the thread that forked, and is Linux-only).

This file runs as a script before `preflight` can be imported: it imports the standard library
only.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence

PARENT_POLL_S = 0.5
"""How often the child checks that its parent is still alive."""
PARENT_GONE_STATUS = 129
"""The child's exit status when its parent is gone (128 + SIGHUP: it lost its controller)."""
_PR_SET_PDEATHSIG = 1
_SIGKILL = 9


def command(module: str, args: Sequence[str] = (), *, site: bool = True) -> list[str]:
    """The argv that runs `python -m MODULE ARGS` isolated, with this process's preflight.

    `site=False` adds `-S`: the child skips the `site` module and the .pth files it runs (tens
    of milliseconds of CPU per start); sys.path is the parent's anyway. For a child that needs
    nothing a .pth file sets up (an import hook of an editable install): the NVML collector.
    """
    package = os.path.dirname(os.path.realpath(__file__))
    config = {
        "path": _inherited_path(),
        "package": package,
        "parent": os.getpid(),
        "module": module,
        "sitecustomize": _sitecustomize(),
    }
    flags = ["-I"] if site else ["-I", "-S"]
    if sys.flags.utf8_mode:
        flags += ["-X", "utf8"]
    if os.environ.get("PYTHONUNBUFFERED"):
        flags.append("-u")
    return [sys.executable, *flags, os.path.join(package, "isolated.py"), json.dumps(config), *args]


def _inherited_path() -> list[str]:
    """This process's sys.path without the working directory ('' or its absolute path)."""
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:  # the working directory was removed: no entry can be it
        cwd = None
    out = []
    for entry in sys.path:
        if not entry or not os.path.isabs(entry):
            continue  # '' and relative entries resolve against the working directory
        if cwd is not None and os.path.realpath(entry) == cwd:
            continue
        out.append(entry)
    return out


def _sitecustomize() -> str | None:
    """The file of the sitecustomize module this process loaded at startup, if any."""
    path = getattr(sys.modules.get("sitecustomize"), "__file__", None)
    return str(path) if path and os.path.isabs(path) else None


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the parent dies (Linux), and a thread that exits if it is already gone."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watcher thread below still ends the child
    if os.getppid() != parent:  # died before the death signal was armed
        os._exit(PARENT_GONE_STATUS)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                try:
                    os.write(2, f"preflight: error: parent process {parent} is gone\n".encode())
                finally:
                    os._exit(PARENT_GONE_STATUS)

    threading.Thread(target=watch, name="preflight-parent-watch", daemon=True).start()


def _stream_encoding() -> None:
    """PYTHONIOENCODING ('encoding[:errors]'), which -I ignores, applied to the streams."""
    value = os.environ.get("PYTHONIOENCODING", "")
    encoding, _, errors = value.partition(":")
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:
            continue
        try:
            if encoding:
                reconfigure(encoding=encoding)
            if errors:
                reconfigure(errors=errors)
        except (LookupError, ValueError):
            pass  # an unknown codec: keep the locale's, as Python itself would fail differently


def _load(name: str, path: str, package: str | None = None) -> None:
    """Import module `name` from exactly this file (a package's __init__.py when package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=None if package is None else [package]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"preflight: error: cannot load {name} from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def _boot(argv: list[str]) -> None:
    """Run as `python -I isolated.py CONFIG ARGS…`: the child's side of command()."""
    import runpy

    config = json.loads(argv[1])
    _die_with_parent(int(config["parent"]))
    _stream_encoding()
    sys.path[:] = [str(p) for p in config["path"]]
    custom = config.get("sitecustomize")
    loaded = getattr(sys.modules.get("sitecustomize"), "__file__", None)
    if custom and custom != loaded:  # the very file the parent ran at its startup, once
        _load("sitecustomize", str(custom))
    package = str(config["package"])  # os.path, not pathlib: ~5 ms less for every child
    _load("preflight", os.path.join(package, "__init__.py"), package)
    sys.argv = [str(config["module"]), *argv[2:]]
    runpy.run_module(str(config["module"]), run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _boot(sys.argv)
