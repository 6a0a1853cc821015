"""Shared helpers for the end-to-end tests: start real vlembed-worker and vlembed-gateway
processes on the committed tiny checkpoint, talk HTTP (http.client) and the msgpack API
(python3-msgpack), compare vectors. Not a test itself (no test_ prefix)."""
import base64
import http.client
import http.server
import json
import os
import re
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time

try:
    import msgpack
    import numpy as np
except ImportError:  # a python3 first on PATH without Debian's python3-msgpack / -numpy
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

ROOT = os.environ.get("VL_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("VL_BUILD", os.path.join(ROOT, "build"))
MODEL = os.path.join(ROOT, "tests/data/tiny-model")
GOLD = os.path.join(ROOT, "tests/data/goldens")

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, flush=True)
    else:
        print("ok  ", what, flush=True)
    return cond


def finish():
    print("%d failures" % failures, flush=True)
    sys.exit(1 if failures else 0)


def goldens():
    return json.load(open(os.path.join(GOLD, "model_goldens.json")))


def data_uri(path, mime="image/png"):
    return "data:%s;base64,%s" % (mime, base64.b64encode(open(path, "rb").read()).decode())


def cos(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def metrics(c):
    """The text of GET /metrics on cluster c."""
    st, _, body = c.get("/metrics")
    return body.decode() if isinstance(body, bytes) else str(body)


def metric(c, name, **labels):
    """The integer value of metric `name` with exactly these labels on c's /metrics, or None."""
    lab = ",".join('%s="%s"' % kv for kv in labels.items())
    key = re.escape(name) + (re.escape("{%s}" % lab) if lab else "")
    m = re.search(r"^%s (\d+)$" % key, metrics(c), re.M)
    return int(m.group(1)) if m else None


def peer_closed(s, timeout=3, reset_is_close=True):
    """True if the peer closed socket s within timeout, sending nothing first: EOF, or (if
    reset_is_close) a connection reset."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return reset_is_close
    except OSError:
        return False


def wait_for(pred, timeout=30, step=0.02):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(step)
    return False


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """Base of the tests' local media servers' handlers: logs nothing."""

    def log_message(self, *a):
        pass


class _ThreadingHTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def serve_http(handler):
    """Starts a threading HTTP server with handler on a free port of 127.0.0.1, in a daemon
    thread; returns (server, base URL "http://127.0.0.1:PORT/"). Stop it with server.shutdown()."""
    srv = _ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "http://127.0.0.1:%d/" % srv.server_address[1]


class Cluster:
    """n CPU workers + one gateway (HTTP on a free port, msgpack API on a socket)."""

    def __init__(self, n_workers=2, gateway_args=(), worker_args=()):
        self.tmp = tempfile.mkdtemp(prefix="vl-e2e-")
        self.workers = []
        self.sockets = []
        for i in range(n_workers):
            self.start_worker(i, worker_args)
        self.api_socket = os.path.join(self.tmp, "api.sock")
        self.glog = open(os.path.join(self.tmp, "gateway.log"), "w+")
        self.gateway = subprocess.Popen(
            [os.path.join(BUILD, "vlembed-gateway"), "--model", MODEL, "--http", "127.0.0.1:0",
             "--api-socket", self.api_socket, "--worker-sockets", ",".join(self.sockets)]
            + list(gateway_args), stderr=self.glog)
        self.port = None

        def port_known():
            self.glog.flush()
            m = re.search(r"\(port (\d+)\)", open(self.glog.name).read())
            if m:
                self.port = int(m.group(1))
            return self.port is not None
        if not wait_for(port_known, 20):
            raise RuntimeError("gateway did not start:\n" + open(self.glog.name).read())
        # every worker connected, not only the first (/ready is 200 from the first on: a test
        # asserting workers_ready == 2 right after failed under load, the second still connecting)
        if n_workers and not wait_for(lambda: self.workers_ready() == n_workers, 30):
            raise RuntimeError("gateway not ready with %d workers (%s):\n%s"
                               % (n_workers, self.workers_ready(), open(self.glog.name).read()))

    def workers_ready(self):
        """The gateway's count of ready workers (GET /ready's workers_ready), or None."""
        st, _, b = self.get("/ready")
        return b.get("workers_ready") if isinstance(b, dict) else None

    def start_worker(self, i, worker_args=()):
        path = os.path.join(self.tmp, "w%d.sock" % i)
        log = open(os.path.join(self.tmp, "worker%d.log" % i), "w")
        p = subprocess.Popen(
            [os.path.join(BUILD, "vlembed-worker"), "--model", MODEL, "--backend", "cpu",
             "--socket", path, "--threads", "1"] + list(worker_args), stderr=log)
        if not wait_for(lambda: os.path.exists(path), 30):
            raise RuntimeError("worker %d did not listen" % i)
        if i < len(self.workers):
            self.workers[i] = p
        else:
            self.workers.append(p)
            self.sockets.append(path)
        return p

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def request(self, method, path, body=None, headers=None):
        c = self.conn()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        try:
            parsed = json.loads(data) if data and data[:1] in (b"{", b"[") else data
        except ValueError:
            parsed = data
        return r.status, hdrs, parsed

    def get(self, path):
        return self.request("GET", path)

    def post(self, body, path="/v1/embeddings", headers=None):
        return self.request("POST", path, body, headers)

    def embed(self, inp, **kw):
        body = {"input": inp, "model": "tiny"}
        body.update(kw)
        st, h, r = self.post(body)
        if st != 200:
            raise RuntimeError("embed failed %d: %s" % (st, r))
        return [d["embedding"] for d in r["data"]], r

    def log(self):
        self.glog.flush()
        return open(self.glog.name).read()

    def stop(self):
        rc = None
        if self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGTERM)
            try:
                rc = self.gateway.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait()
        for w in self.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        return rc


class MsgpackClient:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.s.settimeout(60)

    def send(self, obj):
        b = msgpack.packb(obj, use_bin_type=True)
        self.s.sendall(struct.pack(">I", len(b)) + b)

    def send_raw(self, b):
        self.s.sendall(b)

    def recv(self):
        def exact(n):
            buf = b""
            while len(buf) < n:
                c = self.s.recv(n - len(buf))
                if not c:
                    raise EOFError
                buf += c
            return buf
        n = struct.unpack(">I", exact(4))[0]
        return msgpack.unpackb(exact(n), raw=False)

    def recv_within(self, timeout):
        """The next answer map within `timeout` seconds, or None on EOF, timeout or error."""
        self.s.settimeout(timeout)
        try:
            return self.recv()
        except (OSError, EOFError, ValueError):
            return None

    def close(self):
        self.s.close()


def answer_brief(a):
    """A msgpack API answer without its vectors, for a test's log."""
    if not isinstance(a, dict):
        return a
    return {k: v for k, v in a.items() if k in ("type", "id", "status", "retry_after", "error")}


def ctl_embed(lines):
    """vlembedctl embed on JSON Lines items; returns the parsed output lines."""
    p = subprocess.run([os.path.join(BUILD, "vlembedctl"), "embed", "--model", MODEL, "--threads", "1"],
                       input="\n".join(json.dumps(x) for x in lines) + "\n", capture_output=True,
                       text=True, timeout=120)
    return [json.loads(l) for l in p.stdout.splitlines()], p.returncode, p.stderr
