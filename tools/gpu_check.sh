#!/bin/sh
# The one command to run on a GPU node to prove the active GPU tests on real hardware: the
# `gpu`-marked tests, a masked snapshot, then `preflight run --level 2` with every figure.
# Needs torch with CUDA (`pip install 'gpu-preflight[bench]'`) and the dev extra for pytest.
#
#   sh tools/gpu_check.sh [OUTDIR]     # writes OUTDIR/{snapshot.json.gz,level2.json,pytest.txt}
#
# What to look for (H100/H200 SXM; thresholds and sources in README "Active tests"):
#   * gpu.copy_bandwidth: H2D and D2H >= 48 GB/s on Gen5 x16 (aznhc), every GPU within 15% of
#     the node median; device-local in the TB/s range;
#   * gpu.p2p_bandwidth: every pair >= 335 GB/s over NVLink (aznhc), none far below the others;
#   * gpu.gemm: one checksum per dtype for all GPUs (any mismatch = silent data corruption),
#     TFLOPS well above half of the 989 TFLOPS BF16 / 1979 TFLOPS FP8 dense spec (FP8 on
#     compute capability 8.9+ only);
#   * gpu.burn: no HW/thermal/power slowdown reason; no GPU below its peers' sustained TFLOPS
#     or more than 5% below their median SM clock (every GPU's held clock is printed).
# Exit status: the status of `preflight run --level 2` (0 pass, 1 fail), or of the first step
# that could not run.
set -u
OUT=${1:-gpu-check-$(hostname)-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
PF="python3 -m preflight"
command -v preflight >/dev/null 2>&1 && PF=preflight
echo "== gpu-marked tests"
python3 -m pytest -q -m gpu -p no:cacheprovider -rs 2>&1 | tee "$OUT/pytest.txt" | tail -15
echo "== masked snapshot: $PF snapshot --mask --output $OUT/snapshot.json.gz"
$PF snapshot --mask --output "$OUT/snapshot.json.gz"
echo "== $PF run --level 2 (every finding, with its figure)"
start=$(date +%s)
$PF run --level 2 --format json --output "$OUT/level2.json"
status=$?
end=$(date +%s)
$PF run --level 2 --profile "$OUT/snapshot.json.gz" --only 'node.*' >/dev/null 2>&1 || true
python3 - "$OUT/level2.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for r in doc["results"]:
    if r["id"].startswith(("gpu.copy", "gpu.p2p", "gpu.gemm", "gpu.burn", "dcgm.")):
        print(f"{r['status']:5} {r['id']:20} {r['summary']}")
        for f in r.get("findings", []):
            ev = "; ".join(f"{e['observed']} (expected {e.get('expected')})" for e in f.get("evidence", []))
            print(f"      {f['status']:5} {f['subject']}: {ev}")
PY
echo "run --level 2 took $((end - start)) s; exit status $status; files in $OUT"
exit $status
