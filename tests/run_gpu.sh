#!/usr/bin/env bash
# GPU tests (make test-gpu): every build/tests/gpu_* binary and tests/gpu/*.sh, on a machine
# with an NVIDIA GPU. Same output contract as tests/run.sh.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
export VL_BUILD=$(cd "$BUILD" && pwd) VL_ROOT=$(pwd)
pass=0; fail=0
for t in "$BUILD"/tests/gpu_* tests/gpu/test_*.sh; do
  [ -e "$t" ] || continue
  case "$t" in *.sh) cmd=(bash "$t");; *) cmd=("$t");; esac
  if timeout -k 10 "${TEST_TIMEOUT:-600}" "${cmd[@]}"; then pass=$((pass+1)); echo "PASS $t"
  else fail=$((fail+1)); echo "FAIL $t"; fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
