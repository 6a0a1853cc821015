"""The gateway under failure and load, with real processes:

* a worker killed (SIGKILL) while it holds items: the request still succeeds, its items retried
  once on the other worker, with the same vectors;
* no worker left: /ready and /v1/embeddings answer 503 with Retry-After; a worker that comes
  back is reconnected and used;
* the admission limit: a request beyond it gets 429 with Retry-After before any work;
* a request deadline shorter than the work: 504, and the gateway keeps serving;
* the supervisor's control channel: gateway_ready, heartbeat, `workers` messages adding a ready
  worker, then marking it draining (-> `drained`, /ready 503), then removing it."""
import os
import signal
import socket
import struct
import subprocess
import threading
import time

from vlharness import (BUILD, GOLD, MODEL, Cluster, check, data_uri, finish, goldens, msgpack, np,
                       wait_for)

G = goldens()
BY = {it["name"]: it for it in G["items"]}
FRAMES = [data_uri(os.path.join(GOLD, f)) for f in BY["video"]["visuals"][0]["frames"]]
VIDEO = {"video": FRAMES}


def metric(c, name):
    st, _, b = c.get("/metrics")
    for line in b.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def worker_death():
    c = Cluster(2)
    try:
        want, _ = c.embed([VIDEO, "t"])
        items = [VIDEO] * 6
        res = {}

        def go():
            res["r"] = c.post({"input": items})
        th = threading.Thread(target=go)
        th.start()
        # kill worker 0 once it holds items of this request
        wait_for(lambda: (metric(c, 'vlembed_worker_inflight_items{worker="0"}') or 0) > 0, 20, 0.005)
        c.workers[0].kill()
        th.join(60)
        st, _, b = res.get("r", (0, None, None))
        check(st == 200 and len(b["data"]) == 6 and all(np.allclose(d["embedding"], want[0], atol=1e-6)
                                                         for d in b["data"]),
              "a worker SIGKILLed mid-request: every item answered, same vectors (status %s)" % st)
        check((metric(c, "vlembed_worker_retries_total") or 0) > 0, "items were retried on the other worker")
        check(wait_for(lambda: c.get("/ready")[2].get("workers_ready") == 1, 5), "/ready counts one worker")
        c.workers[1].kill()
        check(wait_for(lambda: c.get("/ready")[0] == 503, 5), "no worker: /ready 503")
        st, h, b = c.get("/ready")
        check(h.get("retry-after") == "1", "/ready 503 carries Retry-After")
        st, h, b = c.post({"input": "x"})
        check(st == 503 and b["error"]["code"] == "no_ready_worker" and h.get("retry-after") == "1",
              "no worker: embeddings 503 no_ready_worker with Retry-After")
        c.start_worker(1)
        check(wait_for(lambda: c.get("/ready")[0] == 200, 10), "a restarted worker is reconnected")
        v, _ = c.embed(["t"])
        check(np.allclose(v[0], want[1], atol=1e-6), "and serves again")
    finally:
        c.stop()


def overload_and_deadline():
    c = Cluster(1, gateway_args=["--max-inflight-items", "4"])
    try:
        res = {}

        def heavy():
            res["r"] = c.post({"input": [VIDEO] * 4})
        th = threading.Thread(target=heavy)
        t_start = time.time()
        th.start()
        # until the heavy request is admitted (was a fixed 0.1 s: the thread's connect, its
        # ~1 MB body and the gateway's parse must all fit in it, or "one more" is admitted first)
        check(wait_for(lambda: metric(c, "vlembed_queue_items") == 4, 20, 0.005),
              "the 4-item request is admitted, %.3f s after its thread started (vlembed_queue_items %s)"
              % (time.time() - t_start, metric(c, "vlembed_queue_items")))
        t0 = time.time()
        st, h, b = c.post({"input": "one more"})
        dt = time.time() - t0
        th.join(60)
        check(st == 429 and b["error"]["code"] == "overloaded" and h.get("retry-after") == "1",
              "over the admission limit: 429 overloaded with Retry-After")
        check(dt < 0.2, "429 answered at once (%.3f s), before any work" % dt)
        check(res["r"][0] == 200, "the admitted request completes")
        check(metric(c, "vlembed_rejected_total{reason=\"overloaded\"}") == 1, "rejection counted")
        st, _, b = c.post({"input": [VIDEO] * 4, "timeout": 0.05})
        check(st == 504 and b["error"]["code"] == "deadline_exceeded", "deadline shorter than the work: 504")
        time.sleep(0.5)
        v, _ = c.embed(["after"])
        check(len(v[0]) == 32, "the gateway keeps serving after a deadline")
        check(metric(c, "vlembed_queue_items") == 0, "admission released after the deadline")
        # a client that goes away: its request stops holding admission at once
        import json as _json
        body = _json.dumps({"input": [VIDEO] * 4}).encode()
        s = socket.create_connection(("127.0.0.1", c.port))
        s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(0.05)
        s.close()
        check(wait_for(lambda: metric(c, 'vlembed_errors_total{status="499",code="client_closed"}') == 1, 5)
              and metric(c, "vlembed_queue_items") == 0, "client gone: request cancelled (499), admission released")
        v, _ = c.embed(["after"])
        check(len(v[0]) == 32, "and the gateway keeps serving")
        from vlharness import MsgpackClient
        m = MsgpackClient(c.api_socket)
        m.send({"id": 1, "input": [VIDEO] * 4})
        time.sleep(0.05)
        m.close()
        check(wait_for(lambda: metric(c, 'vlembed_errors_total{status="499",code="client_closed"}') == 2, 5)
              and metric(c, "vlembed_queue_items") == 0, "msgpack client gone: request cancelled, admission released")
        v, _ = c.embed(["after"])
        check(len(v[0]) == 32, "and the gateway keeps serving")
    finally:
        c.stop()


def send(sock, obj):
    b = msgpack.packb(obj, use_bin_type=True)
    sock.sendall(struct.pack(">I", len(b)) + b)


def recv(sock, timeout=10):
    sock.settimeout(timeout)
    def exact(n):
        buf = b""
        while len(buf) < n:
            ch = sock.recv(n - len(buf))
            if not ch:
                raise EOFError
            buf += ch
        return buf
    return msgpack.unpackb(exact(struct.unpack(">I", exact(4))[0]), raw=False)


def control_channel():
    c = Cluster(1)  # provides a running worker; a second gateway is driven by a control fd
    parent, child = socket.socketpair()
    log = open(os.path.join(c.tmp, "gw2.log"), "w+")
    gw = subprocess.Popen([os.path.join(BUILD, "vlembed-gateway"), "--model", MODEL, "--http", "127.0.0.1:0",
                           "--control-fd", str(child.fileno())], pass_fds=[child.fileno()], stderr=log)
    child.close()
    try:
        m = recv(parent)
        check(m["type"] == "gateway_ready" and m["pid"] == gw.pid, "control: gateway_ready")
        import re
        port = None
        def known():
            nonlocal port
            log.flush()
            mm = re.search(r"\(port (\d+)\)", open(log.name).read())
            port = int(mm.group(1)) if mm else None
            return port
        wait_for(known, 10)
        import http.client
        def ready():
            h = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            h.request("GET", "/ready")
            return h.getresponse().status
        check(ready() == 503, "no workers listed yet: 503")
        w = {"id": 7, "socket": c.sockets[0], "state": "ready", "device": "cpu", "pid": c.workers[0].pid}
        send(parent, {"type": "workers", "workers": [w]})
        check(wait_for(lambda: ready() == 200, 10), "a ready worker from the supervisor is used")
        hb = recv(parent)
        while hb["type"] != "heartbeat":
            hb = recv(parent)
        check(hb["pid"] == gw.pid, "control: heartbeat")
        send(parent, {"type": "workers", "workers": [dict(w, state="draining")]})
        got = None
        for _ in range(10):
            m = recv(parent)
            if m["type"] == "drained":
                got = m
                break
        check(got is not None and got["id"] == 7, "draining worker with nothing in flight: drained")
        check(ready() == 503, "no ready worker while it drains")
        send(parent, {"type": "workers", "workers": []})
        time.sleep(0.2)
        check(gw.poll() is None, "worker removed; gateway still up")
        parent.close()  # the supervisor went away: the gateway stops
        check(gw.wait(timeout=15) == 0, "gateway exits 0 when its control channel closes")
    finally:
        if gw.poll() is None:
            gw.kill()
        c.stop()


if __name__ == "__main__":
    for f in (worker_death, overload_and_deadline, control_channel):
        t0 = time.time()
        f()
        print("     (%s: %.1f s)" % (f.__name__, time.time() - t0), flush=True)
    finish()
