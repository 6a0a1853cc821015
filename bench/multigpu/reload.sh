#!/usr/bin/env bash
# Rolling reloads under load (docs/performance.md, "Rolling reloads on GPUs"): the real supervisor
# serving MODEL_DIR on every GPU (--devices all), a closed-loop HTTP load for LOAD_S seconds, and
# RELOADS `vlembedctl reload`s during it; prints each reload's wall time and exit status, the load
# generator's line (requests, items/s, latencies, errors) and `vlembedctl status`, and exits 1 if a
# reload failed, a request failed or the supervisor did not exit 0 on SIGTERM.
#   bench/multigpu/reload.sh BUILD MODEL_DIR
# BUILD holds vlembed-supervisor, vlembed-gateway, vlembed-worker, vlembedctl (and lib/ for a
# device bundle). Knobs: LOAD_S (16), RELOADS (2), CONNS (64), BATCH (16 documents per request),
# REPEAT (30 = ~600-token documents), PORT (18090), BACKEND (cuda; cpu: --workers 2 instead of
# --devices all, to try the script without GPUs).
set -u
BUILD=$(cd "${1:?BUILD}" && pwd)
MODEL=${2:?MODEL_DIR}
LOAD_S=${LOAD_S:-16}
RELOADS=${RELOADS:-2}
CONNS=${CONNS:-64}
BATCH=${BATCH:-16}
REPEAT=${REPEAT:-30}
PORT=${PORT:-18090}
BACKEND=${BACKEND:-cuda}
TMP=$(mktemp -d /tmp/vl-reload.XXXXXX)
mkdir -p "$TMP/rt"
. "$(dirname "$0")/common.sh"
if [ "$BACKEND" = cuda ]; then placement=(--devices all); else placement=(--workers 2); fi
"${LIBENV[@]}" "$BUILD/vlembed-supervisor" --model "$MODEL" --backend "$BACKEND" "${placement[@]}" \
  --http 127.0.0.1:$PORT --runtime-dir "$TMP/rt" \
  --gateway-args "--preprocess-threads 12 --max-inflight-items 100000" 2>"$TMP/super.log" &
sv=$!
fail=0
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
sleep 2 # every worker up, not only the first
echo "ready: $(curl -s "http://127.0.0.1:$PORT/ready")"
"$TMP/loadgen" http 127.0.0.1:$PORT "$TMP/req.json" "$BATCH" "$CONNS" "$LOAD_S" >"$TMP/load.txt" 2>&1 &
lg=$!
sleep 3
for r in $(seq 1 "$RELOADS"); do
  t0=$(date +%s.%N)
  "${LIBENV[@]}" "$BUILD/vlembedctl" reload --runtime-dir "$TMP/rt" --timeout 300 >/dev/null
  rc=$?
  echo "reload $r: exit $rc in $(python3 -c "print('%.2f' % ($(date +%s.%N) - $t0))") s"
  [ $rc = 0 ] || fail=1
  sleep 2
done
wait $lg
echo "load: $(cat "$TMP/load.txt")"
grep -q " errors=0" "$TMP/load.txt" || fail=1
"${LIBENV[@]}" "$BUILD/vlembedctl" status --runtime-dir "$TMP/rt"
kill -TERM $sv
wait $sv
rc=$?
echo "supervisor exit status: $rc"
[ $rc = 0 ] || fail=1
[ -n "${OUT:-}" ] && cp "$TMP/super.log" "$OUT/reload-super.log" 2>/dev/null
exit $fail
