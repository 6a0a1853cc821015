"""Clients that never read their answers (docs/security.md, "Clients that do not read"): the send
deadline (--send-timeout-s) and the cap on unsent answer bytes (--max-unsent-bytes), on HTTP and
on the msgpack socket.

A real gateway with 2 CPU workers on the tiny checkpoint, --send-timeout-s 1
--max-unsent-bytes 256k --max-pipeline 4. Meanwhile a well-behaved client on each transport sends
a small embedding request every 0.1 s and must get every answer.
* Never reads: fills the kernel's socket buffers with answers it does not read (HTTP, a socket
  with a 4 KiB receive buffer: GET /openapi.json pipelined in batches until answers stay queued
  in the gateway; msgpack: a preview whose answer is ~300 KB), then sends an embedding request
  whose image URL is served by a local server only after 2.5 s, and reads nothing. Its connection
  is closed about 1 s (at most 1.25 s + sampling) after its answer bytes stopped moving, the rest
  of its answers never sent; vlembed_send_timeouts_total{transport} counts it; the embedding
  request, still fetching its image then, is dropped when it finishes; vlembed_buffered_bytes (which charges queued answers)
  and vlembed_unsent_bytes go back to their idle value, 0.
* Floods (HTTP: 3000 pipelined GET /openapi.json, 6.7 KB answers, 20 MB in all; msgpack: 100
  preview frames of 256 one-letter texts, 49 KB answers, one every 10 ms), reading nothing: the
  answers queued for it stay under the cap plus the answers of the requests it has outstanding
  (HTTP: 256 KiB + 5 x 6.7 KB; msgpack: 256 KiB + 4 x 49 KB), reading pauses
  (vlembed_send_paused_total{transport} counts it), and then the send deadline closes it.
Fails before this change (the options are unknown); with --send-timeout-s 0 --max-unsent-bytes 0
(both off) the flood bounds and the closes fail."""
import json
import os
import socket
import struct
import threading
import time

from vlharness import (GOLD, Cluster, MsgpackClient, QuietHandler, check, finish, metric, metrics,
                       msgpack, serve_http, wait_for)

KiB = 1024
CAP = 256 * KiB
TIMEOUT = 1.0
BIG = ["x" * 1000] * 256  # a ~300 KB preview answer
PNG = open(os.path.join(GOLD, "media", "image.png"), "rb").read()
SLOW_S = 2.5  # the slow media server's delay: a request using it is in flight at the close


class SlowImage(QuietHandler):
    """Answers every GET with a PNG after SLOW_S seconds."""
    protocol_version = "HTTP/1.1"

    started = 0
    answer_at = {}  # transport (the URL's query) -> time.time() its fetch is answered

    def do_GET(self):
        SlowImage.started += 1
        SlowImage.answer_at[self.path.rpartition("?")[2]] = time.time() + SLOW_S
        time.sleep(SLOW_S)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)
        except OSError:  # the gateway gave up on it
            pass


def unsent(c, t):
    return metric(c, "vlembed_unsent_bytes", transport=t)


def timeouts(c, t):
    return metric(c, "vlembed_send_timeouts_total", transport=t)


def gauge(c):
    return metric(c, "vlembed_buffered_bytes")


class Polite:
    """A client sending a small embedding request every 0.1 s on one connection (HTTP or the
    socket), recording failures and the longest latency."""

    def __init__(self, c, transport):
        self.c, self.t = c, transport
        self.n, self.bad, self.worst = 0, [], 0.0
        self.stop = threading.Event()
        self.th = threading.Thread(target=self.run)
        self.th.start()

    def run(self):
        if self.t == "http":
            conn = self.c.conn()
        else:
            conn = MsgpackClient(self.c.api_socket)
        i = 0
        while not self.stop.wait(0.1):
            i += 1
            t0 = time.time()
            try:
                if self.t == "http":
                    conn.request("POST", "/v1/embeddings",
                                 body=json.dumps({"input": ["polite %d" % i], "model": "tiny"}),
                                 headers={"Content-Type": "application/json"})
                    r = conn.getresponse()
                    r.read()
                    ok = r.status == 200
                else:
                    conn.send({"id": i, "input": ["polite %d" % i], "model": "tiny"})
                    a = conn.recv()
                    ok = a.get("type") == "result" and a.get("id") == i
            except Exception as e:  # noqa: BLE001 - recorded as a failure
                ok = False
                self.bad.append(repr(e))
                break
            self.worst = max(self.worst, time.time() - t0)
            self.n += 1
            if not ok:
                self.bad.append(i)
        conn.close()

    def finish(self, what):
        self.stop.set()
        self.th.join()
        check(self.n >= 5 and not self.bad,
              "%s: a well-behaved %s client is answered meanwhile (%d requests, failures %s, "
              "slowest %.2f s)" % (what, self.t, self.n, self.bad[:3], self.worst))


def http_req(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    head = "%s %s HTTP/1.1\r\nHost: x\r\n" % (method, path)
    if body is not None:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
    return head.encode() + b"\r\n" + data


def small_rcvbuf_http(c):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", c.port))
    return s


def mp_frame(obj):
    b = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(b)) + b


def drain(s, timeout=5):
    """Reads s to its end: (bytes read, True if it ended: EOF or reset)."""
    s.settimeout(timeout)
    n = 0
    try:
        while True:
            b = s.recv(1 << 16)
            if not b:
                return n, True
            n += len(b)
    except ConnectionResetError:
        return n, True
    except OSError:
        return n, False


def never_reads(c, t):
    """Fills the kernel's buffers with answers the client does not read, then sends an embedding
    request whose image the gateway fetches from a server answering after SLOW_S (still in flight
    when the deadline closes the connection); returns when the gateway closed it."""
    slow = {"input": [{"image": SLOW_URL + t}], "model": "tiny"}
    if t == "http":
        # The kernel takes up to a few MB of a loopback TCP connection's answers (the send buffer
        # grows to tcp_wmem's maximum): GET /openapi.json (6.7 KB answers) in batches of 10
        # until answers stay queued in the gateway (under --max-unsent-bytes: reading goes on)
        s = small_rcvbuf_http(c)
        sent = 0
        while (unsent(c, t) or 0) == 0 and sent < 2000:
            s.sendall(http_req("GET", "/openapi.json") * 10)
            sent += 10
            time.sleep(0.01)
        s.sendall(http_req("POST", "/v1/embeddings", slow))
        full = sent * 6700
    else:
        s = socket.socket(socket.AF_UNIX)
        s.connect(c.api_socket)
        s.sendall(mp_frame({"type": "preview", "id": 1, "input": BIG, "model": "tiny"}) +
                  mp_frame(dict(slow, id=2)))
        full = 300 * KiB
    t0 = time.time()
    seen = wait_for(lambda: (unsent(c, t) or 0) > 0, 5, 0.01)
    t_seen = time.time()
    q, g = unsent(c, t), gauge(c)
    check(seen and g >= q, "%s: answers are queued for the client that does not read (%s bytes), "
          "charged to vlembed_buffered_bytes (%s)" % (t, q, g))
    closed = wait_for(lambda: timeouts(c, t) == 1, 6, 0.02)
    CLOSED_AT[t] = time.time()  # the close was seen by then (an upper bound of its time)
    dt = time.time() - t_seen
    check(closed and 0.8 <= dt <= 4.0,  # 1.0-1.25 s; more on a loaded machine (metric polls)
          "%s: its connection is closed by the send deadline %.2f s after its answers were "
          "queued (--send-timeout-s %g; %.2f s after its requests)" % (t, dt, TIMEOUT,
                                                                      time.time() - t0))
    n, ended = drain(s)
    check(ended and n < full, "%s: the client then reads %d bytes of its answers and the end "
          "of the connection" % (t, n))
    s.close()


def paused_then_closed(c, t):
    """A flood on transport t paused the connection's reading, then the send deadline closed it
    (the second send timeout on t in this test)."""
    check((metric(c, "vlembed_send_paused_total", transport=t) or 0) >= 1,
          "%s flood: reading paused for the unsent answers (vlembed_send_paused_total %s)"
          % (t, metric(c, "vlembed_send_paused_total", transport=t)))
    check(wait_for(lambda: timeouts(c, t) == 2, 4, 0.05),
          "%s flood: then the send deadline closes it (%s)" % (t, timeouts(c, t)))


def flood_http(c):
    s = small_rcvbuf_http(c)
    s.setblocking(False)
    reqs = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 3000
    answer = len(c.get("/openapi.json")[2] if isinstance(c.get("/openapi.json")[2], bytes)
                 else json.dumps(c.get("/openapi.json")[2])) + 200
    sent = 0
    peak = 0
    t_end = time.time() + 0.8
    while time.time() < t_end:
        if sent < len(reqs):
            try:
                sent += s.send(reqs[sent:sent + 65536])
            except BlockingIOError:
                pass
        peak = max(peak, unsent(c, "http") or 0)
        time.sleep(0.02)
    bound = CAP + 5 * answer
    check(CAP // 2 < peak <= bound,
          "http flood: the answers queued stay under the cap + the outstanding answers "
          "(peak %d bytes, bound %d; %d of %d request bytes taken by the kernel)"
          % (peak, bound, sent, len(reqs)))
    paused_then_closed(c, "http")
    s.close()


def flood_mp(c):
    s = socket.socket(socket.AF_UNIX)
    s.connect(c.api_socket)
    frame = mp_frame({"type": "preview", "id": 7, "input": ["a"] * 256, "model": "tiny"})
    peak = 0
    for i in range(100):
        try:
            s.sendall(frame)
        except OSError:
            break  # closed by the send deadline
        if i % 5 == 0:
            peak = max(peak, unsent(c, "msgpack") or 0)
        time.sleep(0.01)
    bound = CAP + 4 * 50 * KiB
    check(CAP // 2 < peak <= bound,
          "msgpack flood: the answers queued stay under the cap + the answers in flight "
          "(peak %d bytes, bound %d)" % (peak, bound))
    paused_then_closed(c, "msgpack")
    s.close()


SLOW_URL = None
CLOSED_AT = {}  # transport -> time.time() when its send-deadline close was seen


def main():
    global SLOW_URL
    srv, base = serve_http(SlowImage)
    SLOW_URL = base + "image.png?"
    c = Cluster(2, gateway_args=["--send-timeout-s", str(TIMEOUT), "--max-unsent-bytes", "256k",
                                 "--max-pipeline", "4", "--fetch-allow-cidrs", "127.0.0.0/8"])
    try:
        idle = gauge(c)
        check(idle == 0 and timeouts(c, "http") == 0 and timeouts(c, "msgpack") == 0,
              "idle: vlembed_buffered_bytes %s, no send timeouts" % idle)
        polite = [Polite(c, "http"), Polite(c, "msgpack")]
        ths = [threading.Thread(target=never_reads, args=(c, t)) for t in ("http", "msgpack")]
        for th in ths:
            th.start()
        t_slow = time.time()
        for th in ths:
            th.join()
        # each connection's close was seen before its slow fetch was answered: the request was
        # still fetching at the close (the threads' own time is no measure: each then reads
        # what its connection had queued, ~3 MB for HTTP, which took >1 s on a loaded machine)
        margin = {t: SlowImage.answer_at[t] - CLOSED_AT[t] for t in CLOSED_AT if t in SlowImage.answer_at}
        check(SlowImage.started == 2 and len(margin) == 2 and min(margin.values()) > 0,
              "both closed while their last request was fetching its image (%d fetches began; "
              "each close seen %s s before its fetch was answered)"
              % (SlowImage.started, {t: round(m, 2) for t, m in sorted(margin.items())}))
        # the polite clients' own requests (a few bytes each) may be in flight: exact idle at the
        # end, once they stopped
        check(wait_for(lambda: gauge(c) < 4 * KiB and unsent(c, "http") == 0 and
                       unsent(c, "msgpack") == 0, SLOW_S + 5),
              "the memory gauge drops back (%s bytes: only the well-behaved clients' requests) "
              "once the dropped work finished, nothing unsent" % gauge(c))
        flood_http(c)
        flood_mp(c)
        # the dropped requests' fetches end (the gateway cancelled them, or the images arrive
        # for requests whose clients are gone): the gateway must take that in its stride
        time.sleep(max(0.0, t_slow + SLOW_S + 0.5 - time.time()))
        for p in polite:
            p.finish("throughout")
        check(wait_for(lambda: gauge(c) == idle, 6),
              "the memory gauge is back at its idle value at the end (%s)" % gauge(c))
        log = c.log()
        check("connection closed (--send-timeout-s)" in log, "the gateway logs the closes")
        check(c.gateway.poll() is None, "the gateway is still running")
        m = metrics(c)
        print("\n".join(l for l in m.splitlines() if "send_" in l or "unsent" in l))
    finally:
        rc = c.stop()
    check(rc == 0, "the gateway exits 0 on SIGTERM (rc %s)" % rc)
    finish()


if __name__ == "__main__":
    main()
