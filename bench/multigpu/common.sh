# Sourced by bench/multigpu/run.sh and reload.sh after they set BUILD, BATCH, REPEAT and TMP:
# LIBENV (a device bundle's libraries for vlembed's processes only: the host's curl keeps its
# own), ROOT, and in TMP the closed-loop load generator (TMP/loadgen) and one request of BATCH
# documents of REPEAT copies of a base sentence (TMP/req.json, base64 answers).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIBENV=()
[ -d "$BUILD/lib" ] && LIBENV=(env "LD_LIBRARY_PATH=$BUILD/lib:${LD_LIBRARY_PATH:-}")
cc -O2 -D_GNU_SOURCE -pthread "$ROOT/bench/serve/loadgen.c" -o "$TMP/loadgen" || exit 1
python3 - "$TMP" "$BATCH" "$REPEAT" <<'PY'
import json, sys
tmp, batch, rep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = "The quick brown fox jumps over the lazy dog near the river bank, and the heron watches. "
docs = [("Document %d. " % i) + base * rep for i in range(batch)]
json.dump({"model": "m", "input": docs, "encoding_format": "base64"}, open(tmp + "/req.json", "w"))
PY
