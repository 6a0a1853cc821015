"""vlembed_client: a Python client for the vlembed gateway (HTTP /v1/embeddings and the msgpack
Unix-socket API). Standard library only for HTTP; msgpack for the socket. See docs/client.md.

    from vlembed_client import Client, Image, Item
    with Client("http://127.0.0.1:8080") as c:
        r = c.embed(["a cat", Item(text="a dog", images=[Image.from_path("dog.jpg")])])
        r.vectors, r.usage

    from vlembed_client import AsyncClient          # the asyncio variant: same options, coroutines
    async with AsyncClient("http://127.0.0.1:8080") as c:
        r = await c.embed(["a cat", "a dog"])
"""
from .aclient import AsyncClient
from .client import (DEFAULT_MAX_BODY_HTTP, DEFAULT_MAX_FRAME_SOCKET, DEFAULT_MAX_ITEMS,
                     DEFAULT_MAX_VISUALS, Client, EmbeddingResult, PreviewResult)
from .errors import (APIConnectionError, APIStatusError, APITimeoutError, AuthenticationError,
                     BadGatewayError, BadRequestError, FingerprintMismatchError,
                     GatewayTimeoutError, HeadersTooLargeError, InternalServerError,
                     MethodNotAllowedError, NotFoundError, RateLimitError, RequestTimeoutError,
                     RequestTooLargeError, ServiceUnavailableError, UnprocessableEntityError,
                     UnsupportedMediaTypeError, VlembedError)
from .inputs import Image, Item, Tokens, Video, VideoOptions

__version__ = "0.1.0"

__all__ = [
    "Client", "AsyncClient", "EmbeddingResult", "PreviewResult", "Image", "Video", "Item", "Tokens",
    "VideoOptions", "VlembedError", "APIConnectionError", "APITimeoutError", "APIStatusError",
    "BadRequestError", "AuthenticationError", "NotFoundError", "MethodNotAllowedError",
    "RequestTimeoutError", "RequestTooLargeError", "UnsupportedMediaTypeError",
    "UnprocessableEntityError", "RateLimitError", "HeadersTooLargeError", "InternalServerError",
    "BadGatewayError", "ServiceUnavailableError", "GatewayTimeoutError",
    "FingerprintMismatchError", "DEFAULT_MAX_ITEMS", "DEFAULT_MAX_VISUALS",
    "DEFAULT_MAX_BODY_HTTP", "DEFAULT_MAX_FRAME_SOCKET",
]
