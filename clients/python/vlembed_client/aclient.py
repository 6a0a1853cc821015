"""AsyncClient: the asyncio variant of Client, for async applications (FastAPI, aiohttp, ...).

The same constructor options and methods as Client, as coroutines; request building,
batching, limit learning, error mapping and retry rules are Client's own (_ClientBase). The I/O
runs on asyncio streams (atransport.py): nothing blocks the event loop, retries wait with
asyncio.sleep, a call's requests run as tasks up to max_concurrency at once, and cancelling the
calling task cancels its requests in flight and leaves the client usable. See docs/client.md."""
import asyncio
import collections

from .atransport import AsyncHTTPTransport, AsyncSocketTransport
from .client import _ClientBase
from .errors import APIConnectionError, APIStatusError, BadRequestError, RequestTooLargeError


class AsyncClient(_ClientBase):
    """An asyncio vlembed client over HTTP (`base_url`) or the msgpack Unix socket
    (`unix_socket`). Make it anywhere (no connection is opened before the first call).
    `async with AsyncClient(...) as c:` or `await c.close()`.

    Any number of tasks of an event loop may call it at once: each request in flight has a
    connection of its own; idle connections are kept for reuse (HTTP keep-alive), per loop. Not
    thread-safe: one event loop at a time uses it."""

    _http_transport = AsyncHTTPTransport
    _socket_transport = AsyncSocketTransport

    # ---- lifecycle

    async def close(self):
        """Closes the idle connections (connections in use close when their request ends); the
        client reconnects if used again."""
        for w in self._t.close():
            try:
                await w.wait_closed()
            except Exception:  # noqa: BLE001 - a connection that broke is closed all the same
                pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ---- public calls

    async def embed(self, inputs, *, dimensions=None, instruction=None, encoding_format="float",
                    video=None, timeout=None, user=None, model=None, as_numpy=False):
        """Embeds `inputs` (one item, or a list of items: str, Item, Image, Video, Tokens, or a
        raw item dict/content-parts list in the gateway's own form) and returns an
        EmbeddingResult with one vector per item in input order, as Client.embed."""
        items, fields = self._embed_request(
            inputs, dimensions=dimensions, instruction=instruction,
            encoding_format=encoding_format, video=video, timeout=timeout, user=user,
            model=model, as_numpy=as_numpy)
        answers = await self._run(items, fields, "embed", timeout)
        return self._embed_result(items, answers, encoding_format, as_numpy)

    async def embed_messages(self, messages, *, continue_final_message=None,
                             add_generation_prompt=None, add_special_tokens=None,
                             dimensions=None, encoding_format="float", video=None, timeout=None,
                             user=None, model=None, as_numpy=False):
        """Embeds one conversation in the vLLM chat form, as Client.embed_messages."""
        fields = self._messages_request(
            messages, continue_final_message=continue_final_message,
            add_generation_prompt=add_generation_prompt, add_special_tokens=add_special_tokens,
            dimensions=dimensions, encoding_format=encoding_format, video=video,
            timeout=timeout, user=user, model=model, as_numpy=as_numpy)
        ans = await self._send_once(fields, "embed", timeout)
        return self._messages_result(ans, encoding_format, as_numpy)

    async def preview(self, inputs, *, instruction=None, dimensions=None, video=None,
                      timeout=None, model=None):
        """Preprocesses `inputs` without running the model, as Client.preview."""
        items, fields = self._preview_request(inputs, instruction=instruction,
                                              dimensions=dimensions, video=video,
                                              timeout=timeout, model=model)
        answers = await self._run(items, fields, "preview", timeout)
        return self._preview_result(items, answers)

    async def models(self):
        """GET /v1/models: the served model (id, dimensions, checkpoint, max_input_tokens). HTTP
        only."""
        return (await self._get("/v1/models"))["data"]

    async def health(self):
        """GET /health: True when the gateway's event loop answers. HTTP only."""
        return (await self._get("/health")).get("status") == "ok"

    async def ready(self):
        """GET /ready: True when at least one worker is ready, False on 503. HTTP only; not
        retried."""
        self._http_only("ready")
        try:
            _, _, body = await self._t.request("GET", "/ready", request_id=self._new_id())
        except APIStatusError as e:
            if e.status == 503:
                return False
            raise
        return self._ready_answer(body)

    # ---- I/O

    async def _get(self, path):
        self._http_only(path.strip("/").replace("v1/", ""))
        rid = self._new_id()
        _, _, body = await self._with_retries(
            lambda: self._t.request("GET", path, request_id=rid))
        return body

    async def _run(self, items, fields, kind, timeout):
        """Sends items in as many requests as the limits need, up to max_concurrency at once (as
        tasks); returns [(offset of the request's first item, answer)] in input order. The first
        failure in input order is raised; requests not yet sent are not sent, those in flight
        are cancelled (as they are when the calling task is cancelled)."""
        groups = self._group(self._encode_item(x) for x in items)
        out = []
        if self.max_concurrency == 1:
            for start, group in groups:
                out += await self._send_group(group, start, fields, kind, timeout)
            return out
        window = collections.deque()
        try:
            for start, group in groups:
                if len(window) >= self.max_concurrency:
                    out += await window[0]
                    window.popleft()
                window.append(asyncio.ensure_future(
                    self._send_group(group, start, fields, kind, timeout)))
            while window:
                out += await window[0]
                window.popleft()
        finally:
            if window:  # after a failure or a cancellation: stop the others, wait for them
                for t in window:
                    t.cancel()
                await asyncio.gather(*window, return_exceptions=True)
        return out

    async def _send_group(self, group, start, fields, kind, timeout):
        try:
            return [(start, await self._send_once(fields, kind, timeout, group=group))]
        except (BadRequestError, RequestTooLargeError) as e:
            parts = self._split_after(e, group, start)
        out = []
        for off, g in parts:
            out += await self._send_group(g, start + off, fields, kind, timeout)
        return out

    async def _send_once(self, fields, kind, timeout, group=None):
        """One request (with retries); `group` holds the encoded items for `input`."""
        rid = self._new_id()
        sock_timeout, req = self._request_for(fields, kind, group, timeout)
        if self._t.binary:
            ans = await self._with_retries(lambda: self._t.call(req, request_id=rid,
                                                                timeout=sock_timeout))
        else:
            path, body = req
            _, _, ans = await self._with_retries(lambda: self._t.request(
                "POST", path, body, request_id=rid, timeout=sock_timeout))
        return self._answer(ans, rid, self._t.binary)

    async def _with_retries(self, send):
        """Awaits send() (a function returning a fresh coroutine per attempt), retrying as
        Client does, with asyncio.sleep between attempts."""
        attempt = 0
        while True:
            try:
                return await send()
            except (APIStatusError, APIConnectionError) as e:
                wait = self._wait_or_raise(e, attempt)
            await asyncio.sleep(wait)
            attempt += 1
