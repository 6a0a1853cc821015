#!/usr/bin/env bash
# Serving benchmark (docs/performance.md, "Serving"): one gateway + workers on this machine, a
# closed-loop load generator (bench/serve/loadgen.c) over HTTP keep-alive, and the same items sent
# straight to a worker's socket (the raw throughput the gateway is compared with).
#
#   bench/serve/run.sh [BUILD]
# Environment: MODEL (default tests/data/tiny-model), BACKEND (cpu), WORKERS (1), SECONDS (5),
#   CONNS ("1 8 32"), THREADS (worker threads for cpu, 0 = all cores), BATCH (items per batch
#   request, 16), TEXT (the text of every item), GATEWAY_ARGS (extra gateway flags), ONE=0 skips
#   the one-item rows. Images through the gateway: bench/serve/images.sh.
# Prints markdown tables. Run it on an otherwise idle machine: the load generator, the gateway
# and the workers share the CPUs.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
MODEL=${MODEL:-$ROOT/tests/data/tiny-model}
BACKEND=${BACKEND:-cpu}
WORKERS=${WORKERS:-1}
SECONDS_=${SECONDS:-5}
CONNS=${CONNS:-1 8 32}
THREADS=${THREADS:-0}
BATCH=${BATCH:-16}
TEXT=${TEXT:-The quick brown fox jumps over the lazy dog near the river bank.}
PY=/usr/bin/python3
[ -x $PY ] || PY=python3
TMP=$(mktemp -d /tmp/vl-bench-serve.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

mkdir -p "$BUILD/bench"
[ -x "$BUILD/bench/loadgen" ] && [ "$BUILD/bench/loadgen" -nt "$ROOT/bench/serve/loadgen.c" ] || \
  cc -O2 -D_GNU_SOURCE -pthread "$ROOT/bench/serve/loadgen.c" -o "$BUILD/bench/loadgen" || exit 1
LG=$BUILD/bench/loadgen

socks=()
for i in $(seq 0 $((WORKERS - 1))); do
  s=$TMP/w$i.sock
  CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-$i} "$BUILD/vlembed-worker" --model "$MODEL" \
    --backend "$BACKEND" --socket "$s" --threads "$THREADS" 2>"$TMP/worker$i.log" &
  socks+=("$s")
done
for s in "${socks[@]}"; do
  for _ in $(seq 1 600); do [ -S "$s" ] && break; sleep 0.1; done
  [ -S "$s" ] || { echo "worker did not start:"; cat "$TMP"/worker*.log; exit 1; }
done
"$BUILD/vlembed-gateway" --model "$MODEL" --http 127.0.0.1:0 \
  --worker-sockets "$(IFS=,; echo "${socks[*]}")" --max-inflight-items 100000 ${GATEWAY_ARGS:-} \
  2>"$TMP/gateway.log" &
for _ in $(seq 1 200); do grep -q "(port " "$TMP/gateway.log" && break; sleep 0.05; done
PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$TMP/gateway.log" | head -1)
$PY - "$PORT" <<'EOF'
import sys, time, urllib.request
for _ in range(1200):
    try:
        if urllib.request.urlopen("http://127.0.0.1:%s/ready" % sys.argv[1]).status == 200:
            break
    except Exception:
        time.sleep(0.1)
EOF

$PY - "$TEXT" "$BATCH" "$TMP" "$PORT" "$BUILD" "$MODEL" <<'EOF'
import json, subprocess, sys, urllib.request, struct

def pack(o):  # the few msgpack types a frame needs (no msgpack module on every machine)
    if isinstance(o, dict):
        return struct.pack(">BI", 0xdf, len(o)) + b"".join(pack(k) + pack(v) for k, v in o.items())
    if isinstance(o, list):
        return struct.pack(">BI", 0xdd, len(o)) + b"".join(pack(v) for v in o)
    if isinstance(o, str):
        b = o.encode()
        return struct.pack(">BI", 0xdb, len(b)) + b
    if isinstance(o, bytes):
        return struct.pack(">BI", 0xc6, len(o)) + o
    return struct.pack(">BQ", 0xcf, o)
text, batch, tmp, port, build, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
# base64 is what the OpenAI SDK asks for by default; the float rows show the cost of JSON numbers
open(tmp + "/one.json", "w").write(json.dumps({"input": text, "model": "m", "encoding_format": "base64"}))
open(tmp + "/batch.json", "w").write(json.dumps({"input": [text] * batch, "model": "m", "encoding_format": "base64"}))
open(tmp + "/batchf.json", "w").write(json.dumps({"input": [text] * batch, "model": "m"}))
req = urllib.request.Request("http://127.0.0.1:%s/v1/embeddings/preview" % port,
                             data=json.dumps({"input": text}).encode(), headers={"content-type": "application/json"})
prompt = json.load(urllib.request.urlopen(req))["data"][0]["prompt"]
ids = json.loads(subprocess.run([build + "/vlembedctl", "tokenize", "--tokenizer", model + "/tokenizer.json"],
                                input=json.dumps({"text": prompt}) + "\n", capture_output=True, text=True).stdout)["ids"]
b = struct.pack("<%di" % len(ids), *ids)
for name, n in (("one", 1), ("batch", batch)):
    m = pack({"type": "embed", "items": [{"id": i, "deadline_ms": 600000, "ids": b} for i in range(n)]})
    open(tmp + "/%s.frame" % name, "wb").write(struct.pack(">I", len(m)) + m)
print("prompt tokens per item: %d" % len(ids), file=sys.stderr)
EOF

echo "### Serving, backend $BACKEND, $WORKERS worker(s), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))$(command -v nvidia-smi >/dev/null && echo ", $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| path | items/request | connections | requests/s | items/s | p50 ms | p90 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
row() { # path items conns output
  echo "$4" | sed -n "s/conns=\([0-9]*\) requests=[0-9]* req\/s=\([0-9.]*\) items\/s=\([0-9.]*\) p50_ms=\([0-9.]*\) p90_ms=\([0-9.]*\) p99_ms=\([0-9.]*\) errors=\([0-9]*\)/| $1 | $2 | \1 | \2 | \3 | \4 | \5 | \6 | \7 |/p"
}
[ "${ONE:-1}" = 0 ] || for c in $CONNS; do
  row "HTTP via gateway" 1 "$c" "$("$LG" http "127.0.0.1:$PORT" "$TMP/one.json" 1 "$c" "$SECONDS_")"
done
for c in $CONNS; do
  row "HTTP via gateway" "$BATCH" "$c" "$("$LG" http "127.0.0.1:$PORT" "$TMP/batch.json" "$BATCH" "$c" "$SECONDS_")"
done
for c in $CONNS; do
  row "HTTP via gateway, float JSON" "$BATCH" "$c" "$("$LG" http "127.0.0.1:$PORT" "$TMP/batchf.json" "$BATCH" "$c" "$SECONDS_")"
done
if [ "$WORKERS" = 1 ]; then
  for c in $CONNS; do
    row "raw worker socket" "$BATCH" "$c" "$("$LG" worker "${socks[0]}" "$TMP/batch.frame" "$BATCH" "$c" "$SECONDS_")"
  done
fi
