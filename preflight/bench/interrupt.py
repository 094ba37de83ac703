"""A rank's reaction to SIGINT, SIGTERM and SIGHUP: stop, say what was measured, exit 128 + N.

The first of these signals raises BenchInterrupted in the main thread, where the sweep or the
pair search catches it and attaches what it has measured; later ones are ignored, so that
printing those rows is never cut short by a traceback (the SIGKILL of a launcher that stops
waiting still ends the rank). A collective that fails because a peer
rank stopped first is an interruption too when a signal was received (received()).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from preflight.bench.errors import BenchInterrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []


def received() -> int | None:
    """The first stop signal this process received, if any."""
    return _received[0] if _received else None


def _handler(signum: int, frame: Any) -> None:
    for sig in STOP_SIGNALS:
        # A Python no-op, not SIG_IGN: a signal that arrived together with this one (the
        # launcher's SIGTERM after a second Ctrl-C) is already pending, and Python reports a
        # pending signal whose handler became SIG_IGN as an OSError.
        signal.signal(sig, _ignore)
    _received.append(signum)
    raise BenchInterrupted(signum)


def _ignore(signum: int, frame: Any) -> None:
    """Later stop signals: the rank is already on its way out."""


def raise_on_stop_signals() -> None:
    """From now on, the first stop signal raises BenchInterrupted (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, _handler)
