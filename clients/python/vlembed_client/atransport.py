"""The asyncio transports of AsyncClient: a small HTTP/1.1 client with keep-alive connection
reuse over asyncio streams, and msgpack frames over the gateway's Unix socket. They answer and
fail exactly as the blocking transports in transport.py do (same return values, same exceptions,
same `retryable` marks), so AsyncClient shares every rule above them with Client.

Each request has a connection of its own until its answer is read whole; a request that fails,
times out or is cancelled closes its connection, so a late answer is never read as another
request's, and the client stays usable. A request sent on a reused idle connection that the
gateway closed before any byte of an answer came (its idle timeout, --idle-timeout-s, may expire
just as the connection is taken: the close is not seen until the loop runs) is sent once more at
once on a fresh connection, as the blocking transports do."""
import asyncio
import ssl
import struct

from . import transport
from .transport import (MAX_ANSWER_FRAME, _headers, _http_result, _json_body, _require_msgpack,
                        _socket_closes, _socket_result, _split_base_url)

MAX_HEAD_BYTES = 64 << 10  # status line + headers of one HTTP answer (the gateway's are < 1 KiB)
MAX_HEADERS = 100
MAX_ANSWER_BODY = MAX_ANSWER_FRAME  # the largest HTTP answer body accepted

# Failures that mean "the gateway is not there" or "the connection went away": retryable.
_CONN_ERRORS = (ConnectionError, FileNotFoundError, asyncio.IncompleteReadError, EOFError)


class _Closed(EOFError):
    """The gateway closed the connection before a whole answer."""


def _conn_error(e, request_id):
    return transport._conn_error(e, request_id, _CONN_ERRORS, (asyncio.TimeoutError, TimeoutError))


async def _within(aw, timeout):
    """aw's result, or asyncio.TimeoutError once `timeout` seconds passed (aw then cancelled).
    Unlike asyncio.wait_for before Python 3.12, a cancellation of the calling task is never
    swallowed: wait_for returns the result of an inner call that completed in the loop iteration
    the cancel came in, so a cancelled call went on (its request sent, its connection kept).
    aw runs in the calling task; asyncio.timeout (3.11+) tells its own cancel from the caller's."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(timeout):
            return await aw
    task = asyncio.current_task()
    fired = []

    def expire():
        fired.append(True)
        task.cancel()
    handle = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await aw
    except asyncio.CancelledError:
        if fired:
            raise asyncio.TimeoutError() from None
        raise
    finally:
        handle.cancel()


def _close(writer):
    try:
        writer.close()
    except Exception:  # noqa: BLE001 - closing a broken transport may raise; it is closed anyway
        pass


class _Pool:
    """Idle connections for reuse, each by the event loop that opened it (a client used from
    several loops, one after another or in several threads, keeps each loop's apart); close()
    drops them and makes connections of older generations not kept when their call ends."""

    def __init__(self):
        self.idle = []  # (reader, writer, loop)
        self.generation = 0

    def take(self):
        loop = asyncio.get_running_loop()
        for i in range(len(self.idle) - 1, -1, -1):
            r, w, lp = self.idle[i]
            if lp.is_closed():
                del self.idle[i]  # its loop is gone: the transport's finaliser closes the socket
            elif lp is loop:
                del self.idle[i]
                if not w.is_closing() and not r.at_eof():
                    return r, w
                _close(w)
        return None

    def give(self, conn, generation):
        if generation == self.generation and not conn[1].is_closing():
            self.idle.append((conn[0], conn[1], asyncio.get_running_loop()))
        else:
            _close(conn[1])

    def close(self):
        """Closes the idle connections (each in its own loop); returns the running loop's
        writers (for wait_closed)."""
        idle, self.idle = self.idle, []
        self.generation += 1
        loop = asyncio.get_running_loop()
        for _, w, lp in idle:
            if lp is loop:
                _close(w)
            elif not lp.is_closed():
                try:
                    lp.call_soon_threadsafe(_close, w)
                except RuntimeError:  # closed meanwhile
                    pass
        return [w for _, w, lp in idle if lp is loop]


class AsyncHTTPTransport:
    """JSON over HTTP/1.1 to `base_url` (http:// or https://; a trailing /v1 is accepted), with
    keep-alive: idle connections are reused by the next request; requests in flight at once use
    connections of their own. Answers with Content-Length, chunked, or to the connection's end."""

    binary = False

    def __init__(self, base_url, *, api_key=None, timeout=60.0, headers=None, ssl_context=None):
        self.scheme, self.host, self.port, self.prefix = _split_base_url(base_url)
        self.timeout = timeout
        self.ssl_context = ssl_context
        host = self.host if ":" not in self.host else "[%s]" % self.host
        default_port = 443 if self.scheme == "https" else 80
        self.headers = _headers(api_key, headers, {
            "Host": host if self.port == default_port else "%s:%d" % (host, self.port),
            "Accept-Encoding": "identity"})
        for k, v in self.headers.items():
            if any(ch in str(k) + str(v) for ch in "\r\n\0") or not k or ":" in k:
                raise ValueError("invalid HTTP header %r: %r" % (k, v))
        self._pool = _Pool()

    def close(self):
        """Closes the idle connections (returns their writers); those in use close when their
        request ends."""
        return self._pool.close()

    async def _open(self):
        ctx = None
        if self.scheme == "https":
            ctx = self.ssl_context or ssl.create_default_context()
        return await asyncio.open_connection(self.host, self.port, ssl=ctx,
                                             limit=MAX_HEAD_BYTES)

    async def request(self, method, path, body=None, *, request_id=None, timeout=None):
        """One request; returns (status, headers dict lower-cased, parsed JSON or raw bytes) for a
        2xx answer, raises APIStatusError for an error answer and APIConnectionError /
        APITimeoutError when no whole answer came (within `timeout` seconds for connecting,
        sending and reading the answer)."""
        hdrs = dict(self.headers)
        data = None
        if body is not None:
            data = _json_body(body)
            hdrs["Content-Type"] = "application/json"
            hdrs["Content-Length"] = str(len(data))
        if request_id:
            hdrs["X-Request-Id"] = request_id
        head = "%s %s HTTP/1.1\r\n%s\r\n" % (method, self.prefix + path, "".join(
            "%s: %s\r\n" % kv for kv in hdrs.items()))
        msg = head.encode("latin-1") + (data or b"")
        for fresh_try in (0, 1):
            conn = None if fresh_try else self._pool.take()
            reused = conn is not None
            gen = self._pool.generation
            state = {"answered": False}
            try:
                if conn is None:
                    conn = await _within(self._open(), timeout or self.timeout)
                status, headers, raw, keep = await _within(
                    self._exchange(conn, msg, method, state), timeout or self.timeout)
            except BaseException as e:  # every failure, cancellation included, closes it
                if conn is not None:
                    _close(conn[1])
                if not isinstance(e, Exception):
                    raise  # CancelledError, KeyboardInterrupt: as they are
                if (isinstance(e, (ConnectionError, _Closed, asyncio.IncompleteReadError)) and
                        reused and not state["answered"] and not fresh_try):
                    continue  # a kept-alive connection the gateway had closed: once more, fresh
                if isinstance(e, (OSError, EOFError, ValueError, asyncio.TimeoutError)):
                    raise _conn_error(e, request_id) from e
                raise
            if keep:
                self._pool.give(conn, gen)
            else:
                _close(conn[1])
            return _http_result(status, headers, raw, request_id)
        raise AssertionError("unreachable")

    async def _exchange(self, conn, msg, method, state):
        """Sends `msg` and reads one answer: (status, headers, body bytes, keep-alive)."""
        reader, writer = conn
        writer.write(msg)
        try:
            await writer.drain()
        except (BrokenPipeError, ConnectionResetError):
            # The gateway may refuse from the head (401, 413, 429) and close before the body is
            # read: its answer is still readable; if not, reading raises below.
            pass
        while True:
            line = await self._line(reader)
            state["answered"] = True
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise ValueError("not an HTTP/1.x status line: %r" % line[:80])
            version, status = parts[0], int(parts[1])
            headers = {}
            size = len(line)
            while True:
                h = await self._line(reader)
                size += len(h)
                if not h:
                    break
                if len(headers) >= MAX_HEADERS or size > MAX_HEAD_BYTES:
                    raise ValueError("an answer head over %d headers or %d bytes" %
                                     (MAX_HEADERS, MAX_HEAD_BYTES))
                k, sep, v = h.partition(b":")
                if not sep:
                    raise ValueError("a malformed header line: %r" % h[:80])
                headers[k.strip().decode("latin-1").lower()] = v.strip().decode("latin-1")
            if not 100 <= status < 200:
                break  # an interim 1xx answer precedes the real one
        conn_hdr = headers.get("connection", "").lower()
        keep = ("close" not in conn_hdr) and (version != b"HTTP/1.0" or "keep-alive" in conn_hdr)
        if method == "HEAD" or status in (204, 304):
            return status, headers, b"", keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return status, headers, await self._chunked(reader), keep
        if "content-length" in headers:
            try:
                n = int(headers["content-length"])
            except ValueError:
                raise ValueError("a bad Content-Length: %r" % headers["content-length"]) from None
            if n < 0 or n > MAX_ANSWER_BODY:
                raise ValueError("an answer body of %d bytes" % n)
            return status, headers, await reader.readexactly(n), keep
        body = bytearray()  # no length: the body ends with the connection
        while True:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            body += chunk
            if len(body) > MAX_ANSWER_BODY:
                raise ValueError("an answer body over %d bytes" % MAX_ANSWER_BODY)
        return status, headers, bytes(body), False

    @staticmethod
    async def _line(reader):
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:
            raise _Closed("the gateway closed the connection") from e
        except asyncio.LimitOverrunError as e:
            raise ValueError("an answer line over %d bytes" % MAX_HEAD_BYTES) from e
        return line.rstrip(b"\r\n")

    async def _chunked(self, reader):
        body = bytearray()
        while True:
            line = await self._line(reader)
            try:
                n = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ValueError("a bad chunk size line: %r" % line[:80]) from None
            if n == 0:
                while await self._line(reader):  # trailers up to the empty line
                    pass
                return bytes(body)
            if len(body) + n > MAX_ANSWER_BODY:
                raise ValueError("an answer body over %d bytes" % MAX_ANSWER_BODY)
            body += await reader.readexactly(n)
            if await self._line(reader):
                raise ValueError("a chunk not followed by CRLF")


class AsyncSocketTransport:
    """msgpack frames (4-byte big-endian length + one map) over the gateway's Unix socket. Each
    call takes an idle connection (or opens one) and has it to itself until its answer."""

    binary = True

    def __init__(self, path, *, timeout=60.0):
        _require_msgpack()
        self.path = path
        self.timeout = timeout
        self._pool = _Pool()

    def close(self):
        """Closes the idle connections (returns their writers); those in use close when their
        call ends."""
        return self._pool.close()

    async def call(self, obj, *, request_id=None, timeout=None):
        """Sends one request map (its `id` set to request_id) and returns the answer map; raises
        the answer's error as an APIStatusError, transport failures and a timeout (`timeout`
        seconds for connecting, sending and reading) as APIConnectionError / APITimeoutError."""
        import msgpack
        obj = dict(obj)
        obj["id"] = request_id
        frame = msgpack.packb(obj, use_bin_type=True)
        for fresh_try in (0, 1):
            conn = None if fresh_try else self._pool.take()
            reused = conn is not None
            gen = self._pool.generation
            state = {"answered": False}
            try:
                if conn is None:
                    conn = await _within(asyncio.open_unix_connection(self.path),
                                         timeout or self.timeout)
                ans = await _within(self._exchange(conn, frame, request_id, state),
                                    timeout or self.timeout)
                break
            except BaseException as e:  # every failure, cancellation included, closes it
                if conn is not None:
                    _close(conn[1])
                if (isinstance(e, (ConnectionError, EOFError)) and reused and
                        not state["answered"] and not fresh_try):
                    continue  # an idle connection the gateway had closed: once more, fresh
                if isinstance(e, (OSError, EOFError, ValueError, asyncio.TimeoutError)):
                    raise _conn_error(e, request_id) from e
                raise
        if _socket_closes(ans):
            _close(conn[1])
        else:
            self._pool.give(conn, gen)
        return _socket_result(ans, request_id)

    @staticmethod
    async def _exchange(conn, frame, request_id, state):
        import msgpack
        reader, writer = conn
        writer.write(struct.pack(">I", len(frame)) + frame)
        await writer.drain()
        while True:
            try:
                head = await reader.readexactly(4)
            except asyncio.IncompleteReadError as e:
                state["answered"] = state["answered"] or bool(e.partial)
                raise
            state["answered"] = True
            n = struct.unpack(">I", head)[0]
            if n == 0 or n > MAX_ANSWER_FRAME:
                raise EOFError("answer frame of %d bytes" % n)
            ans = msgpack.unpackb(await reader.readexactly(n), raw=False)
            if not isinstance(ans, dict):
                raise EOFError("an answer that is not a map")
            if ans.get("id") == request_id or ans.get("id") is None:
                return ans  # an error without id answers a frame the gateway could not read
