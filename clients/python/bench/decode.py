"""Client-side cost of one answer of 256 vectors of 2048 floats (the 2B model's width): the HTTP
JSON body with float numbers (printed with 9 significant digits, as the gateway does), the HTTP
JSON body with base64 vectors (http_float_base64=True), and the msgpack answer (float32 bin),
each parsed and decoded as vlembed_client does, to lists and to numpy (as_numpy=True). No server:
this measures only what the client spends per answer.
Usage: python3 clients/python/bench/decode.py"""
import base64
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from vlembed_client.client import Client, EmbeddingResult  # noqa: E402

N, D, REPS = 256, 2048, 5
rng = np.random.default_rng(0)
v = rng.standard_normal((N, D)).astype(np.float32)
v /= np.linalg.norm(v, axis=1, keepdims=True)
body = ('{"object":"list","data":[' + ",".join(
    '{"object":"embedding","index":%d,"embedding":[%s]}' % (i, ",".join("%.9g" % x for x in row))
    for i, row in enumerate(v)) + '],"model":"m"}').encode()
body64 = ('{"object":"list","data":[' + ",".join(
    '{"object":"embedding","index":%d,"embedding":"%s"}' % (i, base64.b64encode(row.tobytes()).decode())
    for i, row in enumerate(v)) + '],"model":"m"}').encode()
try:
    import msgpack
    frame = msgpack.packb({"type": "result", "id": "x", "data": [
        {"index": i, "embedding": row.tobytes()} for i, row in enumerate(v)], "model": "m"},
        use_bin_type=True)
except ImportError:
    msgpack = None


class Fake:
    def __init__(self, binary):
        self.binary = binary


def best(fn):
    t = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t) * 1e3


def run(binary, payload, as_numpy):
    c = Client.__new__(Client)
    c._t = Fake(binary)
    ans = msgpack.unpackb(payload, raw=False) if binary else json.loads(payload)
    vecs = [c._decode(d["embedding"], "float", as_numpy) for d in ans["data"]]
    if as_numpy:
        vecs = EmbeddingResult(vecs, {}, "m", {}, [], [], "float").numpy()
    return vecs


print("%d x %d float32 per answer; best of %d; %s" % (N, D, REPS, sys.version.split()[0]))
rows = [("HTTP, float numbers", False, body), ("HTTP, base64", False, body64)]
if msgpack:
    rows.append(("unix socket, msgpack bin", True, frame))
print("%-26s %8s %14s %14s" % ("answer", "MB", "to lists ms", "to numpy ms"))
for name, binary, payload in rows:
    assert np.array_equal(np.asarray(run(binary, payload, False), np.float32), v)
    assert np.array_equal(run(binary, payload, True), v)
    print("%-26s %8.1f %14.1f %14.1f" % (name, len(payload) / 1e6, best(lambda: run(binary, payload, False)),
                                         best(lambda: run(binary, payload, True))))
