"""`dcgmi diag -r N -j`: run it time-boxed and parse its JSON into per-test, per-GPU results.

dcgmi talks to the DCGM host engine (nv-hostengine), which runs the diagnostic (nvvs). Two JSON
shapes exist: DCGM 3.x puts everything under "DCGM GPU Diagnostic" → test_categories → tests →
results with "gpu_ids" or "gpu_id" (a number, a string "0", or "0,1,2" for the deployment
checks); DCGM 4.x uses the root "DCGM Diagnostic" and results with "entity_group"/"entity_id"
plus a per-test "test_summary" (NVIDIA DCGM 4.0 release notes, "breaking changes"). When the
diagnostic cannot start, `dcgmi diag -j` prints only {"DCGM Diagnostic": {"runtime_error": "Error:
Unable to complete diagnostic ... Return: (-34) : <errorString>", "version": ...}}
(dcgmi/Diag.cpp HelperDisplayFailureMessage). dcgmi's exit status is the negative dcgmReturn_t
as an unsigned byte (NVIDIA/DCGM issue #158: 226 = DCGM_ST_NVVS_ERROR −30; dcgm_structs.h:
DCGM_ST_IN_USE −34 → 222, DCGM_ST_DIAG_ALREADY_RUNNING −39 → 217, DCGM_ST_CONNECTION_NOT_VALID
−21 → 235).

"Could not run" (not installed, no host engine, GPUs in use, timeout) is never a hardware
failure: it comes back as a DcgmUnavailable with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from preflight.subproc import run_in_session

EXIT_IN_USE = 256 - 34  # DCGM_ST_IN_USE: the GPUs are in use by another client or process
EXIT_ALREADY_RUNNING = 256 - 39  # DCGM_ST_DIAG_ALREADY_RUNNING: another diagnostic holds the GPUs
EXIT_CONNECTION = 256 - 21  # DCGM_ST_CONNECTION_NOT_VALID: no host engine to talk to
IN_USE_TEXTS = (
    "DCGM_ST_IN_USE",
    "Return: (-34)",
    # errorString(DCGM_ST_IN_USE), dcgmlib/src/dcgm_errors.c; quoted from a real run in
    # NVIDIA/NVSentinel issue #1363
    "affected resource is in use",
    "are in use",
    "DCGM_ST_DIAG_ALREADY_RUNNING",
    "Return: (-39)",
    "A diag instance is already running",
)
ENGINE_TEXTS = ("nable to establish a connection", "nable to connect to host engine")
IN_USE_REASON = "the GPUs are in use (DCGM_ST_IN_USE): run it on an idle node"
MAX_OUTPUT = 32 << 20
STATUSES = {"pass": "pass", "fail": "fail", "warn": "warn", "skip": "skip", "not run": "skip"}


@dataclass(frozen=True)
class DcgmResult:
    """One test's verdict on one GPU (gpu None: a result for the whole group)."""

    category: str
    test: str
    gpu: int | None
    status: str  # pass, fail, warn, skip
    detail: str = ""


@dataclass(frozen=True)
class DcgmRun:
    version: str
    results: tuple[DcgmResult, ...]
    runtime_error: str = ""  # dcgmi's "runtime_error": the diagnostic did not run


@dataclass(frozen=True)
class DcgmUnavailable:
    """dcgmi could not judge the GPUs: `kind` is missing, engine, in_use, timeout or error."""

    kind: str
    reason: str


class DcgmParseError(ValueError):
    pass


def _status(raw: Any) -> str:
    text = str(raw or "").strip().lower()
    if text not in STATUSES:
        raise DcgmParseError(f"unknown status {raw!r}")
    return STATUSES[text]


def _gpus(result: Mapping[str, Any]) -> list[int | None]:
    if "entity_id" in result:
        group = str(result.get("entity_group", "GPU")).upper()
        eid = result["entity_id"]
        if not isinstance(eid, int) or isinstance(eid, bool):
            raise DcgmParseError(f"bad entity id {eid!r}")
        return [eid] if group == "GPU" else []
    raw = result.get("gpu_ids", result.get("gpu_id"))
    if isinstance(raw, bool):
        raise DcgmParseError(f"bad gpu id {raw!r}")
    if isinstance(raw, int):
        return [raw]
    if isinstance(raw, str):
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if parts and all(p.isdigit() and len(p) < 5 for p in parts):
            return [int(p) for p in parts]
    if raw is None:
        return [None]
    raise DcgmParseError(f"bad gpu id {raw!r}")


def _items(value: Any) -> list[Any]:
    """A JSON list, or nothing (a malformed section is left out, never iterated)."""
    return value if isinstance(value, list) else []


def _detail(result: Mapping[str, Any]) -> str:
    texts = []
    for key in ("warnings", "errors"):
        for w in _items(result.get(key)):
            if isinstance(w, Mapping):
                texts.append(str(w.get("warning") or w.get("message") or w.get("error") or ""))
            elif isinstance(w, str):
                texts.append(w)
    for key in ("warning", "info"):
        value = result.get(key)
        # 3.x writes one string, 4.x a list of strings
        texts += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
    return "; ".join(t.strip() for t in texts if t and t.strip())[:500]


def parse(text: str) -> DcgmRun:
    """The results in dcgmi's JSON (text before the first '{' is dropped: dcgmi may print a
    warning line first). Raises DcgmParseError on anything else."""
    start = text.find("{")
    if start < 0:
        raise DcgmParseError("no JSON object in the output")
    try:
        doc = json.loads(text[start:])
    except ValueError as exc:
        raise DcgmParseError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DcgmParseError("not a JSON object")
    root = doc.get("DCGM GPU Diagnostic", doc.get("DCGM Diagnostic"))
    if not isinstance(root, dict):
        raise DcgmParseError("no 'DCGM GPU Diagnostic' or 'DCGM Diagnostic' object")
    results: list[DcgmResult] = []
    for category in _items(root.get("test_categories")):
        if not isinstance(category, dict):
            continue  # dcgmi 3.x writes null between entries
        cat = str(category.get("category", ""))[:60]
        for test in _items(category.get("tests")):
            if not isinstance(test, dict):
                continue
            name = str(test.get("name", "?"))[:80]
            before = len(results)
            for result in _items(test.get("results")):
                if not isinstance(result, dict):
                    continue
                status = _status(result.get("status"))
                for gpu in _gpus(result):
                    results.append(DcgmResult(cat, name, gpu, status, _detail(result)))
            summary = test.get("test_summary")
            if len(results) == before and isinstance(summary, dict) and "status" in summary:
                # DCGM 4.x: a test that ran on no single GPU reports only its summary
                status = _status(summary.get("status"))
                results.append(DcgmResult(cat, name, None, status, _detail(summary)))
    meta = doc.get("metadata")
    version = root.get("version") or (meta.get("version") if isinstance(meta, dict) else "") or ""
    error = root.get("runtime_error")
    error_text = " ".join(error.split())[:500] if isinstance(error, str) else ""
    return DcgmRun(str(version)[:40], tuple(results), error_text)


def could_not_run(returncode: int | None, text: str) -> DcgmUnavailable | None:
    """The DcgmUnavailable that dcgmi's exit status or message means, or None (a result)."""
    if returncode in (EXIT_IN_USE, EXIT_ALREADY_RUNNING) or any(t in text for t in IN_USE_TEXTS):
        return DcgmUnavailable("in_use", IN_USE_REASON)
    if returncode == EXIT_CONNECTION or any(t in text for t in ENGINE_TEXTS):
        return DcgmUnavailable("engine", "the DCGM host engine is not running (nv-hostengine)")
    return None


def trusted_program(path: str) -> str | None:
    """Why `path` may not be run in place of dcgmi (None: it may). preflight runs as root, and an
    environment value that picks an executable is a way in: like ssh's StrictModes, the program
    must be an absolute path to a regular executable file owned by root or by this user, and
    neither it nor its folder writable by group or others."""
    if not os.path.isabs(path):
        return "not an absolute path"
    try:
        info = os.stat(path)
        folder = os.stat(os.path.dirname(path))
    except OSError as exc:
        return exc.strerror or "cannot stat it"
    if not stat.S_ISREG(info.st_mode) or not info.st_mode & stat.S_IXUSR:
        return "not an executable regular file"
    for what, st in (("it", info), ("its folder", folder)):
        if st.st_uid not in (0, os.geteuid()):
            return f"{what} is owned by uid {st.st_uid}, not root or this user"
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def run_diag(
    level: int, timeout_s: float, dcgmi: str | None = None, env: Mapping[str, str] | None = None
) -> DcgmRun | DcgmUnavailable:
    """Run `dcgmi diag -r LEVEL -j` in its own process group; killed (the group) at timeout_s."""
    path = dcgmi or shutil.which("dcgmi")
    if not path:
        return DcgmUnavailable("missing", "DCGM is not installed (no dcgmi on PATH)")
    start = time.monotonic()
    try:
        argv = [path, "diag", "-r", str(level), "-j"]
        done = run_in_session(argv, timeout_s, env, grace_s=0.5, max_output=MAX_OUTPUT)
    except OSError as exc:
        return DcgmUnavailable("error", f"cannot start {path}: {exc.strerror}")
    if done.timed_out:
        return DcgmUnavailable(
            "timeout", f"dcgmi diag -r {level} did not finish within {timeout_s:g} s (killed)"
        )
    if done.overflowed:
        return DcgmUnavailable(
            "error", f"dcgmi diag -r {level} printed more than {MAX_OUTPUT >> 20} MiB (killed)"
        )
    out, err, returncode = done.stdout, done.stderr, done.returncode
    text = out.decode(errors="replace")
    errtext = err[:65536].decode(errors="replace").strip()
    unavailable = could_not_run(returncode, f"{text}\n{errtext}")
    if unavailable is not None:
        return unavailable
    try:
        run = parse(text)
    except DcgmParseError as exc:
        last = (errtext or text).strip().splitlines()[-1:] or [""]
        return DcgmUnavailable(
            "error",
            f"dcgmi diag ended with status {returncode} after "
            f"{time.monotonic() - start:.0f} s and no readable result ({exc}): {last[0][:200]}",
        )
    if run.runtime_error and not run.results:
        return DcgmUnavailable("error", f"dcgmi diag could not run: {run.runtime_error[:300]}")
    return run


def by_gpu(results: Sequence[DcgmResult]) -> dict[int | None, list[DcgmResult]]:
    out: dict[int | None, list[DcgmResult]] = {}
    for r in results:
        out.setdefault(r.gpu, []).append(r)
    return out
