"""Close-match suggestions for error messages about unknown names (keys, check ids, profiles)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def _score(word: str, choice: str) -> tuple[bool, float]:
    # A name the word begins (`dgx-h100-acs` of `dgx-h100-acs-enabled`) is what a truncated or
    # half-remembered name means, ahead of a name merely similar in letters (`dgx-h100-roce`).
    prefix = len(word) >= 3 and choice.lower().startswith(word.lower())
    return prefix, difflib.SequenceMatcher(None, word, choice).ratio()


def ranked(word: str, choices: Iterable[str], cutoff: float = 0.6) -> list[str]:
    """Choices close to `word`, best first: those it is a prefix of, then by similarity."""
    scored = [(_score(word, c), c) for c in choices if c != word]
    close = [(s, c) for s, c in scored if s[0] or s[1] >= cutoff]
    return [c for _, c in sorted(close, key=lambda sc: (not sc[0][0], -sc[0][1], sc[1]))]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix when a close match exists."""
    close = ranked(word, choices)
    return f" (did you mean {close[0]!r}?)" if close else ""
