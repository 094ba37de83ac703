"""Counted nouns in messages: "1 report", "2 reports", "90,473 reports"."""

from __future__ import annotations


def count(n: int, singular: str, plural: str | None = None) -> str:
    """`n` with the noun in the number it takes (thousands separated)."""
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"
