#!/usr/bin/env python3
"""Truncated and corrupt images with Pillow's verdict on each, for tests/unit/test_media_vs_pillow.c
(written to OUTDIR at test time; nothing is committed but this script).

Pillow here is Debian's python3-pil (spec §12: the local reference). Its verdict is what the
reference pipeline would do with default settings: Image.open(f); im.load(); im.convert("RGB")
(every source image here is RGB or palette, so convert("RGB") is qwen-vl-utils' to_rgb).

For every case NAME this writes
  NAME          the image bytes
  NAME.pil      "ok W H\\n" followed by W*H*3 bytes of RGB, or "error <Exception>: <message>\\n"
and OUTDIR/manifest lists the names, one per line.

  /usr/bin/python3 tests/media/make_pillow_corpus.py OUTDIR"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image


def base_image(w=96, h=64):
    """A smooth gradient with mild noise: JPEG blocks differ, so a filled gap is visible."""
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(7)
    a = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1)
    a = np.clip(a + rng.integers(-12, 13, a.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(a, "RGB")


def save(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def jpeg_segments(b):
    """(marker, start, end) of each marker segment up to SOS, then the scan data up to EOI."""
    out, p = [], 2
    while p < len(b):
        assert b[p] == 0xFF
        m = b[p + 1]
        if m == 0xD9:
            out.append((m, p, p + 2))
            break
        n = struct.unpack(">H", b[p + 2:p + 4])[0]
        out.append((m, p, p + 2 + n))
        p += 2 + n
        if m == 0xDA:  # entropy-coded data up to the next marker that is not RST or stuffing
            q = p
            while True:
                q = b.index(b"\xff", q)
                if b[q + 1] == 0 or 0xD0 <= b[q + 1] <= 0xD7:
                    q += 2
                    continue
                break
            out.append((-1, p, q))
            p = q
    return out


def png_chunks(b):
    """(type, start, end) of each chunk (start at its length field, end after its CRC)."""
    out, p = [], 8
    while p + 8 <= len(b):
        n = struct.unpack(">I", b[p:p + 4])[0]
        out.append((b[p + 4:p + 8], p, p + 12 + n))
        p += 12 + n
    return out


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def flip_crc(b, start, end):
    """b with the CRC of the chunk at [start, end) changed."""
    return b[:end - 4] + bytes([b[end - 4] ^ 0xFF]) + b[end - 3:]


def cases():
    img = base_image()
    c = {}
    jpg = save(img, "JPEG", quality=90)
    c["jpeg_ok"] = jpg
    seg = jpeg_segments(jpg)
    scan = [s for s in seg if s[0] == -1][0]
    c["jpeg_cut_half"] = jpg[:len(jpg) // 2]
    c["jpeg_cut_in_scan_start"] = jpg[:scan[1] + 10]
    c["jpeg_no_eoi"] = jpg[:-2]
    c["jpeg_cut_before_sos"] = jpg[:[s for s in seg if s[0] == 0xDA][0][1]]
    # the scan's second half removed, the EOI marker kept: libjpeg pads what is missing
    mid = (scan[1] + scan[2]) // 2
    c["jpeg_gap_eoi"] = jpg[:mid] + jpg[scan[2]:]
    # a few bytes of the scan removed in the middle (the rest shifted), EOI kept
    c["jpeg_hole_eoi"] = jpg[:mid] + jpg[mid + 40:]
    # scan bytes overwritten (same length): bad Huffman codes
    bad = bytearray(jpg)
    for i in range(mid, mid + 64):
        bad[i] = 0x55 if bad[i] != 0xFF and bad[i - 1] != 0xFF else bad[i]
    c["jpeg_garbled_scan"] = bytes(bad)
    # with restart markers: a gap across some of them, EOI kept
    rst = save(img, "JPEG", quality=90, restart_marker_blocks=2)
    rseg = jpeg_segments(rst)
    rscan = [s for s in rseg if s[0] == -1][0]
    a = rscan[1] + (rscan[2] - rscan[1]) // 3
    c["jpeg_rst_gap_eoi"] = rst[:a] + rst[a + (rscan[2] - rscan[1]) // 3:]
    c["jpeg_trailing_garbage"] = jpg + os.urandom(300)
    # a Huffman table (DHT) whose code counts claim more codes than the table holds
    dht = [s for s in seg if s[0] == 0xC4][0]
    bad = bytearray(jpg)
    bad[dht[1] + 5:dht[1] + 21] = b"\xff" * 16
    c["jpeg_bad_dht"] = bytes(bad)
    prog = save(img, "JPEG", quality=90, progressive=True)
    c["jpeg_progressive_ok"] = prog
    c["jpeg_progressive_cut"] = prog[:int(len(prog) * 0.6)]
    c["jpeg_progressive_no_eoi"] = prog[:-2]
    # the last scan of a progressive file removed, EOI kept
    pseg = jpeg_segments(prog)
    last_sos = [s for s in pseg if s[0] == 0xDA][-1]
    c["jpeg_progressive_missing_scan_eoi"] = prog[:last_sos[1]] + prog[-2:]

    png = save(img, "PNG")
    c["png_ok"] = png
    ch = png_chunks(png)
    idat = [x for x in ch if x[0] == b"IDAT"][0]
    c["png_cut_idat"] = png[:(idat[1] + idat[2]) // 2]
    c["png_no_iend"] = png[:[x for x in ch if x[0] == b"IEND"][0][1]]
    c["png_trailing_garbage"] = png + os.urandom(300)
    c["png_bad_crc_idat"] = flip_crc(png, idat[1], idat[2])
    ihdr = [x for x in ch if x[0] == b"IHDR"][0]
    c["png_bad_crc_ihdr"] = flip_crc(png, ihdr[1], ihdr[2])
    # an ancillary chunk before IDAT with a bad CRC, and one after IDAT
    text = chunk(b"tEXt", b"Comment\x00hello")
    before = png[:idat[1]] + text + png[idat[1]:]
    tch = [x for x in png_chunks(before) if x[0] == b"tEXt"][0]
    c["png_bad_crc_text_before_idat"] = flip_crc(before, tch[1], tch[2])
    after = png[:idat[2]] + text + png[idat[2]:]
    ach = [x for x in png_chunks(after) if x[0] == b"tEXt"][0]
    c["png_bad_crc_text_after_idat"] = flip_crc(after, ach[1], ach[2])
    # the IDAT's zlib stream corrupted (bytes in the middle, CRC recomputed): a broken stream
    z = bytearray(png[idat[1] + 8:idat[2] - 4])
    for i in range(len(z) // 2, len(z) // 2 + 16):
        z[i] ^= 0xA5
    c["png_bad_zlib"] = png[:idat[1]] + chunk(b"IDAT", bytes(z)) + png[idat[2]:]
    # the zlib stream's Adler-32 wrong (last 4 bytes), chunk CRC right
    z = bytearray(png[idat[1] + 8:idat[2] - 4])
    z[-1] ^= 0xFF
    c["png_bad_adler"] = png[:idat[1]] + chunk(b"IDAT", bytes(z)) + png[idat[2]:]
    # more zlib data than the rows need (a second stream after the first), CRC right
    z = png[idat[1] + 8:idat[2] - 4] + zlib.compress(b"\x00" * 500)
    c["png_extra_idat_data"] = png[:idat[1]] + chunk(b"IDAT", z) + png[idat[2]:]
    # the IDAT split in two chunks and the second one dropped (IEND kept): too few rows
    zz = png[idat[1] + 8:idat[2] - 4]
    h = len(zz) // 2
    c["png_missing_idat_iend"] = png[:idat[1]] + chunk(b"IDAT", zz[:h]) + chunk(b"IEND", b"")

    gif = save(img.convert("P"), "GIF")
    c["gif_ok"] = gif
    c["gif_cut_half"] = gif[:len(gif) // 2]
    c["gif_no_trailer"] = gif[:-1]
    g = bytearray(gif)
    for i in range(len(g) // 2, len(g) // 2 + 40):
        g[i] ^= 0x3C
    c["gif_garbled_lzw"] = bytes(g)

    webp = save(img, "WEBP", quality=90)
    c["webp_ok"] = webp
    c["webp_cut_half"] = webp[:len(webp) // 2]
    c["webp_cut_tail"] = webp[:-8]
    wl = save(img, "WEBP", lossless=True)
    c["webp_lossless_cut"] = wl[:len(wl) * 3 // 4]

    bmp = save(img, "BMP")
    c["bmp_ok"] = bmp
    c["bmp_cut_tail"] = bmp[:-100]
    return c


def verdict(b):
    try:
        im = Image.open(io.BytesIO(b))
        im.load()
        rgb = im.convert("RGB")
        return b"ok %d %d\n" % rgb.size + rgb.tobytes()
    except Exception as e:  # noqa: BLE001 - any refusal is the verdict
        return ("error %s: %s\n" % (type(e).__name__, str(e).replace("\n", " "))).encode()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    names = []
    for name, b in cases().items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(b)
        with open(os.path.join(out, name + ".pil"), "wb") as f:
            f.write(verdict(b))
        names.append(name)
    with open(os.path.join(out, "manifest"), "w") as f:
        f.write("\n".join(names) + "\n")


if __name__ == "__main__":
    main()
