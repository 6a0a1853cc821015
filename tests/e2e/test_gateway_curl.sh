#!/usr/bin/env bash
# The gateway with curl as the client: an embedding, keep-alive reuse across two requests in one
# curl run, a chunked upload, curl's Expect: 100-continue path for a large body (413 before the
# body is sent), an error body, and the Prometheus text of /metrics.
set -u
ROOT=${VL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${VL_BUILD:-$ROOT/build}
MODEL=$ROOT/tests/data/tiny-model
TMP=$(mktemp -d /tmp/vl-curl.XXXXXX)
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL: $1"; fail=$((fail + 1)); }
cleanup() { kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

"$BUILD/vlembed-worker" --model "$MODEL" --socket "$TMP/w.sock" --threads 1 2>"$TMP/w.log" &
for _ in $(seq 1 200); do [ -S "$TMP/w.sock" ] && break; sleep 0.05; done
"$BUILD/vlembed-gateway" --model "$MODEL" --http 127.0.0.1:0 --worker-sockets "$TMP/w.sock" \
  --max-body 64k 2>"$TMP/g.log" &
for _ in $(seq 1 200); do grep -q "(port " "$TMP/g.log" && break; sleep 0.05; done
PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$TMP/g.log" | head -1)
U=http://127.0.0.1:$PORT
for _ in $(seq 1 200); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$U/ready")" = 200 ] && break; sleep 0.05; done

out=$(curl -s "$U/v1/embeddings" -H 'Content-Type: application/json' -d '{"input": "hello world"}')
echo "$out" | grep -q '"object":"list"' && echo "$out" | grep -q '"embedding":\[' &&
  echo "$out" | grep -q '"fingerprint":{"id":"' && ok "curl embedding" || bad "curl embedding: $out"

v=$(curl -sv "$U/v1/embeddings" -H 'Content-Type: application/json' -d '{"input": "a"}' \
  --next "$U/v1/embeddings" -H 'Content-Type: application/json' -d '{"input": "b"}' 2>&1 >/dev/null)
echo "$v" | grep -qi "re-using existing connection" && ok "keep-alive: curl reuses the connection" ||
  bad "keep-alive: $v"

printf '{"input": ["chunked", "upload"], "encoding_format": "base64"}' >"$TMP/body.json"
out=$(curl -s "$U/v1/embeddings" -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
  --data-binary @"$TMP/body.json")
[ "$(echo "$out" | grep -o '"index"' | wc -l)" = 2 ] && ok "chunked upload" || bad "chunked upload: $out"

head -c 200000 /dev/zero | tr '\0' 'x' >"$TMP/big.json"
code=$(curl -s -o "$TMP/big.out" -w '%{http_code}' "$U/v1/embeddings" -H 'Content-Type: application/json' \
  -H 'Expect: 100-continue' --data-binary @"$TMP/big.json")
[ "$code" = 413 ] && grep -q '"code":"request_too_large"' "$TMP/big.out" &&
  ok "oversize body with Expect: 100-continue: 413" || bad "oversize: $code $(cat "$TMP/big.out")"

out=$(curl -s -w ' %{http_code}' "$U/v1/embeddings" -H 'Content-Type: application/json' -d '{"input": "x", "foo": 1}')
echo "$out" | grep -q '"param":"foo"' && echo "$out" | grep -q ' 400$' && ok "unknown field: 400 naming it" ||
  bad "unknown field: $out"

m=$(curl -s "$U/metrics")
echo "$m" | grep -q '^# TYPE vlembed_stage_seconds histogram' &&
  echo "$m" | grep -q '^vlembed_requests_total{api="http"} [1-9]' && ok "/metrics" || bad "/metrics"

echo "$fail failures"
[ $fail -eq 0 ]
