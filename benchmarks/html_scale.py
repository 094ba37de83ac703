"""The HTML fleet report at cluster scale: make N node reports (compare_scale's generator), write
`compare --format html`, and time opening the page in a real headless Chromium.

Usage: python benchmarks/html_scale.py [--nodes 12500] [--dir DIR] [--keep]

Prints the page's size, the compare wall time, the time from navigation until the page's script
has built its model and drawn the first rows (document.body.dataset.ready), the time to re-filter
all nodes (one keystroke's work) and to scroll to the last row, and Chromium's JS heap. Exits 1
when the page shows console errors or does not hold one row per node.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.chromium, benchmarks.*

from benchmarks.compare_scale import generate
from tests.chromium import Browser, binary

SETTLE = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=12500)
    parser.add_argument("--dir", type=Path, help="where to write the reports (default: a tmp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the reports afterwards")
    args = parser.parse_args()
    exe = binary()
    if exe is None:
        print("no Chromium on this machine (Debian: apt-get install chromium)")
        return 1
    root = args.dir or Path(tempfile.mkdtemp(prefix="preflight-html-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        generate(root, args.nodes)
        print(f"generated {args.nodes:,} reports in {time.perf_counter() - t0:.0f} s")
        page = root / "fleet.html"
        cmd = [sys.executable, "-m", "preflight", "compare", *map(str, root.glob("part-*"))]
        t0 = time.perf_counter()
        subprocess.run(
            [*cmd, "--format", "html", "--output", str(page), "--fail-on", "none"], check=True
        )
        print(
            f"compare --format html: {time.perf_counter() - t0:.2f} s wall, "
            f"page {page.stat().st_size / 2**20:.1f} MiB"
        )
        browser = Browser(exe, timeout=300)
        try:
            opened = browser.open(page.as_uri())
            rows = browser.evaluate("document.getElementById('heat').dataset.rows")
            t0 = time.perf_counter()
            browser.evaluate(
                "(f => { f.value = 'gpu-00'; f.dispatchEvent(new Event('input')); })"
                "(document.getElementById('filter'))"
            )
            browser.evaluate(SETTLE)
            filtered = time.perf_counter() - t0
            browser.evaluate(
                "(f => { f.value = ''; f.dispatchEvent(new Event('input')); })"
                "(document.getElementById('filter'))"
            )
            browser.evaluate(SETTLE)
            t0 = time.perf_counter()
            browser.evaluate(
                "(h => { h.scrollTop = h.scrollHeight; h.dispatchEvent(new Event('scroll')); })"
                "(document.getElementById('heat'))"
            )
            browser.evaluate(SETTLE)
            scrolled = time.perf_counter() - t0
            heap = browser.call("Runtime.getHeapUsage")["usedSize"]
            in_dom = browser.evaluate("document.querySelectorAll('#heat .row').length")
            errors = browser.errors()
        finally:
            browser.close()
        print(
            f"open until drawn: {opened:.2f} s; re-filter {args.nodes:,} nodes: "
            f"{filtered * 1e3:.0f} ms; scroll to the end: {scrolled * 1e3:.0f} ms; "
            f"JS heap {heap / 2**20:.0f} MiB; {rows} node rows in the model, {in_dom} in the DOM"
        )
        for e in errors:
            print(f"ERROR {e}")
        return 0 if not errors and rows == str(args.nodes) else 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
