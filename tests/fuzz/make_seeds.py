"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus_*/), small real inputs of each
shape the gateway accepts plus a few it refuses. Run once by hand; the files are committed.
    /usr/bin/python3 tests/fuzz/make_seeds.py   (Debian python3-pil, python3-msgpack)"""
import io
import json
import os
import struct

import msgpack
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def put(corpus, name, data):
    d = os.path.join(HERE, "corpus_" + corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


PNG_1PX = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
           "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
REQUESTS = {
    "text": {"input": "a cat"},
    "texts": {"input": ["a cat", "a dog"], "model": "m", "encoding_format": "base64"},
    "tokens": {"input": [64, 8251, 11], "dimensions": 16},
    "token_lists": {"input": [[64, 8251], [64]], "encoding_format": "int8"},
    "item": {"input": {"image": PNG_1PX, "text": ["a ", "cat"], "instruction": "Find it."},
             "timeout": 5},
    "parts": {"input": [[{"type": "text", "text": "x"},
                         {"type": "image_url", "image_url": {"url": "https://example.com/a.png",
                                                             "detail": "auto"}},
                         "bare"]], "user": "u"},
    "content": {"input": [{"content": [{"image": PNG_1PX}, {"text": "t"}],
                           "instruction": "i"}], "encoding_format": "binary"},
    "video_frames": {"input": {"video": [PNG_1PX, PNG_1PX, PNG_1PX, PNG_1PX]},
                     "video": {"fps": 2, "max_frames": 8, "max_pixels": 65536}},
    "video_url": {"input": [{"type": "video_url", "video_url": {"url": "https://e.com/v.mp4"}}]},
    "messages": {"model": "Qwen/Qwen3-VL-Embedding-2B",
                 "messages": [
                     {"role": "system", "content": [{"type": "text", "text": "Represent the user input."}]},
                     {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_1PX}},
                                                  {"type": "text", "text": "A cat in the snow."}]},
                     {"role": "assistant", "content": [{"type": "text", "text": ""}]}],
                 "continue_final_message": True, "add_special_tokens": True, "dimensions": 256},
    "messages_str": {"messages": [{"role": "user", "content": "plain text"}],
                     "add_generation_prompt": True},
    "bad_field": {"input": "x", "colour": "red"},
    "bad_dup": '{"input": "x", "input": "y"}',
    "bad_nested": {"input": [{"content": [{"type": "image_url", "image_url": {"url": 5}}]}]},
}


def json_seeds():
    for name, body in REQUESTS.items():
        put("api_json", name + ".json", body if isinstance(body, str) else json.dumps(body))


def frame(obj):
    b = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(b)) + b


def mpapi_seeds():
    png = Image.new("RGB", (8, 8), (200, 10, 10))
    buf = io.BytesIO()
    png.save(buf, "PNG")
    img = buf.getvalue()
    put("mpapi", "text", frame({"id": 1, "input": "a cat"}))
    put("mpapi", "bin_image", frame({"id": "x", "type": "embed", "input": [{"image": img, "text": "red"}]}))
    put("mpapi", "preview_frames", frame({"id": [1, 2], "type": "preview",
                                          "input": {"video": [img, img, img, img]}}))
    put("mpapi", "messages", frame({"id": None, "messages": [{"role": "user", "content": [
        {"type": "image", "image": img}, {"type": "text", "text": "t"}]}], "dimensions": 8}))
    put("mpapi", "two_frames", frame({"id": 1, "input": "a"}) + frame({"id": 2, "input": ["b", "c"]}))
    put("mpapi", "bad_type", frame({"type": "nope", "input": "x"}))
    put("mpapi", "not_map", frame([1, 2, 3]))
    put("mpapi", "huge_header", b"\x00\x00\x00\x10" + b"\xdd\xff\xff\xff\xff" + b"\x00" * 11)
    put("mpapi", "split", frame({"id": 7, "input": "x" * 300, "encoding_format": "uint8"})[:200])
    # four requests of ~250 bytes: with the first ones held in flight, the third does not fit the
    # fuzz target's buffered-bytes budget of 600 (MP_INTAKE_BUSY)
    put("mpapi", "budget_busy", b"".join(frame({"id": i, "input": "y" * 230}) for i in range(4)))


def image_seeds():
    base = Image.new("RGB", (40, 30))
    for y in range(30):
        for x in range(40):
            base.putpixel((x, y), (x * 6, y * 8, (x + y) * 3))
    shots = [
        ("rgb.png", base, "PNG", {}),
        ("rgba.png", base.convert("RGBA"), "PNG", {}),
        ("palette.png", base.convert("P"), "PNG", {}),
        ("gray.png", base.convert("L"), "PNG", {}),
        ("rgb.jpg", base, "JPEG", {"quality": 80}),
        ("progressive.jpg", base, "JPEG", {"progressive": True}),
        ("gray.jpg", base.convert("L"), "JPEG", {}),
        ("cmyk.jpg", base.convert("CMYK"), "JPEG", {}),
        ("rgb.gif", base.convert("P"), "GIF", {}),
        ("rgb.bmp", base, "BMP", {}),
        ("lossy.webp", base, "WEBP", {"quality": 50}),
        ("lossless.webp", base.convert("RGBA"), "WEBP", {"lossless": True}),
    ]
    for name, im, fmt, kw in shots:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        put("image", name, buf.getvalue())
    # 16-bit PNG
    buf = io.BytesIO()
    base.convert("L").convert("I").save(buf, "PNG")  # mode I: saved as 16-bit gray
    put("image", "gray16.png", buf.getvalue())


def http_seeds():
    # first byte: limits (bit0-1 max_pipeline-1, bit2 small body cap, bit3 small head, bit4 few fields)
    body = b'{"input": "a cat"}'
    reqs = {
        "get": b"\x00GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        # a body freed by the handler (half its charge kept), then a chunked one, budget on
        "drop": b"\x21POST /drop HTTP/1.1\r\nContent-Length: 40\r\n\r\n" + b"d" * 40
                + b"POST /drop2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n0\r\n\r\n",
        "post": b"\x01POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body,
        "pipelined": b"\x01" + b"GET /a?q=1 HTTP/1.1\r\nHost: x\r\n\r\n" * 3
                     + b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "chunked": b"\x02POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                   b"3;ext=1\r\n ab\r\n0\r\nTrailer: t\r\n\r\n",
        "expect": b"\x03POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
        "deny": b"\x00GET /deny HTTP/1.1\r\nAuthorization: Bearer k\r\n\r\nGET /admit HTTP/1.1\r\n\r\n",
        "deny_body": b"\x00POST /deny HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
        "admit_body": b"\x04POST /admit/x HTTP/1.1\r\nX-API-Key: k\r\nContent-Length: 100\r\n\r\n" + b"y" * 100,
        "too_big": b"\x04POST /x HTTP/1.1\r\nContent-Length: 65\r\n\r\n" + b"z" * 65,
        "http10": b"\x00GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        "many_headers": b"\x10GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
        "long_head": b"\x08GET /" + b"p" * 300 + b" HTTP/1.1\r\n\r\n",
        "garbage": b"\x00\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        "upgrade": b"\x00GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "close": b"\x01GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
    }
    for name, data in reqs.items():
        put("http", name, data)


json_seeds()
mpapi_seeds()
image_seeds()
http_seeds()
