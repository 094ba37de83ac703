"""Loaded kernel modules (/proc/modules) and their versions (/sys/module/<name>/version)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from preflight.errors import HostReadError
from preflight.host import Host

PROC_MODULES = "/proc/modules"
# Module names are C identifiers (the kernel turns '-' into '_'); anything else is not a name
# and never becomes part of a path.
_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


@dataclass
class KernelModules:
    """Loaded modules by name with their state (Live, Loading, Unloading) and version.

    `version` holds /sys/module/<name>/version where the module declares MODULE_VERSION
    (out-of-tree drivers: nvidia, OFED's mlx5_core), None otherwise.
    """

    state: dict[str, str]
    version: dict[str, str | None] = field(default_factory=dict)
    readable: bool = True
    error: str | None = None

    @classmethod
    def read(cls, host: Host) -> KernelModules:
        try:
            text = host.read_text(PROC_MODULES)
        except HostReadError as exc:
            return cls({}, readable=False, error=exc.reason)
        if text is None:
            return cls({}, readable=False, error=f"{PROC_MODULES} does not exist")
        state = parse_proc_modules(text)
        version: dict[str, str | None] = {}
        for name in state:
            try:
                version[name] = host.read_line(f"/sys/module/{name}/version") or None
            except HostReadError:
                version[name] = None
        return cls(state, version)


def parse_proc_modules(text: str) -> dict[str, str]:
    """{name: state} from /proc/modules lines `name size refcount deps state address`."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and _NAME.match(fields[0]):
            out[fields[0]] = fields[4]
    return out
