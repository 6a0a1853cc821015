"""Slow senders and per-client limits against a real gateway over real sockets (docs/security.md).
The embeddings preview route is used (preprocessing only, no worker needed).

* slowloris body: a head, then one body byte every 0.25 s -> 408 by the minimum byte rate at
  about grace + (bytes / rate), while a normal client on another connection is served at once;
* a body that keeps the rate but never ends -> 408 at --request-timeout-s;
* slowloris head (one byte every 0.2 s) -> 408 at --header-timeout-s from the first byte;
* per-client in-flight cap (per address, no keys): 127.0.0.1 holds two requests open (heads sent,
  bodies unfinished) and its third gets 429 client_concurrency with Retry-After, while a client
  on 127.0.0.2 is served; once the held ones complete, 127.0.0.1 is served again;
* token bucket: a burst of 3 at 0.5 request/s, spent -> 429 client_rate with Retry-After,
  another address is served, and after Retry-After the first is served again;
* per-address connection cap: the fourth connection from 127.0.0.1 is answered 429
  too_many_connections, 127.0.0.2 still connects and is served;
* every refusal is counted in /metrics."""
import json
import socket
import time

from vlharness import Cluster, check, finish

PREVIEW = "/v1/embeddings/preview"
BODY = json.dumps({"input": "a slow cat"}).encode()


def connect(port, src="127.0.0.1"):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.settimeout(15)
    return s


def head(n, path=PREVIEW, extra=b""):
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + extra + b"Content-Length: %d\r\n\r\n" % n)


def read_response(s):
    """One response (status, headers dict, body) or (None, ..) on EOF/timeout."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            c = s.recv(65536)
            if not c:
                return None, {}, data
            data += c
        h, _, rest = data.partition(b"\r\n\r\n")
        lines = h.decode().split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        n = int(hdrs.get("content-length", 0))
        while len(rest) < n:
            c = s.recv(65536)
            if not c:
                break
            rest += c
        return int(lines[0].split()[1]), hdrs, rest
    except socket.timeout:
        return None, {}, data


def request(port, src="127.0.0.1", body=BODY):
    s = connect(port, src)
    s.sendall(head(len(body)) + body)
    r = read_response(s)
    s.close()
    return r


def code_of(body):
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def metric(c, line_start):
    st, _, b = c.get("/metrics")
    for line in b.decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[1])
    return None


def trickle(s, chunks, wait, each=None):
    """Sends chunks one at a time on s, waiting up to `wait` s for an answer after each (each(i)
    runs after chunk i is sent), then closes s. Returns (status or None, body, seconds taken)."""
    t0 = time.time()
    st, b = None, b""
    s.settimeout(wait)
    for i, chunk in enumerate(chunks):
        try:
            s.sendall(chunk)
        except OSError:
            break
        if each:
            each(i)
        try:
            st, _, b = read_response(s)
            if st is not None:
                break
        except OSError:
            break
    dt = time.time() - t0
    s.close()
    return st, b, dt


def slow_senders():
    c = Cluster(0, gateway_args=["--min-body-rate", "1k", "--body-rate-grace-s", "1",
                                 "--header-timeout-s", "1.5", "--request-timeout-s", "4"])
    try:
        # slowloris body: 1 byte per 0.25 s = 4 B/s, far below 1 KiB/s
        s = connect(c.port)
        s.sendall(head(100000))
        served_meanwhile = None

        def normal_client(i):
            nonlocal served_meanwhile
            if i == 2:
                t1 = time.time()
                r = request(c.port)
                served_meanwhile = (r[0], time.time() - t1)

        st, b, dt = trickle(s, [b" "] * 40, 0.25, normal_client)
        check(st == 408 and b"minimum byte rate" in b and code_of(b) == "request_timeout",
              "slowloris body (4 B/s): 408 request_timeout naming the minimum rate (%s, %.2f s)" % (st, dt))
        check(0.9 <= dt <= 3.0, "... after the 1 s grace, not the 1.5 s stall timeout or later (%.2f s)" % dt)
        check(served_meanwhile and served_meanwhile[0] == 200 and served_meanwhile[1] < 1.0,
              "a normal client is served meanwhile (%s)" % (served_meanwhile,))

        # a body that keeps the rate (4 KiB/s) but never ends: the whole-request deadline
        s = connect(c.port)
        s.sendall(head(10 ** 7))
        def for_8_s():
            t_end = time.time() + 8
            while time.time() < t_end:
                yield b" " * 400

        st, b, dt = trickle(s, for_8_s(), 0.1)
        check(st == 408 and b"request timeout" in b, "a body at 4 KiB/s that never ends: 408 (%s)" % st)
        check(3.5 <= dt <= 5.5, "... at --request-timeout-s 4 (%.2f s)" % dt)

        # slowloris head: one byte of the head every 0.2 s
        msg = head(len(BODY))
        st, b, dt = trickle(connect(c.port), (msg[i:i + 1] for i in range(len(msg))), 0.2)
        check(st == 408 and b"header timeout" in b, "slowloris head: 408 naming the header timeout (%s)" % st)
        check(1.3 <= dt <= 2.5, "... at --header-timeout-s 1.5 from the first byte (%.2f s)" % dt)

        check(metric(c, 'vlembed_http_timeouts_total{kind="body_rate"}') == 1
              and metric(c, 'vlembed_http_timeouts_total{kind="request"}') == 1
              and metric(c, 'vlembed_http_timeouts_total{kind="header"}') == 1,
              "each 408 counted by kind in vlembed_http_timeouts_total")
    finally:
        c.stop()


def per_client():
    c = Cluster(0, gateway_args=["--client-max-inflight", "2", "--client-rate", "0.5", "--client-burst", "3",
                                 "--max-client-connections", "3"])
    try:
        # connection cap per address: 3 open from 127.0.0.1, the 4th is refused
        conns = [connect(c.port) for _ in range(3)]
        s4 = connect(c.port)
        st, h, b = read_response(s4)
        s4.close()
        check(st == 429 and code_of(b) == "too_many_connections" and h.get("connection") == "close",
              "4th connection from 127.0.0.1: 429 too_many_connections and closed (%s)" % st)
        st, _, _ = request(c.port, "127.0.0.2")
        check(st == 200, "127.0.0.2 connects and is served meanwhile (%s)" % st)
        for s in conns:
            s.close()
        time.sleep(0.2)
        st, _, _ = request(c.port)  # token 1 of 3
        check(st == 200, "once its connections closed, 127.0.0.1 connects again (%s)" % st)

        # in-flight cap: two requests of 127.0.0.1 held open (head + 5 body bytes): tokens 2, 3
        held = []
        for _ in range(2):
            s = connect(c.port)
            s.sendall(head(len(BODY)) + BODY[:5])
            held.append(s)
        time.sleep(0.2)
        st, h, b = request(c.port)
        check(st == 429 and code_of(b) == "client_concurrency" and h.get("retry-after") == "1",
              "3rd request of 127.0.0.1 with 2 in flight: 429 client_concurrency, Retry-After 1 (%s %s)"
              % (st, b[:120]))
        st, _, _ = request(c.port, "127.0.0.2")
        check(st == 200, "127.0.0.2 is served meanwhile (%s)" % st)
        for s in held:
            s.sendall(BODY[5:])
        res = [read_response(s)[0] for s in held]
        for s in held:
            s.close()
        check(res == [200, 200], "the held requests complete: %s" % res)

        # the token bucket: burst 3 spent, one token per 2 s
        st, h, b = request(c.port)
        ra = h.get("retry-after")
        check(st == 429 and code_of(b) == "client_rate" and ra in ("1", "2"),
              "burst of 3 spent at 0.5 request/s: 429 client_rate, Retry-After %s (%s %s)" % (ra, st, b[:100]))
        st2, _, _ = request(c.port, "127.0.0.3")
        check(st2 == 200, "another address has its own bucket (%s)" % st2)
        time.sleep(int(ra or 2) + 0.05)
        st, _, _ = request(c.port)
        check(st == 200, "127.0.0.1 is served again after Retry-After (%s)" % st)

        check(metric(c, 'vlembed_client_rejected_total{reason="inflight"}') == 1
              and metric(c, 'vlembed_client_rejected_total{reason="rate"}') == 1
              and metric(c, 'vlembed_client_rejected_total{reason="connections"}') == 1
              and metric(c, 'vlembed_errors_total{status="429",code="client_rate"}') == 1,
              "refusals counted in vlembed_client_rejected_total and vlembed_errors_total")
    finally:
        c.stop()


slow_senders()
per_client()
finish()
