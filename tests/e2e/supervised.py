"""Helpers for the supervisor's end-to-end and chaos tests (tests/e2e/test_super_*.py,
tests/chaos/test_chaos_*.py): start the real vlembed-supervisor (which starts the real gateway
and CPU workers on the committed tiny checkpoint), read `vlembedctl status --json`, send real
HTTP requests, listen on a NOTIFY_SOCKET like systemd does, and load the service from client
threads while checking every answer. Standard library only."""
import http.client
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.environ.get("VL_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("VL_BUILD") or os.path.join(ROOT, "build")
MODEL = os.path.join(ROOT, "tests", "data", "tiny-model")
SUPERVISOR = os.path.join(BUILD, "vlembed-supervisor")
CTL = os.path.join(BUILD, "vlembedctl")

_failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        _failures.append(what)
    return cond


def finish():
    if _failures:
        print("%d check(s) failed:" % len(_failures))
        for f in _failures:
            print("  - " + f)
        sys.exit(1)
    print("all checks passed")


_reserved = []  # the sockets holding the ports free_port() handed out, open until the test exits


def free_port():
    """A loopback TCP port for a server the test starts later, reserved until the test exits: a
    socket bound to it with SO_REUSEADDR (not listening) stays open, so no other process's bind(0)
    or outgoing connection (an ephemeral source port) can take it before the server binds it; the
    servers (vlembed-supervisor, libuv in vlembed-gateway, systemd-socket-activate) set
    SO_REUSEADDR too, so they still can, and a connection to it is refused until one listens. A
    port probed and closed at once was free for anyone until then."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    _reserved.append(s)
    return s.getsockname()[1]


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; keeps every message."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []  # (monotonic time, text)
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def has(self, line):
        return any(line in m.split("\n") for _, m in self.messages)

    def first(self, line, after=0.0):
        for t, m in self.messages:
            if t >= after and line in m.split("\n"):
                return t
        return None

    def wait_for(self, line, timeout=30, after=0.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            t = self.first(line, after)
            if t is not None:
                return t
            time.sleep(0.05)
        return None

    def close(self):
        self._stop = True
        self.sock.close()


class Service:
    """One vlembed-supervisor with its gateway and CPU workers, in a private runtime dir."""

    def __init__(self, workers=2, extra=(), config=None, notify=False, env=None, model=MODEL,
                 wrapper=(), port=None):
        self.tmp = tempfile.mkdtemp(prefix="vl-super-")
        self.run_dir = os.path.join(self.tmp, "run")
        self.port = port or free_port()
        self.log_path = os.path.join(self.tmp, "supervisor.log")
        self.notify = NotifyListener(os.path.join(self.tmp, "notify.sock")) if notify else None
        args = list(wrapper) + [SUPERVISOR]
        if config:
            self.config = os.path.join(self.tmp, "vlembed.conf")
            self.write_config(config)
            args += ["--config", self.config]
        else:
            args += ["--model", model]
        args += ["--backend", "cpu", "--workers", str(workers), "--http", "127.0.0.1:%d" % self.port,
                 "--runtime-dir", self.run_dir, "--worker-args", "--threads 1"] + list(extra)
        e = dict(os.environ)
        if self.notify:
            e["NOTIFY_SOCKET"] = self.notify.path
        e.update(env or {})
        self.log = open(self.log_path, "w")
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=e,
                                     start_new_session=True)

    def write_config(self, text):
        with open(self.config + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.config + ".tmp", self.config)

    # ---- control ----
    def ctl(self, *args, timeout=120):
        return subprocess.run([CTL] + list(args) + ["--runtime-dir", self.run_dir],
                              capture_output=True, text=True, timeout=timeout)

    def status(self):
        r = self.ctl("status", "--json", timeout=10)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def workers(self, st=None):
        st = st or self.status() or {"processes": []}
        return [p for p in st["processes"] if p["role"] == "worker"]

    def gateway(self, st=None):
        st = st or self.status() or {"processes": []}
        g = [p for p in st["processes"] if p["role"] == "gateway"]
        return g[0] if g else None

    def wait(self, pred, timeout=30, step=0.02):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return None
            st = self.status()
            if st is not None and pred(st):
                return st
            time.sleep(step)
        return None

    def gateway_workers_ready(self):
        """The gateway's own count of ready workers (GET /ready's workers_ready), or None."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            c.request("GET", "/ready")
            return json.loads(c.getresponse().read()).get("workers_ready")
        except (OSError, ValueError, AttributeError):
            return None
        finally:
            c.close()

    def wait_serving(self, n=None, timeout=60):
        """Waits until the supervisor reports serving with n ready workers (any, if n is None)
        and its gateway has connected to as many: the supervisor marks a worker ready from the
        worker's own message, the gateway connects to it a moment later and answers 503
        no_ready_worker until then. Returns the status, or None after timeout seconds."""
        def ok(st):
            ws = [w for w in self.workers(st) if w["state"] == "ready"]
            g = self.gateway(st)
            return st["state"] == "serving" and g and g["state"] == "ready" and \
                (n is None or len(ws) == n) and \
                (self.gateway_workers_ready() or 0) >= (n or 1)
        return self.wait(ok, timeout)

    # ---- requests ----
    def embed(self, texts, timeout=30):
        """POSTs /v1/embeddings; returns (status, parsed body or text)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("POST", "/v1/embeddings", json.dumps({"input": texts}),
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            try:
                return r.status, json.loads(body)
            except ValueError:
                return r.status, body.decode(errors="replace")
        finally:
            c.close()

    def stop(self, sig=15, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            rc = self.proc.wait()
        self.log.close()
        if self.notify:
            self.notify.close()
        return rc

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def cleanup(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def dump_log(self, lines=60):
        print("---- supervisor log (last %d lines) ----" % lines)
        print("\n".join(self.log_text().splitlines()[-lines:]))


# ---- load with answer checking ----

TEXTS = ["a red bicycle leaning on a wall", "quarterly revenue grew by 12 percent",
         "der schnelle braune Fuchs", "embedding servers should never lose a request",
         "two cats asleep on a sofa", "SELECT * FROM vectors WHERE id = 7",
         "the supervisor restarts what dies", "日本語のテキストも埋め込む"]


def reference_vectors(svc):
    """Each text embedded alone before any chaos: the answers later requests must match."""
    ref = {}
    for t in TEXTS:
        st, body = svc.embed([t])
        if st != 200:
            raise RuntimeError("reference request failed: %s %s" % (st, body))
        ref[t] = body["data"][0]["embedding"]
    return ref


def same_vector(a, b, tol=1e-4):
    """Batching may change float sums in the last bits; a wrong or misrouted vector is far off
    (two different texts of the tiny model are at cosine < 0.99)."""
    if len(a) != len(b):
        return False
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    return na > 0 and nb > 0 and 1.0 - dot / (na * nb) <= tol


class Load:
    """Client threads sending 1-3 texts per request on fresh connections, checking that every
    request is answered once, with one vector per input, in order, equal to the reference."""

    def __init__(self, svc, ref, threads=4, seed=1):
        self.svc, self.ref = svc, ref
        self.lock = threading.Lock()
        self.counts = {"sent": 0, "ok": 0, "lost": 0, "wrong": 0, "duplicated": 0,
                       "refused": 0, "reset": 0, "http_errors": 0}
        self.errors = {}
        self.latencies = []
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(seed + i,), daemon=True)
                        for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self.threads:
            t.join(60)
        return self.counts

    def _note(self, key, detail=None):
        with self.lock:
            self.counts[key] += 1
            if detail is not None:
                self.errors[detail] = self.errors.get(detail, 0) + 1

    def _run(self, seed):
        rng = random.Random(seed)
        while not self._stop.is_set():
            texts = rng.sample(TEXTS, rng.randint(1, 3))
            with self.lock:
                self.counts["sent"] += 1
            t0 = time.monotonic()
            try:
                st, body = self.svc.embed(texts)
            except ConnectionRefusedError:
                self._note("refused", "connection refused")
                self._note("lost")
                continue
            except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError) as e:
                self._note("reset", type(e).__name__)
                self._note("lost")
                continue
            except Exception as e:  # timeouts and anything else: the request got no answer
                self._note("lost", type(e).__name__)
                continue
            dt = time.monotonic() - t0
            if st != 200:
                self._note("http_errors", "HTTP %d %s" % (st, str(body)[:120]))
                self._note("lost")
                continue
            data = body.get("data", []) if isinstance(body, dict) else []
            idx = [d.get("index") for d in data]
            if len(data) != len(texts) or sorted(idx) != list(range(len(texts))):
                self._note("duplicated" if len(data) > len(texts) or len(set(idx)) < len(idx)
                           else "wrong", "bad data indices %s for %d inputs" % (idx, len(texts)))
                continue
            bad = [i for i, d in enumerate(data)
                   if not same_vector(d["embedding"], self.ref[texts[d["index"]]])]
            if bad:
                self._note("wrong", "vector differs from the reference")
                continue
            with self.lock:
                self.counts["ok"] += 1
                self.latencies.append(dt)

    def percentile(self, p):
        xs = sorted(self.latencies)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def log_time(line):
    """Seconds since midnight of a log line's UTC timestamp (2026-11-27T15:42:00.702Z ...)."""
    ts = line.split(" ", 1)[0]
    h, m, sec = ts.split("T")[1].rstrip("Z").split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def restart_times(log, role="worker"):
    """From the supervisor's log: for each unexpected death of a `role` process, the seconds
    until the next process of the same device (the gateway: the next gateway) was ready."""
    out, pending = [], {}
    for line in log.splitlines():
        if "supervisor[" not in line:
            continue
        words = line.split()
        if len(words) < 7 or words[3] != role:
            continue
        dev = words[6] if role == "worker" else "gateway"
        if "exited:" in line and "(unexpected)" in line:
            pending[dev] = log_time(line)
        elif " ready after " in line and dev in pending:
            out.append(log_time(line) - pending.pop(dev))
    return out
