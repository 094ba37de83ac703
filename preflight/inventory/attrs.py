"""Reading one sysfs attribute: a file that is absent is None, one that is unreadable or
malformed is None plus a recorded reason, so one bad device file never ends the run."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import TypeVar

from preflight.errors import HostReadError, ParseError
from preflight.host import Host

T = TypeVar("T")


def read_attr(
    host: Host,
    path: str,
    parse: Callable[[str], T],
    errors: MutableMapping[str, str],
    key: str,
) -> T | None:
    """The parsed value of the file at path; on failure the reason is stored in errors[key]."""
    try:
        text = host.read_line(path)
    except HostReadError as exc:
        errors[key] = exc.reason
        return None
    if text is None:
        return None
    try:
        return parse(text)
    except ParseError as exc:
        errors[key] = f"unparsable content {text[:40]!r}: {exc}"
        return None
