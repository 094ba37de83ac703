"""The environment the checks see: the process's (with --env overrides) or a profile's."""

from __future__ import annotations

from collections.abc import Iterator, Mapping


class Environment(Mapping[str, str]):
    """Environment variables, read by name or by a word their names contain.

    Readers ask for what they need (`get`, `names_containing`) rather than iterating, so a
    recording wrapper (preflight.sources.recording) keeps exactly the variables that were read.
    """

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Environment({len(self._values)} variables)"

    def names_containing(self, word: str) -> dict[str, str]:
        """Variables whose name contains `word`, in any case (`NCCL`: NCCL_* and typos of it)."""
        upper = word.upper()
        return {k: v for k, v in self._values.items() if upper in k.upper()}
