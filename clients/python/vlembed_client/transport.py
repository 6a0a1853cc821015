"""The two transports: HTTP/1.1 with keep-alive (http.client, one connection per thread) and
msgpack frames over the gateway's Unix socket (docs/api.md "msgpack API"). Each call returns the
parsed answer or raises an APIStatusError (the gateway's error) or APIConnectionError.

Connection errors are marked `retryable` when the request cannot have been half-processed in a
way that matters (embedding is idempotent, so any refused/reset connection is); timeouts are not."""
import http.client
import json
import socket
import ssl
import struct
import threading
import urllib.parse

from .errors import APIConnectionError, APITimeoutError, error_for

# Errors that mean "the gateway is not there right now" or "the connection went away": a
# restarting gateway refuses connections or has no socket file yet; an idle keep-alive connection
# may have been closed by the gateway (--idle-timeout-s) just as we reused it.
_CONN_ERRORS = (ConnectionError, FileNotFoundError, http.client.RemoteDisconnected,
                http.client.IncompleteRead, http.client.BadStatusLine, EOFError)

MAX_ANSWER_FRAME = 256 << 20  # the largest msgpack answer accepted (the gateway's own frame cap)


def _conn_error(e, request_id, conn_errors=_CONN_ERRORS, timeouts=(socket.timeout, TimeoutError)):
    """The exception for a request that got no whole answer: APITimeoutError for one of
    `timeouts`, else APIConnectionError, retryable for one of `conn_errors`."""
    if isinstance(e, timeouts):
        return APITimeoutError("no answer from the gateway within the timeout", request_id=request_id)
    err = APIConnectionError("connection to the gateway failed: %s: %s" % (type(e).__name__, e),
                             request_id=request_id)
    err.retryable = isinstance(e, conn_errors)
    return err


def _split_base_url(base_url):
    """(scheme, host, port, path prefix) of an http(s) base URL; a trailing /v1 is dropped from
    the prefix (the OpenAI SDKs write it)."""
    u = urllib.parse.urlsplit(base_url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError("base_url must be http://HOST[:PORT] or https://..., not %r" % base_url)
    prefix = u.path.rstrip("/")
    if prefix.endswith("/v1"):
        prefix = prefix[:-3]
    return u.scheme, u.hostname, u.port or (443 if u.scheme == "https" else 80), prefix


def _headers(api_key, extra, first=None):
    """The headers of every request: `first`, Accept and User-Agent, the API key, then the
    caller's `extra` (which may replace any of them)."""
    h = dict(first or {})
    h.update({"Accept": "application/json", "User-Agent": "vlembed-client-python"})
    if api_key:
        h["Authorization"] = "Bearer " + api_key
    h.update(extra or {})
    return h


def _json_body(body):
    """A request body: bytes as they are, anything else as compact UTF-8 JSON."""
    return body if isinstance(body, bytes) else json.dumps(
        body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _http_result(status, headers, raw, request_id):
    """(status, headers, parsed JSON or raw bytes) of a 2xx answer; raises the APIStatusError of
    any other (headers lower-cased)."""
    parsed = raw
    if "json" in headers.get("content-type", "") and raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
    if 200 <= status < 300:
        return status, headers, parsed
    err = parsed.get("error") if isinstance(parsed, dict) else None
    raise error_for(status, err, request_id=headers.get("x-request-id", request_id),
                    retry_after=_retry_after(headers.get("retry-after")))


def _socket_closes(ans):
    """The gateway closes the connection after an error answer to a frame over --api-max-frame
    (413) or one it could not read (no id)."""
    return ans.get("type") == "error" and (ans.get("status") == 413 or ans.get("id") is None)


def _socket_result(ans, request_id):
    """The answer map of a msgpack call; raises the APIStatusError of an error answer."""
    if ans.get("type") == "error":
        status = ans.get("status") if isinstance(ans.get("status"), int) else 500
        raise error_for(status, ans.get("error"), request_id=request_id,
                        retry_after=_retry_after(ans.get("retry_after")))
    return ans


def _retry_after(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v >= 0 else None


class HTTPTransport:
    """JSON over HTTP/1.1 to `base_url` (http:// or https://; a trailing /v1 is accepted, as the
    OpenAI SDKs write it)."""

    binary = False

    def __init__(self, base_url, *, api_key=None, timeout=60.0, headers=None, ssl_context=None):
        self.scheme, self.host, self.port, self.prefix = _split_base_url(base_url)
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.headers = _headers(api_key, headers)
        self._local = threading.local()
        self._all = []
        self._lock = threading.Lock()

    def _connection(self):
        c = getattr(self._local, "conn", None)
        if c is None:
            if self.scheme == "https":
                c = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                context=self.ssl_context or ssl.create_default_context())
            else:
                c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            c._vl_used = False
            self._local.conn = c
            with self._lock:
                self._all.append(c)
        return c

    def _drop(self, c):
        c.close()
        self._local.conn = None
        with self._lock:
            if c in self._all:
                self._all.remove(c)

    def close(self):
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            c.close()
        self._local = threading.local()

    def request(self, method, path, body=None, *, request_id=None, timeout=None):
        """One request; returns (status, headers dict lower-cased, parsed JSON or raw bytes) for a
        2xx answer, raises for anything else."""
        hdrs = dict(self.headers)
        data = None
        if body is not None:
            data = _json_body(body)
            hdrs["Content-Type"] = "application/json"
        if request_id:
            hdrs["X-Request-Id"] = request_id
        for fresh_try in (0, 1):
            c = self._connection()
            reused = c._vl_used
            c.timeout = timeout or self.timeout
            if c.sock is not None:
                c.sock.settimeout(c.timeout)
            r = None  # set once the answer's status line came: then it is not resent
            try:
                try:
                    c.request(method, self.prefix + path, body=data, headers=hdrs)
                except (BrokenPipeError, ConnectionResetError):
                    # The gateway may refuse from the head (401, 413, 429) and close before the
                    # body is sent: its answer is still readable; if not, this raises below.
                    pass
                r = c.getresponse()
                raw = r.read()
            except Exception as e:  # noqa: BLE001 - every failure closes the connection
                self._drop(c)
                if isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError,
                                  BrokenPipeError)) and reused and not fresh_try and r is None:
                    continue  # a kept-alive connection the gateway had closed: once more, fresh
                if isinstance(e, (OSError, http.client.HTTPException, EOFError)):
                    raise _conn_error(e, request_id) from e
                raise
            c._vl_used = True
            headers = {k.lower(): v for k, v in r.getheaders()}
            if r.will_close:
                self._drop(c)
            return _http_result(r.status, headers, raw, request_id)
        raise AssertionError("unreachable")


def _require_msgpack():
    """Raises ImportError naming the packages if msgpack is missing (imported lazily: HTTP-only
    use does not need it)."""
    try:
        import msgpack  # noqa: F401
    except ImportError as e:
        raise ImportError("the Unix-socket transport needs msgpack (Debian: python3-msgpack; "
                          "pip: msgpack)") from e


class SocketTransport:
    """msgpack frames (4-byte big-endian length + one map) over the gateway's Unix socket. Each
    call takes an idle connection (or opens one) and has it to itself until its answer, so
    concurrent calls from several threads use several connections; a call that fails or times
    out closes its connection, so a late answer can never be taken for another request's."""

    binary = True

    def __init__(self, path, *, timeout=60.0):
        _require_msgpack()
        self.path = path
        self.timeout = timeout
        self._idle = []
        self._lock = threading.Lock()
        self._generation = 0  # bumped by close(): connections of an older one are not kept

    def close(self):
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        for s in idle:
            s.close()

    @staticmethod
    def _recv_exact(s, n, answered=None):
        """n bytes from s; appends to `answered` (if given) once any byte came."""
        buf = bytearray()
        while len(buf) < n:
            chunk = s.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise EOFError("the gateway closed the connection")
            if answered is not None and not answered:
                answered.append(True)
            buf += chunk
        return bytes(buf)

    def call(self, obj, *, request_id=None, timeout=None):
        """Sends one request map (its `id` set to request_id) and returns the answer map; raises
        the answer's error as an APIStatusError."""
        import msgpack
        obj = dict(obj)
        obj["id"] = request_id
        frame = msgpack.packb(obj, use_bin_type=True)
        for fresh_try in (0, 1):
            with self._lock:
                s = self._idle.pop() if self._idle and not fresh_try else None
                gen = self._generation
            reused = s is not None
            answered = []  # a byte of an answer came: then it is not resent
            try:
                if s is None:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.settimeout(timeout or self.timeout)
                    s.connect(self.path)
                s.settimeout(timeout or self.timeout)
                s.sendall(struct.pack(">I", len(frame)) + frame)
                while True:
                    n = struct.unpack(">I", self._recv_exact(s, 4, answered))[0]
                    if n == 0 or n > MAX_ANSWER_FRAME:
                        raise EOFError("answer frame of %d bytes" % n)
                    ans = msgpack.unpackb(self._recv_exact(s, n), raw=False)
                    if not isinstance(ans, dict):
                        raise EOFError("an answer that is not a map")
                    if ans.get("id") == request_id or ans.get("id") is None:
                        break  # an error without id answers a frame the gateway could not read
                break
            except Exception as e:  # noqa: BLE001 - every failure closes the connection
                if s is not None:
                    s.close()
                if (reused and not answered and not fresh_try and
                        isinstance(e, (BrokenPipeError, ConnectionResetError, EOFError))):
                    continue  # an idle connection the gateway had closed (--idle-timeout-s): fresh
                if isinstance(e, (OSError, EOFError, ValueError)):
                    raise _conn_error(e, request_id) from e
                raise
        with self._lock:
            if not _socket_closes(ans) and gen == self._generation:
                self._idle.append(s)
                s = None
        if s is not None:
            s.close()
        return _socket_result(ans, request_id)
