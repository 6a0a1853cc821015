#!/usr/bin/env python3
"""Checks vlembed's float antialiased bicubic (media_resize_bicubic_aa_float, the second resize of
the video path, spec §7.2/§7.3/§12) against PyTorch on the machine that has torch (the GPU machine;
everything runs on its CPU, as qwen-vl-utils does):

    python3 scripts/ref/check_video_resize.py [N]      (from the repository root)

torchvision is not installed there, so this applies exactly what torchvision 0.23's
F.resize(uint8 TCHW, size, BICUBIC, antialias=True) does to a uint8 tensor: cast to float32,
torch.nn.functional.interpolate(mode="bicubic", antialias=True, align_corners=False),
clamp(0, 255), round, cast to uint8. It also runs Pillow's BICUBIC against media_resize_bicubic as
a control. Prints one summary line per resampler; exit status 1 if the bar is missed.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image


def smooth_noise(rng, h, w):
    y, x = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3))
    for c in range(3):
        img[..., c] = 128 + 110 * np.sin(x * rng.uniform(0.01, 0.3) + y * rng.uniform(0.01, 0.3) + c)
    img += rng.normal(0, rng.uniform(0, 50), img.shape)
    if rng.integers(0, 2):   # hard edges: overshoot and clipping
        img[: h // 2, : w // 3] = 255
        img[h // 2 :, w // 3 :] = 0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 120
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tmp = tempfile.mkdtemp()
    exe = os.path.join(tmp, "resize_cli")
    subprocess.run(["cc", "-O2", "-I", root, os.path.join(root, "bench/media/resize_cli.c"),
                    os.path.join(root, "gateway/media_resize.c"), os.path.join(root, "common/alloc.c"),
                    os.path.join(root, "common/log.c"), "-lm", "-o", exe], check=True)
    rng = np.random.default_rng(11)
    jobs, refs_aa, refs_pil = [], [], []
    for i in range(n):
        h, w = int(rng.integers(8, 700)), int(rng.integers(8, 700))
        k = i % 4
        if k == 0:   # video-band upscale of a small first-resized frame, multiples of 32
            h, w = (h // 32 + 1) * 32, (w // 32 + 1) * 32
            dh, dw = h * int(rng.integers(2, 6)), w * int(rng.integers(2, 6))
        elif k == 1:   # downscale
            dh, dw = max(1, int(h / rng.uniform(1.1, 6))), max(1, int(w / rng.uniform(1.1, 6)))
        elif k == 2:   # mixed
            dh, dw = max(1, int(h * rng.uniform(0.3, 2.5))), max(1, int(w * rng.uniform(0.3, 2.5)))
        else:          # one axis
            dh, dw = (h, max(1, int(w * rng.uniform(0.3, 3)))) if rng.integers(0, 2) else \
                     (max(1, int(h * rng.uniform(0.3, 3))), w)
        while dh * dw > 1_500_000:
            dh, dw = max(1, dh * 2 // 3), max(1, dw * 2 // 3)
        img = smooth_noise(rng, h, w)
        src = os.path.join(tmp, f"{i}.rgb")
        img.tofile(src)
        t = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float()
        o = torch.nn.functional.interpolate(t, size=[dh, dw], mode="bicubic", antialias=True,
                                            align_corners=False)
        o = o.clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).contiguous().numpy()
        refs_aa.append(o)
        refs_pil.append(np.asarray(Image.fromarray(img).resize((dw, dh), Image.BICUBIC)))
        jobs.append((src, w, h, dw, dh))
    ok = True
    for mode, refs in (("aa", refs_aa), ("pillow", refs_pil)):
        lst = os.path.join(tmp, f"{mode}.txt")
        with open(lst, "w") as f:
            for i, (src, w, h, dw, dh) in enumerate(jobs):
                f.write(f"{src} {w} {h} {src}.{mode}.out {dw} {dh}\n")
        subprocess.run([exe, mode, lst], check=True, stdout=subprocess.DEVNULL)
        eq = tot = mx = 0
        for (src, w, h, dw, dh), ref in zip(jobs, refs):
            got = np.fromfile(f"{src}.{mode}.out", np.uint8).reshape(dh, dw, 3)
            d = np.abs(got.astype(int) - ref.astype(int))
            eq += int((d == 0).sum()); tot += d.size; mx = max(mx, int(d.max()))
        print(f"{mode}: {len(jobs)} images, {eq}/{tot} bytes equal ({100.0 * eq / tot:.5f}%), "
              f"max diff {mx}; torch {torch.__version__}, Pillow {Image.__version__}")
        ok = ok and eq >= 0.999 * tot and mx <= 1
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
