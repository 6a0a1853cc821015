"""The issue's exact vLLM-style request, byte for byte except for its "<an image URL>"
placeholder (a loopback URL here), gives the same vector as the native form of the same content.

The request asks for `dimensions: 256`, wider than the committed 32-wide tiny checkpoint, so this
test writes a small random checkpoint 256 wide (one layer, one vision block) with
scripts/ref/make_random_checkpoint.py's writer, serves it with a real CPU worker and gateway, and
compares the two forms (and their rendered prompts)."""
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading

from vlharness import BUILD, GOLD, MODEL, ROOT, Cluster, check, finish, np

sys.path.insert(0, os.path.join(ROOT, "scripts/ref"))
import make_random_checkpoint as mrc  # noqa: E402


def write_checkpoint(d):
    mrc.PRESETS["w256"] = dict(
        text=dict(hidden_size=256, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                  head_dim=128, intermediate_size=256),
        vision=dict(depth=1, hidden_size=64, num_heads=1, intermediate_size=64, out_hidden_size=256,
                    deepstack_visual_indexes=[0]))
    argv = sys.argv
    sys.argv = ["make_random_checkpoint.py", "--preset", "w256", "--out", d, "--shards", "1"]
    try:
        mrc.main()
    finally:
        sys.argv = argv
    shutil.copy(os.path.join(MODEL, "tokenizer.json"), os.path.join(d, "tokenizer.json"))


def main():
    d = tempfile.mkdtemp(prefix="vl-w256-")
    write_checkpoint(d)

    class H(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=os.path.join(GOLD, "media"), **k)

        def log_message(self, *a):
            pass
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/image_orig.png" % files.server_address[1]

    import vlharness
    vlharness.MODEL = d  # serve the 256-wide checkpoint
    c = Cluster(1, gateway_args=["--fetch-allow-cidrs", "127.0.0.1/32"])
    try:
        issue = ('{"model":"Qwen/Qwen3-VL-Embedding-2B","messages":[{"role":"system","content":[{"type":"text",'
                 '"text":"Represent the user input."}]},{"role":"user","content":[{"type":"image_url","image_url":'
                 '{"url":"<an image URL>"}},{"type":"text","text":"A cat in the snow."}]},{"role":"assistant",'
                 '"content":[{"type":"text","text":""}]}],"continue_final_message":true,"add_special_tokens":true,'
                 '"dimensions":256}').replace("<an image URL>", url)
        native = json.dumps({"model": "Qwen/Qwen3-VL-Embedding-2B", "dimensions": 256,
                             "input": [{"content": [{"image": url}, {"text": "A cat in the snow."}],
                                        "instruction": "Represent the user input."}]})
        st1, _, b1 = c.post(issue)
        st2, _, b2 = c.post(native)
        check(st1 == 200 and st2 == 200, "both forms answered (%s, %s)" % (st1, st2 if st2 != 200 else ""))
        if st1 == 200 and st2 == 200:
            v1, v2 = b1["data"][0]["embedding"], b2["data"][0]["embedding"]
            check(len(v1) == 256 and abs(np.linalg.norm(v1) - 1) < 1e-6, "256 dimensions, unit length")
            check(v1 == v2, "the issue's messages request gives exactly the native form's vector")
            check(b1["usage"] == b2["usage"] and b1["usage"]["images"] == 1, "same usage (one image)")
            check(b1["fingerprint"] == b2["fingerprint"], "same fingerprint")
        st1, _, p1 = c.post(issue, path="/v1/embeddings/preview")
        st2, _, p2 = c.post(native, path="/v1/embeddings/preview")
        check(st1 == 200 and st2 == 200 and p1["data"][0]["prompt"] == p2["data"][0]["prompt"],
              "same rendered prompt")
    finally:
        c.stop()
        files.shutdown()
        shutil.rmtree(d, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
