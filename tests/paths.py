"""Where the tests' data lives: inside the repository, so the suite stands alone."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
# Real-hardware captures (public dumps and tool outputs); provenance in CAPTURES / "INDEX.md".
CAPTURES = DATA / "captures"
