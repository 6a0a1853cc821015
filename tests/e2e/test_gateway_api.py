"""The HTTP and msgpack APIs end to end: a real gateway and two CPU workers on the committed tiny
checkpoint, real clients (http.client, raw sockets, python3-msgpack, vlembedctl embed).

What it checks: the service routes; golden items (text, instruction, image, two images + texts,
RGBA) through the whole pipeline match transformers (cos >= 0.99999) and equal `vlembedctl
embed` on the same items; the OpenAI forms (string, strings, token ids) and content-parts form;
the vLLM `messages` request of the issue equals the native form; encodings (base64, int8, uint8,
binary) and `dimensions` follow truncate -> renormalise -> quantise; the preview route; every
bad-input class answers an OpenAI-shaped error naming the field; 413 comes before the body is
sent; pipelined requests are answered in order; 24 concurrent clients; the msgpack API with
several requests in flight, bin images and per-request errors."""
import base64
import http.server
import json
import os
import socket
import struct
import subprocess
import threading
import time

from vlharness import (BUILD, GOLD, MODEL, Cluster, MsgpackClient, check, cos, ctl_embed, data_uri,
                       finish, goldens, np)

G = goldens()
BY = {it["name"]: it for it in G["items"]}
IMG = lambda name: data_uri(os.path.join(GOLD, "media", name))


def native(name):
    it = BY[name]
    o = {}
    if name == "text":
        return it["texts"][0]
    if it["texts"]:
        o["text"] = it["texts"] if len(it["texts"]) > 1 else it["texts"][0]
    imgs = [IMG(os.path.basename(v["source"])) for v in it["visuals"] if v["kind"] == "image"]
    if imgs:
        o["image"] = imgs if len(imgs) > 1 else imgs[0]
    vids = [[IMG(os.path.basename(f)) for f in v["frames"]] for v in it["visuals"] if v["kind"] == "video"]
    if vids:
        o["video"] = vids[0]  # a video as a list of frames (spec 7.3)
    if it["instruction"] is not None:
        o["instruction"] = it["instruction"]
    return o


def is_error_shape(body, param=None, code=None):
    if not isinstance(body, dict) or set(body) != {"error"}:
        return False
    e = body["error"]
    if set(e) != {"message", "type", "param", "code"} or not isinstance(e["message"], str):
        return False
    if param is not None and (e["param"] != param or param not in e["message"]):
        return False
    if code is not None and e["code"] != code:
        return False
    return True


def serve_files(directory):
    """A loopback HTTP server for media URLs (the gateway allows 127.0.0.1 for this test)."""
    class H(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=directory, **k)

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    files = serve_files(os.path.join(GOLD, "media"))
    base = "http://127.0.0.1:%d/" % files.server_address[1]
    c = Cluster(2, gateway_args=["--max-items", "16", "--max-body", "4M",
                                 "--fetch-allow-cidrs", "127.0.0.1/32"])
    try:
        # ---- service routes
        st, _, b = c.get("/health")
        check(st == 200 and b == {"status": "ok"}, "/health")
        st, _, b = c.get("/ready")
        check(st == 200 and b["workers_ready"] == 2, "/ready with 2 workers")
        st, _, b = c.get("/v1/models")
        check(st == 200 and b["data"][0]["id"] == "tiny-model" and b["data"][0]["dimensions"] == 32,
              "/v1/models names the model and its width")
        st, _, b = c.get("/openapi.json")
        check(st == 200 and "/v1/embeddings" in b["paths"] and "/v1/embeddings/preview" in b["paths"],
              "/openapi.json")

        # ---- golden items through the whole pipeline, batched in one request
        names = ["text", "text_instruction", "image", "images_text", "rgba", "empty", "video",
                 "video_image_text"]
        items = [native(n) if n != "empty" else {"content": []} for n in names]
        vecs, r = c.embed(items)
        for n, v in zip(names, vecs):
            check(cos(v, BY[n]["embedding_f32"]) >= 0.99999,
                  "served %s matches transformers (cos %.7f)" % (n, cos(v, BY[n]["embedding_f32"])))
        u = r["usage"]
        check(u["prompt_tokens"] == sum(len(BY[n]["ids"]) for n in names) and u["images"] == 5
              and u["videos"] == 2 and u["image_tokens"] > 0 and u["video_tokens"] > 0
              and u["text_tokens"] + u["image_tokens"] + u["video_tokens"] == u["prompt_tokens"],
              "usage: prompt tokens equal the reference ids, per modality, 5 images, 2 videos")
        t = r["timings"]
        check(all(k in t for k in ("preprocess_ms", "inference_ms", "total_ms", "decode_resize_ms")),
              "per-stage timings")
        fp = r["fingerprint"]
        check(len(fp["id"]) == 16 and len(fp["checkpoint"]) == 16 and fp["dimensions"] == 32
              and fp["encoding"] == "float" and "vlembed-pp1" in fp["preprocessing"], "fingerprint")

        # ---- the same items offline: vlembedctl embed gives the same vectors
        out, rc, err = ctl_embed(items)
        check(rc == 0 and len(out) == len(items), "vlembedctl embed ran (%s)" % err[-200:])
        for n, v, o in zip(names, vecs, out):
            d = float(np.max(np.abs(np.asarray(v) - np.asarray(o["embedding"]))))
            check(d <= 1e-6, "served %s equals vlembedctl embed (max diff %.2g)" % (n, d))
        check([o["prompt_tokens"] for o in out] == [len(BY[n]["ids"]) for n in names],
              "vlembedctl embed prompt_tokens")

        # ---- OpenAI forms
        text = BY["text"]["texts"][0]
        v1, _ = c.embed(text)
        v2, _ = c.embed([text, text])
        check(np.allclose(v1[0], vecs[0], atol=1e-7) and np.allclose(v2[1], vecs[0], atol=1e-7),
              "string and array-of-strings inputs")
        tok = subprocess.run([os.path.join(BUILD, "vlembedctl"), "tokenize", "--tokenizer",
                              os.path.join(MODEL, "tokenizer.json")], input=json.dumps({"text": text}) + "\n",
                             capture_output=True, text=True).stdout
        ids = json.loads(tok)["ids"]
        v3, _ = c.embed(ids)
        v4, _ = c.embed([ids, ids[:3]])
        check(np.allclose(v3[0], vecs[0], atol=1e-7) and np.allclose(v4[0], vecs[0], atol=1e-7),
              "token-id inputs equal the text they encode")
        parts = [[{"type": "text", "text": "Compare these two pictures: "},
                  {"type": "image_url", "image_url": {"url": IMG("images_text_0_orig.png")}},
                  {"type": "image_url", "image_url": IMG("images_text_1_orig.png")},
                  {"type": "text", "text": "which one is brighter?"}]]
        v5, _ = c.embed(parts, instruction=BY["images_text"]["instruction"])
        check(cos(v5[0], BY["images_text"]["embedding_f32"]) >= 0.99999,
              "OpenAI content-parts item with a request-level instruction")
        v6, _ = c.embed([{"image": base + "image_orig.png"}])
        check(cos(v6[0], BY["image"]["embedding_f32"]) >= 0.99999, "image by http URL (fetched)")

        # ---- the vLLM messages request of the issue vs the native form
        issue = {"model": "Qwen/Qwen3-VL-Embedding-2B", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Represent the user input."}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": base + "image_orig.png"}},
                                         {"type": "text", "text": "A cat in the snow."}]},
            {"role": "assistant", "content": [{"type": "text", "text": ""}]}],
            "continue_final_message": True, "add_special_tokens": True, "dimensions": 256}
        st, _, b = c.post(issue)
        check(st == 400 and is_error_shape(b, "dimensions"),
              "the issue's request on a 32-wide model: 400 naming dimensions (256 > 32)")
        nat = {"model": "x", "input": [{"content": [{"image": base + "image_orig.png"},
                                                    {"text": "A cat in the snow."}],
                                        "instruction": "Represent the user input."}]}
        for d in (16, None):
            q = dict(issue)
            n2 = dict(nat)
            if d:
                q["dimensions"] = n2["dimensions"] = d
            else:
                del q["dimensions"]
            st1, _, b1 = c.post(q)
            st2, _, b2 = c.post(n2)
            ok = st1 == 200 and st2 == 200
            check(ok and b1["data"][0]["embedding"] == b2["data"][0]["embedding"]
                  and b1["usage"]["prompt_tokens"] == b2["usage"]["prompt_tokens"],
                  "messages form == native form (dimensions %s)" % d)
        st, _, p1 = c.post(dict(issue, dimensions=16), path="/v1/embeddings/preview")
        st2, _, p2 = c.post(dict(nat, dimensions=16), path="/v1/embeddings/preview")
        check(st == 200 and p1["data"][0]["prompt"] == p2["data"][0]["prompt"]
              and p1["data"][0]["prompt"].endswith("<|im_start|>assistant\n"),
              "messages and native render the same prompt")

        # ---- encodings and dimensions: truncate, renormalise, quantise
        full = np.asarray(vecs[2], dtype=np.float32)
        st, h, b = c.post({"input": [native("image")], "encoding_format": "base64"})
        raw = np.frombuffer(base64.b64decode(b["data"][0]["embedding"]), dtype="<f4")
        check(st == 200 and np.array_equal(raw, full), "base64 = little-endian float32 of the float vector")
        st, h, b = c.post({"input": [native("image")], "dimensions": 8})
        t8 = full[:8] / np.linalg.norm(full[:8])
        got8 = np.asarray(b["data"][0]["embedding"])
        check(len(got8) == 8 and np.allclose(got8, t8, atol=1e-6) and abs(np.linalg.norm(got8) - 1) < 1e-6,
              "dimensions=8: first 8 renormalised")
        check(b["fingerprint"]["dimensions"] == 8 and b["fingerprint"]["id"] != fp["id"]
              and h.get("x-embedding-fingerprint") == b["fingerprint"]["id"],
              "fingerprint changes with dimensions; header carries it")
        st, _, b = c.post({"input": [native("image")], "dimensions": 8, "encoding_format": "int8"})
        check(b["data"][0]["embedding"] == [int(x) for x in np.clip(np.rint(t8 * 127), -127, 127)],
              "int8 = round(127 x) after truncation and renormalisation")
        st, _, b = c.post({"input": [native("image")], "dimensions": 8, "encoding_format": "uint8"})
        check(b["data"][0]["embedding"] == [int(x) for x in np.clip(np.rint((t8 + 1) * 127.5), 0, 255)],
              "uint8 = round(127.5 (x + 1))")
        st, _, b = c.post({"input": [native("image")], "encoding_format": "binary"})
        bits = np.packbits((full > 0).astype(np.uint8)).tolist()
        check(b["data"][0]["embedding"] == bits, "binary = sign bits packed MSB first")

        # ---- preview: no model run
        st, _, b = c.post({"input": [native("images_text")]}, path="/v1/embeddings/preview")
        pv = b["data"][0] if st == 200 else {}
        check(st == 200 and pv.get("prompt_tokens") == len(BY["images_text"]["ids"])
              and len(pv.get("visuals", [])) == 2 and pv["visuals"][0]["grid_thw"] == BY["images_text"]["visuals"][0]["grid"]
              and "<|vision_start|>" in pv["prompt"] and b["timings"]["inference_ms"] == 0,
              "preview: prompt, token count, grids")

        st, _, b = c.post({"input": [native("video")]}, path="/v1/embeddings/preview")
        vv = b["data"][0]["visuals"][0] if st == 200 else {}
        check(st == 200 and vv.get("grid_thw") == BY["video"]["visuals"][0]["grid"]
              and vv.get("timestamps") == BY["video"]["visuals"][0]["timestamps"]
              and vv.get("frame_indices") == [0, 1, 2, 3] and "<|video_pad|>" in b["data"][0]["prompt"],
              "preview of a video: grid, frame indices, timestamps")

        # ---- bad input: each an OpenAI-shaped error naming the field
        st, _, b = c.post(b'{"input": "x",')
        check(st == 400 and is_error_shape(b, code="invalid_json"), "malformed JSON")
        st, _, b = c.post({"input": 42})
        check(st == 400 and is_error_shape(b, "input"), "wrong type for input")
        st, _, b = c.post({"input": "x", "dimensions": "8"})
        check(st == 400 and is_error_shape(b, "dimensions"), "wrong type for dimensions")
        st, _, b = c.post({"input": "x", "temperature": 1})
        check(st == 400 and is_error_shape(b, "temperature", "unknown_field"), "unknown top-level field named")
        st, _, b = c.post({"input": [{"text": "x", "img": "y"}]})
        check(st == 400 and is_error_shape(b, "input[0].img", "unknown_field"), "unknown item field named")
        st, _, b = c.post({"input": ["x"] * 17})
        check(st == 400 and is_error_shape(b, "input", "too_many_items"), "too many items")
        st, _, b = c.post({"input": "x", "encoding_format": "fp16"})
        check(st == 400 and is_error_shape(b, "encoding_format", "unknown_encoding"), "unknown encoding")
        st, _, b = c.post({"input": [{"image": "data:image/png;base64,AAAA"}]})
        check(st == 400 and is_error_shape(b, "input[0].image"), "undecodable image names the item")
        st, _, b = c.post({"input": [{"image": "ftp://x/y.png"}]})
        check(st == 400 and is_error_shape(b, "input[0].image"), "unsupported URL scheme")
        st, _, b = c.post({"input": [{"image": "http://169.254.169.254/latest"}]})
        check(st == 400 and is_error_shape(b, "input[0].image", "url_blocked"), "metadata address refused")
        st, _, b = c.post({"input": "x", "dimensions": 33})
        check(st == 400 and is_error_shape(b, "dimensions"), "dimensions over the width")
        st, h, b = c.get("/v2/nothing")
        check(st == 404 and is_error_shape(b, code="not_found"), "404")
        st, h, b = c.get("/v1/embeddings")
        check(st == 405 and is_error_shape(b, code="method_not_allowed"), "405")
        # a client that sends all of an oversize body still reads the 413 (lingering close)
        s = socket.create_connection(("127.0.0.1", c.port))
        big = b"x" * (5 << 20)
        s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big))
        try:
            s.sendall(big)
        except OSError:
            pass
        s.settimeout(5)
        resp = s.recv(4096).decode(errors="replace")
        body = resp[resp.find("\r\n\r\n") + 4:]
        check(resp.startswith("HTTP/1.1 413") and is_error_shape(json.loads(body), code="request_too_large"),
              "oversize body: 413 with an error body")
        s.close()

        # 413 before the body is read: only the headers are sent
        s = socket.create_connection(("127.0.0.1", c.port))
        s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 50000000\r\n\r\n")
        s.settimeout(5)
        resp = s.recv(4096).decode()
        check(resp.startswith("HTTP/1.1 413") and "request_too_large" in resp,
              "413 answered before any of a 50 MB body was sent")
        s.close()

        # ---- pipelining: three requests in one write, answered in order
        s = socket.create_connection(("127.0.0.1", c.port))
        reqs = b""
        for i, inp in enumerate(["first", {"image": IMG("image_orig.png")}, "third"]):
            body = json.dumps({"input": [inp], "user": "u%d" % i}).encode()
            reqs += (b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body)) + body
        s.sendall(reqs)
        s.settimeout(30)
        data = b""
        while data.count(b"HTTP/1.1 200") < 3 or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        heads = data.split(b"HTTP/1.1 ")[1:]
        toks = [json.loads(h[h.index(b"\r\n\r\n") + 4:])["usage"]["prompt_tokens"] for h in heads]
        exp = [c.embed([x])[1]["usage"]["prompt_tokens"] for x in ["first", {"image": IMG("image_orig.png")}, "third"]]
        check(toks == exp, "pipelined requests answered in order (%s)" % toks)

        # chunked request body
        body = json.dumps({"input": [text]}).encode()
        s = socket.create_connection(("127.0.0.1", c.port))
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
        s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Type: application/json\r\nConnection: close\r\n\r\n" + chunked + b"0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        bj = json.loads(data[data.index(b"\r\n\r\n") + 4:])
        check(np.allclose(bj["data"][0]["embedding"], vecs[0], atol=1e-7), "chunked request body")

        # ---- many concurrent clients
        results = {}

        def client(k):
            inp = [text, native("image")] if k % 2 else [text]
            try:
                v, _ = c.embed(inp)
                results[k] = v
            except Exception as e:  # noqa
                results[k] = e
        ths = [threading.Thread(target=client, args=(k,)) for k in range(24)]
        [t.start() for t in ths]
        [t.join() for t in ths]
        ok = all(not isinstance(results[k], Exception) and np.allclose(results[k][0], vecs[0], atol=1e-7)
                 and (k % 2 == 0 or np.allclose(results[k][1], vecs[2], atol=1e-7)) for k in range(24))
        check(ok, "24 concurrent clients get the right vectors")

        # ---- msgpack API: several requests in flight, bin images, errors by id
        m = MsgpackClient(c.api_socket)
        png = open(os.path.join(GOLD, "media", "image_orig.png"), "rb").read()
        m.send({"type": "embed", "id": 1, "input": [text]})
        m.send({"type": "embed", "id": "two", "input": [{"image": png}], "encoding_format": "int8"})
        m.send({"type": "embed", "id": 3, "input": [text], "nope": True})
        m.send({"type": "preview", "id": 4, "input": [{"image": png, "text": "t"}]})
        got = {}
        for _ in range(4):
            f = m.recv()
            got[f["id"]] = f
        r1 = got.get(1, {})
        check(r1.get("type") == "result" and np.allclose(np.frombuffer(r1["data"][0]["embedding"], "<f4"), vecs[0], atol=1e-7)
              and r1["usage"]["prompt_tokens"] == len(BY["text"]["ids"]), "msgpack: text vector as float32 bin")
        r2 = got.get("two", {})
        i8 = np.frombuffer(r2["data"][0]["embedding"], dtype=np.int8) if r2.get("type") == "result" else None
        check(i8 is not None and i8.tolist() == [int(x) for x in np.clip(np.rint(full * 127), -127, 127)],
              "msgpack: image as raw bytes, int8 answer")
        r3 = got.get(3, {})
        check(r3.get("type") == "error" and r3["status"] == 400 and r3["error"]["param"] == "nope",
              "msgpack: error answered with its id, naming the field")
        r4 = got.get(4, {})
        check(r4.get("type") == "preview_result" and r4["data"][0]["visuals"][0]["grid_thw"] == BY["image"]["visuals"][0]["grid"],
              "msgpack: preview")
        m.send_raw(struct.pack(">I", 0xFFFFFFF0))
        f = m.recv()
        check(f.get("type") == "error" and f["status"] == 413, "msgpack: oversize frame refused")
        m.close()

        st, _, b = c.get("/metrics")
        check(st == 200 and b"vlembed_requests_total{api=\"http\"}" in b
              and b"vlembed_stage_seconds_bucket{stage=\"inference\"" in b
              and b"vlembed_errors_total{status=\"400\",code=\"unknown_field\"}" in b
              and b"vlembed_workers{state=\"ready\"} 2" in b, "/metrics exposes requests, stages, errors, workers")
    finally:
        rc = c.stop()
        files.shutdown()
    check(rc == 0, "gateway exits 0 on SIGTERM")
    finish()


if __name__ == "__main__":
    main()
