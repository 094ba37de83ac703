"""Numeric command-line values, checked where they are parsed: finite, in range, one line.

Every float and count option of every command parses through `Bounded`: `nan`, `inf`, `1e308`
or `-1` seconds are usage errors (exit 2) before anything runs, never a traceback from deep
inside a timer that could not take them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WEEK_S = 7 * 24 * 3600.0
"""The longest time bound any option accepts: longer than any check or job, small enough for
every timer and `time.monotonic() + bound` to stay exact."""


@dataclass(frozen=True)
class Bounded:
    """A typer `parser=`: the text as a finite float (or int) between low and high.

    low/high are inclusive unless low_open/high_open; the ValueError's text is the message the
    top level prints after the option's name.
    """

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    unit: str = ""

    def __call__(self, value: object) -> float | int:
        kind = "an integer" if self.integer else "a number"
        try:
            number: float | int = _integer(value) if self.integer else float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"must be {kind} ({self.describe()}), got {value!r}") from None
        if not math.isfinite(number) or not self.contains(number):
            raise ValueError(f"must be {self.describe()}, got {value!r}")
        return number

    def contains(self, number: float) -> bool:
        """number within the bounds."""
        above = number > self.low if self.low_open else number >= self.low
        below = number < self.high if self.high_open else number <= self.high
        return above and below

    def describe(self) -> str:
        """`positive and at most 604800 s`, `above 1 and at most 1024`, `between 0 and 1`."""
        unit = f" {self.unit}" if self.unit else ""
        if self.low == 0 and self.low_open:
            low = "positive"
        elif self.low == 0:
            low = "at least 0"
        else:
            low = f"{'above' if self.low_open else 'at least'} {self.low:g}"
        high = f"{'below' if self.high_open else 'at most'} {self.high:g}{unit}"
        return f"{low} and {high}"


def _integer(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if len(text) > 20:  # int() of thousands of digits is slow, and no count needs them
        raise ValueError(value)
    return int(text)


SECONDS = Bounded(0.0, WEEK_S, low_open=True, unit="s")
"""A timeout or deadline."""
GBPS = Bounded(0.0, 1e6, unit="GB/s")
"""A bandwidth floor (0 allowed: no floor)."""
POSITIVE_GBPS = Bounded(0.0, 1e6, low_open=True, unit="GB/s")
"""A bandwidth bound to compare with."""
STEP_FACTOR = Bounded(1.0, 1024.0, low_open=True)
"""Each size of a sweep is the previous × this."""
RATIO = Bounded(0.0, 1.0, low_open=True, high_open=True)
"""A share strictly between 0 and 1."""
RANKS = Bounded(1, 4096, integer=True)
"""Processes to start on one node."""
ITERATIONS = Bounded(1, 1_000_000, integer=True)
"""Timed repetitions."""
WARMUP = Bounded(0, 1_000_000, integer=True)
"""Untimed repetitions."""
ROUNDS = Bounded(1, 100_000, integer=True)
"""Rounds of pair tests."""
JOBS = Bounded(1, 1024, integer=True)
"""Worker processes."""
