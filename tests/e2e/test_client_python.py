"""The Python client library (clients/python, package vlembed_client) against real processes:
a CPU worker on the committed tiny checkpoint and vlembed-gateways with different options.

What it checks, over HTTP and over the msgpack Unix socket: text, image (a PNG from tests/data
and a JPEG made from it), a mixed item, a video as frames and as a file, the messages form;
vectors equal between the two transports and equal to what a raw HTTP request returns for the
same body, unit norm, MRL `dimensions`, every encoding, numpy return; automatic batching across
several requests with order preserved, and splitting when the gateway's limits are lower than
the client's; typed errors naming the field (renumbered to the caller's list); API keys
(AuthenticationError without or with a wrong key, success with it); 429 from
--client-max-inflight and --client-rate (retried after Retry-After then success, or raised after
max_retries, or raised at once when Retry-After is over max_retry_wait); 503 no_ready_worker and
connection refused while the gateway and worker start (retried until they are up); a gateway
restart under a kept-alive connection; `pip install` of the package."""
import array
import http.client
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from supervised import free_port
from vlharness import BUILD, GOLD, MODEL, ROOT, Cluster, check, finish, np, wait_for

sys.path.insert(0, os.path.join(ROOT, "clients/python"))
import vlembed_client as vc  # noqa: E402
from vlembed_client import (AuthenticationError, BadRequestError, Client, Image, Item,  # noqa: E402
                            RateLimitError, ServiceUnavailableError, Tokens, Video, VideoOptions)

MEDIA = os.path.join(GOLD, "media")
PNG = os.path.join(MEDIA, "image.png")
FRAMES = [os.path.join(MEDIA, "video_f%d.png" % i) for i in range(4)]


class Gateway:
    """One more vlembed-gateway on the cluster's worker(s), with its own options."""

    def __init__(self, tmp, name, worker_sockets, args=(), port=0, sock=None, wait_ready=True):
        self.api_socket = os.path.join(tmp, (sock or name) + ".sock")
        self.logpath = os.path.join(tmp, name + ".log")
        self.log = open(self.logpath, "w+")
        self.p = subprocess.Popen(
            [os.path.join(BUILD, "vlembed-gateway"), "--model", MODEL, "--http",
             "127.0.0.1:%d" % port, "--api-socket", self.api_socket, "--worker-sockets",
             ",".join(worker_sockets)] + list(args), stderr=self.log)
        self.port = None

        def port_known():
            m = re.search(r"\(port (\d+)\)", open(self.logpath).read())
            self.port = int(m.group(1)) if m else None
            return self.port is not None
        if not wait_for(port_known, 20):
            raise RuntimeError("gateway %s did not start:\n%s" % (name, open(self.logpath).read()))
        self.url = "http://127.0.0.1:%d" % self.port

        def ready():  # /ready is exempt from API keys and client limits: probing costs no token
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/ready")
                ok = c.getresponse().status == 200
                c.close()
                return ok
            except OSError:
                return False
        # the port is logged before the worker's hello: without this a first request may get 503
        if wait_ready and not wait_for(ready, 30):
            raise RuntimeError("gateway %s not ready:\n%s" % (name, open(self.logpath).read()))

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def f32(v):
    return np.asarray(v, dtype=np.float32)


def same(a, b):
    return all(np.array_equal(f32(x), f32(y)) for x, y in zip(a, b)) and len(a) == len(b)


def unit(vs):
    return all(abs(np.linalg.norm(f32(v).astype(np.float64)) - 1) < 1e-5 for v in vs)


def raised(fn, cls):
    try:
        fn()
    except cls as e:
        return e
    except Exception as e:  # noqa: BLE001 - the wrong exception is a failure, shown
        print("  (raised %r, wanted %s)" % (e, cls.__name__))
        return None
    print("  (nothing raised, wanted %s)" % cls.__name__)
    return None


def basics(c, tmp):
    http = Client(c_url(c) + "/v1", timeout=30)
    unix = Client(unix_socket=c.api_socket, timeout=30)
    check(http.health() and http.ready() and http.models()[0]["dimensions"] == 32,
          "health(), ready(), models() over HTTP")
    jpeg = os.path.join(tmp, "image.jpg")
    try:
        from PIL import Image as PILImage
        PILImage.open(os.path.join(MEDIA, "image_orig.png")).convert("RGB").save(jpeg, quality=90)
    except ImportError:
        shutil.copy(PNG, jpeg)  # python3-pil is in scripts/deps.sh; keep going without it
    png_bytes = open(PNG, "rb").read()
    items = ["a red sofa",
             Image.from_path(PNG),
             Image.from_bytes(open(jpeg, "rb").read()),
             Item(text=["two ", "images and text"], images=[PNG_IMG(), Image.from_path(jpeg)],
                  instruction="Find the picture."),
             Video.from_frames([Image.from_path(f) for f in FRAMES]),
             Tokens([64, 8251, 13]),
             {"content": [{"type": "text", "text": "raw"}, {"type": "image", "image": Image.from_path(PNG)}]}]
    rh = http.embed(items)
    ru = unix.embed(items)
    check(len(rh) == len(items) and all(len(v) == 32 for v in rh), "HTTP: one 32-wide vector per item")
    check(same(rh.vectors, ru.vectors), "text, PNG, JPEG, mixed item, video frames, tokens, raw "
          "content parts: vectors equal over HTTP and the Unix socket")
    check(unit(rh.vectors), "vectors have unit norm")
    check(rh.usage["images"] == 5 and ru.usage == rh.usage and rh.usage["videos"] == 1,
          "usage summed (5 images, 1 video), equal over both transports: %s" % rh.usage)
    check(rh.fingerprint["id"] == ru.fingerprint["id"] and rh.model == "tiny-model",
          "same fingerprint id over both transports")
    # the same items as a raw HTTP body (curl's view): data URIs, native forms
    import base64
    d = lambda p: "data:image/png;base64," + base64.b64encode(open(p, "rb").read()).decode()
    dj = "data:image/jpeg;base64," + base64.b64encode(open(jpeg, "rb").read()).decode()
    raw = ["a red sofa", {"image": d(PNG)}, {"image": dj},
           {"text": ["two ", "images and text"], "image": [d(PNG), dj], "instruction": "Find the picture."},
           {"video": [d(f) for f in FRAMES]}, [64, 8251, 13],
           {"content": [{"type": "text", "text": "raw"}, {"type": "image", "image": d(PNG)}]}]
    st, _, body = c.post({"input": raw})
    check(st == 200 and same([e["embedding"] for e in body["data"]], rh.vectors),
          "client vectors equal the raw HTTP request's for the same input")
    check(isinstance(rh[0][0], float) and rh[0] == array.array("f", rh[0]).tolist(),
          "float vectors are float32 values as Python floats")
    # two videos in one item: the content-parts form
    two = Item(text="two clips", videos=[Video.from_frames([Image.from_path(f) for f in FRAMES[:2]]),
                                         Video.from_frames([Image.from_path(f) for f in FRAMES[2:]])])
    st, _, b3 = c.post({"input": [{"content": [{"video": [d(f) for f in FRAMES[:2]]},
                                               {"video": [d(f) for f in FRAMES[2:]]}, {"text": "two clips"}]}]})
    tv = unix.embed(two)
    check(st == 200 and same(http.embed(two).vectors, tv.vectors) and tv.usage["videos"] == 2 and
          same(tv.vectors, [b3["data"][0]["embedding"]]), "an Item with two videos: content parts, same vector everywhere")
    check(raised(lambda: http.embed(open(PNG, "rb").read()), TypeError) is not None and
          raised(lambda: Item(text=3), TypeError) is not None and raised(lambda: Tokens([-1]), ValueError) is not None,
          "bytes as an item, a non-string text, a negative token id: refused on the client")
    # single inputs, instruction, dimensions, numpy
    one = http.embed("a red sofa")
    check(len(one) == 1 and one[0] == rh[0], "a single string is one item")
    ins = http.embed(["a red sofa"], instruction="Find furniture.")
    st, _, b2 = c.post({"input": ["a red sofa"], "instruction": "Find furniture."})
    check(same(ins.vectors, [b2["data"][0]["embedding"]]) and not same(ins.vectors, one.vectors),
          "instruction= is the request's instruction")
    m16 = unix.embed(items[:2], dimensions=16, as_numpy=True)
    full = f32(rh.vectors[:2])
    want = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    check(m16.vectors.shape == (2, 16) and m16.vectors.dtype == np.float32 and
          np.allclose(m16.vectors, want, atol=1e-6), "dimensions=16: truncated + renormalised, numpy")
    fast = Client(c_url(c), http_float_base64=True)
    rb = fast.embed(items)
    check(rb.vectors == rh.vectors and rb.fingerprint["encoding"] == "base64",
          "http_float_base64: the same float32 vectors, fetched as base64 (fingerprint encoding base64)")
    for cl in (http, unix, fast):
        n = cl.embed(items, as_numpy=True)
        check(n.vectors.dtype == np.float32 and np.array_equal(n.vectors, f32(rh.vectors)),
              "as_numpy over %s%s: float32 array equal to the lists" % (
                  cl.transport, " (base64)" if cl is fast else ""))
        n8 = cl.embed(items[:2], encoding_format="int8", as_numpy=True)
        check(n8.vectors.dtype == np.int8 and np.array_equal(n8.vectors, http.embed(items[:2], encoding_format="int8").numpy()),
              "as_numpy int8 over %s" % cl.transport)
    for enc in ("int8", "uint8", "binary", "base64"):
        a = http.embed(items[:3], encoding_format=enc)
        b = unix.embed(items[:3], encoding_format=enc)
        check(a.vectors == b.vectors, "encoding_format=%s equal over both transports" % enc)
        if enc == "int8":
            check(np.array_equal(a.numpy()[:2], np.clip(np.rint(127 * full), -127, 127).astype(np.int8)),
                  "int8 = round(127 x)")
        if enc == "binary":
            check(np.array_equal(a.numpy()[:2], np.packbits(full > 0, axis=1)), "binary = packbits(x > 0)")
        if enc == "base64":
            check(np.array_equal(np.frombuffer(base64.b64decode(a[0]), "<f4"), full[0]),
                  "base64 strings hold the float32 vector")
    # messages (vLLM form) equals the native form
    msgs = [{"role": "system", "content": [{"type": "text", "text": "Represent the user input."}]},
            {"role": "user", "content": [{"type": "image", "image": Image.from_path(PNG)},
                                         {"type": "text", "text": "A cat in the snow."}]},
            {"role": "assistant", "content": [{"type": "text", "text": ""}]}]
    nat = Item(text="A cat in the snow.", image=Image.from_path(PNG), instruction="Represent the user input.")
    for cl in (http, unix):
        m = cl.embed_messages(msgs, continue_final_message=True, add_special_tokens=True)
        check(same(m.vectors, cl.embed(nat).vectors), "%s: embed_messages equals the native item" % cl.transport)
    # a video file with per-request sampling options
    mp4 = os.path.join(tmp, "clip.mp4")
    if shutil.which("ffmpeg") and subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-framerate", "2", "-i", os.path.join(MEDIA, "video_f%d.png"),
             "-c:v", "mpeg4", "-q:v", "2", "-y", mp4]).returncode == 0:
        pv = http.preview([Video.from_path(mp4)], video=VideoOptions(max_frames=4))
        vf = unix.embed(Video.from_path(mp4), video={"fps": 1, "max_frames": 4})
        vh = http.embed(Video.from_path(mp4), video=VideoOptions(fps=1, max_frames=4))
        check(pv[0]["visuals"][0]["kind"] == "video" and pv[0]["visuals"][0]["frames"] == 4 and vf.usage["videos"] == 1 and same(vf.vectors, vh.vectors),
              "a video file (Video.from_path + VideoOptions): 4 frames in the preview, same vector over both")
    else:
        check(False, "ffmpeg makes a test video")
    return http, unix, rh, items


PNG_IMG = lambda: Image.from_path(PNG)
c_url = lambda c: "http://127.0.0.1:%d" % c.port


def batching(c, http, unix, rh, items):
    many = [items[i % len(items)] for i in range(23)] + ["tail %d" % i for i in range(5)]
    whole = http.embed(many)  # 28 items, 10 visuals: one request
    check(len(whole.request_ids) == 1, "28 items under the limits: one request")
    for name, base in (("HTTP", http), ("unix", unix)):
        small = Client(**({"unix_socket": c.api_socket} if name == "unix" else {"base_url": c_url(c)}),
                       max_items_per_request=4, max_visuals_per_request=3)
        r = small.embed(many)
        check(len(r.request_ids) >= 7 and same(r.vectors, whole.vectors) and r.usage == whole.usage,
              "%s: 28 items in %d requests (4 items / 3 visuals each), order kept, usage summed"
              % (name, len(r.request_ids)))
        tiny = Client(**({"unix_socket": c.api_socket} if name == "unix" else {"base_url": c_url(c)}),
                      max_request_bytes=40000)
        r = tiny.embed([Image.from_path(PNG)] * 6 + ["x"])
        check(len(r.request_ids) > 1 and same(r.vectors, [rh[1]] * 6 + [base.embed("x")[0]]),
              "%s: max_request_bytes splits by size (%d requests)" % (name, len(r.request_ids)))
        small.close()
        tiny.close()
        par = Client(**({"unix_socket": c.api_socket} if name == "unix" else {"base_url": c_url(c)}),
                     max_items_per_request=2, max_concurrency=4)
        r = par.embed(many)
        conns = len(par._t._idle) if name == "unix" else len(par._t._all)
        check(len(r.request_ids) == 14 and same(r.vectors, whole.vectors) and r.usage == whole.usage and conns > 1,
              "%s: max_concurrency=4: 14 requests over %d connections, order kept" % (name, conns))
        e = raised(lambda: par.embed(["c%d" % i for i in range(9)] + [{"text": "x", "colour": "red"}] + ["d"] * 6),
                   BadRequestError)
        check(e is not None and e.param == "input[9].colour", "%s: max_concurrency=4: the bad item's error, renumbered" % name)
        par.close()
        # a bad field in the second request names the caller's index
        bad = ["ok %d" % i for i in range(6)] + [{"text": "x", "colour": "red"}]
        b4 = Client(**({"unix_socket": c.api_socket} if name == "unix" else {"base_url": c_url(c)}),
                    max_items_per_request=4)
        e = raised(lambda: b4.embed(bad), BadRequestError)
        check(e is not None and e.param == "input[6].colour" and e.code == "unknown_field" and
              "input[6].colour" in str(e) and e.request_id and e.status == 400 and e.attempts == 1,
              "%s: unknown field -> BadRequestError, param input[6].colour (renumbered), not retried" % name)
        if e is not None:
            e2 = pickle.loads(pickle.dumps(e))
            check(type(e2) is BadRequestError and (e2.param, e2.code, e2.status, e2.request_id, str(e2)) ==
                  (e.param, e.code, e.status, e.request_id, str(e)), "%s: the error pickles with its attributes" % name)
        e = raised(lambda: base.embed(["a", {"image": "data:image/png;base64,AAAA"}]), BadRequestError)
        check(e is not None and e.param == "input[1].image" and e.code == "invalid_media",
              "%s: a bad image -> BadRequestError invalid_media naming input[1].image" % name)
        e = raised(lambda: base.embed("a", dimensions=33), BadRequestError)
        check(e is not None and e.param == "dimensions", "%s: dimensions over the width -> param dimensions" % name)
        b4.close()
    p = http.preview(["p%d" % i for i in range(3)] + [Image.from_path(PNG)])
    check([d["index"] for d in p] == [0, 1, 2, 3] and p[3]["visuals"][0]["source"] == "input[3].image",
          "preview(): one entry per input")
    p2 = Client(unix_socket=c.api_socket, max_items_per_request=2).preview(
        ["p%d" % i for i in range(3)] + [Image.from_path(PNG)])
    check(p2.data == p.data and len(p2.request_ids) == 2, "preview() over the socket in 2 requests: the same entries, renumbered")
    # deadlines: the gateway's (timeout=) and this side's (Client timeout)
    for name, base in (("HTTP", http), ("unix", unix)):
        e = raised(lambda: base.embed([Image.from_path(PNG)] * 4, timeout=1e-6), vc.GatewayTimeoutError)
        check(e is not None and e.code == "deadline_exceeded" and e.attempts == 1,
              "%s: timeout=1e-6 -> GatewayTimeoutError deadline_exceeded, not retried" % name)
        quick = Client(**({"unix_socket": c.api_socket} if name == "unix" else {"base_url": c_url(c)}),
                       timeout=0.001)
        e = raised(lambda: quick.embed([Image.from_path(PNG)] * 8), vc.APITimeoutError)
        check(e is not None and not e.retryable and e.attempts == 1,
              "%s: no answer within the client's timeout -> APITimeoutError, not retried" % name)
        r = quick.embed("a red sofa", timeout=20)  # the deadline raises this call's socket timeout
        check(same(r.vectors, [rh[0]]), "%s: the next call on the same client gets its own answer" % name)


def limits_and_keys(c, tmp):
    keys = os.path.join(tmp, "keys")
    with open(keys, "w") as f:
        f.write("sk-test-client-0123456789 client-test\n")
    os.chmod(keys, 0o600)
    g = Gateway(tmp, "gk", c.sockets, ["--api-keys-file", keys, "--max-items", "3", "--max-visuals", "2",
                                          "--max-request-decoded-pixels", "50000"])
    try:
        e = raised(lambda: Client(g.url).embed("a"), AuthenticationError)
        check(e is not None and e.code == "missing_api_key" and e.status == 401 and e.attempts == 1,
              "no key -> AuthenticationError missing_api_key, not retried")
        e = raised(lambda: Client(g.url, api_key="sk-wrong").embed(["a"] * 20), AuthenticationError)
        check(e is not None and e.code == "invalid_api_key", "wrong key -> AuthenticationError invalid_api_key")
        os.environ["VLEMBED_API_KEY"] = "sk-test-client-0123456789"
        try:
            ok = Client(g.url)
        finally:
            del os.environ["VLEMBED_API_KEY"]
        many = ["k%d" % i for i in range(9)] + [Image.from_path(PNG)] * 3 + ["end"]
        ref = Client(c_url(c)).embed(many)
        r = ok.embed(many)
        check(same(r.vectors, ref.vectors) and ok.max_items_per_request == 3 and ok.max_visuals_per_request == 2,
              "with the key (VLEMBED_API_KEY): success; a gateway with --max-items 3 --max-visuals 2 "
              "--max-request-decoded-pixels 50000 (one 192x160 image per request): the client learns "
              "both limits from the 400s, splits after 413 too_many_pixels, keeps the order (%d requests)"
              % len(r.request_ids))
        # 13 items -> 400 too_many_items (3) -> [0-2] [3-5] [6-8] [9-11]; [9-11] -> 400
        # too_many_visuals (2) -> [9, 10] [11]; [9, 10] -> 413 too_many_pixels -> [9] [10]; then [12]
        check(len(r.request_ids) == 7, "7 requests answered: %d" % len(r.request_ids))
        e = raised(lambda: ok.embed(Item(images=[Image.from_path(PNG)] * 2)), vc.RequestTooLargeError)
        check(e is not None and e.code == "too_many_pixels" and e.param.startswith("input[0].image"),
              "one item over the decode budget: RequestTooLargeError too_many_pixels")
        u = Client(unix_socket=g.api_socket)
        r = u.embed(many)
        check(same(r.vectors, ref.vectors) and u.max_items_per_request == 3,
              "unix socket (no key there): the same splitting after too_many_items")
    finally:
        g.stop()


def socket_retry_after(tmp):
    """A gateway whose worker never comes: the socket's 503 carries the frame's retry_after."""
    g = Gateway(tmp, "nw", [os.path.join(tmp, "never.sock")], wait_ready=False)
    try:
        e = raised(lambda: Client(unix_socket=g.api_socket, max_retries=0).embed("a"),
                   vc.ServiceUnavailableError)
        check(e is not None and e.code == "no_ready_worker" and e.retry_after == 1 and e.attempts == 1,
              "unix socket 503 no_ready_worker: ServiceUnavailableError with retry_after 1 from the frame")
    finally:
        g.stop()


def rate_limits(c, tmp):
    # --client-max-inflight 1: one request held open (head sent, body not) takes the slot
    g = Gateway(tmp, "gi", c.sockets, ["--client-max-inflight", "1"])
    try:
        hold = socket.create_connection(("127.0.0.1", g.port))
        body = b'{"input": "held"}'
        hold.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        time.sleep(0.3)
        e = raised(lambda: Client(g.url, max_retries=0).embed("a"), RateLimitError)
        check(e is not None and e.code == "client_concurrency" and e.retry_after == 1 and e.attempts == 1,
              "client_concurrency with max_retries=0: RateLimitError, Retry-After 1")
        t0 = time.time()
        e = raised(lambda: Client(g.url, max_retries=2).embed("a"), RateLimitError)
        dt = time.time() - t0
        check(e is not None and e.attempts == 3 and 1.9 < dt < 6,
              "still held: retried twice after Retry-After, then raised (%d attempts, %.1f s)"
              % (e.attempts if e else 0, dt))
        threading.Timer(1.2, lambda: hold.sendall(body)).start()
        t0 = time.time()
        r = Client(g.url, max_retries=3).embed("a")
        dt = time.time() - t0
        check(len(r) == 1 and dt > 0.9, "released after 1.2 s: retried, then success (%.1f s)" % dt)
        hold.close()
    finally:
        g.stop()
    # --client-rate 1 --client-burst 1: the second request within a second is over the rate
    g = Gateway(tmp, "gr", c.sockets, ["--client-rate", "1", "--client-burst", "1"])
    try:
        cl = Client(g.url, max_retries=0)
        cl.embed("first")
        e = raised(lambda: cl.embed("second"), RateLimitError)
        check(e is not None and e.code == "client_rate" and e.retry_after >= 1,
              "client_rate with max_retries=0: RateLimitError, Retry-After %s" % (e and e.retry_after))
        t0 = time.time()
        cl = Client(g.url, max_retries=2)
        r = cl.embed(["a%d" % i for i in range(3)], )
        r2 = Client(g.url, max_retries=2, max_items_per_request=1).embed(["b0", "b1"])
        dt = time.time() - t0
        check(len(r) == 3 and len(r2) == 2 and dt > 0.9,
              "rate-limited requests retried after Retry-After and succeed (%.1f s)" % dt)
    finally:
        g.stop()
    g = Gateway(tmp, "gs", c.sockets, ["--client-rate", "0.1", "--client-burst", "1"])
    try:
        cl = Client(g.url, max_retries=5, max_retry_wait=5)
        cl.embed("first")
        t0 = time.time()
        e = raised(lambda: cl.embed("second"), RateLimitError)
        check(e is not None and e.retry_after > 5 and e.attempts == 1 and time.time() - t0 < 2,
              "Retry-After %s over max_retry_wait 5: raised at once" % (e and e.retry_after))
    finally:
        g.stop()


def restart(tmp):
    """Neither gateway nor worker up: connection refused, then 503 no_ready_worker, then success."""
    port = free_port()
    wsock = os.path.join(tmp, "late-w.sock")
    api = os.path.join(tmp, "late.sock")
    procs = []

    def bring_up():
        time.sleep(0.8)
        procs.append(Gateway(tmp, "late", [wsock], port=port, wait_ready=False))
        time.sleep(1.0)
        procs.append(subprocess.Popen([os.path.join(BUILD, "vlembed-worker"), "--model", MODEL,
                                       "--backend", "cpu", "--socket", wsock, "--threads", "1"],
                                      stderr=open(os.path.join(tmp, "late-w.log"), "w")))
    res = {}

    def via_unix():
        try:
            cl = Client(unix_socket=os.path.join(tmp, "late.sock"), max_retries=6)
            res["unix"] = cl.embed("late")
        except Exception as e:  # noqa: BLE001
            res["unix"] = e
    e = raised(lambda: Client("http://127.0.0.1:%d" % port, max_retries=0).embed("a"), vc.APIConnectionError)
    check(e is not None and e.retryable, "connection refused, max_retries=0: APIConnectionError (retryable)")
    t_up = threading.Thread(target=bring_up)
    t_up.start()
    tu = threading.Thread(target=via_unix)
    tu.start()
    try:
        t0 = time.time()
        r = Client("http://127.0.0.1:%d" % port, max_retries=6).embed("late")
        dt = time.time() - t0
        tu.join(30)
        t_up.join(30)
        check(len(r) == 1 and dt > 1.5, "HTTP: refused, then 503 no_ready_worker, retried until ready (%.1f s)" % dt)
        check(isinstance(res.get("unix"), vc.EmbeddingResult) and same(res["unix"].vectors, r.vectors),
              "unix socket: no socket file, then 503, retried until ready: %r" % res.get("unix"))
        # a gateway restart under kept-alive connections: the next call reconnects
        hc = Client("http://127.0.0.1:%d" % port)
        uc = Client(unix_socket=api)
        hc.embed("warm")
        uc.embed("warm")
        procs[0].stop()
        e = raised(lambda: Client("http://127.0.0.1:%d" % port, max_retries=0).embed("a"), vc.APIConnectionError)
        procs[0] = Gateway(tmp, "late2", [wsock], port=port, sock="late", wait_ready=False)
        wait_for(lambda: Client(procs[0].url).ready(), 20)
        check(same(hc.embed("late").vectors, r.vectors) and same(uc.embed("late").vectors, r.vectors),
              "after a gateway restart both clients reconnect on their own")
        # no worker: ServiceUnavailableError once retries are spent
        procs[1].terminate()
        procs[1].wait(20)
        wait_for(lambda: not Client(procs[0].url).ready(), 10)
        e = raised(lambda: Client(procs[0].url, max_retries=1).embed("a"), ServiceUnavailableError)
        check(e is not None and e.code == "no_ready_worker" and e.attempts == 2,
              "no worker: ServiceUnavailableError no_ready_worker after 1 retry")
    finally:
        for p in procs:
            if isinstance(p, Gateway):
                p.stop()
            elif p.poll() is None:
                p.terminate()
                p.wait(20)


def fingerprints(c, tmp):
    """A call whose second request reaches a gateway with another --max-tokens (another
    preprocessing, so another embedding space): FingerprintMismatchError, no vectors."""
    g = Gateway(tmp, "gf", c.sockets, ["--max-tokens", "4096"])
    try:
        cl = Client(c_url(c), max_items_per_request=1)
        orig = cl._t.request
        calls = []

        def switching(*a, **k):  # the gateway "changes" between the first and second request
            calls.append(1)
            if len(calls) == 2:
                cl._t.close()
                cl._t.port = g.port
            return orig(*a, **k)
        cl._t.request = switching
        e = raised(lambda: cl.embed(["a", "b"]), vc.FingerprintMismatchError)
        check(e is not None and len(e.fingerprints) == 2 and len(calls) == 2,
              "batches from two embedding spaces: FingerprintMismatchError %s" % (e and e.fingerprints))
        cl.check_fingerprint = False
        calls.clear()
        cl._t.port = c.port
        cl._t.close()
        check(len(cl.embed(["a", "b"])) == 2, "check_fingerprint=False: the vectors are returned")
    finally:
        g.stop()


def pip_install(tmp):
    target = os.path.join(tmp, "site")
    src = os.path.join(tmp, "client-src")  # pip builds in the source tree: a copy keeps ours clean
    shutil.copytree(os.path.join(ROOT, "clients/python"), src,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                        "--no-build-isolation", "--target", target, src],
                       capture_output=True, text=True, timeout=120, cwd=tmp)
    if p.returncode != 0:
        check(False, "pip install clients/python: " + (p.stderr or p.stdout)[-800:])
        return
    q = subprocess.run([sys.executable, "-c", "import vlembed_client, sys; print(vlembed_client.__file__)"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=target))
    check(q.returncode == 0 and q.stdout.startswith(target), "pip install clients/python: importable from the install")


def main():
    tmp = tempfile.mkdtemp(prefix="vl-client-")
    c = Cluster(1)
    try:
        http, unix, rh, items = basics(c, tmp)
        for fn, args in ((batching, (c, http, unix, rh, items)), (limits_and_keys, (c, tmp)),
                         (rate_limits, (c, tmp)), (socket_retry_after, (tmp,)), (fingerprints, (c, tmp)),
                         (restart, (tmp,)),
                         (pip_install, (tmp,))):
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - a section that raises is a failure; go on
                traceback.print_exc()
                check(False, "%s raised %r" % (fn.__name__, e))
    finally:
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
