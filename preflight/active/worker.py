"""One active test on one GPU (or, for p2p, on all of them): run in a child process.

Started by preflight.active.child through preflight.isolated. Reads one JSON request on stdin:
`{"test": "copy"|"gemm"|"burn"|"p2p", "kind": "cuda"|"cpu", "index": I, "devices": N,
"params": {...}, "hooks": {...}}` and prints one JSON record on stdout. Before each step it
writes `@step NAME` on stderr, so the parent can name the step a hung GPU stopped in.
GB = 1e9 bytes; TFLOPS = 1e12 floating-point operations per second (a multiply-add is 2).
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
from typing import Any

from preflight.active.clocks import ClockSampler

STEP_PREFIX = "@step "


def step(name: str) -> None:
    sys.stderr.write(f"{STEP_PREFIX}{name}\n")
    sys.stderr.flush()


class Worker:
    """The torch side of one request."""

    def __init__(self, request: dict[str, Any]) -> None:
        import torch

        self.torch = torch
        self.request = request
        self.kind = str(request.get("kind", "cuda"))
        self.index = int(request.get("index", 0))
        self.params: dict[str, Any] = dict(request.get("params") or {})
        self.hooks: dict[str, Any] = dict(request.get("hooks") or {})
        if self.kind == "cpu":
            torch.set_num_threads(1)
        elif not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device (torch.cuda.is_available() is False)")

    # -- devices and hooks -----------------------------------------------------------------------
    def device(self, index: int | None = None) -> Any:
        i = self.index if index is None else index
        return self.torch.device("cpu") if self.kind == "cpu" else self.torch.device("cuda", i)

    def describe(self, index: int | None = None) -> dict[str, Any]:
        i = self.index if index is None else index
        if self.kind == "cpu":
            return {"index": i, "kind": "cpu", "name": "torch CPU device (test only)"}
        props = self.torch.cuda.get_device_properties(i)
        bus = getattr(props, "pci_bus_id", None)
        domain = getattr(props, "pci_domain_id", None)
        dev = getattr(props, "pci_device_id", None)
        bdf = f"{domain:04x}:{bus:02x}:{dev:02x}.0" if None not in (bus, domain, dev) else None
        return {"index": i, "kind": "cuda", "name": props.name, "bdf": bdf}

    def sync(self, index: int | None = None) -> None:
        if self.kind != "cpu":
            self.torch.cuda.synchronize(self.device(index))

    def slow(self, key: str) -> None:
        seconds = float(self.hooks.get("slow", {}).get(key, 0.0))
        if seconds:
            time.sleep(seconds)

    def maybe_hang(self, test: str) -> None:
        hang = self.hooks.get("hang")
        if hang and hang.get("test") == test and hang.get("device") == str(self.index):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(3600)

    def timed(self, func: Any, iters: int, slow_key: str, index: int | None = None) -> float:
        """Seconds per iteration of func (after one warm-up), synchronised on the device."""
        func()
        self.sync(index)
        start = time.perf_counter()
        for _ in range(iters):
            func()
        self.sync(index)
        self.slow(slow_key)
        return max(time.perf_counter() - start, 1e-9) / iters

    # -- tests -----------------------------------------------------------------------------------
    def copy(self) -> dict[str, Any]:
        torch = self.torch
        nbytes = int(self.params.get("bytes", 1 << 28))
        iters = int(self.params.get("iters", 10))
        step("allocate")
        pin = self.kind != "cpu"
        host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pin)
        dev = torch.empty(nbytes, dtype=torch.uint8, device=self.device())
        dev2 = torch.empty(nbytes, dtype=torch.uint8, device=self.device())
        key = str(self.index)
        step("h2d")
        h2d = self.timed(lambda: dev.copy_(host, non_blocking=True), iters, key)
        step("d2h")
        d2h = self.timed(lambda: host.copy_(dev, non_blocking=True), iters, key)
        step("d2d")
        d2d = self.timed(lambda: dev2.copy_(dev), iters, key)
        return {
            **self.describe(),
            "bytes": nbytes,
            "iters": iters,
            "pinned": pin,
            "h2d_gbps": nbytes / h2d / 1e9,
            "d2h_gbps": nbytes / d2h / 1e9,
            # a device-local copy reads and writes every byte (bandwidthTest's convention)
            "d2d_gbps": 2 * nbytes / d2d / 1e9,
        }

    def _operands(self, n: int) -> tuple[Any, Any]:
        """The same BF16 inputs on every device: drawn on the CPU from a fixed seed."""
        torch = self.torch
        gen = torch.Generator().manual_seed(int(self.params.get("seed", 1234)))
        a = torch.randn(n, n, generator=gen).to(torch.bfloat16).to(self.device())
        b = torch.randn(n, n, generator=gen).to(torch.bfloat16).to(self.device())
        return a, b

    def gemm(self) -> dict[str, Any]:
        n = int(self.params.get("n", 8192))
        iters = int(self.params.get("iters", 20))
        step("operands")
        a, b = self._operands(n)
        step("matmul")
        per = self.timed(lambda: a @ b, iters, str(self.index))
        step("checksum")
        out = (a @ b).contiguous().cpu()
        if self.hooks.get("corrupt") == str(self.index):
            flat = out.view(self.torch.int16).view(-1)
            flat[0] ^= 1
        digest = hashlib.sha256(bytes(out.view(self.torch.uint8).untyped_storage())).hexdigest()
        return {
            **self.describe(),
            "n": n,
            "dtype": "bfloat16",
            "iters": iters,
            "tflops": 2 * n**3 / per / 1e12,
            "sha256": digest,
            "fp8": self.gemm_fp8(a, b, n, iters),
        }

    def fp8_unsupported(self) -> str | None:
        """Why this device cannot run an FP8 GEMM, or None. FP8 tensor cores start with compute
        capability 8.9 (Ada, Hopper and later; CUDA programming guide)."""
        torch = self.torch
        if self.kind == "cpu":
            return "not supported on the torch CPU device (test only)"
        if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
            return f"not supported by torch {torch.__version__} (no float8_e4m3fn/_scaled_mm)"
        major, minor = torch.cuda.get_device_capability(self.index)
        if (major, minor) < (8, 9):
            name = torch.cuda.get_device_name(self.index)
            return f"not supported on {name} (compute capability {major}.{minor} < 8.9)"
        return None

    def gemm_fp8(self, a: Any, b: Any, n: int, iters: int) -> dict[str, Any]:
        """The same product in FP8 (e4m3, scale 1, BF16 output) where the GPU supports it."""
        why = self.fp8_unsupported()
        if why is None and n % 16:
            why = f"n={n} is not a multiple of 16 (torch._scaled_mm)"
        if why is not None:
            return {"supported": False, "reason": why}
        torch = self.torch
        step("fp8 operands")
        a8 = a.to(torch.float8_e4m3fn)
        b8 = b.t().contiguous().to(torch.float8_e4m3fn).t()  # _scaled_mm wants B column-major
        one = torch.tensor(1.0, device=self.device())

        def product() -> Any:
            out = torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
            return out[0] if isinstance(out, tuple) else out  # torch < 2.5 returned (out, amax)

        step("fp8 matmul")
        per = self.timed(product, iters, str(self.index))
        step("fp8 checksum")
        out = product().contiguous().cpu()
        if self.hooks.get("corrupt") == str(self.index):
            out.view(torch.int16).view(-1)[0] ^= 1
        digest = hashlib.sha256(bytes(out.view(torch.uint8).untyped_storage())).hexdigest()
        return {"supported": True, "tflops": 2 * n**3 / per / 1e12, "sha256": digest}

    def burn(self) -> dict[str, Any]:
        n = int(self.params.get("n", 8192))
        duration = float(self.params.get("duration_s", 30.0))
        window = max(0.05, float(self.params.get("window_s", 2.0)))
        step("operands")
        a, b = self._operands(n)
        c = a @ b
        self.sync()
        step("nvml")
        me = self.describe()
        standin = (self.hooks.get("nvml") or {}).get(str(self.index))
        sampler = ClockSampler(self.kind, me.get("bdf"), standin)
        step("burn")
        windows: list[float] = []
        end = time.perf_counter() + duration
        while time.perf_counter() < end or not windows:
            start, count = time.perf_counter(), 0
            while time.perf_counter() - start < window:
                self.torch.matmul(a, b, out=c)
                count += 1
                if count % 8 == 0:
                    self.sync()
            self.sync()
            sampler.sample()  # under load: the clocks the GPU holds while it computes
            self.slow(str(self.index))
            windows.append(2 * n**3 * count / (time.perf_counter() - start) / 1e12)
        return {
            **me,
            "n": n,
            "duration_s": duration,
            "window_tflops": windows,
            "clocks": sampler.record(),
        }

    def p2p(self) -> dict[str, Any]:
        torch = self.torch
        devices = int(self.request.get("devices", 1))
        nbytes = int(self.params.get("bytes", 1 << 28))
        iters = int(self.params.get("iters", 10))
        step("allocate")
        bufs = [
            torch.empty(nbytes, dtype=torch.uint8, device=self.device(i)) for i in range(devices)
        ]
        pairs = []
        for src in range(devices):
            for dst in range(devices):
                if src == dst:
                    continue
                step(f"copy {src}->{dst}")
                access = (
                    None
                    if self.kind == "cpu"
                    else bool(torch.cuda.can_device_access_peer(dst, src))
                )
                per = self.timed(
                    lambda s=src, d=dst: bufs[d].copy_(bufs[s], non_blocking=True),
                    iters,
                    f"{src}+{dst}",
                    src,
                )
                self.sync(dst)
                pairs.append({"src": src, "dst": dst, "gbps": nbytes / per / 1e9, "peer": access})
        return {
            "devices": [self.describe(i) for i in range(devices)],
            "bytes": nbytes,
            "iters": iters,
            "pairs": pairs,
        }


def main() -> int:
    try:
        request = json.loads(sys.stdin.read() or "{}")
        if not isinstance(request, dict):
            raise ValueError("the request is not a JSON object")
        test = str(request.get("test"))
        if test not in ("copy", "gemm", "burn", "p2p"):
            raise ValueError(f"unknown test {test!r}")
        step("import torch")
        worker = Worker(request)
        step(test)
        worker.maybe_hang(test)
        record = getattr(worker, test)()
    except Exception as exc:
        sys.stderr.write(f"error: {type(exc).__name__}: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(record))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
