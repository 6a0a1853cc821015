"""msgpack API frames in the buffered-bytes budget (--max-buffered-bytes, docs/security.md),
through the real Unix socket of a real gateway with a CPU worker on the tiny checkpoint, budget
8 MiB:

* client A declares a 5 MiB frame (a real request: a noise PNG as bin) and sends only its first
  64 KiB: vlembed_buffered_bytes shows the whole 5 MiB reserved before the body was read;
* client B has a small request in flight (the worker is paused) and then writes a 4 MiB frame in
  one go: it is answered 503 memory_busy (no id, retry_after 1) at its prefix, the write
  completes (the body is read off and thrown away, not kept or charged), its in-flight request
  is still answered (id 7), and then the connection is closed; the refusal is counted in
  vlembed_buffered_bytes_rejected_total{what="msgpack_frame"};
* a small request on another connection is served while A's 5 MiB are held;
* client D declares 2 MiB, sends part of it and disconnects: its reservation is released;
* A sends the rest and gets its embedding; then the budget is back to 0;
* a 1 MiB frame whose request is on a worker that is killed: its reservation is released when
  the request is answered (an error), the budget is back to 0; the gateway still serves."""
import io
import os
import signal
import socket
import struct
import time

from vlharness import Cluster, MsgpackClient, check, finish, metric, peer_closed, wait_for

import msgpack

from PIL import Image

MiB = 1 << 20


def noise_png(nbytes):
    """A 64x64 PNG followed by random bytes after its IEND chunk (which decoders ignore), nbytes
    in all: a big frame that is cheap to embed."""
    b = io.BytesIO()
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(b, "PNG")
    return b.getvalue() + os.urandom(nbytes - b.tell())


def gauge(c, name="vlembed_buffered_bytes"):
    return metric(c, name)


def rejected(c, what):
    return metric(c, "vlembed_buffered_bytes_rejected_total", what=what)


def frame(obj):
    b = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(b)) + b


def main():
    c = Cluster(1, gateway_args=["--max-buffered-bytes", "8M"])
    try:
        check(gauge(c, "vlembed_buffered_bytes_limit") == 8 * MiB, "the limit is exported (8 MiB)")
        png = noise_png(5 * MiB - 65536)
        fa = frame({"id": "a", "input": [{"image": png}], "model": "tiny"})
        la = len(fa) - 4
        print("A's frame: %d bytes (PNG %d bytes)" % (la, len(png)))

        # A: the header and 64 KiB of body; the whole declared length is reserved at once
        a = MsgpackClient(c.api_socket)
        a.send_raw(fa[:4 + 65536])
        check(wait_for(lambda: gauge(c) == la, 5),
              "A's %d-byte frame is reserved when its header arrives, with 64 KiB of it sent (%s)"
              % (la, gauge(c)))

        # B: a small request in flight (worker paused), then a 4 MiB frame that does not fit
        w = c.workers[0]
        w.send_signal(signal.SIGSTOP)
        try:
            b = MsgpackClient(c.api_socket)
            b.send({"id": 7, "input": ["held on a paused worker"], "model": "tiny", "timeout": 20})
            time.sleep(0.3)
            # the whole frame in one write before reading (as most clients do): the gateway
            # reads it off and throws it away, so the write completes and the refusal is read
            b.send_raw(struct.pack(">I", 4 * MiB) + b"\x83" + b"\0" * (4 * MiB - 1))
            e = b.recv()
            check(e.get("type") == "error" and e.get("status") == 503 and e.get("id") is None
                  and e.get("retry_after") == 1 and e.get("error", {}).get("code") == "memory_busy"
                  and e["error"].get("type") == "service_unavailable"
                  and "--max-buffered-bytes" in e["error"].get("message", ""),
                  "a 4 MiB frame over the budget: 503 memory_busy, id nil, retry_after 1 (%s)" % e)
            check(rejected(c, "msgpack_frame") == 1,
                  "vlembed_buffered_bytes_rejected_total{what=\"msgpack_frame\"} = 1 (%s)"
                  % rejected(c, "msgpack_frame"))
            # B's request has no bin: its frame was freed once parsed, its text's copy is charged
            check(gauge(c) == la + len("held on a paused worker") + 1,
                  "only A's frame and B's small in-flight request are charged (%s)" % gauge(c))
        finally:
            w.send_signal(signal.SIGCONT)
        r = b.recv()
        check(r.get("type") == "result" and r.get("id") == 7 and len(r.get("data", [])) == 1,
              "B's request in flight before the refusal is still answered (id %s, %s)"
              % (r.get("id"), r.get("type")))
        check(peer_closed(b.s, 5, reset_is_close=False),
              "then B's connection is closed (the refused frame was not kept)")
        b.close()

        # another connection is served while A's 5 MiB are held
        t0 = time.time()
        cl = MsgpackClient(c.api_socket)
        cl.send({"id": 1, "input": ["a small request"], "model": "tiny"})
        r = cl.recv()
        check(r.get("type") == "result" and r.get("id") == 1,
              "a small request on another connection is served meanwhile (%.2f s)" % (time.time() - t0))
        cl.close()

        # D: half a frame, then gone: its reservation is released
        d = MsgpackClient(c.api_socket)
        d.send_raw(struct.pack(">I", 2 * MiB) + b"\x83" + b"\0" * 100000)
        check(wait_for(lambda: gauge(c) == la + 2 * MiB, 5),
              "D's 2 MiB frame is reserved at its header (%s)" % gauge(c))
        d.close()
        check(wait_for(lambda: gauge(c) == la, 5),
              "D disconnects mid-frame: its 2 MiB are released (%s)" % gauge(c))

        # A sends the rest and is served; then nothing is charged
        a.send_raw(fa[4 + 65536:])
        r = a.recv()
        check(r.get("type") == "result" and r.get("id") == "a" and r.get("usage", {}).get("images") == 1,
              "A's 5 MiB request is served (%s %s)" % (r.get("type"), r.get("error")))
        check(wait_for(lambda: gauge(c) == 0, 5), "the budget is back to 0 (%s)" % gauge(c))
        a.close()

        # a frame held by a request whose worker is killed: released when the request ends
        png1 = noise_png(MiB)
        w.send_signal(signal.SIGSTOP)
        k = MsgpackClient(c.api_socket)
        fk = frame({"id": "k", "input": [{"image": png1}], "model": "tiny", "timeout": 3})
        k.send_raw(fk)
        check(wait_for(lambda: gauge(c) == len(fk) - 4, 5),
              "a 1 MiB frame is charged while its request waits on a paused worker (%s)" % gauge(c))
        time.sleep(0.3)
        w.send_signal(signal.SIGKILL)
        w.wait()
        r = k.recv()
        check(r.get("type") == "error" and r.get("id") == "k",
              "the request on the killed worker is answered with an error (%s %s)"
              % (r.get("status"), (r.get("error") or {}).get("code")))
        check(wait_for(lambda: gauge(c) == 0, 5),
              "its frame's reservation is released: the budget is back to 0 (%s)" % gauge(c))
        k.close()

        c.start_worker(0)
        check(wait_for(lambda: c.get("/ready")[0] == 200, 30), "a new worker is ready")
        cl = MsgpackClient(c.api_socket)
        cl.send({"id": 2, "input": ["still here"], "model": "tiny"})
        r = cl.recv()
        check(r.get("type") == "result" and c.gateway.poll() is None, "the gateway still serves")
        cl.close()
        check(gauge(c) == 0, "nothing left charged at the end (%s)" % gauge(c))
        peak = gauge(c, "vlembed_buffered_bytes_peak")
        check(peak is not None and peak <= 8 * MiB, "the peak stayed within the budget (%s)" % peak)
    finally:
        c.stop()
    finish()


if __name__ == "__main__":
    main()
