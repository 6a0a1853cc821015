"""Client: embed(), embed_messages(), preview(), models(), health(), ready() over HTTP or the
msgpack Unix socket, with batching under the gateway's limits and retries of retryable errors.
Every parameter is documented in docs/client.md.

What does not depend on how bytes move (option checks, request building, batching, limit
learning, error renumbering, retry rules, answer decoding) lives in _ClientBase, shared with
the asyncio AsyncClient (aclient.py); Client adds the blocking I/O (threads, time.sleep)."""
import array
import base64
import collections
import concurrent.futures
import json
import os
import random
import re
import sys
import threading
import time
import uuid

from .errors import (APIConnectionError, APIStatusError, BadRequestError,
                     FingerprintMismatchError, RequestTooLargeError, VlembedError)
from .inputs import Image, Item, Tokens, Video, VideoOptions, render, visual_count
from .transport import HTTPTransport, SocketTransport

# The gateway's documented defaults (docs/api.md "Limits"): --max-items, --max-visuals,
# --max-body (HTTP) and --api-max-frame (msgpack).
DEFAULT_MAX_ITEMS = 256
DEFAULT_MAX_VISUALS = 64
DEFAULT_MAX_BODY_HTTP = 32 << 20
DEFAULT_MAX_FRAME_SOCKET = 64 << 20
_FIELDS_RESERVE = 16 << 10  # bytes kept free in a request for the fields besides `input`

ENCODINGS = ("float", "base64", "int8", "uint8", "binary")
_SINGLE = (str, Item, Image, Video, Tokens, dict)


class EmbeddingResult:
    """What embed() returns: `vectors` (one per input, in input order: lists of floats, or of
    ints for int8/uint8/binary, base64 strings for base64; a 2-D numpy array with as_numpy),
    `usage` (summed over the requests), `model`, `fingerprint` (the embedding space; equal for all
    requests of the call), `timings` and `request_ids` (one per request sent). Indexing, len()
    and iteration go to `vectors`."""

    __slots__ = ("vectors", "usage", "model", "fingerprint", "timings", "request_ids",
                 "encoding_format")

    def __init__(self, vectors, usage, model, fingerprint, timings, request_ids, encoding_format):
        self.vectors = vectors
        self.usage = usage
        self.model = model
        self.fingerprint = fingerprint
        self.timings = timings
        self.request_ids = request_ids
        self.encoding_format = encoding_format

    def __len__(self):
        return len(self.vectors)

    def __getitem__(self, i):
        return self.vectors[i]

    def __iter__(self):
        return iter(self.vectors)

    def numpy(self):
        """The vectors as a 2-D numpy array: float32 for float, int8 for int8, uint8 for uint8
        and binary (packed bits). Needs numpy; not for base64."""
        return _to_numpy(self.vectors, self.encoding_format)

    def __repr__(self):
        return "EmbeddingResult(%d vectors, model=%r, usage=%r)" % (
            len(self.vectors), self.model, self.usage)


class PreviewResult:
    """What preview() returns: `data` (one entry per input, as docs/api.md describes the
    preview's data[i]; `index` and `visuals[].source` renumbered to the caller's input order),
    `usage` (summed), `model`, `fingerprint`, `timings`, `request_ids`."""

    __slots__ = ("data", "usage", "model", "fingerprint", "timings", "request_ids")

    def __init__(self, data, usage, model, fingerprint, timings, request_ids):
        self.data, self.usage, self.model = data, usage, model
        self.fingerprint, self.timings, self.request_ids = fingerprint, timings, request_ids

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]

    def __iter__(self):
        return iter(self.data)


def _numpy():
    try:
        import numpy
    except ImportError as e:
        raise ImportError("as_numpy / numpy() need numpy installed") from e
    return numpy


_NP_DTYPE = {"float": "<f4", "int8": "i1", "uint8": "u1", "binary": "u1"}


def _to_numpy(vectors, enc):
    np = _numpy()
    if enc == "base64":
        raise ValueError("base64 vectors are strings; ask for encoding_format='float' to get numpy")
    dtype = {"float": np.float32, "int8": np.int8}.get(enc, np.uint8)
    if not vectors:
        return np.zeros((0, 0), dtype)
    return np.asarray(vectors, dtype=dtype)


_INPUT_INDEX = re.compile(r"\binput\[(\d+)\]")


def _shift_paths(s, start):
    """`input[k]` -> `input[start + k]` in a path or message from a request that began at input
    `start` of the caller's list."""
    if not isinstance(s, str) or not start:
        return s
    return _INPUT_INDEX.sub(lambda m: "input[%d]" % (int(m.group(1)) + start), s)


def _msgpack_size(x):
    """An upper-bound estimate of x's msgpack size, for batching."""
    if isinstance(x, (bytes, str)):
        return len(x) * (1 if isinstance(x, bytes) else 3) + 5
    if isinstance(x, dict):
        return 5 + sum(_msgpack_size(k) + _msgpack_size(v) for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return 5 + sum(_msgpack_size(v) for v in x)
    return 9


class _ClientBase:
    """The transport-independent part of Client and AsyncClient: options, request building,
    batching into groups, limit learning, retry decisions and result assembly. Subclasses set
    _http_transport / _socket_transport and do the I/O."""

    _http_transport = None
    _socket_transport = None

    def __init__(self, base_url=None, *, unix_socket=None, api_key=None, timeout=60.0,
                 max_retries=2, max_retry_wait=60.0, max_items_per_request=DEFAULT_MAX_ITEMS,
                 max_visuals_per_request=DEFAULT_MAX_VISUALS, max_request_bytes=None,
                 max_concurrency=1, http_float_base64=False, check_fingerprint=True,
                 headers=None, ssl_context=None):
        if (base_url is None) == (unix_socket is None):
            raise ValueError("give exactly one of base_url and unix_socket")
        if not (isinstance(max_retries, int) and max_retries >= 0):
            raise ValueError("max_retries must be an integer >= 0")
        if not (timeout and timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")
        if not (isinstance(max_concurrency, int) and 1 <= max_concurrency <= 256):
            raise ValueError("max_concurrency must be an integer from 1 to 256")
        if int(max_items_per_request) < 1 or int(max_visuals_per_request) < 0:
            raise ValueError("max_items_per_request >= 1 and max_visuals_per_request >= 0")
        if api_key is None:
            api_key = os.environ.get("VLEMBED_API_KEY") or None
        if unix_socket is not None:
            self._t = self._socket_transport(os.fspath(unix_socket), timeout=timeout)
            default_bytes = DEFAULT_MAX_FRAME_SOCKET
        else:
            self._t = self._http_transport(base_url, api_key=api_key, timeout=timeout,
                                           headers=headers, ssl_context=ssl_context)
            default_bytes = DEFAULT_MAX_BODY_HTTP
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.max_retry_wait = float(max_retry_wait)
        self.max_items_per_request = int(max_items_per_request)
        self.max_visuals_per_request = int(max_visuals_per_request)
        self.max_request_bytes = int(max_request_bytes or default_bytes)
        self.check_fingerprint = check_fingerprint
        self.max_concurrency = max_concurrency
        self.http_float_base64 = bool(http_float_base64)
        self._init_io()

    def _init_io(self):
        """The subclass's own state for running requests (made last in __init__)."""

    @property
    def transport(self):
        """"http" or "unix"."""
        return "unix" if self._t.binary else "http"

    # ---- what the public calls send and return

    def _embed_request(self, inputs, *, dimensions, instruction, encoding_format, video, timeout,
                       user, model, as_numpy):
        """(items, fields) of an embed() call, after checking its arguments."""
        if encoding_format not in ENCODINGS:
            raise ValueError("encoding_format must be one of %s" % ", ".join(ENCODINGS))
        items = self._items(inputs)
        fields = self._fields(dimensions=dimensions, instruction=instruction, video=video,
                              timeout=timeout, user=user, model=model)
        fields["encoding_format"] = self._wire_encoding(encoding_format, as_numpy)
        return items, fields

    def _embed_result(self, items, answers, encoding_format, as_numpy):
        """The EmbeddingResult of an embed() call from its [(offset, answer)]."""
        vectors = [None] * len(items)
        for start, ans in answers:
            for d in ans.get("data") or []:
                vectors[start + d["index"]] = self._decode(d["embedding"], encoding_format,
                                                           as_numpy)
        if any(v is None for v in vectors):
            raise VlembedError("the gateway answered fewer vectors than items")
        res = self._result(answers, EmbeddingResult, vectors)
        res.encoding_format = encoding_format
        if as_numpy:
            res.vectors = res.numpy()
        return res

    def _wire_encoding(self, enc, as_numpy):
        if as_numpy and enc == "base64":
            raise ValueError("base64 vectors are strings; ask for encoding_format='float' to get numpy")
        if enc == "float" and self.http_float_base64 and not self._t.binary:
            return "base64"
        return enc

    def _messages_request(self, messages, *, continue_final_message, add_generation_prompt,
                          add_special_tokens, dimensions, encoding_format, video, timeout, user,
                          model, as_numpy):
        """The fields of an embed_messages() call, after checking its arguments."""
        if encoding_format not in ENCODINGS:
            raise ValueError("encoding_format must be one of %s" % ", ".join(ENCODINGS))
        if not isinstance(messages, (list, tuple)) or not messages:
            raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
        fields = self._fields(dimensions=dimensions, video=video, timeout=timeout, user=user,
                              model=model)
        for k, v in (("continue_final_message", continue_final_message),
                     ("add_generation_prompt", add_generation_prompt),
                     ("add_special_tokens", add_special_tokens)):
            if v is not None:
                fields[k] = bool(v)
        fields["encoding_format"] = self._wire_encoding(encoding_format, as_numpy)
        fields["messages"] = render(list(messages), self._t.binary)
        return fields

    def _messages_result(self, ans, encoding_format, as_numpy):
        vec = [self._decode(ans["data"][0]["embedding"], encoding_format, as_numpy)]
        res = self._result([(0, ans)], EmbeddingResult, vec)
        res.encoding_format = encoding_format
        if as_numpy:
            res.vectors = res.numpy()
        return res

    def _preview_request(self, inputs, *, instruction, dimensions, video, timeout, model):
        items = self._items(inputs)
        fields = self._fields(dimensions=dimensions, instruction=instruction, video=video,
                              timeout=timeout, model=model)
        return items, fields

    def _preview_result(self, items, answers):
        data = [None] * len(items)
        for start, ans in answers:
            for d in ans.get("data") or []:
                d = dict(d)
                d["index"] = start + d["index"]
                if start and isinstance(d.get("visuals"), list):
                    d["visuals"] = [dict(v, source=_shift_paths(v.get("source"), start))
                                    for v in d["visuals"]]
                data[d["index"]] = d
        return self._result(answers, PreviewResult, data)

    @staticmethod
    def _ready_answer(body):
        return isinstance(body, dict) and body.get("status") == "ready"

    # ---- internals

    def _http_only(self, what):
        if self._t.binary:
            raise VlembedError("%s() needs the HTTP transport (the msgpack socket serves only "
                               "embed and preview)" % what)

    @staticmethod
    def _new_id():
        return "vlc-" + uuid.uuid4().hex[:20]

    @staticmethod
    def _items(inputs):
        if isinstance(inputs, (bytes, bytearray, memoryview)):
            raise TypeError("bytes are not an item: wrap them in Image.from_bytes or Video.from_bytes")
        if isinstance(inputs, _SINGLE):
            return [inputs]
        items = list(inputs)
        if not items:
            raise ValueError("inputs is empty")
        if all(isinstance(x, int) and not isinstance(x, bool) for x in items):
            return [Tokens(items)]  # a bare list of ids is one token item, as the gateway reads it
        return items

    @staticmethod
    def _fields(*, dimensions=None, instruction=None, video=None, timeout=None, user=None,
                model=None):
        f = {}
        if model is not None:
            f["model"] = model
        if dimensions is not None:
            f["dimensions"] = dimensions
        if instruction is not None:
            f["instruction"] = instruction
        if video is not None:
            f["video"] = video.to_dict() if isinstance(video, VideoOptions) else dict(video)
        if timeout is not None:
            f["timeout"] = timeout
        if user is not None:
            f["user"] = user
        return f

    def _decode(self, e, enc, as_numpy=False):
        """One vector as the caller gets it: float32 values (as Python floats) for float, the
        base64 string for base64, ints for int8/uint8/binary; equal over both transports. With
        as_numpy a 1-D numpy array (float32, int8 or uint8) instead."""
        if enc == "base64":  # HTTP: the string; msgpack: bin of float32 LE
            return e if isinstance(e, str) else base64.b64encode(e).decode("ascii")
        if isinstance(e, str):  # float asked as base64 on the wire (http_float_base64)
            e = base64.b64decode(e)
        if isinstance(e, (bytes, bytearray)):  # msgpack bin, or decoded base64
            if as_numpy:
                return _numpy().frombuffer(e, _NP_DTYPE[enc])
            if enc == "float":
                a = array.array("f", e)
                if sys.byteorder == "big":
                    a.byteswap()
                return a.tolist()
            return array.array("b" if enc == "int8" else "B", e).tolist()
        # HTTP JSON: numbers (floats printed to round-trip float32 exactly, so back to float32)
        if as_numpy:
            return _numpy().asarray(e, dtype=_NP_DTYPE[enc])
        return array.array("f", e).tolist() if enc == "float" else e

    def _result(self, answers, cls, values):
        fps = []
        usage = {}
        for _, a in answers:
            fp = (a.get("fingerprint") or {}).get("id")
            if fp is not None and fp not in fps:
                fps.append(fp)
            for k, v in (a.get("usage") or {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    usage[k] = usage.get(k, 0) + v
        if self.check_fingerprint and len(fps) > 1:
            raise FingerprintMismatchError(
                "the requests of one call were answered from different embedding spaces "
                "(fingerprints %s): the vectors are not comparable" % ", ".join(fps), fps)
        first = answers[0][1]
        args = dict(usage=usage, model=first.get("model"), fingerprint=first.get("fingerprint"),
                    timings=[a.get("timings") for _, a in answers],
                    request_ids=[a.pop("_request_id", None) for _, a in answers])
        if cls is EmbeddingResult:
            return cls(values, encoding_format=None, **args)
        return cls(values, **args)

    # batching ------------------------------------------------------------------------------

    def _encode_item(self, x):
        """(wire form, visuals, size in bytes) of one item."""
        w = render(x, self._t.binary)
        if self._t.binary:
            return w, visual_count(x), _msgpack_size(w)
        frag = json.dumps(w, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return frag, visual_count(x), len(frag) + 1

    def _group(self, encoded):
        """Cuts the (wire, visuals, size) tuples of `encoded` (any iterable) into consecutive
        groups under the limits in force (an item alone is always a group). Yields (offset,
        group)."""
        cur, vis, size, start = [], 0, 0, 0
        for i, e in enumerate(encoded):
            budget = max(self.max_request_bytes - _FIELDS_RESERVE, 1)
            if cur and (len(cur) >= self.max_items_per_request or
                        vis + e[1] > self.max_visuals_per_request or size + e[2] > budget):
                yield start, cur
                cur, vis, size, start = [], 0, 0, i
            cur.append(e)
            vis += e[1]
            size += e[2]
        if cur:
            yield start, cur

    def _split_after(self, e, group, start):
        """After `e` (a BadRequestError or RequestTooLargeError) answered the request of `group`
        (whose first item is the caller's input `start`): the [(offset, group)] parts to resend
        when the error is one of splitting (a limit learnt, or halves), else raises `e` with its
        field paths renumbered to the caller's list."""
        if not (len(group) > 1 and self._learn_limit(e, group)):
            if start:
                e.param = _shift_paths(e.param, start)
                e.message = _shift_paths(e.message, start)
                e.args = (_shift_paths(e.args[0], start),)
            raise e
        parts = list(self._group(group))
        if len(parts) == 1:  # the limit was not learnt: halve
            h = len(group) // 2
            parts = [(0, group[:h]), (h, group[h:])]
        return parts

    def _learn_limit(self, e, group):
        """After a too_many_items / too_many_visuals / request_too_large / too_many_pixels answer
        to a request of several items: lowers this client's limit from the gateway's message
        (not for too_many_pixels) and returns True (the group is then split and resent); False
        for any other error."""
        msg = e.message or ""
        if e.code == "too_many_items":
            m = re.search(r"limit of (\d+)", msg)
            n = int(m.group(1)) if m else len(group) // 2
            self.max_items_per_request = max(1, min(self.max_items_per_request, n))
            return True
        if e.code == "too_many_visuals":
            m = re.search(r"more than (\d+)", msg)
            n = int(m.group(1)) if m else sum(g[1] for g in group) // 2
            self.max_visuals_per_request = max(0, min(self.max_visuals_per_request, n))
            return True
        if e.code == "request_too_large":
            total = sum(g[2] for g in group) + _FIELDS_RESERVE
            self.max_request_bytes = max(1, min(self.max_request_bytes, total // 2))
            return True
        if e.code == "too_many_pixels":  # the decode budget depends on the media: just split
            return True
        return False

    def _request_for(self, fields, kind, group, timeout):
        """(socket timeout, wire request) of one request: the request map for the msgpack
        transport, (path, JSON body bytes) for HTTP; `group` holds the encoded items for
        `input` (None for none)."""
        sock_timeout = self.timeout if timeout is None else max(self.timeout, float(timeout) + 10)
        if self._t.binary:
            req = dict(fields)
            if group is not None:
                req["input"] = [g[0] for g in group]
            req["type"] = kind
            return sock_timeout, req
        rest = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if group is not None:
            body = (b'{"input":[' + b",".join(g[0] for g in group) + b"]" +
                    (b"," + rest[1:] if len(rest) > 2 else b"}"))
        else:
            body = rest
        path = "/v1/embeddings" + ("/preview" if kind == "preview" else "")
        return sock_timeout, (path, body)

    @staticmethod
    def _answer(ans, rid, binary):
        """The answer of one request, tagged with its id (checked to be a JSON object on HTTP)."""
        if not binary and not isinstance(ans, dict):
            raise VlembedError("the gateway answered something that is not a JSON object")
        ans["_request_id"] = rid
        return ans

    # retries ---------------------------------------------------------------------------------

    @staticmethod
    def _backoff(attempt):
        return min(0.5 * (2 ** attempt), 8.0) * random.uniform(0.8, 1.2)

    def _retry_wait(self, e, attempt):
        """Seconds to wait before retrying after `e`, or None if it is not retryable."""
        if isinstance(e, APIStatusError):
            if e.status == 429:
                ra = e.retry_after if e.retry_after is not None else 1.0
                return ra + random.uniform(0, 0.1)
            if e.status == 503:
                return max(e.retry_after or 0.0, self._backoff(attempt))
            return None
        if isinstance(e, APIConnectionError) and e.retryable:
            return self._backoff(attempt)
        return None

    def _wait_or_raise(self, e, attempt):
        """After attempt number `attempt` (0-based) failed with `e`: records e.attempts and
        returns the seconds to wait before the next attempt, or raises `e` when it is not
        retryable, retries are spent or the wait is over max_retry_wait."""
        e.attempts = attempt + 1
        wait = self._retry_wait(e, attempt)
        if wait is None or attempt >= self.max_retries or wait > self.max_retry_wait:
            raise e
        return wait


class Client(_ClientBase):
    """A vlembed client over HTTP (`base_url`) or the msgpack Unix socket (`unix_socket`).

    Thread-safe: HTTP keeps one keep-alive connection per thread; the socket transport gives each
    call in progress a connection of its own. Use as a context manager or call close()."""

    _http_transport = HTTPTransport
    _socket_transport = SocketTransport

    def _init_io(self):
        self._pool = None  # the thread pool of max_concurrency > 1, made on first use
        self._pool_lock = threading.Lock()

    # ---- lifecycle

    def close(self):
        """Closes the connection(s) and the threads of max_concurrency; the client reconnects if
        used again."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._t.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- public calls

    def embed(self, inputs, *, dimensions=None, instruction=None, encoding_format="float",
              video=None, timeout=None, user=None, model=None, as_numpy=False):
        """Embeds `inputs` (one item, or a list of items: str, Item, Image, Video, Tokens, or a
        raw item dict/content-parts list in the gateway's own form) and returns an
        EmbeddingResult with one vector per item in input order. Large lists are split into
        several requests under the gateway's limits."""
        items, fields = self._embed_request(
            inputs, dimensions=dimensions, instruction=instruction,
            encoding_format=encoding_format, video=video, timeout=timeout, user=user,
            model=model, as_numpy=as_numpy)
        answers = self._run(items, fields, "embed", timeout)
        return self._embed_result(items, answers, encoding_format, as_numpy)

    def embed_messages(self, messages, *, continue_final_message=None,
                       add_generation_prompt=None, add_special_tokens=None, dimensions=None,
                       encoding_format="float", video=None, timeout=None, user=None, model=None,
                       as_numpy=False):
        """Embeds one conversation in the vLLM chat form (`messages`: a list of {"role",
        "content"} dicts; content parts may hold Image/Video helpers). Returns an
        EmbeddingResult with one vector."""
        fields = self._messages_request(
            messages, continue_final_message=continue_final_message,
            add_generation_prompt=add_generation_prompt, add_special_tokens=add_special_tokens,
            dimensions=dimensions, encoding_format=encoding_format, video=video,
            timeout=timeout, user=user, model=model, as_numpy=as_numpy)
        ans = self._send_once(fields, "embed", timeout)
        return self._messages_result(ans, encoding_format, as_numpy)

    def preview(self, inputs, *, instruction=None, dimensions=None, video=None, timeout=None,
                model=None):
        """Preprocesses `inputs` without running the model (POST /v1/embeddings/preview, or the
        msgpack `preview` type): rendered prompts, token counts, resized sizes, grids, frames."""
        items, fields = self._preview_request(inputs, instruction=instruction,
                                              dimensions=dimensions, video=video,
                                              timeout=timeout, model=model)
        answers = self._run(items, fields, "preview", timeout)
        return self._preview_result(items, answers)

    def models(self):
        """GET /v1/models: the served model (id, dimensions, checkpoint, max_input_tokens). HTTP
        only."""
        return self._get("/v1/models")["data"]

    def health(self):
        """GET /health: True when the gateway's event loop answers. HTTP only."""
        return self._get("/health").get("status") == "ok"

    def ready(self):
        """GET /ready: True when at least one worker is ready, False on 503. HTTP only; not
        retried."""
        self._http_only("ready")
        try:
            _, _, body = self._t.request("GET", "/ready", request_id=self._new_id())
        except APIStatusError as e:
            if e.status == 503:
                return False
            raise
        return self._ready_answer(body)

    # ---- I/O

    def _get(self, path):
        self._http_only(path.strip("/").replace("v1/", ""))
        rid = self._new_id()
        _, _, body = self._with_retries(lambda: self._t.request("GET", path, request_id=rid))
        return body

    def _run(self, items, fields, kind, timeout):
        """Sends items in as many requests as the limits need, up to max_concurrency at once;
        returns [(offset of the request's first item, answer)] in input order. Items are encoded
        as the groups form, so only about max_concurrency requests' media is in memory at a
        time. The first failure in input order is raised; requests not yet sent are not sent."""
        groups = self._group(self._encode_item(x) for x in items)
        out = []
        if self.max_concurrency == 1:
            for start, group in groups:
                out += self._send_group(group, start, fields, kind, timeout)
            return out
        pool = self._executor()
        window = collections.deque()
        try:
            for start, group in groups:
                if len(window) >= self.max_concurrency:
                    out += window.popleft().result()
                window.append(pool.submit(self._send_group, group, start, fields, kind, timeout))
            while window:
                out += window.popleft().result()
        finally:
            for f in window:  # after a failure: drop what has not started, ignore the rest
                f.cancel()
        return out

    def _executor(self):
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.max_concurrency, thread_name_prefix="vlembed-client")
            return self._pool

    def _send_group(self, group, start, fields, kind, timeout):
        try:
            return [(start, self._send_once(fields, kind, timeout, group=group))]
        except (BadRequestError, RequestTooLargeError) as e:
            parts = self._split_after(e, group, start)
        out = []
        for off, g in parts:
            out += self._send_group(g, start + off, fields, kind, timeout)
        return out

    def _send_once(self, fields, kind, timeout, group=None):
        """One request (with retries); `group` holds the encoded items for `input`."""
        rid = self._new_id()
        sock_timeout, req = self._request_for(fields, kind, group, timeout)
        if self._t.binary:
            ans = self._with_retries(lambda: self._t.call(req, request_id=rid,
                                                          timeout=sock_timeout))
        else:
            path, body = req
            _, _, ans = self._with_retries(lambda: self._t.request(
                "POST", path, body, request_id=rid, timeout=sock_timeout))
        return self._answer(ans, rid, self._t.binary)

    def _with_retries(self, send):
        attempt = 0
        while True:
            try:
                return send()
            except (APIStatusError, APIConnectionError) as e:
                wait = self._wait_or_raise(e, attempt)
            time.sleep(wait)
            attempt += 1
