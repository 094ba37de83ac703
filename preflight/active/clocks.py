"""NVML samples of one GPU while the burn runs: SM clock, temperature, power, clock-event reasons.

Runs inside the burn worker (a child process), the only place besides the NVML collector child
that loads pynvml; the parent never imports this module. Each sample is a plain dict:
`{"t": s, "sm_mhz": int, "temp_c": int, "power_w": float, "reasons": int}` (any value may be
None when NVML cannot answer it). When nothing can be sampled (no pynvml, NVML fails, the
test-only CPU device) the record says so: `{"sampled": False, "reason": ...}`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

MAX_SAMPLES = 2000
CPU_REASON = "the test-only CPU device has no NVML"
STANDIN_SOURCE = "stand-in samples (test only, PREFLIGHT_ACTIVE_TEST_NVML)"


class ClockSampler:
    """Samples one GPU through NVML, or replays stand-in values on the test-only CPU device."""

    def __init__(self, kind: str, bdf: str | None, standin: Mapping[str, Any] | None) -> None:
        self.start = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self.reason = ""
        self.source = "nvml"
        self.standin: dict[str, Any] | None = None
        self.nvml: Any = None
        self.handle: Any = None
        if kind == "cpu":
            if standin:
                self.standin, self.source = dict(standin), STANDIN_SOURCE
            else:
                self.reason = CPU_REASON
            return
        if not bdf:
            self.reason = "CUDA reports no PCI address for this GPU"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByPciBusId(bdf)
            self.nvml = pynvml
        except ImportError:
            self.reason = "pynvml (nvidia-ml-py) is not installed"
        except Exception as exc:  # pynvml.NVMLError and what a broken driver raises
            self.reason = f"NVML: {type(exc).__name__}: {exc}"[:200]

    def sample(self) -> None:
        if len(self.samples) >= MAX_SAMPLES:
            return
        t = round(time.monotonic() - self.start, 3)
        if self.standin is not None:
            self.samples.append({"t": t, **self.standin})
        elif self.nvml is not None:
            self.samples.append({"t": t, **self._read()})

    def _read(self) -> dict[str, Any]:
        nvml, h = self.nvml, self.handle

        def ask(func: str, *args: Any) -> Any:
            try:
                return getattr(nvml, func)(h, *args)
            except Exception:  # one field NVML cannot answer does not end the sampling
                return None

        reasons = ask("nvmlDeviceGetCurrentClocksEventReasons")
        if reasons is None:  # drivers before 535 only have the older name of the same bitmask
            reasons = ask("nvmlDeviceGetCurrentClocksThrottleReasons")
        power = ask("nvmlDeviceGetPowerUsage")
        return {
            "sm_mhz": ask("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_SM),
            "temp_c": ask("nvmlDeviceGetTemperature", nvml.NVML_TEMPERATURE_GPU),
            "power_w": power / 1000 if isinstance(power, int) else None,
            "reasons": reasons,
        }

    def record(self) -> dict[str, Any]:
        if self.nvml is not None:
            with contextlib.suppress(Exception):
                self.nvml.nvmlShutdown()
        if self.reason:
            return {"sampled": False, "reason": self.reason}
        return {"sampled": True, "source": self.source, "samples": self.samples}
