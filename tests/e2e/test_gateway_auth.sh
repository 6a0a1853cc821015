#!/usr/bin/env bash
# API keys with curl against a real gateway and CPU worker (docs/security.md): 401 with the
# OpenAI-shaped body and WWW-Authenticate for a missing, malformed or wrong key; Bearer,
# X-API-Key and api-key accepted; /health and /ready open, /metrics guarded unless
# --open-metrics; a 401 is sent before the body is read (curl's Expect: 100-continue uploads
# nothing; a raw client that declares 10 MB and sends none gets it at once); SIGHUP reloads the
# file (a bad file keeps the old keys); a world-readable file is refused at start (exit 100);
# no key ever appears in the log, even at debug level.
set -u
ROOT=${VL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${VL_BUILD:-$ROOT/build}
MODEL=$ROOT/tests/data/tiny-model
TMP=$(mktemp -d /tmp/vl-auth.XXXXXX)
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL: $1"; fail=$((fail + 1)); }
cleanup() { kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

K1=sk-e2e-first-0123456789abcdef
K2=sk-e2e-second-fedcba9876543210
K3=sk-e2e-third-after-reload-000000
WRONG=sk-e2e-wrong-attempt-5555555555
printf '# e2e keys\n%s first\n%s\n' "$K1" "$K2" >"$TMP/keys"
chmod 644 "$TMP/keys"

"$BUILD/vlembed-gateway" --model "$MODEL" --http 127.0.0.1:0 --api-keys-file "$TMP/keys" \
  2>"$TMP/refused.log"
rc=$?
[ $rc = 100 ] && grep -q "mode 0644 lets other users read" "$TMP/refused.log" &&
  ! grep -q "$K1" "$TMP/refused.log" && ok "world-readable keys file: exit 100, mode named" ||
  bad "world-readable keys file: rc=$rc $(cat "$TMP/refused.log")"
chmod 600 "$TMP/keys"

"$BUILD/vlembed-worker" --model "$MODEL" --socket "$TMP/w.sock" --threads 1 2>"$TMP/w.log" &
for _ in $(seq 1 200); do [ -S "$TMP/w.sock" ] && break; sleep 0.05; done
"$BUILD/vlembed-gateway" --model "$MODEL" --http 127.0.0.1:0 --worker-sockets "$TMP/w.sock" \
  --api-keys-file "$TMP/keys" --log-level debug 2>"$TMP/g.log" &
GW=$!
for _ in $(seq 1 200); do grep -q "(port " "$TMP/g.log" && break; sleep 0.05; done
PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$TMP/g.log" | head -1)
U=http://127.0.0.1:$PORT
for _ in $(seq 1 200); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$U/ready")" = 200 ] && break; sleep 0.05; done
ok "/ready answers 200 without a key"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$U/health")" = 200 ] && ok "/health open" || bad "/health"

embed() { # embed HEADER... -> prints "CODE BODY"
  curl -s -D "$TMP/h" -w ' %{http_code}' "$U/v1/embeddings" -H 'Content-Type: application/json' \
    "$@" -d '{"input": "hello"}'
}
out=$(embed)
echo "$out" | grep -q '"code":"missing_api_key"' && echo "$out" | grep -q ' 401$' &&
  grep -qi '^WWW-Authenticate: Bearer realm="vlembed"' "$TMP/h" &&
  ok "no key: 401 missing_api_key with WWW-Authenticate" || bad "no key: $out $(cat "$TMP/h")"
out=$(embed -H "Authorization: Bearer $WRONG")
echo "$out" | grep -q '"code":"invalid_api_key"' && echo "$out" | grep -q ' 401$' &&
  grep -qi 'error="invalid_token"' "$TMP/h" && ! echo "$out" | grep -q "$WRONG" &&
  ok "wrong key: 401 invalid_api_key, the key not echoed" || bad "wrong key: $out"
out=$(embed -H "Authorization: Basic dXNlcjpwYXNz")
echo "$out" | grep -q '"code":"invalid_api_key"' && echo "$out" | grep -q 'Bearer <key>' &&
  ok "Basic scheme: 401 naming the expected form" || bad "Basic: $out"
out=$(embed -H "Authorization: Bearer $K1")
echo "$out" | grep -q '"embedding":\[' && echo "$out" | grep -q ' 200$' && ok "Bearer key 1: 200" ||
  bad "Bearer key 1: $out"
out=$(embed -H "X-API-Key: $K2")
echo "$out" | grep -q ' 200$' && ok "X-API-Key: 200" || bad "X-API-Key: $out"
out=$(embed -H "api-key: $K2")
echo "$out" | grep -q ' 200$' && ok "api-key (Azure style): 200" || bad "api-key: $out"
code=$(curl -s -o /dev/null -w '%{http_code}' "$U/v1/models")
[ "$code" = 401 ] && ok "/v1/models needs a key" || bad "/v1/models: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$U/no/such/path")
[ "$code" = 401 ] && ok "unknown paths answer 401 before 404 (no route probing)" || bad "unknown: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$U/metrics")
[ "$code" = 401 ] && ok "/metrics needs a key by default" || bad "/metrics: $code"
m=$(curl -s "$U/metrics" -H "Authorization: Bearer $K1")
echo "$m" | grep -q '^vlembed_auth_failures_total{reason="missing"} [1-9]' &&
  echo "$m" | grep -q '^vlembed_auth_failures_total{reason="invalid"} [1-9]' &&
  echo "$m" | grep -q '^vlembed_errors_total{status="401",code="missing_api_key"} [1-9]' &&
  ok "/metrics with a key: auth failures counted" || bad "metrics: $(echo "$m" | grep auth)"

# 401 before the body: curl sends Expect: 100-continue and gets the answer instead of 100
head -c 300000 /dev/zero | tr '\0' 'x' >"$TMP/big.json"
out=$(curl -s -o /dev/null -w '%{http_code} %{size_upload} %{time_total}' "$U/v1/embeddings" \
  -H 'Content-Type: application/json' -H 'Expect: 100-continue' --data-binary @"$TMP/big.json")
set -- $out
[ "$1" = 401 ] && [ "$2" = 0 ] && ok "401 before the body: curl uploaded $2 of 300000 bytes" ||
  bad "401 before the body: $out"
out=$(python3 - "$PORT" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
t0 = time.time()
s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: 10000000\r\n\r\n")
data = b""
try:
    while True:
        c = s.recv(4096)
        if not c:
            break
        data += c
except socket.timeout:
    pass
print(data.split(b"\r\n")[0].decode(), "%.2f" % (time.time() - t0), b"missing_api_key" in data)
EOF
)
set -- $out
[ "${2:-}" = 401 ] && [ "${5:-}" = True ] && awk "BEGIN{exit !(${4:-9} < 1.0)}" &&
  ok "10 MB declared, none sent: 401 in $4 s, connection closed" || bad "declared body: $out"

# SIGHUP: a new file replaces the keys; a bad one keeps them
printf '%s\n' "$K3" >"$TMP/keys.new" && chmod 600 "$TMP/keys.new" && mv "$TMP/keys.new" "$TMP/keys"
kill -HUP $GW
for _ in $(seq 1 100); do grep -q "SIGHUP: 1 API keys loaded" "$TMP/g.log" && break; sleep 0.05; done
a=$(embed -H "Authorization: Bearer $K1" | tail -c 3)
b=$(embed -H "Authorization: Bearer $K3" | tail -c 3)
[ "$a" = 401 ] && [ "$b" = 200 ] && ok "SIGHUP reload: old key 401, new key 200" ||
  bad "SIGHUP reload: old $a new $b"
chmod 644 "$TMP/keys"
kill -HUP $GW
for _ in $(seq 1 100); do grep -q "stay in force" "$TMP/g.log" && break; sleep 0.05; done
b=$(embed -H "Authorization: Bearer $K3" | tail -c 3)
grep -q "SIGHUP: .*mode 0644.*the 1 keys loaded before stay in force" "$TMP/g.log" && [ "$b" = 200 ] &&
  ok "SIGHUP with a world-readable file: refused, the old keys serve" || bad "bad reload: $b"
kill -0 $GW 2>/dev/null && ok "the gateway survives SIGHUP" || bad "gateway died on SIGHUP"

kill -TERM $GW
wait $GW 2>/dev/null
n=$(grep -c -e "$K1" -e "$K2" -e "$K3" -e "$WRONG" -e "0123456789abcdef" "$TMP/g.log")
[ "$n" = 0 ] && ok "no key in the gateway log ($(wc -l <"$TMP/g.log") lines at debug level)" ||
  bad "keys in the log: $n lines"

# --open-metrics: /metrics without a key, everything else still guarded
chmod 600 "$TMP/keys"
"$BUILD/vlembed-gateway" --model "$MODEL" --http 127.0.0.1:0 --api-keys-file "$TMP/keys" \
  --open-metrics 2>"$TMP/g2.log" &
for _ in $(seq 1 200); do grep -q "(port " "$TMP/g2.log" && break; sleep 0.05; done
PORT2=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$TMP/g2.log" | head -1)
a=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT2/metrics")
b=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT2/openapi.json")
[ "$a" = 200 ] && [ "$b" = 401 ] && ok "--open-metrics: /metrics 200, /openapi.json 401" ||
  bad "--open-metrics: $a $b"

echo "$fail failures"
[ $fail -eq 0 ]
