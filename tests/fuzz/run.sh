#!/usr/bin/env bash
# Runs the libFuzzer targets that `make fuzz-bins` built, each for SECONDS on a scratch copy of
# its committed seed corpus (tests/fuzz/corpus_NAME/, never modified), and prints one line per
# target: executions, final corpus size, new findings. Crash/leak/timeout inputs are kept under
# BUILD/fuzz/run/artifacts_NAME/. Exit status: non-zero if any target found something.
#   tests/fuzz/run.sh [BUILD] [SECONDS] [NAME...]     (make fuzz: 600 s each, all targets)
set -u
BUILD=${1:-build}
SECS=${2:-600}
shift 2 2>/dev/null || shift $#
NAMES=${*:-http api_json mpapi image safetensors}
cd "$(dirname "$0")/../.."
OUT=$BUILD/fuzz/run
mkdir -p "$OUT"
status=0
for n in $NAMES; do
  bin=$BUILD/fuzz/fuzz_$n
  [ -x "$bin" ] || { echo "fuzz_$n: not built (make fuzz-bins)"; status=1; continue; }
  work=$OUT/corpus_$n
  art=$OUT/artifacts_$n
  rm -rf "$work" "$art"
  mkdir -p "$work" "$art"
  cp tests/fuzz/corpus_$n/* "$work"/
  opts=(-max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$art/")
  case $n in
    http) opts+=(-dict=tests/fuzz/http.dict -max_len=16384) ;;
    api_json) opts+=(-dict=tests/fuzz/api_json.dict -max_len=8192) ;;
    mpapi) opts+=(-dict=tests/fuzz/api_json.dict -max_len=16384) ;;
    image) opts+=(-max_len=65536 -timeout=30) ;;
  esac
  t0=$(date +%s)
  "$bin" "${opts[@]}" "$work" >"$OUT/$n.log" 2>&1
  rc=$?
  dt=$(($(date +%s) - t0))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$n.log" | tail -1)
  found=$(ls "$art" | wc -l)
  printf 'fuzz_%-12s %10s executions in %4s s, corpus %5s inputs, findings %s (rc %d)\n' \
    "$n" "${execs:-?}" "$dt" "$(ls "$work" | wc -l)" "$found" "$rc"
  if [ $rc -ne 0 ] || [ "$found" -ne 0 ]; then
    status=1
    grep -E 'ERROR|SUMMARY|Test unit written' "$OUT/$n.log" | head -5 | sed 's/^/    | /'
  fi
done
exit $status
