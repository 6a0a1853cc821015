#!/usr/bin/env python3
"""Bad and edge-case media for tests/unit/test_media_bad_input.c, written to OUTDIR at test time
(nothing large is committed):

  ok.png / ok.jpg / ok.gif / ok.webp / ok.bmp   valid 64x48 images (truncated copies are cut from these)
  one.png                1x1
  wide.png               500x2 (aspect ratio 250)
  huge_header.png        a valid PNG header claiming 30000x30000 with 1 KiB of data after it
  big_dims.png           20000x100 (over max_width 16384, but a real, small file)
  bomb.png               100x100 header whose IDAT inflates to 256 MiB of zeros (~250 KiB file)
  html.png               an HTML page (a mislabelled "image")
  jpeg_as.png            ok.jpg's bytes under a .png name (mislabelled but valid)
  video.mp4              a 2 s 64x48 mp4 (to check it is not taken for an image), made with ffmpeg
"""
import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w, h, idat, ctype=2):
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(5)
    img = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "RGB")
    for name, fmt in [("ok.png", "PNG"), ("ok.jpg", "JPEG"), ("ok.gif", "GIF"), ("ok.webp", "WEBP"),
                      ("ok.bmp", "BMP")]:
        img.save(os.path.join(out, name), fmt)
    Image.new("RGB", (1, 1), (10, 20, 30)).save(os.path.join(out, "one.png"))
    Image.new("RGB", (500, 2), (10, 20, 30)).save(os.path.join(out, "wide.png"))
    Image.new("RGB", (20000, 100), (10, 20, 30)).save(os.path.join(out, "big_dims.png"))
    with open(os.path.join(out, "huge_header.png"), "wb") as f:
        f.write(png(30000, 30000, b"\0" * 1024))
    raw = zlib.compressobj(9)
    data = raw.compress(b"\0" * (256 << 20)) + raw.flush()
    with open(os.path.join(out, "bomb.png"), "wb") as f:
        f.write(png(100, 100, data))
    with open(os.path.join(out, "html.png"), "wb") as f:
        f.write(b"<html><body>not an image</body></html>\n")
    with open(os.path.join(out, "ok.jpg"), "rb") as f, open(os.path.join(out, "jpeg_as.png"), "wb") as g:
        g.write(f.read())
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=10:duration=2", "-pix_fmt", "yuv420p",
                    os.path.join(out, "video.mp4")], check=True)


if __name__ == "__main__":
    main()
