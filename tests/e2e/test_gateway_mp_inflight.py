"""The per-connection cap of msgpack API requests in flight, --max-msgpack-inflight
(docs/api.md, docs/security.md), through the real Unix socket of a real gateway with a CPU
worker on the tiny checkpoint (--max-msgpack-inflight 3):

* with the worker paused, one connection pipelines 10 one-item requests: the gateway takes 3 of
  them (vlembed_queue_items settles at 3) and reads no further frame of that connection;
* another connection meanwhile gets its own 3 in (the cap is per connection: 6 in all);
* once the worker resumes, every request of both connections is answered, by id, and the queue
  is empty again.
Without the option (the default, 256) the first connection's 10 requests would all be taken."""
import signal
import time

from vlharness import Cluster, MsgpackClient, check, finish, metric, wait_for

CAP = 3


def settled(c, want, secs):
    """vlembed_queue_items reaches `want` and stays there for 0.5 s."""
    if not wait_for(lambda: metric(c, "vlembed_queue_items") == want, secs):
        return False
    time.sleep(0.5)
    return metric(c, "vlembed_queue_items") == want


def main():
    c = Cluster(1, gateway_args=["--max-msgpack-inflight", str(CAP)])
    try:
        a = MsgpackClient(c.api_socket)
        a.send({"id": 0, "input": ["warm up"], "model": "tiny"})
        a.s.settimeout(20)
        check(a.recv().get("id") == 0, "a warm-up request is answered")
        w = c.workers[0]
        w.send_signal(signal.SIGSTOP)
        try:
            for i in range(1, 11):
                a.send({"id": i, "input": ["document %d" % i], "model": "tiny"})
            check(settled(c, CAP, 10), "one connection has %d requests taken, not 10 (queue %s)"
                  % (CAP, metric(c, "vlembed_queue_items")))
            b = MsgpackClient(c.api_socket)
            for i in range(101, 106):
                b.send({"id": i, "input": ["other %d" % i], "model": "tiny"})
            check(settled(c, 2 * CAP, 10), "a second connection gets its own %d (queue %s)"
                  % (CAP, metric(c, "vlembed_queue_items")))
        finally:
            w.send_signal(signal.SIGCONT)
        got_a, got_b = set(), set()
        b.s.settimeout(30)
        while len(got_a) < 10:
            m = a.recv()
            check(m.get("type") == "result", "answer %s is a result" % m.get("id"))
            got_a.add(m.get("id"))
        while len(got_b) < 5:
            m = b.recv()
            check(m.get("type") == "result", "answer %s is a result" % m.get("id"))
            got_b.add(m.get("id"))
        check(got_a == set(range(1, 11)), "every request of the first connection is answered")
        check(got_b == set(range(101, 106)), "every request of the second connection is answered")
        check(wait_for(lambda: metric(c, "vlembed_queue_items") == 0, 5), "and the queue is empty")
        a.close()
        b.close()
    finally:
        c.stop()
    finish()


if __name__ == "__main__":
    main()
