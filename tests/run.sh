#!/usr/bin/env bash
# Runs every test: each unit-test binary (build/tests/test_*) and each script test
# (tests/e2e/*.sh, tests/*/test_*.py) in its own process with a timeout, then prints
# "N passed, N failed". Exit status is non-zero if anything failed.
#   tests/run.sh [BUILD]            all tests
#   ONLY=pattern tests/run.sh     only tests whose name matches the grep pattern
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
export VL_BUILD=$(cd "$BUILD" && pwd)
export VL_ROOT=$(pwd)
TIMEOUT=${TEST_TIMEOUT:-300}
# Sanitized builds (SAN=address,undefined): leaks and UB are failures; OOM tests need NULL back.
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
LOGDIR=$BUILD/test-logs
mkdir -p "$LOGDIR"
pass=0; fail=0; failed=()

run_one() {
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && ! echo "$name" | grep -qE "$ONLY"; then return; fi
  local log=$LOGDIR/$(echo "$name" | tr '/' '_').log
  local t0=$(date +%s.%N)
  timeout -k 10 "$TIMEOUT" "$@" >"$log" 2>&1 </dev/null
  local rc=$?
  local dt=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
  if [ $rc -eq 0 ]; then
    pass=$((pass+1)); printf 'PASS %-50s %6ss\n' "$name" "$dt"
  else
    fail=$((fail+1)); failed+=("$name")
    [ $rc -eq 124 ] && echo "TIMEOUT after ${TIMEOUT}s" >>"$log"
    printf 'FAIL %-50s %6ss (rc=%d, log %s)\n' "$name" "$dt" "$rc" "$log"
    tail -n 25 "$log" | sed 's/^/    | /'
  fi
}

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  case "$t" in *.d|*.o) continue;; esac
  run_one "unit/$(basename "$t")" "$t"
done
for t in tests/*/test_*.py; do
  [ -f "$t" ] || continue
  run_one "$t" python3 "$t"
done
for t in tests/*/test_*.sh; do
  [ -f "$t" ] || continue
  run_one "$t" bash "$t"
done
for t in tests/*/test_*.mjs; do
  [ -f "$t" ] || continue
  run_one "$t" node "$t"
done

echo
if [ $fail -gt 0 ]; then echo "failed: ${failed[*]}"; fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
