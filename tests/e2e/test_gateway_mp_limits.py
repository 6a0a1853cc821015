"""The msgpack API socket's connection cap and the budget charge of a msgpack request's strings
(docs/security.md), through the real Unix socket of a real gateway with a CPU worker on the tiny
checkpoint (--max-msgpack-connections 3, --max-buffered-bytes 8M):

* with 3 connections open, a 4th is answered one error frame, 503 too_many_connections with
  retry_after 1 and id nil, and closed, also when it wrote a request first; counted in
  vlembed_msgpack_connections_rejected_total; the open ones are still served; once one closes,
  a new connection is served;
* strings charged: with the worker paused, a request of one 100 KB data: URI holds exactly the
  URI's copy (length + 1), not its frame (the frame is freed once parsed, as an HTTP body is); a
  request with an image bin and a 100 KB data: URI holds its frame (the bin is a view into it)
  plus the strings' copies; both answered, the gauge back to 0;
* a frame that fits the budget but whose strings do not fit beside it: 503 memory_busy with the
  request's id and retry_after 1, nothing embedded, the connection kept and served after."""
import base64
import io
import os
import signal
import struct
import time

from vlharness import (Cluster, MsgpackClient, answer_brief, check, finish, metric, peer_closed,
                       wait_for)

import msgpack

from PIL import Image

MiB = 1 << 20


def gauge(c):
    return metric(c, "vlembed_buffered_bytes")


def noise_png(nbytes):
    """A 64x64 PNG followed by random bytes after its IEND chunk (ignored by decoders)."""
    b = io.BytesIO()
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(b, "PNG")
    return b.getvalue() + os.urandom(nbytes - b.tell())


def data_uri(nbytes):
    """A data: URI of a small noise PNG padded to about nbytes of base64 (cheap to embed)."""
    return "data:image/png;base64," + base64.b64encode(noise_png(nbytes * 3 // 4)).decode()


def frame_len(obj):
    return len(msgpack.packb(obj, use_bin_type=True))


def is_result(a, rid):
    return isinstance(a, dict) and a.get("type") == "result" and a.get("id") == rid


def main():
    c = Cluster(1, gateway_args=["--max-msgpack-connections", "3", "--max-buffered-bytes", "8M"])
    try:
        # -- the connection cap ------------------------------------------------------------
        a = MsgpackClient(c.api_socket)
        a.send({"id": 1, "input": ["first"], "model": "tiny"})
        check(is_result(a.recv_within(10), 1), "connection 1 is served")
        b = MsgpackClient(c.api_socket)
        d = MsgpackClient(c.api_socket)
        check(wait_for(lambda: metric(c, "vlembed_msgpack_connections") == 3, 3),
              "vlembed_msgpack_connections = 3 (%s)" % metric(c, "vlembed_msgpack_connections"))
        x = MsgpackClient(c.api_socket)
        e = x.recv_within(5)
        check(isinstance(e, dict) and e.get("type") == "error" and e.get("status") == 503
              and e.get("id") is None and e.get("retry_after") == 1
              and (e.get("error") or {}).get("code") == "too_many_connections"
              and "--max-msgpack-connections" in e["error"].get("message", ""),
              "a 4th connection: 503 too_many_connections, id nil, retry_after 1 (%s)" % answer_brief(e))
        check(peer_closed(x.s), "and it is closed")
        x.close()
        y = MsgpackClient(c.api_socket)
        try:
            y.send({"id": 2, "input": ["over the cap"], "model": "tiny"})
        except OSError:
            pass  # the gateway may have closed it already: its answer is still readable
        e = y.recv_within(5)
        check(isinstance(e, dict) and e.get("status") == 503 and e.get("id") is None
              and (e.get("error") or {}).get("code") == "too_many_connections",
              "a 4th connection that writes a request first gets the same answer (%s)" % answer_brief(e))
        y.close()
        check(metric(c, "vlembed_msgpack_connections_rejected_total") == 2,
              "vlembed_msgpack_connections_rejected_total = 2 (%s)"
              % metric(c, "vlembed_msgpack_connections_rejected_total"))
        check(metric(c, "vlembed_msgpack_connections") == 3, "the refused ones are not counted as open")
        d.send({"id": 3, "input": ["an open one"], "model": "tiny"})
        check(is_result(d.recv_within(10), 3), "an open connection is still served")
        b.close()
        check(wait_for(lambda: metric(c, "vlembed_msgpack_connections") == 2, 3),
              "one closed: 2 open")
        z = MsgpackClient(c.api_socket)
        z.send({"id": 4, "input": ["a new one"], "model": "tiny"})
        check(is_result(z.recv_within(10), 4), "then a new connection is served")
        z.close()
        d.close()

        # -- strings charged ---------------------------------------------------------------
        t1 = data_uri(100000)
        t2 = data_uri(100004)
        png = noise_png(300000)
        rt = {"id": "t", "input": [{"image": t1}], "model": "tiny", "timeout": 20}
        rb = {"id": "b", "input": [{"image": png, "text": "a cat"}, {"image": t2}], "model": "tiny",
              "timeout": 20}
        w = c.workers[0]
        w.send_signal(signal.SIGSTOP)
        try:
            a.send(rt)
            check(wait_for(lambda: gauge(c) == len(t1) + 1, 3),
                  "a request of a data: URI holds the URI's copy (%d bytes), not its %d-byte frame "
                  "(%s; its decoded bytes are charged too until the image is decoded)"
                  % (len(t1) + 1, frame_len(rt), gauge(c)))
            a.send(rb)
            want = len(t1) + 1 + frame_len(rb) + len(t2) + 1 + len("a cat") + 1
            check(wait_for(lambda: gauge(c) == want, 3),
                  "a request with a bin holds its %d-byte frame and its strings' copies (%d bytes): "
                  "%d (%s)" % (frame_len(rb), len(t2) + len("a cat") + 2, want, gauge(c)))
            time.sleep(0.2)
        finally:
            w.send_signal(signal.SIGCONT)
        got = {}
        for _ in range(2):
            r = a.recv_within(20)
            if isinstance(r, dict):
                got[r.get("id")] = r
        check(is_result(got.get("t"), "t") and is_result(got.get("b"), "b"),
              "both are answered (%s, %s)" % (answer_brief(got.get("t")), answer_brief(got.get("b"))))
        check(wait_for(lambda: gauge(c) == 0, 3), "the gauge is back to 0 (%s)" % gauge(c))

        # -- a frame that fits, its strings beside it do not ---------------------------------
        big = {"id": "big", "input": [{"image": noise_png(8 * MiB - 150000)}, {"image": t1}],
               "model": "tiny"}
        fl = frame_len(big)
        check(fl <= 8 * MiB < fl + len(t1) + 1, "the frame (%d) fits 8 MiB, with its text (%d) not"
              % (fl, fl + len(t1) + 1))
        a.send(big)
        e = a.recv_within(10)
        check(isinstance(e, dict) and e.get("type") == "error" and e.get("id") == "big"
              and e.get("status") == 503 and e.get("retry_after") == 1
              and (e.get("error") or {}).get("code") == "memory_busy"
              and e["error"].get("param") is None
              and "besides its frame" in e["error"].get("message", ""),
              "its strings do not fit beside it: 503 memory_busy with its id, param nil, before "
              "any source is decoded (%s)" % answer_brief(e))
        check(wait_for(lambda: gauge(c) == 0, 3), "nothing of it stays charged (%s)" % gauge(c))
        a.send({"id": 5, "input": ["after the refusal"], "model": "tiny"})
        check(is_result(a.recv_within(10), 5), "the connection stays usable: the next request is served")
        a.close()
        check(c.gateway.poll() is None, "the gateway still runs")
    finally:
        c.stop()
    finish()


if __name__ == "__main__":
    main()
