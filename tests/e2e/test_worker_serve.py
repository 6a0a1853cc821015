"""The worker's serving loop end to end: a real vlembed-worker with the CPU backend on the
committed tiny checkpoint, driven over its Unix socket with frames from docs/wire.md by a
msgpack client (python3-msgpack), and its supervisor control channel on an inherited
socketpair.

Checks: hello; every golden item (text, instruction, images, RGBA, video, mixed, empty) sent
in one frame comes back with cosine >= 0.99999 to transformers' float32 embedding; items of two
connections are answered on their own connection; a malformed item gets a per-item
`invalid_item` error and its neighbours still succeed; an item whose deadline has passed is
answered `deadline_exceeded`; `ready` and `heartbeat` arrive on the control fd; SIGTERM
answers every item already sent (draining), sends `draining`, and exits 0."""
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

try:
    import msgpack
    import numpy as np
    from PIL import Image
except ImportError:  # a python3 first on PATH without Debian's python3-msgpack/-numpy/-pil
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

ROOT = os.environ.get("VL_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
BUILD = os.environ.get("VL_BUILD", os.path.join(ROOT, "build"))
GOLD = os.path.join(ROOT, "tests/data/goldens")
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, flush=True)
    else:
        print("ok  ", what, flush=True)


def send(sock, obj):
    b = msgpack.packb(obj, use_bin_type=True)
    sock.sendall(struct.pack(">I", len(b)) + b)


def recv(sock, timeout=60):
    sock.settimeout(timeout)
    hdr = b""
    while len(hdr) < 4:
        c = sock.recv(4 - len(hdr))
        if not c:
            raise EOFError
        hdr += c
    n = struct.unpack(">I", hdr)[0]
    buf = b""
    while len(buf) < n:
        c = sock.recv(min(1 << 20, n - len(buf)))
        if not c:
            raise EOFError
        buf += c
    return msgpack.unpackb(buf, raw=False)


def wire_item(item_id, it):
    vis = []
    for v in it["visuals"]:
        frames = [np.asarray(Image.open(os.path.join(GOLD, f)).convert("RGB"), dtype=np.uint8)
                  for f in v["frames"]]
        px = np.concatenate([f.reshape(-1) for f in frames]).tobytes()
        vis.append({"kind": v["kind"], "grid": v["grid"], "pixels": px})
    return {"id": item_id, "deadline_ms": 60000,
            "ids": np.asarray(it["ids"], dtype="<i4").tobytes(), "visuals": vis}


def cos(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def results_by_id(sock, n):
    got = {}
    while len(got) < n:
        f = recv(sock)
        assert f["type"] == "result", f
        for r in f["items"]:
            got[r["id"]] = r
    return got


def main():
    gold = json.load(open(os.path.join(GOLD, "model_goldens.json")))
    items = gold["items"]
    tmp = tempfile.mkdtemp(prefix="vl-worker-")
    path = os.path.join(tmp, "w.sock")
    ctl_parent, ctl_child = socket.socketpair()
    proc = subprocess.Popen(
        [os.path.join(BUILD, "vlembed-worker"), "--model", os.path.join(ROOT, "tests/data/tiny-model"),
         "--backend", "cpu", "--socket", path, "--control-fd", str(ctl_child.fileno()),
         "--threads", "2"],
        pass_fds=[ctl_child.fileno()])
    ctl_child.close()
    try:
        ready = recv(ctl_parent, timeout=60)
        check(ready["type"] == "ready" and ready["socket"] == path and ready["pid"] == proc.pid
              and len(ready["fingerprint"]) == 16, "control: ready with socket, pid, fingerprint")
        check(oct(os.stat(path).st_mode & 0o777) == "0o600", "socket mode 0600")

        s1 = socket.socket(socket.AF_UNIX)
        s1.connect(path)
        hello = recv(s1)
        check(hello["type"] == "hello" and hello["dim"] == 32 and hello["fingerprint"] == ready["fingerprint"],
              "hello: dim 32 and the same fingerprint")

        # every golden item in one frame (batched by the worker across modalities)
        send(s1, {"type": "embed", "items": [wire_item(100 + i, it) for i, it in enumerate(items)]})
        got = results_by_id(s1, len(items))
        for i, it in enumerate(items):
            r = got[100 + i]
            ok = "embedding" in r
            c = cos(np.frombuffer(r["embedding"], dtype="<f4"), it["embedding_f32"]) if ok else -1
            check(ok and c >= 0.99999, "item %s: cosine %.7f to transformers f32" % (it["name"], c))

        # two connections at once: each gets its own answers
        s2 = socket.socket(socket.AF_UNIX)
        s2.connect(path)
        recv(s2)  # hello
        send(s1, {"type": "embed", "items": [wire_item(1, items[0])]})
        send(s2, {"type": "embed", "items": [wire_item(2, items[1])]})
        a = results_by_id(s1, 1)
        b = results_by_id(s2, 1)
        check(list(a) == [1] and list(b) == [2], "answers return on their own connection")
        check(cos(np.frombuffer(b[2]["embedding"], dtype="<f4"), items[1]["embedding_f32"]) >= 0.99999,
              "second connection's vector is right")

        # a malformed item among good ones: per-item error, neighbours fine
        bad = wire_item(11, items[2])
        bad["visuals"][0]["grid"] = [1, 2, 2]  # pixels no longer match the grid
        noids = {"id": 12, "ids": b"\x01\x02\x03"}  # not a whole number of int32
        pads = wire_item(13, items[2])
        pads["visuals"] = []  # image pad tokens without their image
        send(s1, {"type": "embed", "items": [wire_item(10, items[0]), bad, noids, pads,
                                              wire_item(14, items[7])]})
        got = results_by_id(s1, 5)
        check("embedding" in got[10] and "embedding" in got[14], "good items next to bad ones succeed")
        check(got[11].get("code") == "invalid_item" and "pixels" in got[11].get("error", ""),
              "mismatched pixels: invalid_item naming pixels")
        check(got[12].get("code") == "invalid_item", "bad ids: invalid_item")
        check(got[13].get("code") == "invalid_item" and "pad tokens" in got[13].get("error", ""),
              "pad tokens without visuals: invalid_item")

        # an item that expires while queued behind a long video never reaches the backend
        slow = [wire_item(20 + k, items[5]) for k in range(6)]
        late = wire_item(30, items[0])
        late["deadline_ms"] = 1
        send(s1, {"type": "embed", "items": slow})
        time.sleep(0.05)  # the inference thread has taken the slow batch by now
        send(s1, {"type": "embed", "items": [late]})
        got = results_by_id(s1, 7)
        check(got[30].get("code") == "deadline_exceeded", "expired item: deadline_exceeded")

        hb = recv(ctl_parent, timeout=5)
        while hb["type"] != "heartbeat":
            hb = recv(ctl_parent, timeout=5)
        check(hb["pid"] == proc.pid and "queue" in hb and "inflight" in hb, "control: heartbeat")

        # SIGTERM while items are queued: all answered, then a clean exit
        send(s1, {"type": "embed", "items": [wire_item(40 + k, items[5]) for k in range(4)]})
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        got = results_by_id(s1, 4)
        check(all("embedding" in got[40 + k] for k in range(4)), "drain: items sent before SIGTERM answered")
        msgs = []
        try:
            while True:
                msgs.append(recv(ctl_parent, timeout=10)["type"])
        except (EOFError, socket.timeout, OSError):
            pass
        check("draining" in msgs, "control: draining sent")
        rc = proc.wait(timeout=30)
        check(rc == 0, "exit code 0 after the drain (got %s)" % rc)
        check(not os.path.exists(path), "socket removed on drain")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print("%d failures" % failures)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
