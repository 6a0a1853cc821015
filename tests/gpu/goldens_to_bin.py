#!/usr/bin/env python3
"""Converts tests/data/goldens/model_goldens.json (+ its PNG frames) into the flat binary that
tests/unit/gpu_model.c reads, so the GPU test binary needs neither a JSON nor a PNG decoder.
Needs numpy and Pillow (both on the GPU machine).

Layout (little-endian): b"VLGB", u32 n_items; per item: u32 name_len, name bytes, u32 n_ids,
i32 ids[n_ids], u32 n_visuals; per visual: u32 kind (0 image, 1 video), t, h, w, n_frames,
height, width, u8 pixels[n_frames*height*width*3] (HWC RGB); u32 dim, f32 emb_bf16[dim],
f32 emb_f32[dim].

usage: goldens_to_bin.py OUT [GOLDENS_JSON]"""
import json
import os
import struct
import sys

import numpy as np
from PIL import Image


def main():
    out = sys.argv[1]
    src = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(__file__), "..", "data", "goldens", "model_goldens.json")
    base = os.path.dirname(src)
    g = json.load(open(src))
    b = bytearray(b"VLGB")
    b += struct.pack("<I", len(g["items"]))
    for it in g["items"]:
        name = it["name"].encode()
        b += struct.pack("<I", len(name)) + name
        ids = it["ids"]
        b += struct.pack("<I", len(ids)) + struct.pack("<%di" % len(ids), *ids)
        vis = it.get("visuals") or []
        b += struct.pack("<I", len(vis))
        for v in vis:
            t, h, w = v["grid"]
            frames = [np.asarray(Image.open(os.path.join(base, f)).convert("RGB"), dtype=np.uint8)
                      for f in v["frames"]]
            fh, fw = frames[0].shape[:2]
            assert fh == h * 16 and fw == w * 16, (v["frames"], fh, fw, h, w)
            kind = 0 if v["kind"] == "image" else 1
            b += struct.pack("<7I", kind, t, h, w, len(frames), fh, fw)
            for f in frames:
                b += np.ascontiguousarray(f).tobytes()
        e16 = it["embedding_bf16"]
        e32 = it["embedding_f32"]
        b += struct.pack("<I", len(e16)) + struct.pack("<%df" % len(e16), *e16)
        b += struct.pack("<%df" % len(e32), *e32)
    open(out, "wb").write(b)


if __name__ == "__main__":
    main()
