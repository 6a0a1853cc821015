#!/usr/bin/env bash
# The gateway warns once at start when HTTP listens on a non-loopback address without API keys
# (docs/security.md), and stays quiet on loopback or with --api-keys-file.
set -u
ROOT=${VL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${VL_BUILD:-$ROOT/build}
MODEL=$ROOT/tests/data/tiny-model
TMP=$(mktemp -d /tmp/vl-exposed.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
fail=0
# start ADDR LOG [args...]: runs the gateway until it listens, then stops it
start() {
  local addr=$1 log=$2; shift 2
  "$BUILD/vlembed-gateway" --model "$MODEL" --http "$addr" "$@" 2>"$log" &
  local pid=$!
  for _ in $(seq 1 200); do grep -q "(port " "$log" && break; sleep 0.05; done
  kill -TERM $pid; wait $pid
}
printf 'sk-exposed-test-0123456789\n' >"$TMP/keys"; chmod 600 "$TMP/keys"
start 0.0.0.0:0 "$TMP/any.log"
start 127.0.0.1:0 "$TMP/lo.log"
start 0.0.0.0:0 "$TMP/keys.log" --api-keys-file "$TMP/keys"
if grep -q "warn: HTTP listens on 0.0.0.0 without API keys" "$TMP/any.log"; then echo "ok   0.0.0.0 without keys: warned"; else echo "FAIL: no warning on 0.0.0.0"; cat "$TMP/any.log"; fail=1; fi
if grep -q "(port " "$TMP/lo.log" && ! grep -q "without API keys" "$TMP/lo.log"; then echo "ok   127.0.0.1: no warning"; else echo "FAIL: loopback"; cat "$TMP/lo.log"; fail=1; fi
if grep -q "(port " "$TMP/keys.log" && ! grep -q "without API keys" "$TMP/keys.log"; then echo "ok   0.0.0.0 with keys: no warning"; else echo "FAIL: with keys"; cat "$TMP/keys.log"; fail=1; fi
if [ -e /proc/net/if_inet6 ]; then
  start '[::1]:0' "$TMP/lo6.log"
  if grep -q "(port " "$TMP/lo6.log"; then
    ! grep -q "without API keys" "$TMP/lo6.log" && echo "ok   [::1]: no warning" || { echo "FAIL: ::1 warned"; fail=1; }
  else echo "skip [::1]: IPv6 loopback not usable here"; fi
fi
exit $fail
