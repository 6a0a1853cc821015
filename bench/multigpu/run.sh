#!/usr/bin/env bash
# Multi-GPU serving benchmark (docs/performance.md, "Multi-GPU"): the real supervisor with one
# CUDA worker per GPU (GPU discovery, pinning by UUID), the gateway, and a closed-loop HTTP load
# generator; first with one GPU (--devices 0), then with every GPU (--devices all), same items.
#   bench/multigpu/run.sh BUILD MODEL_DIR
# BUILD holds vlembed-supervisor, vlembed-gateway, vlembed-worker, vlembedctl (and lib/ for a
# device bundle). Knobs: SECONDS (8), CONNS (64), BATCH (16 items per request), REPEAT (how many
# copies of the base sentence make one document; 30 = ~500 tokens), PP_THREADS (gateway pool).
set -u
BUILD=$(cd "${1:?BUILD}" && pwd)
MODEL=${2:?MODEL_DIR}
SECONDS_=${SECONDS:-8}
CONNS=${CONNS:-64}
BATCH=${BATCH:-16}
REPEAT=${REPEAT:-30}
PP_THREADS=${PP_THREADS:-12}
BACKEND=${BACKEND:-cuda}   # cpu: the same run with --workers 1 and 2 (to try the script without GPUs)
TMP=$(mktemp -d /tmp/vl-multigpu.XXXXXX)
. "$(dirname "$0")/common.sh"
PORT=18080
echo "### Multi-GPU serving, $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sort | uniq -c | sed 's/^ *//' || echo "no GPU"), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| devices | workers ready | items/s | prompt tokens/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|---|"
for devs in 0 all; do
  rt=$TMP/rt-$devs
  mkdir -p "$rt"
  if [ "$BACKEND" = cuda ]; then placement=(--devices "$devs"); else placement=(--workers "$([ $devs = 0 ] && echo 1 || echo 2)"); fi
  "${LIBENV[@]}" "$BUILD/vlembed-supervisor" --model "$MODEL" --backend "$BACKEND" "${placement[@]}" \
    --http 127.0.0.1:$PORT --runtime-dir "$rt" \
    --gateway-args "--preprocess-threads $PP_THREADS --max-inflight-items 100000" \
    2>"$TMP/super-$devs.log" &
  sv=$!
  ready=0
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.2
  done
  sleep 2 # let every worker of "all" come up, not only the first
  nready=$(curl -s "http://127.0.0.1:$PORT/ready" | sed -n 's/.*"workers_ready":\([0-9]*\).*/\1/p')
  "${LIBENV[@]}" "$BUILD/vlembedctl" status --runtime-dir "$rt" >"$TMP/status-$devs.txt" 2>&1
  toks=$(curl -s "http://127.0.0.1:$PORT/v1/embeddings" -H 'content-type: application/json' \
    -d @"$TMP/req.json" | sed -n 's/.*"prompt_tokens":\([0-9]*\).*/\1/p')
  if [ $ready = 1 ]; then
    out=$("$TMP/loadgen" http 127.0.0.1:$PORT "$TMP/req.json" "$BATCH" "$CONNS" "$SECONDS_")
    ips=$(echo "$out" | sed -n 's/.*items\/s=\([0-9.]*\).*/\1/p')
    tps=$(python3 -c "print('%.0f' % (float('${ips:-0}') * ${toks:-0} / $BATCH))")
    echo "$out" | sed -n "s/.*items\/s=\([0-9.]*\) p50_ms=\([0-9.]*\) p90_ms=[0-9.]* p99_ms=\([0-9.]*\) errors=\([0-9]*\)/| $devs | $nready | \1 | $tps | \2 | \3 | \4 |/p"
  else
    echo "| $devs | 0 | not ready | | | | |"
  fi
  kill -TERM $sv; wait $sv
  echo "exit status of the supervisor ($devs): $?" >>"$TMP/status-$devs.txt"
done
echo
echo "prompt tokens per request: ${toks:-?} ($BATCH documents)"
for devs in 0 all; do echo; echo "#### vlembedctl status (--devices $devs)"; cat "$TMP/status-$devs.txt"; done
[ -n "${OUT:-}" ] && cp "$TMP"/super-*.log "$OUT"/ 2>/dev/null
exit 0
