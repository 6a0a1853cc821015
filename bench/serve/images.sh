#!/usr/bin/env bash
# Image serving benchmark (docs/performance.md, "Serving images"): one worker, a gateway that
# decodes and resizes JPEGs on its thread pool (--preprocess-threads varied, one gateway per
# value), the closed-loop load generator (bench/serve/loadgen.c) sending /v1/embeddings requests
# of BATCH data-URL JPEGs each, and the same images already preprocessed (the gateway's own pixels,
# from `vlembedctl preprocess --write-frames`) sent in embed frames straight to the worker's
# socket: the raw throughput the served path is compared with. The CPU columns are the gateway's
# and the worker's processes over the measured window, in cores.
#
#   bench/serve/images.sh [BUILD]
# Environment: MODEL (default tests/data/tiny-model), BACKEND (cpu), SECONDS (5), CONNS ("16"),
#   BATCH (images per request, 4), SIZES ("512x512 1024x768", width x height of the JPEGs),
#   PTHREADS (gateway --preprocess-threads values, "4 8 14"), THREADS (worker threads for cpu,
#   0 = all cores), GATEWAY_ARGS (extra gateway flags), VL_LD_LIBRARY_PATH (LD_LIBRARY_PATH for
#   vlembed's own processes only, e.g. the device bundle's lib/), PYTHON (one with numpy and
#   Pillow). Prints markdown tables.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
MODEL=${MODEL:-$ROOT/tests/data/tiny-model}
BACKEND=${BACKEND:-cpu}
SECONDS_=${SECONDS:-5}
CONNS=${CONNS:-16}
BATCH=${BATCH:-4}
SIZES=${SIZES:-512x512 1024x768}
PTHREADS=${PTHREADS:-4 8 14}
THREADS=${THREADS:-0}
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for p in python3 /usr/bin/python3; do
    "$p" -c "import numpy, PIL" 2>/dev/null && { PY=$p; break; }
  done
fi
[ -n "$PY" ] || { echo "no python3 with numpy and Pillow"; exit 1; }
VLENV=(env)
[ -n "${VL_LD_LIBRARY_PATH:-}" ] && VLENV=(env "LD_LIBRARY_PATH=$VL_LD_LIBRARY_PATH")
TMP=$(mktemp -d /tmp/vl-bench-img.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

mkdir -p "$BUILD/bench"
[ -x "$BUILD/bench/loadgen" ] && [ "$BUILD/bench/loadgen" -nt "$ROOT/bench/serve/loadgen.c" ] || \
  cc -O2 -D_GNU_SOURCE -pthread "$ROOT/bench/serve/loadgen.c" -o "$BUILD/bench/loadgen" || exit 1
LG=$BUILD/bench/loadgen

for s in $SIZES; do
  "$PY" "$ROOT/bench/serve/images.py" jpegs "$TMP" "$s" "$BATCH" 1 >&2 || exit 1
done

SOCK=$TMP/w.sock
"${VLENV[@]}" "$BUILD/vlembed-worker" --model "$MODEL" --backend "$BACKEND" --socket "$SOCK" \
  --threads "$THREADS" 2>"$TMP/worker.log" &
WPID=$!
for _ in $(seq 1 600); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "worker did not start:"; cat "$TMP/worker.log"; exit 1; }

GPID=
PORT=
start_gateway() { # preprocess threads
  : >"$TMP/gateway.log"
  # shellcheck disable=SC2086 # GATEWAY_ARGS is a list of flags
  "${VLENV[@]}" "$BUILD/vlembed-gateway" --model "$MODEL" --http 127.0.0.1:0 --worker-sockets "$SOCK" \
    --max-inflight-items 100000 --preprocess-threads "$1" ${GATEWAY_ARGS:-} 2>"$TMP/gateway.log" &
  GPID=$!
  for _ in $(seq 1 200); do grep -q "(port " "$TMP/gateway.log" && break; sleep 0.05; done
  PORT=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$TMP/gateway.log" | head -1)
  [ -n "$PORT" ] || { echo "gateway did not start:"; cat "$TMP/gateway.log"; exit 1; }
  "$PY" - "$PORT" <<'EOF'
import sys, time, urllib.request
for _ in range(1200):
    try:
        if urllib.request.urlopen("http://127.0.0.1:%s/ready" % sys.argv[1]).status == 200:
            break
    except Exception:
        time.sleep(0.1)
EOF
}
stop_gateway() { kill "$GPID" 2>/dev/null; wait "$GPID" 2>/dev/null; }

# raw frames: the prompt the gateway renders for one image, tokenized, pad expanded, and the
# pixels the gateway's preprocessing produces for each image
PAD=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['image_token_id'])" "$MODEL/config.json")
start_gateway 1
for s in $SIZES; do
  "$PY" - "$TMP/$s.json" >"$TMP/$s.one.json" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))
b["input"] = b["input"][:1]
print(json.dumps(b))
EOF
  curl -s -H 'content-type: application/json' --data-binary @"$TMP/$s.one.json" \
    "http://127.0.0.1:$PORT/v1/embeddings/preview" >"$TMP/$s.preview.json" || exit 1
  "$PY" -c "import json,sys; print(json.dumps({'text': json.load(open(sys.argv[1]))['data'][0]['prompt']}))" \
    "$TMP/$s.preview.json" | "${VLENV[@]}" "$BUILD/vlembedctl" tokenize --tokenizer "$MODEL/tokenizer.json" \
    >"$TMP/$s.ids.json" || { cat "$TMP/$s.preview.json"; exit 1; }
  dirs=()
  for k in $(seq 0 $((BATCH - 1))); do
    "${VLENV[@]}" "$BUILD/vlembedctl" preprocess --write-frames "$TMP/px_${s}_$k" "$TMP/${s}_$k.jpg" >/dev/null || exit 1
    dirs+=("$TMP/px_${s}_$k")
  done
  "$PY" "$ROOT/bench/serve/images.py" frame "$TMP" "$s" "$BATCH" "$TMP/$s.preview.json" "$TMP/$s.ids.json" \
    "$PAD" "${dirs[@]}" >&2 || exit 1
done
stop_gateway

echo "### Serving images, backend $BACKEND, 1 worker, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))$(command -v nvidia-smi >/dev/null && echo ", $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"), $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| path | image | preprocess threads | images/request | connections | requests/s | images/s | p50 ms | p90 ms | p99 ms | errors | gateway CPU (cores) | worker CPU (cores) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
row() { # path size pthreads output [gateway cpu present]
  local out=$4
  echo "$out" | grep -q "conns=" || { echo "| $1 | $2 | $3 | failed: $out |"; return; }
  local cg cw
  if [ "$5" = 1 ]; then
    cg=$(echo "$out" | sed -n 's/.* cpu=\([-0-9.]*\),\([-0-9.]*\).*/\1/p')
    cw=$(echo "$out" | sed -n 's/.* cpu=\([-0-9.]*\),\([-0-9.]*\).*/\2/p')
  else
    cg="—"
    cw=$(echo "$out" | sed -n 's/.* cpu=\([-0-9.]*\).*/\1/p')
  fi
  echo "$out" | sed -n "s/conns=\([0-9]*\) requests=[0-9]* req\/s=\([0-9.]*\) items\/s=\([0-9.]*\) p50_ms=\([0-9.]*\) p90_ms=\([0-9.]*\) p99_ms=\([0-9.]*\) errors=\([0-9]*\).*/| $1 | $2 | $3 | $BATCH | \1 | \2 | \3 | \4 | \5 | \6 | \7 | $cg | $cw |/p"
}
for c in $CONNS; do
  for s in $SIZES; do
    row "raw worker socket" "$s" "—" "$("$LG" worker "$SOCK" "$TMP/$s.frame" "$BATCH" "$c" "$SECONDS_" "$WPID")" 0
  done
done
for t in $PTHREADS; do
  start_gateway "$t"
  for c in $CONNS; do
    for s in $SIZES; do
      row "HTTP via gateway" "$s" "$t" "$("$LG" http "127.0.0.1:$PORT" "$TMP/$s.json" "$BATCH" "$c" "$SECONDS_" "$GPID" "$WPID")" 1
    done
  done
  stop_gateway
done
