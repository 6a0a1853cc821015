"""The gateway's memory under load stays within its buffered-bytes budget plus a fixed allowance,
and settles (no growth over repeated rounds: a leak check). A real gateway and a CPU worker on
the tiny checkpoint, --max-buffered-bytes 32M, --max-body 4M; each round drives at once, for
ROUND_S seconds:

* 10 HTTP clients posting base64 data: URI images near the body limit (~3.9 MB bodies, a 2.8 MB
  image each: a small PNG followed by bytes after its IEND, so the load is bytes, not pixels);
* 3 slow HTTP senders declaring such a body and sending it at ~1 MB/s;
* 3 HTTP clients posting requests of 4 image URLs each to a local HTTP server answering 1.5 MiB
  images;
* 3 msgpack clients sending the image as bin in ~2.8 MB frames;

every 503 memory_busy is retried after 50 ms (that is the budget doing its job). The gateway's
VmRSS is sampled from /proc every 20 ms (not VmHWM: that is the start-up peak of parsing
tokenizer.json, higher than any of this).

First, with the worker paused, HELD (5) such inline requests are sent and held: the gauge must
show exactly their data: URI copies (the parsed bodies freed) and the RSS they add must be at
most that + HELD_SLACK (6 MiB). Then, asserted over the rounds:
* peak VmRSS - (VmRSS at idle before the load) <= BUDGET + ALLOWANCE, ALLOWANCE = 32 MiB: what
  the budget does not count but constants bound: the JSON tree and string copies of the one body
  being parsed on the event loop (2 x --max-body = 8 MiB), freed memory not yet trimmed (up to
  VL_GATEWAY_TRIM_BURST_BYTES = 8 MiB per loop iteration, x2 for what the pool threads free
  meanwhile), connection, staging and libcurl buffers, answers and the allocator's slack (8 MiB).
  (The preprocessing pool's decoded pixels are small here: the load is bytes; they are bounded
  by max-request-decoded-pixels per request, not by this budget.)
* after every round, once the load is gone, VmRSS is back within SETTLE (16 MiB) of the idle RSS
  before the load (within 3 s: the gateway's last heap trim comes at most two 1 s trim periods
  after the last release): nothing leaks (one body kept per request would be hundreds of MiB),
  and the memory of a burst goes back to the kernel (without the heap trims: +55 MiB after every
  round). What stays after the trim comes in steps of ~3.5 MiB (not one per pool thread: the
  same with --preprocess-threads 1; cause not known): +3.0..+7.0 MiB on an idle machine, up to
  +10.4 MiB settled with two `yes` burners (and +13.8 MiB for 0.5 s before a trim), which the
  earlier SETTLE of 12 MiB left one step from failing; 16 MiB allows that one more step.
* vlembed_buffered_bytes is back to 0 after each round and its peak never passed the budget by
  more than ANSWERS (1 MiB): answers queued for clients' sockets are charged unconditionally
  (docs/security.md), so they may take the gauge past the limit; here they are a few KiB each on
  at most 19 connections, while any input charged past the budget would be >= 1.5 MiB (the
  smallest source sent);
  every answer is 200 or 503 memory_busy; every kind of client was served (inline and msgpack in
  every round; slow and URL clients, which need the most budget at once, in some round).

Measured on the 2-core dev machine (3 runs, then with HELD = 6): idle 31.5 MiB, 6 held requests +21.7 MiB (21.4 MiB
charged), load peak +53.6..+55.1 MiB, idle after each round +3.2..+6.9 MiB. On f38814f (before the
fixes: the body kept beside its parsed copies, glibc's dynamic mmap threshold, no heap trims):
idle 91.4 MiB (tokenizer.json's free heap, later reused), peak 133.2 MiB, and the idle RSS
stayed at the peak after every round (+32.9 MiB after round 1, +41.8 MiB after round 2 on).

Against a gateway built with AddressSanitizer (make SAN=address,undefined; tests/run.sh build-san)
the three RSS bounds are printed as skipped: ASan's quarantine and shadow memory are most of the
RSS there (+310..+350 MiB peak seen). The gauge and serving checks run in every build."""
import base64
import io
import json
import os
import re
import select
import signal
import socket
import struct
import threading
import time

from vlharness import BUILD, Cluster, QuietHandler, check, finish, metric, serve_http, wait_for

import msgpack
from PIL import Image

MiB = 1 << 20
BUDGET = 32 * MiB
MAX_BODY = 4 * MiB
ALLOWANCE = 32 * MiB
SETTLE = 16 * MiB  # see the docstring: settled residue up to +10.4 MiB seen, in ~3.5 MiB steps
ANSWERS = 1 * MiB
# 5, not 6: while the held requests are decoded, each pool thread also holds its 2.8 MB decoded
# source (charged), so 6 x 3.9 MB URI copies + 4 x 2.8 MB = 34.6 MB could pass the 32 MiB budget
# for a moment and answer a held request 503 (seen in ~1 of 5 runs); 5 x 3.9 + 4 x 2.8 = 30.7 MB
# cannot.
HELD = 5
HELD_SLACK = 6 * MiB
ROUNDS = 4
ROUND_S = 3.0


def padded_png(nbytes, seed):
    """A 64x64 noise PNG followed by random bytes after IEND: nbytes that decode cheaply."""
    b = io.BytesIO()
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(b, "PNG")
    return b.getvalue() + os.urandom(nbytes - b.tell())


IMG = padded_png(2800 * 1000, 1)
URL_IMG = padded_png(3 * MiB // 2, 2)
BODY = json.dumps({"input": [{"image": "data:image/png;base64," + base64.b64encode(IMG).decode()}],
                   "model": "tiny"}).encode()
assert len(BODY) < MAX_BODY


class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(URL_IMG)))
        self.end_headers()
        try:
            self.wfile.write(URL_IMG)
        except OSError:
            pass


def proc_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        k = s.recv(65536)
        if not k:
            return 0, b""
        buf += k
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        k = s.recv(65536)
        if not k:
            break
        rest += k
    return status, rest[:n]


def post_raw(port, body, rate=None):
    """One POST on a fresh connection, the body sent in pieces (rate: bytes/s, a slow sender);
    an answer that comes before the body is all sent (503 memory_busy at the head) ends it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        step = rate // 10 if rate else 256 * 1024
        for i in range(0, len(body), step):
            if select.select([s], [], [], 0)[0]:
                break  # answered early
            s.sendall(body[i:i + step])
            if rate:
                time.sleep(0.1)
        return read_response(s)
    except OSError:
        try:
            return read_response(s)
        except OSError:
            return 0, b""
    finally:
        s.close()


class Load:
    def __init__(self, c, url_base):
        self.c = c
        self.url_body = json.dumps({"input": [{"image": url_base + "img%d.png" % i} for i in range(4)],
                                    "model": "tiny"}).encode()
        self.stats = {}
        self.lock = threading.Lock()

    def count(self, kind, what):
        with self.lock:
            d = self.stats.setdefault(kind, {})
            d[what] = d.get(what, 0) + 1

    def http_client(self, kind, body, until, rate=None):
        while time.time() < until:
            st, b = post_raw(self.c.port, body, rate)
            if st == 200:
                self.count(kind, "ok")
            elif st == 503:
                self.count(kind, "busy")
                time.sleep(0.05)
            else:
                self.count(kind, "other %d %s" % (st, b[:100]))
                time.sleep(0.05)

    def mp_client(self, until):
        frame = msgpack.packb({"id": 1, "input": [{"image": IMG}], "model": "tiny"}, use_bin_type=True)
        while time.time() < until:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(30)
                s.connect(self.c.api_socket)
                s.sendall(struct.pack(">I", len(frame)) + frame)
                hdr = b""
                while len(hdr) < 4:
                    k = s.recv(4 - len(hdr))
                    if not k:
                        raise EOFError
                    hdr += k
                n = struct.unpack(">I", hdr)[0]
                data = b""
                while len(data) < n:
                    k = s.recv(n - len(data))
                    if not k:
                        raise EOFError
                    data += k
                a = msgpack.unpackb(data, raw=False)
                if a.get("type") == "result":
                    self.count("msgpack", "ok")
                elif a.get("status") == 503:
                    self.count("msgpack", "busy")
                    time.sleep(0.05)
                else:
                    self.count("msgpack", "other %s" % a.get("error"))
            except (OSError, EOFError) as e:
                # a refused frame's connection is closed while we may still be sending it
                self.count("msgpack", "busy")
                time.sleep(0.05)
            finally:
                s.close()

    def round(self, secs):
        self.stats = {}
        until = time.time() + secs
        ts = [threading.Thread(target=self.http_client, args=("inline", BODY, until)) for _ in range(10)]
        ts += [threading.Thread(target=self.http_client, args=("slow", BODY, until, 1 << 20)) for _ in range(3)]
        ts += [threading.Thread(target=self.http_client, args=("urls", self.url_body, until)) for _ in range(3)]
        ts += [threading.Thread(target=self.mp_client, args=(until,)) for _ in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return self.stats


def gauge(c, name):
    return metric(c, name)


def asan_build():
    """True if the gateway under test is built with AddressSanitizer (make SAN=address,...): its
    quarantine keeps freed memory (256 MiB by default) and its shadow memory adds to VmRSS, so
    the RSS bounds say nothing there; the gauge checks still run."""
    with open(os.path.join(BUILD, "vlembed-gateway"), "rb") as f:
        return b"__asan_init" in f.read()


ASAN = asan_build()


def rss_check(cond, what):
    if ASAN:
        print("skip", what, "(AddressSanitizer build: RSS is not the gateway's own)", flush=True)
        return True
    return check(cond, what)


def main():
    srv, base = serve_http(Handler)
    c = Cluster(1, gateway_args=["--max-buffered-bytes", "32M", "--max-body", "4M",
                                 "--fetch-allow-cidrs", "127.0.0.0/8"])
    pid = c.gateway.pid
    try:
        # warm up (tokenizer, pool threads, first allocations), then the idle baseline
        st, _, r = c.post({"input": ["warm up", {"image": "data:image/png;base64,"
                                                 + base64.b64encode(IMG[:4000]).decode()}], "model": "tiny"})
        time.sleep(0.3)
        idle0 = proc_kb(pid, "VmRSS")
        print("idle RSS before the load: %.1f MiB" % (idle0 / MiB))

        # held requests: with the worker paused, 6 inline requests are parsed and decoded and
        # then wait; what they hold is charged (their data: URI copies) and is all they hold
        w = c.workers[0]
        w.send_signal(signal.SIGSTOP)
        try:
            res = []
            ts = [threading.Thread(target=lambda: res.append(post_raw(c.port, BODY))) for _ in range(HELD)]
            for t in ts:
                t.start()
            uri = len(BODY) - len(b'{"input": [{"image": ""}], "model": "tiny"}') + 1
            check(wait_for(lambda: gauge(c, "vlembed_buffered_bytes") == HELD * uri, 10),
                  "%d held inline requests are charged their data: URI copies only, the bodies freed "
                  "(%s, expected %d)" % (HELD, gauge(c, "vlembed_buffered_bytes"), HELD * uri))
            time.sleep(0.3)
            held = proc_kb(pid, "VmRSS") - idle0
            print("%d held requests: RSS +%.1f MiB, charged %.1f MiB" % (HELD, held / MiB, HELD * uri / MiB))
            rss_check(held <= HELD * uri + HELD_SLACK,
                      "while held they add %.1f MiB of RSS <= what is charged (%.1f MiB) + %d MiB"
                      % (held / MiB, HELD * uri / MiB, HELD_SLACK // MiB))
        finally:
            w.send_signal(signal.SIGCONT)
        for t in ts:
            t.join()
        check(sorted(st for st, _ in res) == [200] * HELD, "the held requests are served (%s)"
              % [st for st, _ in res])
        check(wait_for(lambda: gauge(c, "vlembed_buffered_bytes") == 0, 5), "and their charge released")
        load = Load(c, base)
        samples = []
        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                samples.append(proc_kb(pid, "VmRSS"))
                time.sleep(0.02)
        threading.Thread(target=sampler, daemon=True).start()
        idles = []
        served = {}
        for rnd in range(ROUNDS):
            stats = load.round(ROUND_S)
            settled = wait_for(lambda: gauge(c, "vlembed_buffered_bytes") == 0, 10)
            # the gateway trims its heap once a second after large buffers were released
            wait_for(lambda: proc_kb(pid, "VmRSS") - idle0 <= SETTLE, 3, 0.1)
            idle = proc_kb(pid, "VmRSS")
            idles.append(idle)
            print("round %d: %s; peak RSS %.1f MiB, idle after %.1f MiB"
                  % (rnd + 1, json.dumps(stats, sort_keys=True), max(samples) / MiB, idle / MiB))
            check(settled, "round %d: vlembed_buffered_bytes back to 0 after the load" % (rnd + 1))
            for k, d in stats.items():
                served[k] = served.get(k, 0) + d.get("ok", 0)
            check(all(stats.get(k, {}).get("ok", 0) >= 1 for k in ("inline", "msgpack")),
                  "round %d: inline and msgpack clients were served" % (rnd + 1))
            rss_check(idle - idle0 <= SETTLE, "round %d: the idle RSS after the load is back within %d MiB of "
                      "the idle RSS before it (%+.1f MiB)" % (rnd + 1, SETTLE // MiB, (idle - idle0) / MiB))
            check(not any(k.startswith("other") for d in stats.values() for k in d),
                  "round %d: no answer but 200 and 503 memory_busy" % (rnd + 1))
        stop.set()
        hwm = max(samples)
        peak = gauge(c, "vlembed_buffered_bytes_peak")
        print("budget %d MiB, allowance %d MiB: peak RSS %.1f MiB over idle %.1f MiB = +%.1f MiB; "
              "buffered-bytes peak %.1f MiB"
              % (BUDGET // MiB, ALLOWANCE // MiB, hwm / MiB, idle0 / MiB, (hwm - idle0) / MiB, peak / MiB))
        check(peak <= BUDGET + ANSWERS, "vlembed_buffered_bytes_peak within the budget + %d KiB of queued "
              "answers (%d, %+d over the budget)" % (ANSWERS >> 10, peak, peak - BUDGET))
        rss_check(hwm - idle0 <= BUDGET + ALLOWANCE,
                  "peak RSS grew by %.1f MiB <= budget %d MiB + allowance %d MiB"
                  % ((hwm - idle0) / MiB, BUDGET // MiB, ALLOWANCE // MiB))
        check(all(served.get(k, 0) >= 1 for k in ("inline", "slow", "urls", "msgpack")),
              "every kind of client was served (%s)" % served)
        st, _, r = c.post({"input": ["still here"], "model": "tiny"})
        check(st == 200, "the gateway still serves")
    finally:
        c.stop()
        srv.shutdown()
    finish()


if __name__ == "__main__":
    main()
