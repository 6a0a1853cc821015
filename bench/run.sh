#!/usr/bin/env bash
# make bench (on the GPU machine): kernel ceilings, vlembed's CUDA backend end to end and the
# transformers baseline, all in one run on one card, as markdown tables (docs/performance.md).
#   bench/run.sh [BUILD]      binaries from BUILD/bench (make gpu-bins builds them)
# Environment: VL_BENCH_MODELS="2B 8B" (which sizes), VL_BENCH_TF=path of
# bench_transformers.py (default scripts/ref/bench_transformers.py), VL_BENCH_NO_TF=1 skips it.
set -u
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TF=${VL_BENCH_TF:-$HERE/scripts/ref/bench_transformers.py}
echo "## make bench on $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1), $(date -u +%Y-%m-%dT%H:%MZ)"
rc=0
"$BUILD/bench/bench_kernels" || rc=1
for m in ${VL_BENCH_MODELS:-2B 8B}; do
  "$BUILD/bench/bench_model" "$m" || rc=1
  if [ -z "${VL_BENCH_NO_TF:-}" ]; then
    python3 "$TF" "$m" || { echo "(transformers baseline for $m failed)"; rc=1; }
  fi
done
exit $rc
