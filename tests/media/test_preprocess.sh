#!/usr/bin/env bash
# vlembedctl preprocess end to end: an image, a video file with written PNG frames, a frame
# list, a data: URI, and errors (1x1 image, a loopback URL refused by the SSRF rule).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${VL_BUILD:-build}
CTL=$BUILD/vlembedctl
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$PY" tests/media/make_bad_inputs.py "$T" >/dev/null
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$CTL" preprocess "$T/ok.jpg")
echo "$out"
[ "$out" = '{"kind":"image","source_size":[64,48],"resized_size":[64,64],"grid_thw":[1,4,4],"tokens":4,"frames":1}' ] || fail "image: $out"

out=$("$CTL" preprocess --video "$T/video.mp4" --write-frames "$T/frames")
echo "$out"
echo "$out" | grep -q '"grid_thw":\[2,20,28\]' || fail "video grid: $out"
echo "$out" | grep -q '"frame_indices":\[0,6,13,19\]' || fail "video indices: $out"
echo "$out" | grep -q '"timestamp_text":\["<0.3 seconds>","<1.6 seconds>"\]' || fail "video ts: $out"
"$PY" - "$T/frames" <<'PYEOF'
import sys, os
from PIL import Image
names = sorted(os.listdir(sys.argv[1]))
assert names == [f"frame_{i:03d}.png" for i in range(4)], names
for n in names:
    im = Image.open(os.path.join(sys.argv[1], n))
    assert im.size == (448, 320) and im.mode == "RGB", (n, im.size, im.mode)
PYEOF

out=$("$CTL" preprocess --frames "$T/ok.png" "$T/ok.jpg" "$T/ok.gif")
echo "$out"
echo "$out" | grep -q '"grid_thw":\[2,24,24\].*"timestamp_text":\["<0.2 seconds>","<1.2 seconds>"\]' || fail "frames: $out"

out=$("$CTL" preprocess "data:image/png;base64,$(base64 -w0 "$T/ok.png")")
echo "$out" | grep -q '"resized_size":\[64,64\]' || fail "data uri: $out"

if "$CTL" preprocess "$T/one.png" 2>"$T/err"; then fail "1x1 accepted"; fi
grep -q "each side must be at least 2 pixels" "$T/err" || fail "1x1 error: $(cat "$T/err")"
if "$CTL" preprocess http://127.0.0.1:9/x.png 2>"$T/err"; then fail "loopback URL fetched"; fi
grep -q "is not allowed" "$T/err" || fail "ssrf error: $(cat "$T/err")"
echo "ok"
