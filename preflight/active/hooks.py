"""Test-only switches of the active tests, read from the environment the checks see.

An operator never sets them. They exist so the scheduling, deadlines, peer statistics and
checksum comparison run for real on a machine without a GPU:

- PREFLIGHT_ACTIVE_TEST_DEVICE=cpu   run the workers on torch's CPU device (tiny sizes), on this
  machine or on a profile, instead of on the node's GPUs. Test only: CPU figures mean nothing.
- PREFLIGHT_ACTIVE_TEST_DEVICES=N    how many CPU "GPUs" (worker processes) to start (default 2).
- PREFLIGHT_ACTIVE_TEST_SLOW="I:S[;J:S]"  worker of device I sleeps S seconds inside every timed
  region: a slow GPU among fast peers. "I+J:S" slows only the pair I→J of the P2P test.
- PREFLIGHT_ACTIVE_TEST_CORRUPT="I"  device I flips one bit of its GEMM output before hashing:
  silent data corruption.
- PREFLIGHT_ACTIVE_TEST_DCGMI=PATH  run this program instead of `dcgmi` (tests: the stand-in
  tests/standins/dcgmi replays real outputs), even on a machine or profile without GPUs. As root
  an environment value that names a program is a way in, so it is honoured only for an absolute
  path to an executable regular file that root or this user owns and that neither it nor its
  folder lets group or others write (preflight.active.dcgm.trusted_program); otherwise
  dcgm.diag is an ERROR saying why, and nothing runs.
- PREFLIGHT_ACTIVE_TEST_HANG="I:TEST"  device I's worker hangs (sleeps, deaf to SIGTERM) at the
  start of TEST (copy, p2p, gemm, burn): a wedged GPU that the deadline must abandon.
- PREFLIGHT_ACTIVE_TEST_NVML="I:sm=1980,temp=70,power=690,reasons=0x40[;J:...]"  on the CPU
  device, burn worker I records these values as its NVML samples (a stand-in, named so in the
  record): a GPU that holds a low clock or slows down. Without it the CPU device records its
  clocks as not sampled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEVICE = "PREFLIGHT_ACTIVE_TEST_DEVICE"
DEVICES = "PREFLIGHT_ACTIVE_TEST_DEVICES"
SLOW = "PREFLIGHT_ACTIVE_TEST_SLOW"
CORRUPT = "PREFLIGHT_ACTIVE_TEST_CORRUPT"
HANG = "PREFLIGHT_ACTIVE_TEST_HANG"
NVML = "PREFLIGHT_ACTIVE_TEST_NVML"
NVML_KEYS = {"sm": "sm_mhz", "temp": "temp_c", "power": "power_w", "reasons": "reasons"}
DCGMI = "PREFLIGHT_ACTIVE_TEST_DCGMI"
MAX_TEST_DEVICES = 8


def test_device(env: Mapping[str, str]) -> str | None:
    """'cpu' when the test-only device is asked for, else None (an unknown value is ignored)."""
    return "cpu" if env.get(DEVICE, "").strip().lower() == "cpu" else None


def test_device_count(env: Mapping[str, str]) -> int:
    """CPU workers to start: PREFLIGHT_ACTIVE_TEST_DEVICES within 1..8, else 2."""
    try:
        n = int(env.get(DEVICES, "2"))
    except ValueError:
        return 2
    return min(max(n, 1), MAX_TEST_DEVICES)


def for_worker(env: Mapping[str, str]) -> dict[str, Any]:
    """The hook values handed to every worker in its request (workers never read env)."""
    slow: dict[str, float] = {}
    for item in filter(None, env.get(SLOW, "").split(";")):
        who, _, seconds = item.rpartition(":")
        try:
            slow[who.strip()] = max(0.0, min(float(seconds), 60.0))
        except ValueError:
            continue
    who, _, test = env.get(HANG, "").partition(":")
    return {
        "slow": slow,
        "corrupt": env.get(CORRUPT, "").strip(),
        "hang": {"device": who.strip(), "test": test.strip()} if test else None,
        "nvml": nvml_standin(env.get(NVML, "")),
    }


def nvml_standin(text: str) -> dict[str, dict[str, float | int]]:
    """PREFLIGHT_ACTIVE_TEST_NVML parsed: device → sample values (malformed parts are ignored)."""
    out: dict[str, dict[str, float | int]] = {}
    for item in filter(None, text[:2000].split(";")):
        who, _, values = item.partition(":")
        sample: dict[str, float | int] = {}
        for pair in values.split(","):
            key, _, raw = pair.partition("=")
            name = NVML_KEYS.get(key.strip())
            try:
                number = int(raw, 0) if name == "reasons" else float(raw)
            except ValueError:
                continue
            if name is not None and 0 <= number < 1 << 40:
                sample[name] = number
        if who.strip().isdigit() and sample:
            out[who.strip()] = sample
    return out
