#!/usr/bin/env bash
# vlembed-supervisor's options: a bad key, value or file line stops it with exit 100 and a
# message naming the key; every key is also a flag; --help exits 0. Real binary, no workers.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${VL_BUILD:-build}
SV=$BUILD/vlembed-supervisor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

expect() { # expect CODE PATTERN -- ARGS...
  local code=$1 pat=$2; shift 3
  local out rc
  out=$(timeout 20 "$SV" "$@" 2>&1); rc=$?
  if [ "$rc" != "$code" ] || ! echo "$out" | grep -q -- "$pat"; then
    echo "FAIL: $SV $* -> rc=$rc (want $code), output:"; echo "$out" | sed 's/^/    /'
    echo "    (wanted /$pat/)"; fail=1
  else
    echo "ok: $* -> $rc /$pat/"
  fi
}

expect 100 "no-such-key" -- --model /tmp --no-such-key 1
expect 100 "backend" -- --model /tmp --backend tpu
expect 100 "workers" -- --model /tmp --workers 0
expect 100 "heartbeat-timeout-s" -- --model /tmp --heartbeat-timeout-s abc
expect 100 "model: required" -- --backend cpu
printf 'model = /tmp\nworkers = 2\nbogus_key = 3\n' > "$tmp/bad.conf"
expect 100 "bad.conf line 3" -- --config "$tmp/bad.conf"
expect 100 "bogus" -- --config "$tmp/bad.conf"
expect 100 "gateway-bin" -- --model /tmp --gateway-bin /nonexistent/gw --runtime-dir "$tmp/run"
mkdir -p "$tmp/open" && chmod 0777 "$tmp/open"
expect 100 "group/world-writable" -- --model /tmp --runtime-dir "$tmp/open"
expect 100 "too long\|longer than" -- --model /tmp --runtime-dir "/tmp/$(printf 'x%.0s' {1..120})"
expect 100 "restart-delay-max-s" -- --model /tmp --restart-delay-min-s 5 --restart-delay-max-s 1
expect 0 "--devices" -- --help
# A bad key in the file stops the start whatever the flags say.
expect 100 "bogus" -- --config "$tmp/bad.conf" --workers 1
exit $fail
