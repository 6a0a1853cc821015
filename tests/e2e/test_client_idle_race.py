"""The idle-close race of the Python clients (docs/client.md, "Retries"): a client reuses a
kept-alive connection just as the gateway closes it for its idle timeout (--idle-timeout-s).

A real gateway (--idle-timeout-s 0.5) and a CPU worker on the tiny checkpoint. Each client, over
HTTP and over the msgpack Unix socket, with max_retries=0 (so only the once-at-once resend of a
request on a connection the gateway closed can save it, never an ordinary retry):
* embeds once (its connection is then kept idle), waits past the idle timeout, and embeds again.
  The AsyncClient waits with time.sleep, blocking its event loop, so the gateway's close is not
  seen before the connection is taken again (the asyncio reader only learns of the EOF when the
  loop runs): the reused connection is dead at the instant it is taken, deterministically. The
  second call must return the same vector, not raise APIConnectionError;
* the test checks that the gateway really closed the idle connection (its socket, peeked with
  MSG_PEEK, reads EOF) before the second call, so the race was met and not missed;
* the blocking Client does the same (one resend, consistent with AsyncClient).
Fails on the code before this change: AsyncClient's socket transport raised APIConnectionError
(retryable, but max_retries=0), and the gateway never closed an idle HTTP connection (the HTTP
peeks fail)."""
import asyncio
import os
import socket
import sys
import time

from vlharness import ROOT, Cluster, check, finish, np, wait_for

sys.path.insert(0, os.path.join(ROOT, "clients/python"))
from vlembed_client import AsyncClient, Client  # noqa: E402

IDLE = 0.5


def peer_closed_fd(fd):
    """True if the peer closed the socket behind fd (EOF or reset pending), without taking any
    byte from it."""
    s = socket.socket(fileno=os.dup(fd))
    try:
        s.setblocking(False)
        try:
            return s.recv(1, socket.MSG_PEEK) == b""
        except ConnectionResetError:
            return True
        except BlockingIOError:
            return False
    finally:
        s.close()


def closed_within(fd):
    """Waits (blocking, so an asyncio loop does not run meanwhile) until the gateway has closed
    the idle connection behind fd: at least IDLE s from its last answer, and more on a loaded
    machine (a fixed IDLE + 0.5 s raced with the gateway's timer there). True once closed."""
    t0 = time.time()
    ok = wait_for(lambda: peer_closed_fd(fd), IDLE + 10, 0.01)
    print("     idle connection closed after %.2f s of waiting (idle timeout %g s)" % (time.time() - t0, IDLE))
    return ok


def idle_fd_async(client):
    """The fd of the AsyncClient's one idle pooled connection, or None."""
    idle = client._t._pool.idle
    if len(idle) != 1:
        return None
    sock = idle[0][1].get_extra_info("socket")
    return sock.fileno() if sock is not None else None


def idle_fd_sync(client):
    t = client._t
    if hasattr(t, "_idle"):  # the socket transport
        return t._idle[0].fileno() if len(t._idle) == 1 else None
    conn = getattr(t._local, "conn", None)
    return conn.sock.fileno() if conn is not None and conn.sock is not None else None


def run_async(name, kw, ref):
    async def go():
        async with AsyncClient(max_retries=0, **kw) as c:
            a = await c.embed(["the idle race"])
            fd = idle_fd_async(c)
            # blocks the loop (wait_for sleeps): the close is not seen by the client before reuse
            check(fd is not None and closed_within(fd),
                  "%s: the gateway closed the idle connection before it was reused" % name)
            try:
                b = await c.embed(["the idle race"])
            except Exception as e:  # noqa: BLE001 - the failure being tested for
                check(False, "%s: the request on the closed connection is resent: %r" % (name, e))
                return
            check(np.array_equal(np.asarray(a.vectors[0]), np.asarray(b.vectors[0])),
                  "%s: the resent request's vector is the first one's" % name)
    asyncio.run(go())


def run_sync(name, kw, ref):
    with Client(max_retries=0, **kw) as c:
        a = c.embed(["the idle race"])
        fd = idle_fd_sync(c)
        check(fd is not None and closed_within(fd),
              "%s: the gateway closed the idle connection before it was reused" % name)
        try:
            b = c.embed(["the idle race"])
        except Exception as e:  # noqa: BLE001
            check(False, "%s: the request on the closed connection is resent: %r" % (name, e))
            return
        check(np.array_equal(np.asarray(a.vectors[0]), np.asarray(b.vectors[0])),
              "%s: the resent request's vector is the first one's" % name)


def main():
    c = Cluster(1, gateway_args=["--idle-timeout-s", str(IDLE)])
    try:
        http = {"base_url": "http://127.0.0.1:%d" % c.port}
        sock = {"unix_socket": c.api_socket}
        t0 = time.time()
        run_async("AsyncClient socket", sock, None)
        run_async("AsyncClient HTTP", http, None)
        run_sync("Client socket", sock, None)
        run_sync("Client HTTP", http, None)
        print("%.1f s" % (time.time() - t0))
    finally:
        c.stop()
    finish()


if __name__ == "__main__":
    main()
