#!/bin/sh
# The one command to run on a node with RDMA NICs to prove `preflight bench rdma` on the real path:
# perftest loopback on every active HCA port, in host memory and with GPUDirect from the GPU
# nearest each HCA (peermem, then DMA-BUF), then latency. Needs root (or memlock) and perftest.
#
#   sudo sh tools/rdma_check.sh [OUTDIR]      # writes OUTDIR/*.json and prints the tables
#
# What to look for:
#   * every "host" row: avg Gb/s ≥ 90% of line (NDR 400: ≥ 360; aznhc expects 380 with GPUDirect);
#   * "cuda" rows close to "host" rows; a cuda row far below its host row is the GPUDirect path
#     (nvidia-peermem not loaded, ACS redirecting peer traffic, GPU and NIC across sockets);
#   * "cuda-dmabuf" rows: the same path without nvidia-peermem (kernel ≥ 5.12, open GPU driver);
#   * no "error" row: an error names the HCA and what perftest said (no device, no connection,
#     killed at the timeout);
#   * latency rows: write_lat typical ~1-2 µs on IB/RoCE back to back; p99.9 far above typical
#     with a CPU-frequency warning means the CPU governor, not the fabric.
# Exit status: 0 when every run passed, else the first failing step's status.
set -u
OUT=${1:-rdma-check-$(hostname)-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
PF="python3 -m preflight"
command -v preflight >/dev/null 2>&1 && PF=preflight
status=0
step() {
  name=$1
  shift
  echo "== $name: $PF bench rdma $*"
  $PF bench rdma "$@" --format json --output "$OUT/$name.json"
  rc=$?
  $PF bench rdma "$@" --dry-run | sed 's/^/   /'
  python3 - "$OUT/$name.json" <<'PY'
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except (OSError, ValueError) as exc:
    sys.exit(f"   no report: {exc}")
for r in doc["results"]:
    figure = f"{r['average_gbps']:.1f} Gb/s" if r["average_gbps"] is not None else (
        f"{r['latency_us'].get('typical')} µs typical" if r["latency_us"] else "-")
    print(f"   {r['hca']:<10} {r['memory']:<12} {figure:<18} {r['status']:<8} {r['message']}")
print("   " + doc["summary"])
PY
  [ "$rc" -ne 0 ] && [ "$status" -eq 0 ] && status=$rc
}
step write_bw_host --test write_bw --gpudirect off --duration 5
step write_bw_gpudirect --test write_bw --gpudirect only --duration 5
step write_bw_dmabuf --test write_bw --gpudirect only --dmabuf --duration 5
step write_bw_bidir --test write_bw --gpudirect off --bidirectional --duration 5
step write_lat --test write_lat --iters 10000
echo "reports in $OUT"
exit "$status"
