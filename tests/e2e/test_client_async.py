"""The asyncio client (vlembed_client.AsyncClient) against real processes: a CPU worker on the
committed tiny checkpoint and vlembed-gateways with different options (started as
test_client_python.py does, each waited for with GET /ready).

What it checks, over HTTP and over the msgpack Unix socket: vectors (every encoding, numpy,
messages, preview) bit-identical to the synchronous Client's for the same inputs; 32 concurrent
embed() calls on one AsyncClient from one event loop, each with its own answer in order; HTTP
keep-alive reuse; batching across requests with max_concurrency tasks, order and usage kept;
limit learning from a gateway with lower limits; typed errors naming the field in the caller's
numbering; 429 from --client-max-inflight retried after Retry-After (and raised with
max_retries=0); a client-side timeout; cancelling the calling task mid-request (its requests in
flight cancelled, no task left behind, no connection kept) then a successful next call, and a
cancel in the very loop iteration in which a connection opened or an answer completed (local
servers; each transport); and the
event loop never blocked (a ticker task keeps ticking through the calls above, a retry wait
included); the client used from a second event loop; and, against a local asyncio server
sending fixed bytes, the answer framings the gateway does not use (chunked with extension and
trailer, 100 Continue, HTTP/1.0 close-delimited, a malformed status line)."""
import asyncio
import os
import socket
import sys
import tempfile
import shutil
import threading
import time
import traceback

from vlharness import GOLD, ROOT, Cluster, check, finish, np
from test_client_python import Gateway

sys.path.insert(0, os.path.join(ROOT, "clients/python"))
import vlembed_client as vc  # noqa: E402
from vlembed_client import (APIStatusError, AsyncClient, BadRequestError, Client, Image, Item,  # noqa: E402
                            RateLimitError, Tokens, Video)

MEDIA = os.path.join(GOLD, "media")
PNG = os.path.join(MEDIA, "image.png")
FRAMES = [os.path.join(MEDIA, "video_f%d.png" % i) for i in range(4)]


class Ticker:
    """A task that wakes every 5 ms and records the longest gap between two wake-ups: a call
    that blocks the event loop (time.sleep, a blocking socket) shows as a long gap."""

    def __init__(self):
        self.ticks, self.max_gap = 0, 0.0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            self.ticks += 1
            last = now

    async def stop(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def araised(coro, cls):
    try:
        await coro
    except cls as e:
        return e
    except Exception as e:  # noqa: BLE001 - the wrong exception is a failure, shown
        print("  (raised %r, wanted %s)" % (e, cls.__name__))
        return None
    print("  (nothing raised, wanted %s)" % cls.__name__)
    return None


def items_of():
    return ["a red sofa",
            Image.from_path(PNG),
            Item(text=["two ", "images and text"], images=[Image.from_path(PNG)] * 2,
                 instruction="Find the picture."),
            Video.from_frames([Image.from_path(f) for f in FRAMES]),
            Tokens([64, 8251, 13]),
            {"content": [{"type": "text", "text": "raw"},
                         {"type": "image", "image": Image.from_path(PNG)}]}]


def kw(c, name):
    return {"unix_socket": c.api_socket} if name == "unix" else {"base_url": "http://127.0.0.1:%d/v1" % c.port}


async def equal_to_sync(c):
    items = items_of()
    msgs = [{"role": "system", "content": [{"type": "text", "text": "Represent the user input."}]},
            {"role": "user", "content": [{"type": "image", "image": Image.from_path(PNG)},
                                         {"type": "text", "text": "A cat in the snow."}]},
            {"role": "assistant", "content": [{"type": "text", "text": ""}]}]
    for name in ("http", "unix"):
        sync = Client(**kw(c, name))
        async with AsyncClient(**kw(c, name)) as a:
            check(a.transport == name, "%s: AsyncClient.transport" % name)
            r, s = await a.embed(items), sync.embed(items)
            check(len(r) == 6 and r.vectors == s.vectors and r.usage == s.usage and
                  r.fingerprint == s.fingerprint and r.model == s.model,
                  "%s: text, image, mixed item, video frames, tokens, raw parts: vectors, usage and "
                  "fingerprint identical to Client's" % name)
            check(all(abs(np.linalg.norm(np.asarray(v, np.float64)) - 1) < 1e-5 for v in r),
                  "%s: unit norm" % name)
            for enc in ("int8", "uint8", "binary", "base64"):
                check((await a.embed(items[:3], encoding_format=enc)).vectors ==
                      sync.embed(items[:3], encoding_format=enc).vectors,
                      "%s: encoding_format=%s identical to Client's" % (name, enc))
            n = await a.embed(items, dimensions=16, as_numpy=True)
            check(n.vectors.dtype == np.float32 and
                  np.array_equal(n.vectors, sync.embed(items, dimensions=16, as_numpy=True).vectors),
                  "%s: dimensions=16, as_numpy: identical float32 array" % name)
            m = await a.embed_messages(msgs, continue_final_message=True, add_special_tokens=True)
            check(m.vectors == sync.embed_messages(msgs, continue_final_message=True,
                                                   add_special_tokens=True).vectors,
                  "%s: embed_messages identical to Client's" % name)
            p = await a.preview(items, instruction="x")
            check(p.data == sync.preview(items, instruction="x").data and len(p) == 6,
                  "%s: preview identical to Client's" % name)
            one = await a.embed("a red sofa", instruction="Find furniture.", user="u1")
            check(one.vectors == sync.embed("a red sofa", instruction="Find furniture.").vectors and
                  one.vectors != [s[0]], "%s: a single string, instruction=" % name)
        sync.close()
    fast = AsyncClient("http://127.0.0.1:%d" % c.port, http_float_base64=True)
    rb = await fast.embed(items)
    check(rb.vectors == Client("http://127.0.0.1:%d" % c.port).embed(items).vectors and
          rb.fingerprint["encoding"] == "base64", "http_float_base64: identical float32 vectors")
    await fast.close()
    async with AsyncClient("http://127.0.0.1:%d" % c.port) as a:
        check(await a.health() and await a.ready() and (await a.models())[0]["dimensions"] == 32,
              "health(), ready(), models() over HTTP")
    u = AsyncClient(unix_socket=c.api_socket)
    e = await araised(u.models(), vc.VlembedError)
    check(e is not None and "HTTP" in str(e), "models() on a socket client: VlembedError")
    e = await araised(u.embed(b"png bytes"), TypeError)
    check(e is not None, "bytes as an item: TypeError before anything is sent")
    await u.close()


async def concurrent_calls(c):
    texts = ["query number %d about sofas" % i for i in range(32)]
    # every 4th call's second item an image, the others' a text: answers of different sizes
    pics = [Image.from_path(FRAMES[i // 4 % 4]) if i % 4 == 0 else "second %d" % i for i in range(32)]
    want_t = Client(**kw(c, "http")).embed(texts).vectors
    want_p = Client(**kw(c, "http")).embed(pics).vectors
    for name in ("http", "unix"):
        async with AsyncClient(**kw(c, name)) as a:
            opened = []
            orig = a._t._open if name == "http" else None
            if orig:
                async def counting():
                    opened.append(1)
                    return await orig()
                a._t._open = counting
            ticker = Ticker()
            t0 = time.monotonic()
            jobs = [a.embed([texts[i], pics[i]]) for i in range(32)]
            res = await asyncio.gather(*jobs)
            dt = time.monotonic() - t0
            await ticker.stop()
            ok = all(r.vectors == [want_t[i], want_p[i]] for i, r in enumerate(res))
            ids = {rid for r in res for rid in r.request_ids}
            check(ok and len(ids) == 32,
                  "%s: 32 concurrent embed() tasks on one AsyncClient: each its own two vectors, in "
                  "order (%.2f s)" % (name, dt))
            idle = len(a._t._pool.idle)
            check(idle > 1 and all(lp is asyncio.get_running_loop() for _, _, lp in a._t._pool.idle),
                  "%s: the 32 requests were in flight together: %d connections kept idle" % (name, idle))
            check(ticker.ticks > 5 and ticker.max_gap < 0.5,
                  "%s: the loop kept running during the 32 calls (%d ticks, longest gap %.0f ms)"
                  % (name, ticker.ticks, 1000 * ticker.max_gap))
            if orig:
                opened.clear()
                seq = [(await a.embed(texts[i])).vectors for i in range(5)]
                check(seq == [[v] for v in want_t[:5]] and not opened, "http: 5 sequential calls reuse kept-alive connections (%d opened)"
                      % len(opened))
            # the same client from another event loop (asyncio.run in a thread), then this one
            other = await asyncio.get_running_loop().run_in_executor(
                None, lambda: asyncio.run(a.embed(texts[1])).vectors)
            back = (await a.embed(texts[2])).vectors
            check(other == [want_t[1]] and back == [want_t[2]] and
                  not any(lp.is_closed() for _, _, lp in a._t._pool.idle),
                  "%s: used from a second event loop (another thread), then from this one again: "
                  "both answers right, the closed loop's connection dropped" % name)
        check(not a._t._pool.idle, "%s: async with closes the idle connections" % name)
        r = await a.embed(texts[0])
        check(r.vectors == [want_t[0]], "%s: a closed client reconnects when used again" % name)
        await a.close()


async def batching(c):
    many = [items_of()[i % 6] for i in range(23)] + ["tail %d" % i for i in range(5)]
    whole = Client(**kw(c, "http")).embed(many)
    for name in ("http", "unix"):
        for conc in (1, 4):
            async with AsyncClient(**kw(c, name), max_items_per_request=2, max_concurrency=conc) as a:
                r = await a.embed(many)
                check(len(r.request_ids) == 14 and r.vectors == whole.vectors and r.usage == whole.usage,
                      "%s: max_concurrency=%d: 28 items in %d requests, order and usage kept"
                      % (name, conc, len(r.request_ids)))
                e = await araised(a.embed(["c%d" % i for i in range(9)] + [{"text": "x", "colour": "red"}] +
                                          ["d"] * 6), BadRequestError)
                check(e is not None and e.param == "input[9].colour" and e.code == "unknown_field" and
                      "input[9].colour" in str(e) and e.status == 400 and e.attempts == 1 and e.request_id,
                      "%s: max_concurrency=%d: unknown field in the 5th request -> BadRequestError naming "
                      "input[9].colour, not retried" % (name, conc))
                r = await a.embed(many[:3])
                check(r.vectors == whole.vectors[:3], "%s: max_concurrency=%d: usable after the error"
                      % (name, conc))
            p = await AsyncClient(**kw(c, name), max_items_per_request=2).preview(
                ["p%d" % i for i in range(3)] + [Image.from_path(PNG)])
            check([d["index"] for d in p] == [0, 1, 2, 3] and p[3]["visuals"][0]["source"] == "input[3].image",
                  "%s: preview in 2 requests: entries renumbered to the caller's list" % name)
        async with AsyncClient(**kw(c, name)) as a:
            e = await araised(a.embed(["a", {"image": "data:image/png;base64,AAAA"}]), BadRequestError)
            check(e is not None and e.param == "input[1].image" and e.code == "invalid_media",
                  "%s: a bad image -> BadRequestError invalid_media naming input[1].image" % name)
            e = await araised(a.embed("a", dimensions=33), BadRequestError)
            check(e is not None and e.param == "dimensions", "%s: dimensions=33 -> param dimensions" % name)
            e = await araised(a.embed([Image.from_path(PNG)] * 4, timeout=1e-6), vc.GatewayTimeoutError)
            check(e is not None and e.code == "deadline_exceeded" and e.attempts == 1,
                  "%s: timeout=1e-6 -> GatewayTimeoutError deadline_exceeded" % name)
        quick = AsyncClient(**kw(c, name), timeout=0.001)
        e = await araised(quick.embed([Image.from_path(PNG)] * 8), vc.APITimeoutError)
        check(e is not None and not e.retryable and e.attempts == 1,
              "%s: no answer within the client's timeout -> APITimeoutError, not retried" % name)
        r = await quick.embed("tail 0", timeout=20)
        check(r.vectors == [whole.vectors[23]], "%s: the next call on that client gets its own answer" % name)
        await quick.close()


async def limits(c, tmp):
    g = Gateway(tmp, "ga", c.sockets, ["--max-items", "3", "--max-visuals", "2"])
    try:
        many = ["k%d" % i for i in range(9)] + [Image.from_path(PNG)] * 3 + ["end"]
        ref = Client(**kw(c, "http")).embed(many)
        for name, a in (("http", AsyncClient(g.url, max_concurrency=3)),
                        ("unix", AsyncClient(unix_socket=g.api_socket))):
            r = await a.embed(many)
            check(r.vectors == ref.vectors and a.max_items_per_request == 3 and a.max_visuals_per_request == 2,
                  "%s: a gateway with --max-items 3 --max-visuals 2: limits learnt from the 400s, the "
                  "same vectors in order (%d requests)" % (name, len(r.request_ids)))
            await a.close()
    finally:
        g.stop()


async def rate_limit_and_cancel(c, tmp):
    g = Gateway(tmp, "gi", c.sockets, ["--client-max-inflight", "1"])
    hold = None
    try:
        hold = socket.create_connection(("127.0.0.1", g.port))  # a request head sent, body not:
        body = b'{"input": "held"}'                              # it holds the one slot
        hold.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        await asyncio.sleep(0.3)
        e = await araised(AsyncClient(g.url, max_retries=0).embed("a"), RateLimitError)
        check(e is not None and e.code == "client_concurrency" and e.retry_after == 1 and e.attempts == 1,
              "client_concurrency with max_retries=0: RateLimitError, Retry-After 1")
        threading.Timer(1.2, lambda: hold.sendall(body)).start()
        ticker = Ticker()
        t0 = time.monotonic()
        a = AsyncClient(g.url, max_retries=3)
        r = await a.embed("a red sofa")
        dt = time.monotonic() - t0
        await ticker.stop()
        want = Client(**kw(c, "http")).embed("a red sofa").vectors
        check(r.vectors == want and dt > 0.9,
              "429 retried after Retry-After (asyncio.sleep), then success (%.1f s)" % dt)
        check(ticker.ticks > 100 and ticker.max_gap < 0.5,
              "the loop kept running through the retry wait (%d ticks, longest gap %.0f ms)"
              % (ticker.ticks, 1000 * ticker.max_gap))
        await a.close()
    finally:
        if hold is not None:
            hold.close()
        g.stop()
    # one long request (64 images, ~0.6 s on the CPU worker): a client blocking in its I/O
    # would stop the ticker for as long
    big = [Image.from_path(PNG)] * 64
    want = Client(**kw(c, "http")).embed(big[:4]).vectors
    for name in ("http", "unix"):
        async with AsyncClient(**kw(c, name)) as a:
            ticker = Ticker()
            t0 = time.monotonic()
            r = await a.embed(big)
            dt = time.monotonic() - t0
            await ticker.stop()
            check(r.vectors[:4] == want and len(r.request_ids) == 1 and ticker.max_gap < 0.3 and
                  ticker.max_gap < dt / 2, "%s: one request of %.2f s: the loop kept running "
                  "(%d ticks, longest gap %.0f ms)" % (name, dt, ticker.ticks, 1000 * ticker.max_gap))
    # cancellation of the calling task mid-request
    for name in ("http", "unix"):
        for conc in (1, 4):
            a = AsyncClient(**kw(c, name), max_items_per_request=64 if conc == 1 else 32,
                            max_concurrency=conc)
            await a.embed("warm")  # a kept-alive connection the cancelled request reuses
            before = set(asyncio.all_tasks())
            task = asyncio.ensure_future(a.embed(big))
            await asyncio.sleep(0.15)  # 64 images take the CPU worker ~0.6 s
            in_flight = not task.done()
            task.cancel()
            try:
                await task
                cancelled = False
            except asyncio.CancelledError:
                cancelled = True
            await asyncio.sleep(0)
            left = set(asyncio.all_tasks()) - before - {task}
            check(in_flight and cancelled and not left and not a._t._pool.idle,
                  "%s, max_concurrency=%d: cancelled mid-request: CancelledError, no request task "
                  "left (%d), its connections closed, not kept (%d idle)"
                  % (name, conc, len(left), len(a._t._pool.idle)))
            r = await a.embed(big[:4])
            check(r.vectors == want and len(r.request_ids) == 1,
                  "%s, max_concurrency=%d: the next call on the same client succeeds with its own "
                  "answer" % (name, conc))
            await a.close()


async def http_framing():
    """Answer framings the gateway does not send (it answers with Content-Length) but an HTTP/1.1
    peer such as a reverse proxy may: a local asyncio server replies with fixed bytes to each
    request, and the client's own HTTP transport parses them."""
    from vlembed_client.atransport import AsyncHTTPTransport
    answers = []

    async def serve(reader, writer):
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                n = [int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")]
                if n:
                    await reader.readexactly(n[0])
                a = answers.pop(0)
                writer.write(a)
                await writer.drain()
                if not a.startswith(b"HTTP/1.1"):  # close-delimited or garbage: close after it
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    t = AsyncHTTPTransport("http://127.0.0.1:%d" % port)
    body = b'{"object":"list","data":[{"index":0,"embedding":[0.5,-0.25]}]}'
    err = b'{"error":{"message":"slow down","type":"rate_limit_error","code":"client_rate"}}'
    chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"a;ext=1\r\n" + body[:10] + b"\r\n" + b"%x\r\n" % (len(body) - 10) + body[10:] +
               b"\r\n0\r\nX-Trailer: y\r\n\r\n")
    answers[:] = [chunked,
                  b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body,
                  b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 3\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(err) + err + b"\r\n0\r\n\r\n"]
    st, _, a1 = await t.request("POST", "/v1/embeddings", b"{}")
    kept = len(t._pool.idle)
    st2, _, a2 = await t.request("GET", "/ready")
    e = await araised(t.request("POST", "/v1/embeddings", b"{}"), APIStatusError)
    check(st == 200 and a1 == a2 == {"object": "list", "data": [{"index": 0, "embedding": [0.5, -0.25]}]}
          and kept == 1 and st2 == 200, "HTTP framing: a chunked answer (extension, trailer) and a 100 "
          "Continue before the answer, on one kept-alive connection")
    check(isinstance(e, RateLimitError) and e.code == "client_rate" and e.retry_after == 3,
          "HTTP framing: a chunked error answer (status 429, Retry-After 3): %r" % e)
    t.close()
    answers[:] = [b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body]
    st, _, a3 = await t.request("POST", "/v1/embeddings", b"{}")
    check(st == 200 and a3 == a1 and not t._pool.idle,
          "HTTP framing: an HTTP/1.0 answer ended by the connection's close, not kept")
    answers[:] = [b"SPDY/3 200 OK\r\n\r\n"]
    e = await araised(t.request("GET", "/ready"), vc.APIConnectionError)
    check(e is not None and not e.retryable and "status line" in str(e),
          "HTTP framing: a malformed status line -> APIConnectionError, not retried")
    t.close()
    srv.close()
    await srv.wait_closed()
    for bad in ({"X-A": "b\r\nX-Injected: 1"}, {"Bad:Name": "v"}):
        try:
            AsyncClient("http://127.0.0.1:1", headers=bad)
            check(False, "header %r refused" % bad)
        except ValueError:
            check(True, "header %r refused with ValueError" % bad)


async def cancel_every_iteration(tmp):
    """A cancel that comes in the very loop iteration in which the call's connection finished
    opening, or its answer finished reading, still cancels the call. Under asyncio.wait_for
    (Python < 3.12) it did not: wait_for returned the inner result, the call went on, sent its
    request and kept its connection (test_client_async's "cancelled mid-request" failed that way
    under load: 1 idle). Each transport, against a local asyncio server answering every request
    at once, is cancelled k = 0..29 loop iterations after its connection's opening is let go: a
    cancel the task accepted must end in CancelledError with no connection kept."""
    from vlembed_client.atransport import AsyncHTTPTransport, AsyncSocketTransport
    import msgpack
    served = []

    async def serve_http(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        served.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    async def serve_socket(reader, writer):
        try:
            n = int.from_bytes(await reader.readexactly(4), "big")
            req = msgpack.unpackb(await reader.readexactly(n), raw=False)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        served.append(1)
        a = msgpack.packb({"type": "result", "id": req.get("id"), "data": []}, use_bin_type=True)
        writer.write(len(a).to_bytes(4, "big") + a)
    http_srv = await asyncio.start_server(serve_http, "127.0.0.1", 0)
    path = os.path.join(tmp, "cancel.sock")
    sock_srv = await asyncio.start_unix_server(serve_socket, path)
    url = "http://127.0.0.1:%d" % http_srv.sockets[0].getsockname()[1]
    for name in ("http", "unix"):
        swallowed = []
        for k in range(30):
            if name == "http":
                t = AsyncHTTPTransport(url)
                send = lambda: t.request("GET", "/x")  # noqa: E731
            else:
                t = AsyncSocketTransport(path)
                send = lambda: t.call({"type": "embed", "input": ["x"]}, request_id="r")  # noqa: E731
            gate = asyncio.Event()
            if name == "http":
                real_open = t._open

                async def gated_open():
                    await gate.wait()
                    return await real_open()
                t._open = gated_open
                call = asyncio.ensure_future(send())
            else:
                async def gated_call():
                    await gate.wait()
                    return await send()
                call = asyncio.ensure_future(gated_call())
            await asyncio.sleep(0.01)
            gate.set()
            for _ in range(k):
                await asyncio.sleep(0)
            if not call.cancel():
                continue  # the call was over before the cancel: nothing to check
            try:
                await call
                swallowed.append((k, "returned"))
            except asyncio.CancelledError:
                pass
            except Exception as e:  # noqa: BLE001 - reported by the check
                swallowed.append((k, repr(e)))
            await asyncio.sleep(0.01)
            if t._pool.idle:
                swallowed.append((k, "%d idle" % len(t._pool.idle)))
            t.close()
        check(not swallowed, "%s: a cancel in any loop iteration of the call cancels it, no "
              "connection kept (%d requests served in all; swallowed at %s)"
              % (name, len(served), swallowed))
    http_srv.close()
    sock_srv.close()


async def amain(c, tmp):
    for fn, args in ((equal_to_sync, (c,)), (concurrent_calls, (c,)), (batching, (c,)),
                     (limits, (c, tmp)), (rate_limit_and_cancel, (c, tmp)),
                     (http_framing, ()), (cancel_every_iteration, (tmp,))):
        try:
            await fn(*args)
        except Exception as e:  # noqa: BLE001 - a section that raises is a failure; go on
            traceback.print_exc()
            check(False, "%s raised %r" % (fn.__name__, e))


def main():
    tmp = tempfile.mkdtemp(prefix="vl-aclient-")
    c = Cluster(1)
    try:
        t0 = time.time()
        asyncio.run(amain(c, tmp))
        print("async client checks: %.1f s" % (time.time() - t0))
    finally:
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
