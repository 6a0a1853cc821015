"""Regression tests, against a real gateway, for what fuzzing (and writing the fuzz targets) found
(docs/security.md, "Fuzzing"). Each failed before its fix:

* a short X-Request-Id was copied as 128 bytes, reading past the header and echoing heap bytes
  back: now echoed exactly;
* with --max-pipeline 1, a request answered at once (GET /health) left the keep-alive connection
  unread until the idle timeout: the next request is now answered at once;
* msgpack API: a zero-length frame blocked the connection forever while its buffer kept growing:
  now 400 invalid_msgpack and the connection is closed;
* msgpack API: a frame that is not a map leaked its unpacked zone (seen under LeakSanitizer): it
  is answered 400 and the connection keeps serving;
* msgpack API: an empty bin as an image is refused naming the field;
* msgpack API: 429/503 errors had no retry time (HTTP sends Retry-After): they now carry
  `retry_after` (seconds);
* `input` and `messages` together: the message starts with the field's path (docs/errors.md);
* a BMP whose header gives a negative width is refused as a corrupt header."""
import base64
import socket
import struct
import time

from vlharness import Cluster, MsgpackClient, check, finish, msgpack

# BMP header with width -1174405122 (found by fuzz_image), then the pixel data of a 40x30 image
BMP = bytes.fromhex("424d460e000000000000360000002800""0000feffffb91e000000010018000000"
                    "0000100e0000c40e0000c40e00000000") + b"\0" * 3600


def raw_http(port, data, n_answers, timeout=3.0):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    s.sendall(data)
    got = b""
    t0 = time.time()
    try:
        while got.count(b"HTTP/1.1 ") < n_answers or not got.endswith(b"}"):
            c = s.recv(65536)
            if not c:
                break
            got += c
    except socket.timeout:
        pass
    s.close()
    return got, time.time() - t0


c = Cluster(0, gateway_args=["--max-pipeline", "1"])
try:
    got, _ = raw_http(c.port, b"GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: 5\r\n\r\n", 1)
    check(b"\r\nX-Request-Id: 5\r\n" in got, "a 1-byte X-Request-Id is echoed exactly")

    got, dt = raw_http(c.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n", 2)
    check(got.count(b"HTTP/1.1 200") == 2 and dt < 2.0,
          "--max-pipeline 1: two requests on one connection both answered (%d in %.2f s)"
          % (got.count(b"HTTP/1.1 200"), dt))

    st, _, b = c.post({"input": "x", "messages": [{"role": "user", "content": "y"}]})
    check(st == 400 and b["error"]["param"] == "messages" and b["error"]["message"].startswith("messages:"),
          "input + messages: 400, the message starts with its param (%s)" % b["error"]["message"])

    st, _, b = c.post({"input": {"image": "data:image/bmp;base64," + base64.b64encode(BMP).decode()}},
                      path="/v1/embeddings/preview")
    check(st == 400 and b["error"]["code"] == "invalid_media" and "corrupt BMP header" in b["error"]["message"],
          "a BMP with a negative width: 400 invalid_media, corrupt header (%s)" % b["error"]["message"])

    m = MsgpackClient(c.api_socket)
    m.send_raw(struct.pack(">I", 4) + msgpack.packb([1, 2, 3]))
    a = m.recv()
    check(a["type"] == "error" and a["status"] == 400 and a["error"]["code"] == "invalid_msgpack",
          "msgpack: a frame that is not a map -> 400 invalid_msgpack")
    m_first_error = a
    m.send({"id": 2, "type": "preview", "input": {"image": b""}})
    a = m.recv()
    check(a["type"] == "error" and a["id"] == 2 and a["error"]["param"] == "input.image"
          and "empty bytes" in a["error"]["message"],
          "msgpack: an empty bin as an image -> 400 naming input.image (%s)" % a["error"]["message"])
    m.send({"id": 3, "type": "preview", "input": "still serving"})
    a = m.recv()
    check(a["type"] == "preview_result" and a["id"] == 3, "msgpack: the connection keeps serving")
    # no worker in this cluster: embed is 503 no_ready_worker, which says when to retry, as
    # HTTP's Retry-After does; a 400 carries no retry_after
    m.send({"id": 4, "input": "no worker"})
    a = m.recv()
    check(a["type"] == "error" and a["id"] == 4 and a["status"] == 503
          and a["error"]["code"] == "no_ready_worker" and a.get("retry_after") == 1,
          "msgpack: 503 no_ready_worker carries retry_after 1 (%s)" % a)
    check("retry_after" not in m_first_error,
          "msgpack: a 400 error carries no retry_after (%s)" % sorted(m_first_error))
    m.close()

    m = MsgpackClient(c.api_socket)
    m.s.settimeout(3)
    m.send_raw(b"\0\0\0\0")
    try:
        m.send({"id": 4, "input": "after the empty frame"})
    except (BrokenPipeError, ConnectionResetError):
        pass  # the gateway may have answered and closed the connection already

    try:
        a = m.recv()
    except (socket.timeout, EOFError) as e:
        a = {"exception": repr(e)}
    check(a.get("type") == "error" and a.get("status") == 400 and "length 0" in a["error"]["message"],
          "msgpack: a zero-length frame -> 400 invalid_msgpack (%s)" % a)
    try:
        rest = m.s.recv(100)
    except socket.timeout:
        rest = b"(timeout)"
    check(rest == b"", "... and the connection is closed (%r)" % rest[:40])
    m.close()
finally:
    c.stop()
finish()
