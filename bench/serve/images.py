"""Inputs of the image serving benchmark (bench/serve/images.sh); needs numpy and Pillow.

  images.py jpegs DIR WxH N SEED      N photo-like JPEGs DIR/WxH_K.jpg (quality 90) and
                                      DIR/WxH.json, a /v1/embeddings body with all N as data URLs
  images.py frame DIR WxH N PREVIEW.json IDS.json IMAGE_TOKEN_ID FRAMES_DIR...
                                      DIR/WxH.frame: one worker embed frame of N items, each the
                                      prompt ids with its <|image_pad|> expanded to the visual's
                                      token count and the pixels the gateway's preprocessing wrote
                                      (vlembedctl preprocess --write-frames, one FRAMES_DIR each)

The pictures are synthetic but JPEG-like in cost: smooth multi-octave fields (sky, shading),
soft-edged shapes (objects) and fine grain (texture, sensor noise), so the entropy-coded data and
the decoder's work are those of a photo, not of a flat or pure-noise image. Prints the JPEG sizes.
"""
import base64
import json
import struct
import sys

import numpy as np
from PIL import Image


def photo(w, h, rng):
    img = np.zeros((h, w, 3), np.float32)
    for octave, amp in ((4, 90.0), (16, 40.0), (64, 18.0)):  # 1/f-like field
        small = rng.uniform(-1, 1, (octave * h // w + 1, octave, 3)).astype(np.float32)
        up = Image.fromarray(((small + 1) * 127.5).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        img += (np.asarray(up, np.float32) / 127.5 - 1) * amp
    img += rng.uniform(60, 190, 3).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(12):  # soft ellipses of flat-ish colour
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(w / 20, w / 4), rng.uniform(h / 20, h / 4)
        d = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        a = np.clip((1.2 - d) * 4, 0, 1)[..., None]
        img = img * (1 - a) + a * (rng.uniform(0, 255, 3) + img * 0.3) / 1.3
    img += rng.normal(0, 6, img.shape)  # grain
    return np.clip(img, 0, 255).astype(np.uint8)


def size_of(s):
    w, h = s.split("x")
    return int(w), int(h)


def pack(o):  # the few msgpack types a frame needs (no msgpack module on every machine)
    if isinstance(o, dict):
        return struct.pack(">BI", 0xdf, len(o)) + b"".join(pack(k) + pack(v) for k, v in o.items())
    if isinstance(o, list):
        return struct.pack(">BI", 0xdd, len(o)) + b"".join(pack(v) for v in o)
    if isinstance(o, str):
        b = o.encode()
        return struct.pack(">BI", 0xdb, len(b)) + b
    if isinstance(o, bytes):
        return struct.pack(">BI", 0xc6, len(o)) + o
    if o < 0:
        return struct.pack(">Bq", 0xd3, o)
    return struct.pack(">BQ", 0xcf, o)


def main():
    cmd, d, wh, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    w, h = size_of(wh)
    if cmd == "jpegs":
        rng = np.random.default_rng(int(sys.argv[5]))
        items, sizes = [], []
        for k in range(n):
            path = "%s/%s_%d.jpg" % (d, wh, k)
            Image.fromarray(photo(w, h, rng)).save(path, quality=90)
            data = open(path, "rb").read()
            sizes.append(len(data))
            items.append({"image": "data:image/jpeg;base64," + base64.b64encode(data).decode()})
        json.dump({"input": items, "model": "m", "encoding_format": "base64"}, open("%s/%s.json" % (d, wh), "w"))
        print("%s: %d JPEGs, %.0f KB average" % (wh, n, sum(sizes) / n / 1024))
    elif cmd == "frame":
        preview, ids, pad = json.load(open(sys.argv[5])), json.load(open(sys.argv[6]))["ids"], int(sys.argv[7])
        frames_dirs = sys.argv[8:]
        vis = preview["data"][0]["visuals"][0]
        assert ids.count(pad) == 1, "expected one <|image_pad|> in the prompt"
        k = ids.index(pad)
        full = ids[:k] + [pad] * vis["tokens"] + ids[k + 1:]
        idb = struct.pack("<%di" % len(full), *full)
        t, gh, gw = vis["grid_thw"]
        items = []
        for i in range(n):
            px = Image.open(frames_dirs[i % len(frames_dirs)] + "/frame_000.png").convert("RGB")
            assert px.size == (gw * 16, gh * 16), (px.size, vis)
            items.append({"id": i, "deadline_ms": 600000, "ids": idb,
                          "visuals": [{"kind": "image", "grid": [t, gh, gw], "pixels": px.tobytes()}]})
        m = pack({"type": "embed", "items": items})
        open("%s/%s.frame" % (d, wh), "wb").write(struct.pack(">I", len(m)) + m)
        print("%s: %d prompt tokens per item (%d image tokens), grid %s" % (wh, len(full), vis["tokens"], vis["grid_thw"]))


main()
