"""Slow senders on the msgpack API socket (docs/security.md, "Slow senders"): the HTTP server's
deadlines apply to msgpack frames too, through the real Unix socket of a real gateway with a CPU
worker on the tiny checkpoint (--header-timeout-s 1, --request-timeout-s 2.5, --idle-timeout-s 2,
--min-body-rate 64k, --body-rate-grace-s 0.5, --max-buffered-bytes 8M):

* four slow senders at once: S declares a 2 MiB frame and sends 100 KB of it, then nothing;
  H sends 2 bytes of a length prefix; T declares 1 MiB and trickles 32 KB every 0.25 s (never
  stalling, above the minimum rate); R declares 1 MiB and trickles 1 KB every 0.25 s (below
  it). S's 2 MiB and T's and R's 1 MiB are reserved at their prefixes; then S is answered 408
  request_timeout (no id) after the stall timeout, H after the header timeout, R after the
  grace at the minimum rate, T after the request timeout, each connection then closed, and the
  budget gauge is back to 0; counted in vlembed_msgpack_timeouts_total{kind};
* meanwhile a normal client's requests on one connection are answered as usual;
* a frame refused 503 memory_busy at its prefix (9 MiB over the 8 MiB budget) whose rest stops
  coming while the gateway reads it off: 408 after the stall timeout, then closed;
* a connection with a request in flight (worker paused) that then half-sends a frame: 408 for
  the frame, its reservation released at once, the request in flight still answered, then the
  connection is closed;
* an idle connection (nothing in flight, no frame begun) is closed after --idle-timeout-s
  without an answer, as an idle HTTP keep-alive connection; one with a request in flight longer
  than that is not;
* the Python clients (Client and AsyncClient, max_retries=0) reuse a pooled connection the
  gateway closed for idleness: they reconnect at once instead of failing."""
import asyncio
import os
import signal
import socket
import struct
import sys
import threading
import time

from vlharness import (ROOT, Cluster, MsgpackClient, answer_brief, check, finish, metric,
                       peer_closed, wait_for)

sys.path.insert(0, os.path.join(ROOT, "clients/python"))
from vlembed_client import AsyncClient, Client  # noqa: E402

import msgpack

MiB = 1 << 20


def gauge(c, name="vlembed_buffered_bytes"):
    return metric(c, name)


def timeouts(c, kind):
    return metric(c, "vlembed_msgpack_timeouts_total", kind=kind)


def is_408(a):
    return (isinstance(a, dict) and a.get("type") == "error" and a.get("status") == 408
            and a.get("id") is None and (a.get("error") or {}).get("code") == "request_timeout")


def main():
    c = Cluster(1, gateway_args=["--header-timeout-s", "1", "--request-timeout-s", "2.5",
                                 "--idle-timeout-s", "2", "--min-body-rate", "64k",
                                 "--body-rate-grace-s", "0.5", "--max-buffered-bytes", "8M"])
    try:
        res = {}

        def slow(name, first, then=b"", every=0.0, count=0):
            cl = MsgpackClient(c.api_socket)
            t0 = time.time()
            cl.send_raw(first)
            stop = threading.Event()

            def trickle():
                for _ in range(count):
                    if stop.wait(every):
                        return
                    try:
                        cl.send_raw(then)
                    except OSError:
                        return
            th = threading.Thread(target=trickle)
            th.start()
            a = cl.recv_within(6)
            dt = time.time() - t0
            stop.set()
            th.join()
            res[name] = (a, dt, a is not None and peer_closed(cl.s))
            cl.close()

        norm = MsgpackClient(c.api_socket)
        norm.send({"id": 0, "input": ["before"], "model": "tiny"})
        r0 = norm.recv_within(10)
        check(r0 is not None and r0.get("type") == "result", "a normal client is served (%s)" % answer_brief(r0))

        threads = [
            threading.Thread(target=slow, args=("S", struct.pack(">I", 2 * MiB) + b"\x83" + b"\0" * 100000)),
            threading.Thread(target=slow, args=("H", struct.pack(">I", 2 * MiB)[:2])),
            threading.Thread(target=slow, args=("T", struct.pack(">I", MiB) + b"\x83", b"\0" * 32768, 0.25, 100)),
            threading.Thread(target=slow, args=("R", struct.pack(">I", MiB) + b"\x83", b"\0" * 1024, 0.25, 100)),
        ]
        for t in threads:
            t.start()
        check(wait_for(lambda: gauge(c) == 4 * MiB, 3),
              "S's 2 MiB and T's and R's 1 MiB are reserved at their prefixes (%s)" % gauge(c))
        # the normal client meanwhile: a request every 0.3 s on its connection, each answered
        lat = []
        ok = True
        t_end = time.time() + 2.8
        i = 1
        while time.time() < t_end:
            t1 = time.time()
            norm.send({"id": i, "input": ["during %d" % i], "model": "tiny"})
            r = norm.recv_within(10)
            lat.append(time.time() - t1)
            ok = ok and r is not None and r.get("type") == "result" and r.get("id") == i
            i += 1
            time.sleep(0.3)
        check(ok and len(lat) >= 4,
              "a normal client's %d requests meanwhile are answered (max %.3f s)" % (len(lat), max(lat)))
        for t in threads:
            t.join()
        for name, kind, lo, hi in (("S", "stalled", 0.9, 3.0), ("H", "length prefix", 0.9, 3.0),
                                   ("R", "minimum byte rate", 0.45, 2.0),
                                   ("T", "request timeout", 2.4, 4.5)):
            a, dt, cl_ = res[name]
            check(is_408(a) and kind in a["error"]["message"] and lo <= dt <= hi,
                  "%s: 408 request_timeout, id nil, '%s', after %.2f s (%s)" % (name, kind, dt, a))
            check(cl_, "%s's connection is then closed" % name)
        check(wait_for(lambda: gauge(c) == 0, 3), "the reservations are released: gauge 0 (%s)" % gauge(c))
        check(timeouts(c, "body_stall") == 1 and timeouts(c, "header") == 1
              and timeouts(c, "request") == 1 and timeouts(c, "body_rate") == 1,
              "vlembed_msgpack_timeouts_total: header 1, body_stall 1, body_rate 1, request 1")
        norm.send({"id": 99, "input": ["after"], "model": "tiny"})
        r = norm.recv_within(10)
        check(r is not None and r.get("id") == 99, "the normal client is still served (%s)" % answer_brief(r))

        # a refused frame's rest, read off and thrown away, must keep coming too
        q = MsgpackClient(c.api_socket)
        t0 = time.time()
        q.send_raw(struct.pack(">I", 9 * MiB) + b"\x83" + b"\0" * 100000)
        e1, e2 = q.recv_within(5), q.recv_within(5)
        dt = time.time() - t0
        check(isinstance(e1, dict) and e1.get("status") == 503
              and (e1.get("error") or {}).get("code") == "memory_busy",
              "a 9 MiB frame over the 8 MiB budget: 503 memory_busy (%s)" % answer_brief(e1))
        check(is_408(e2) and "stalled" in e2["error"]["message"] and 0.9 <= dt <= 3,
              "its rest stops coming: 408 after %.2f s (%s)" % (dt, answer_brief(e2)))
        check(peer_closed(q.s), "then it is closed")
        q.close()
        check(timeouts(c, "body_stall") == 2, "vlembed_msgpack_timeouts_total{kind=\"body_stall\"} 2")

        # a request in flight, then half a frame: 408, released at once, the answer still comes
        w = c.workers[0]
        w.send_signal(signal.SIGSTOP)
        try:
            p = MsgpackClient(c.api_socket)
            p.send({"id": 9, "input": ["held"], "model": "tiny", "timeout": 20})
            time.sleep(0.2)
            held = gauge(c)
            p.send_raw(struct.pack(">I", MiB) + b"\x83" + b"\0" * 1000)
            check(wait_for(lambda: gauge(c) == held + MiB, 2), "P's 1 MiB frame is reserved (%s)" % gauge(c))
            a = p.recv_within(5)
            check(is_408(a), "P's half frame: 408 while its request 9 is in flight (%s)" % a)
            check(gauge(c) == held, "P's 1 MiB is released at once (%s, held %s)" % (gauge(c), held))
            # an idle connection is closed after --idle-timeout-s, one waiting for an answer not
            idle = MsgpackClient(c.api_socket)
            waiting = MsgpackClient(c.api_socket)
            waiting.send({"id": 10, "input": ["waits longer than the idle timeout"], "model": "tiny",
                          "timeout": 20})
            t0 = time.time()
            ec = peer_closed(idle.s, 5)
            dt = time.time() - t0
            check(ec and 1.8 <= dt <= 4, "an idle connection is closed after %.2f s (idle timeout 2)" % dt)
            time.sleep(0.5)
        finally:
            w.send_signal(signal.SIGCONT)
        r = p.recv_within(10)
        check(r is not None and r.get("type") == "result" and r.get("id") == 9,
              "P's request in flight is still answered (%s)" % answer_brief(r))
        check(peer_closed(p.s), "then P's connection is closed")
        r = waiting.recv_within(10)
        check(r is not None and r.get("type") == "result" and r.get("id") == 10,
              "the connection waiting longer than the idle timeout is answered, not closed (%s)" % answer_brief(r))
        check(wait_for(lambda: gauge(c) == 0, 3), "nothing left charged (%s)" % gauge(c))
        for x in (p, idle, waiting, norm):
            x.close()

        # the Python clients reuse pooled connections: one closed for idleness is replaced
        async def clients():
            sync = Client(unix_socket=c.api_socket, timeout=10, max_retries=0)
            async with AsyncClient(unix_socket=c.api_socket, timeout=10, max_retries=0) as a:
                sync.embed(["before the idle timeout"])
                await a.embed(["before the idle timeout"])
                await asyncio.sleep(2.6)
                out = []
                for name, call in (("Client", lambda: sync.embed(["after it"])), ("AsyncClient", None)):
                    t0 = time.time()
                    try:
                        r = call() if call else await a.embed(["after it"])
                        out.append((name, len(r) == 1, time.time() - t0, None))
                    except Exception as e:  # noqa: BLE001 - reported by the check
                        out.append((name, False, time.time() - t0, e))
            sync.close()
            return out
        for name, ok, dt, err in asyncio.run(clients()):
            check(ok and dt < 1, "%s (max_retries=0) after its pooled connection was closed idle: "
                  "served on a new one in %.3f s (%s)" % (name, dt, err))
        check(c.gateway.poll() is None, "the gateway still runs")
    finally:
        c.stop()
    finish()


if __name__ == "__main__":
    main()
