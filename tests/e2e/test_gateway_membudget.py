"""The gateway's process-wide budget of buffered bytes (--max-buffered-bytes, docs/security.md)
against a real gateway and CPU worker on the tiny checkpoint, with a budget of 8 MiB:

* six clients declare 3 MiB bodies at once and hold them: two fit (6 MiB reserved at their
  heads), the other four are answered 503 memory_busy with Retry-After before sending a byte of
  body, and their connections are closed;
* meanwhile vlembed_buffered_bytes shows the two reservations, and a small request from another
  client is served; once the two bodies are sent they are served too;
* a media URL whose body (12 MiB, from a local server) outgrows the budget fails the request
  with 503 memory_busy naming the field (input[0].image) and Retry-After; a small image URL is
  served; a data: URI whose decoded bytes do not fit next to its own body is refused the same way;
* after everything, vlembed_buffered_bytes is back to 0 (nothing leaked), the refusals are
  counted by what in vlembed_buffered_bytes_rejected_total, and the gateway still serves."""
import base64
import io
import json
import os
import socket
import time

from vlharness import Cluster, QuietHandler, check, finish, metric, serve_http, wait_for

from PIL import Image

BUDGET = 8 << 20
BIG_BODY = 3 << 20
BIG_URL = os.urandom(12 << 20)  # not an image: it is refused while it downloads


def png(w, h):
    b = io.BytesIO()
    Image.new("RGB", (w, h), (30, 160, 90)).save(b, "PNG")
    return b.getvalue()


SMALL_PNG = png(64, 48)


class Handler(QuietHandler):
    def do_GET(self):
        body = BIG_URL if self.path.startswith("/big") else SMALL_PNG
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the gateway stopped reading: that is the point


def gauge(c, name="vlembed_buffered_bytes"):
    return metric(c, name)


def rejected(c, what):
    return metric(c, "vlembed_buffered_bytes_rejected_total", what=what)


def read_response(s):
    """One HTTP response from a raw socket: (status, headers dict, body bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        k = s.recv(65536)
        if not k:
            break
        buf += k
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    n = int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        k = s.recv(65536)
        if not k:
            break
        rest += k
    return status, hdrs, rest[:n]


def main():
    srv, base = serve_http(Handler)
    c = Cluster(1, gateway_args=["--max-buffered-bytes", "8M", "--fetch-allow-cidrs", "127.0.0.0/8"])
    try:
        check(gauge(c, "vlembed_buffered_bytes_limit") == BUDGET, "the limit is exported (8 MiB)")
        check(gauge(c) == 0, "nothing buffered at the start")

        # six 3 MiB bodies declared at once: a JSON request padded with spaces to 3 MiB
        doc = json.dumps({"input": "a big body", "model": "tiny"}).encode()
        big = doc + b" " * (BIG_BODY - len(doc))
        head = ("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(big)).encode()
        socks = []
        for _ in range(6):
            s = socket.create_connection(("127.0.0.1", c.port), timeout=20)
            s.sendall(head)
            socks.append(s)
        # the refused ones are answered at once (wait until the gateway has seen all six heads);
        # the admitted ones wait for their bodies
        wait_for(lambda: (rejected(c, "http_body") or 0) >= 4, 10)
        refused, admitted = [], []
        for s in socks:
            s.settimeout(1.0)
            try:
                st, h, b = read_response(s)
            except socket.timeout:
                admitted.append(s)
                continue
            refused.append((s, st, h, b))
        check(len(admitted) == 2 and len(refused) == 4,
              "two 3 MiB bodies fit in 8 MiB, four are refused (%d admitted, %d refused)"
              % (len(admitted), len(refused)))
        ok = True
        for s, st, h, b in refused:
            e = json.loads(b or b"{}").get("error", {})
            ok &= (st == 503 and e.get("code") == "memory_busy" and h.get("retry-after") == "1"
                   and h.get("connection") == "close" and "--max-buffered-bytes" in e.get("message", ""))
            s.settimeout(3)
            try:
                ok &= s.recv(1) == b""  # closed after the answer
            except OSError:
                pass
            s.close()
        check(ok, "the refusals are 503 memory_busy, Retry-After: 1, Connection: close, naming the option")
        held = gauge(c)
        check(held == 2 * (BIG_BODY + 1), "vlembed_buffered_bytes shows the two reservations (%s)" % held)

        # another client is served meanwhile
        t0 = time.time()
        st, _, r = c.post({"input": ["a small request"], "model": "tiny"})
        check(st == 200 and len(r.get("data", [])) == 1,
              "a small request from another client is served while 6 MiB are held (%d, %.2f s)"
              % (st, time.time() - t0))

        # the admitted bodies arrive and are served
        for s in admitted:
            s.settimeout(20)
            s.sendall(big)
        sts = []
        for s in admitted:
            st, h, b = read_response(s)
            sts.append(st)
            s.close()
        check(sts == [200, 200], "the two admitted 3 MiB requests are served (%s)" % sts)
        check(gauge(c) == 0, "vlembed_buffered_bytes is back to 0 (%s)" % gauge(c))
        check(rejected(c, "http_body") == 4, "vlembed_buffered_bytes_rejected_total{what=\"http_body\"} = 4 (%s)"
              % rejected(c, "http_body"))

        # a media URL that outgrows the budget while it downloads
        t0 = time.time()
        st, h, r = c.post({"input": ["text", {"image": base + "big.png"}], "model": "tiny"})
        e = r.get("error", {}) if isinstance(r, dict) else {}
        print("fetch refused in %.2f s: %s" % (time.time() - t0, e.get("message")))
        check(st == 503 and e.get("code") == "memory_busy" and e.get("param") == "input[1].image"
              and e.get("message", "").startswith("input[1].image: the gateway is holding too many media bytes")
              and "retry" in e.get("message", "") and "retry-after" in h,
              "a 12 MiB media URL over the budget: 503 memory_busy naming input[1].image, Retry-After (%d %s)"
              % (st, e))
        check(rejected(c, "fetch") == 1, "vlembed_buffered_bytes_rejected_total{what=\"fetch\"} = 1 (%s)"
              % rejected(c, "fetch"))
        st, _, r = c.post({"input": [{"image": base + "small.png"}], "model": "tiny"})
        check(st == 200 and r.get("usage", {}).get("images") == 1, "a small media URL is served (%d)" % st)

        # a data: URI of 4.5 MiB decoded in a 6 MiB body: the body fits, body + decoded do not
        uri = "data:image/png;base64," + base64.b64encode(os.urandom(9 << 19)).decode()
        st, h, r = c.post({"input": [{"image": uri}], "model": "tiny"})
        e = r.get("error", {}) if isinstance(r, dict) else {}
        check(st == 503 and e.get("code") == "memory_busy" and e.get("param") == "input[0].image"
              and "retry-after" in h,
              "a data: URI whose decoded bytes do not fit: 503 memory_busy naming input[0].image (%d %s)"
              % (st, e.get("message", "")[:120]))
        check(rejected(c, "source") == 1, "vlembed_buffered_bytes_rejected_total{what=\"source\"} = 1 (%s)"
              % rejected(c, "source"))

        check(gauge(c) == 0, "after everything vlembed_buffered_bytes is 0: nothing leaked (%s)" % gauge(c))
        peak = gauge(c, "vlembed_buffered_bytes_peak")
        check(peak is not None and 2 * (BIG_BODY + 1) <= peak <= BUDGET,
              "the peak stayed within the budget (%s)" % peak)
        st, _, r = c.post({"input": ["still here"], "model": "tiny"})
        check(st == 200 and c.gateway.poll() is None, "the gateway is up and serving (%d)" % st)
        st, _, r = c.get("/health")
        check(st == 200, "/health answers 200")
    finally:
        c.stop()
        srv.shutdown()
    finish()


if __name__ == "__main__":
    main()
