"""NVML: collected in a child process (preflight.nvml.probe) from the live driver or a profile.

This process never imports pynvml. A source collects once per run (`result`), and can take a
fresh record (`sample`) for a test that watches the GPUs while it runs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from preflight.nvml.probe import NvmlProbe, NvmlResult

DEFAULT_TIMEOUT_S = 5.0


class NvmlSource(Protocol):
    """What NVML answers on this node, within `timeout_s`."""

    timeout_s: float

    def start(self) -> None: ...

    @property
    def started(self) -> bool: ...

    def result(self) -> NvmlResult: ...

    def sample(self) -> NvmlResult: ...


class _ProbedNvml:
    """One child per run, started at most once; `section` None asks libnvidia-ml."""

    def __init__(self, section: Mapping[str, Any] | None, timeout_s: float) -> None:
        self.section = section
        self.timeout_s = timeout_s
        self._probe: NvmlProbe | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the child; returns at once."""
        from preflight.nvml.probe import NvmlProbe

        with self._lock:
            if self._probe is None:
                self._probe = NvmlProbe(self.section, self.timeout_s)
        self._probe.start()

    @property
    def started(self) -> bool:
        return self._probe is not None

    def result(self) -> NvmlResult:
        """What NVML answered (an NvmlRecord) or why there is no answer (an NvmlFailure)."""
        self.start()
        assert self._probe is not None
        return self._probe.result()

    def sample(self) -> NvmlResult:
        """A record taken now, by a child of its own."""
        from preflight.nvml.probe import NvmlProbe

        return NvmlProbe(self.section, self.timeout_s).result()


class LiveNvml(_ProbedNvml):
    """The node's libnvidia-ml, loaded by the child."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(None, timeout_s)


class ProfileNvml(_ProbedNvml):
    """A profile's `nvml` section, answered by the child's fake NVML."""

    def __init__(self, section: Mapping[str, Any], timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(dict(section), timeout_s)


class AbsentNvml:
    """No NVML to ask (a profile without an `nvml` section): every answer says why."""

    def __init__(self, reason: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.reason = reason
        self.timeout_s = timeout_s

    def start(self) -> None:
        return None

    @property
    def started(self) -> bool:
        return False

    def result(self) -> NvmlResult:
        from preflight.nvml.probe import NvmlFailure

        return NvmlFailure("absent", self.reason)

    def sample(self) -> NvmlResult:
        return self.result()
