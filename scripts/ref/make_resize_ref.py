#!/usr/bin/env python3
"""Reference data for the gateway's image path, made with Pillow (Debian 12's python3-pil 9.4 is
a valid stand-in for the reference's Pillow 12: spec §12).

    make_resize_ref.py OUTDIR [N]

Writes N (default 240) generated images of many kinds into OUTDIR together with what the
reference pipeline (qwen-vl-utils to_rgb + Image.resize(BICUBIC)) makes of them, and a
manifest the C test (tests/unit/test_media_resize.c) walks:

    manifest.txt   one line per case: FILE TW TH DECODE_EXACT
                   FILE.rgb      to_rgb(Image.open(FILE)).resize((TW, TH), BICUBIC), raw RGB
                   FILE.dec.rgb  to_rgb(Image.open(FILE)), raw RGB (the decoder's reference;
                                 only where DECODE_EXACT is 1: every non-PNG, every 10th PNG)
    smart.txt      H W MIN MAX -> RH RW lines from qwen-vl-utils' smart_resize (factor 32)

Everything is deterministic (numpy's PCG64 seeded per case), so the files need not be committed:
the test runs this script into a temporary directory.
"""
import io
import math
import os
import sys

import numpy as np
from PIL import Image


def to_rgb(im):
    # qwen-vl-utils' to_rgb, verbatim semantics
    if im.mode == "RGBA":
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.split()[3])
        return bg
    return im.convert("RGB")


def smart_resize(h, w, factor=32, min_pixels=4 * 32 * 32, max_pixels=1800 * 32 * 32):
    if max(h, w) / min(h, w) > 200:
        return None
    hb = max(factor, round(h / factor) * factor)
    wb = max(factor, round(w / factor) * factor)
    if hb * wb > max_pixels:
        beta = math.sqrt((h * w) / max_pixels)
        hb = math.floor(h / beta / factor) * factor
        wb = math.floor(w / beta / factor) * factor
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb = math.ceil(h * beta / factor) * factor
        wb = math.ceil(w * beta / factor) * factor
    return hb, wb


def content(rng, h, w, ch):
    """Smooth gradients + hard-edged blocks + noise: exercises overshoot and clipping."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((h, w, ch), np.float64)
    for c in range(ch):
        a, b, p = rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(0, 6.3)
        out[..., c] = 128 + 100 * np.sin(a * x / max(w, 1) * 6 + b * y / max(h, 1) * 6 + p)
    for _ in range(int(rng.integers(0, 8))):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = y0 + int(rng.integers(1, h + 1)), x0 + int(rng.integers(1, w + 1))
        out[y0:y1, x0:x1, :] = rng.choice([0, 255], size=ch)
    out += rng.normal(0, rng.uniform(0, 40), size=out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def pick_size(rng, i):
    k = i % 8
    if k == 0:   # extreme aspect ratios (<= 200)
        a = int(rng.integers(2, 12))
        long_side = int(rng.integers(150, min(200 * a, 1500)))
        return (a, long_side) if rng.integers(0, 2) else (long_side, a)
    if k == 1:   # tiny
        return int(rng.integers(2, 20)), int(rng.integers(2, 20))
    if k == 2:   # large-ish (downscaling a lot)
        return int(rng.integers(600, 900)), int(rng.integers(600, 900))
    return int(rng.integers(20, 700)), int(rng.integers(20, 700))   # odd and even, mixed


def pick_target(rng, h, w, i):
    k = (i // 8) % 5
    if k == 0:
        s = smart_resize(h, w)
        if s:
            return s[1], s[0]
    if k == 1:   # downscale both
        return max(1, int(w / rng.uniform(1.2, 7))), max(1, int(h / rng.uniform(1.2, 7)))
    if k == 2:   # upscale both
        return int(w * rng.uniform(1.1, 4)) + 1, int(h * rng.uniform(1.1, 4)) + 1
    if k == 3:   # one axis only
        return (w, max(1, int(h * rng.uniform(0.3, 2.5)))) if rng.integers(0, 2) else \
               (max(1, int(w * rng.uniform(0.3, 2.5))), h)
    return max(1, int(w * rng.uniform(0.2, 3))), max(1, int(h * rng.uniform(0.2, 3)))


def make(rng, i):
    h, w = pick_size(rng, i)
    kind = ["RGB", "RGBA", "L", "LA", "P", "RGB", "RGBA", "PT", "I16", "RGB"][i % 10]
    if kind in ("RGB", "RGBA"):
        im = Image.fromarray(content(rng, h, w, len(kind)), kind)
    elif kind == "L":
        im = Image.fromarray(content(rng, h, w, 1)[..., 0], "L")
    elif kind == "LA":
        im = Image.fromarray(content(rng, h, w, 2), "LA")
    elif kind in ("P", "PT"):
        im = Image.fromarray(content(rng, h, w, 3), "RGB").quantize(colors=int(rng.integers(2, 256)))
        if kind == "PT":
            im.info["transparency"] = 0
    else:  # 16-bit grey: Pillow opens it as mode I and clips on convert("RGB")
        arr = (content(rng, h, w, 1)[..., 0].astype(np.uint16) * int(rng.integers(1, 3)))
        im = Image.fromarray(arr.astype(np.uint16), "I;16")
    return im, kind


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 240
    os.makedirs(out, exist_ok=True)
    lines = []
    for i in range(n):
        rng = np.random.default_rng(1000 + i)
        im, kind = make(rng, i)
        fmt = "png"
        # every 6th case goes through another container; lossy ones compare decode too
        if i % 3 == 0 and kind in ("RGB", "L"):
            fmt = ["jpeg", "webp", "jpeg", "bmp", "jpeg", "gif"][(i // 3) % 6]
        elif i % 6 == 5 and kind == "RGBA":
            fmt = "webp"
        name = f"img{i:03d}_{kind}.{fmt}"
        path = os.path.join(out, name)
        kw = {}
        if fmt == "jpeg":
            kw = dict(quality=int(rng.integers(50, 97)), subsampling=int(rng.integers(0, 3)),
                      progressive=bool(rng.integers(0, 2)))
        elif fmt == "webp":
            kw = dict(lossless=bool(rng.integers(0, 2)), quality=80)
        if kind == "PT":
            im.save(path, transparency=0)
        else:
            im.save(path, **kw)
        src = to_rgb(Image.open(path))
        w, h = src.size
        tw, th = pick_target(rng, h, w, i)
        while tw * th > 400_000:   # keeps the test's data and time small
            tw, th = max(1, tw * 2 // 3), max(1, th * 2 // 3)
        exact = 1 if fmt != "png" or i % 10 == 0 else 0
        if exact:
            with open(path + ".dec.rgb", "wb") as f:
                f.write(src.tobytes())
        with open(path + ".rgb", "wb") as f:
            f.write(src.resize((tw, th), Image.BICUBIC).tobytes())
        lines.append(f"{name} {tw} {th} {exact}\n")
    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.writelines(lines)
    rng = np.random.default_rng(7)
    with open(os.path.join(out, "smart.txt"), "w") as f:
        for _ in range(3000):
            h, w = int(rng.integers(1, 9000)), int(rng.integers(1, 9000))
            lo, hi = [(4096, 1843200), (131072, 786432), (131072, 245760), (4096, 16777216)][
                int(rng.integers(0, 4))]
            s = smart_resize(h, w, 32, lo, hi)
            f.write(f"{h} {w} {lo} {hi} {s[0] if s else -1} {s[1] if s else -1}\n")
    print(f"{n} cases in {out}")


if __name__ == "__main__":
    main()
