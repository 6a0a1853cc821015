"""Exceptions raised by vlembed_client.

Every error the gateway answers (HTTP status + OpenAI-shaped body, or a msgpack `error` frame)
becomes an instance of the class for its status (docs/errors.md), carrying the server's message,
type, code, param (the request field it names), the request id and, for 429/503, Retry-After.
Transport failures (refused, reset, timed out) are APIConnectionError / APITimeoutError."""


def _restore(cls, args, state):
    e = cls.__new__(cls)
    e.args = args
    e.__dict__.update(state)
    return e


class VlembedError(Exception):
    """Base class of every exception this package raises on purpose. Instances pickle with their
    attributes (so they cross multiprocessing boundaries)."""

    def __reduce__(self):
        return _restore, (type(self), self.args, dict(self.__dict__))


class APIConnectionError(VlembedError):
    """The gateway could not be reached, or the connection broke before a whole answer arrived.

    `request_id` is the id the client sent (X-Request-Id / msgpack `id`), if any; `retryable` is
    true for refused/reset/closed connections (the client retries those), false otherwise."""

    retryable = False

    def __init__(self, message, *, request_id=None):
        super().__init__(message)
        self.message = message
        self.request_id = request_id


class APITimeoutError(APIConnectionError):
    """No answer within the client's `timeout` (a socket timeout on this side). Not retried: the
    request may still be running on the server."""


class APIStatusError(VlembedError):
    """The gateway answered an error. Attributes: `status` (HTTP status, or the msgpack frame's
    `status`), `message`, `type`, `code`, `param` (request field path or None), `request_id`,
    `retry_after` (seconds from Retry-After, or None), `body` (the parsed error object)."""

    status = None  # the class's status; instances set the real one

    def __init__(self, message, *, status, type=None, code=None, param=None, request_id=None,
                 retry_after=None, body=None):
        text = message if code is None else "%s (%s %s)" % (message, status, code)
        super().__init__(text)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body


class BadRequestError(APIStatusError):
    """400: invalid_json, unknown_field, duplicate_field, invalid_value, unknown_encoding,
    too_many_items, too_many_visuals, too_many_tokens, invalid_media, url_blocked, fetch_failed,
    invalid_msgpack, unknown_type, bad_request."""
    status = 400


class AuthenticationError(APIStatusError):
    """401: missing_api_key or invalid_api_key."""
    status = 401


class NotFoundError(APIStatusError):
    """404 not_found: unknown path (check base_url)."""
    status = 404


class MethodNotAllowedError(APIStatusError):
    """405 method_not_allowed."""
    status = 405


class RequestTimeoutError(APIStatusError):
    """408 request_timeout: the request did not reach the gateway fast enough."""
    status = 408


class RequestTooLargeError(APIStatusError):
    """413: request_too_large (body over --max-body, frame over --api-max-frame),
    media_too_large (one image or video over its limit) or too_many_pixels (the request's media
    over --max-request-decoded-pixels)."""
    status = 413


class UnsupportedMediaTypeError(APIStatusError):
    """415 unsupported_media_type."""
    status = 415


class UnprocessableEntityError(APIStatusError):
    """422 invalid_item: a worker refused a preprocessed item (a server bug; report it)."""
    status = 422


class RateLimitError(APIStatusError):
    """429: overloaded, client_concurrency, client_rate, client_pixel_rate, too_many_connections,
    too_many_clients.
    Retried after Retry-After up to max_retries times before it is raised."""
    status = 429


class HeadersTooLargeError(APIStatusError):
    """431 headers_too_large."""
    status = 431


class InternalServerError(APIStatusError):
    """500: internal, inconsistent_workers, fetch_failed (fetcher setup)."""
    status = 500


class BadGatewayError(APIStatusError):
    """502: worker_died (an item's worker died twice) or fetch_failed (a media URL's network
    error). Not retried by the client: an input that kills workers would kill more."""
    status = 502


class ServiceUnavailableError(APIStatusError):
    """503: no_ready_worker (workers starting or restarting), cancelled (gateway stopping) or
    memory_busy (the gateway holds --max-buffered-bytes of bodies and media; retry shortly).
    Retried with backoff (and Retry-After) up to max_retries times before it is raised."""
    status = 503


class GatewayTimeoutError(APIStatusError):
    """504: deadline_exceeded (the request's `timeout` passed) or fetch_timeout."""
    status = 504


class FingerprintMismatchError(VlembedError):
    """The batches of one embed() call came back from different embedding spaces (their
    `fingerprint.id`s differ, e.g. a model rollout between two batches): the vectors are not
    comparable, so none are returned. `fingerprints` lists the ids seen."""

    def __init__(self, message, fingerprints):
        super().__init__(message)
        self.fingerprints = fingerprints


_BY_STATUS = {c.status: c for c in (
    BadRequestError, AuthenticationError, NotFoundError, MethodNotAllowedError,
    RequestTimeoutError, RequestTooLargeError, UnsupportedMediaTypeError,
    UnprocessableEntityError, RateLimitError, HeadersTooLargeError, InternalServerError,
    BadGatewayError, ServiceUnavailableError, GatewayTimeoutError)}


def error_for(status, err, *, request_id=None, retry_after=None):
    """The exception for an error answer: `err` is the body's `error` object (a dict, or None
    when the body was not OpenAI-shaped)."""
    if not isinstance(err, dict):
        err = {"message": "HTTP %d with a body that is not an error object" % status}
    cls = _BY_STATUS.get(status, APIStatusError)
    msg = err.get("message")
    return cls(msg if isinstance(msg, str) else str(msg), status=status, type=err.get("type"),
               code=err.get("code"), param=err.get("param"), request_id=request_id,
               retry_after=retry_after, body=err)
