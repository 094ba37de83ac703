"""Programs started on the node (active-test workers, dcgmi, benchmark ranks, perftest): the
live machine runs them; a profile describes a node that is not here, so nothing can run on it."""

from __future__ import annotations

from typing import Protocol


class ProcessSource(Protocol):
    """Whether programs can be started on the node this Host reads."""

    def refused(self) -> str | None: ...


class LiveProcesses:
    """This machine: programs run here."""

    def refused(self) -> str | None:
        return None


class ProfileProcesses:
    """A profile's node: no program of it can run, and saying so is the answer."""

    def __init__(self, name: str) -> None:
        self.name = name

    def refused(self) -> str | None:
        return f"profile {self.name} describes a mocked node: programs run only on this machine"
