"""A rank's reaction to SIGINT, SIGTERM and SIGHUP: stop, say what was measured, exit 128 + N.

The first of these signals raises BenchInterrupted in the main thread, where the sweep or the
pair search catches it and attaches what it has measured; later ones are ignored, so that
printing those rows is never cut short by a traceback. A collective that fails because a peer
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
        signal.signal(sig, signal.SIG_IGN)
    _received.append(signum)
    raise BenchInterrupted(signum)


def raise_on_stop_signals() -> None:
    """From now on, the first stop signal raises BenchInterrupted (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, _handler)
