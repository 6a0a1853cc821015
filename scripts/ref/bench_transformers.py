#!/usr/bin/env python3
"""Transformers baseline for `make bench` (GPU machine): Qwen3VLModel of the real 2B / 8B size
with random bf16 weights (compute cost does not depend on weight values), sdpa attention,
last-token pooling + L2 normalisation as the reference embedder does. Same cases as
bench/cuda/bench_model.c; inputs are padded batches (the reference embedder pads on the right),
so "real tokens/s" counts only unpadded tokens. Prints markdown rows.

usage: bench_transformers.py [2B|8B] [--quick]"""
import sys
import time

import torch
import torch.nn.functional as F
from transformers import Qwen3VLConfig, Qwen3VLModel

IMAGE_PAD, VIDEO_PAD, VSTART, VEND = 151655, 151656, 151652, 151653
SIZES = {
    "2B": dict(text=dict(hidden_size=2048, num_hidden_layers=28, num_attention_heads=16,
                         num_key_value_heads=8, head_dim=128, intermediate_size=6144),
               vision=dict(depth=24, hidden_size=1024, num_heads=16, intermediate_size=4096,
                           out_hidden_size=2048, deepstack_visual_indexes=[5, 11, 17])),
    "8B": dict(text=dict(hidden_size=4096, num_hidden_layers=36, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=128, intermediate_size=12288),
               vision=dict(depth=27, hidden_size=1152, num_heads=16, intermediate_size=4304,
                           out_hidden_size=4096, deepstack_visual_indexes=[8, 16, 24])),
}


def build(which):
    s = SIZES[which]
    rope = {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [24, 20, 20],
            "mrope_interleaved": True}
    tc = dict(s["text"], vocab_size=151936, rms_norm_eps=1e-6, hidden_act="silu",
              attention_bias=False, max_position_embeddings=262144, rope_parameters=rope,
              tie_word_embeddings=(which == "2B"))
    vc = dict(s["vision"], patch_size=16, temporal_patch_size=2, spatial_merge_size=2,
              in_channels=3, num_position_embeddings=2304, hidden_act="gelu_pytorch_tanh")
    cfg = Qwen3VLConfig(text_config=tc, vision_config=vc, image_token_id=IMAGE_PAD,
                        video_token_id=VIDEO_PAD, vision_start_token_id=VSTART,
                        vision_end_token_id=VEND)
    cfg.text_config.rope_parameters = rope
    with torch.device("cuda"):  # random init on the GPU: the 8B one takes minutes on the CPU
        m = Qwen3VLModel._from_config(cfg, attn_implementation="sdpa", dtype=torch.bfloat16)
    return m.eval()


def embed(m, ids, mask, pixel_values=None, grid=None):
    kw = dict(input_ids=ids, attention_mask=mask)
    if pixel_values is not None:
        mm = torch.zeros_like(ids)
        mm[ids == IMAGE_PAD] = 1
        kw.update(pixel_values=pixel_values, image_grid_thw=grid, mm_token_type_ids=mm)
    h = m(**kw).last_hidden_state
    last = mask.sum(1) - 1
    return F.normalize(h[torch.arange(h.shape[0], device=h.device), last], dim=-1)


def timed(fn, reps=5):
    with torch.no_grad():
        fn()
        torch.cuda.synchronize()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def text_batch(lengths):
    L = max(lengths)
    ids = torch.randint(0, 150000, (len(lengths), L), device="cuda")
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return ids, mask


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "2B"
    torch.manual_seed(0)
    m = build(which)
    name = torch.cuda.get_device_name()
    print(f"\n### transformers {__import__('transformers').__version__}, torch {torch.__version__}, "
          f"{which} random bf16 weights, sdpa, {name}\n")
    print("| case | time per call | throughput |\n|---|---|---|")
    # documents of 512 tokens, batches of 32
    nb = 32 if which == "2B" else 16
    ids, mask = text_batch([512] * nb)
    t = timed(lambda: embed(m, ids, mask))
    print(f"| {which} text, {nb} x 512-token documents per batch | {t*1e3:.1f} ms | "
          f"{nb*512/t:.0f} tokens/s |", flush=True)
    # mix 16..512, padded batches of 64
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(16, 513, (64,), generator=g).tolist()
    ids, mask = text_batch(lengths)
    t = timed(lambda: embed(m, ids, mask))
    print(f"| {which} text, 64 documents of 16-512 tokens, padded batch | {t*1e3:.1f} ms | "
          f"{sum(lengths)/t:.0f} real tokens/s |", flush=True)
    ids, mask = text_batch([32])
    t = timed(lambda: embed(m, ids, mask), reps=21)
    print(f"| {which} single 32-token query | {t*1e3:.2f} ms | latency |", flush=True)
    for px, n in ((512, 16), (1344, 2)):
        gh = px // 16
        npad = gh * gh // 4
        row = [1] * 15 + [VSTART] + [IMAGE_PAD] * npad + [VEND] + [2] * 6
        ids = torch.tensor([row] * n, device="cuda")
        mask = torch.ones_like(ids)
        pv = (torch.rand(n * gh * gh, 1536, device="cuda") * 2 - 1).to(torch.bfloat16)
        grid = torch.tensor([[1, gh, gh]] * n, device="cuda")
        t = timed(lambda: embed(m, ids, mask, pv, grid))
        print(f"| {which} images {px}x{px}, batch {n} | {t*1e3:.1f} ms | {n/t:.1f} images/s |",
              flush=True)
    print(f"| {which} peak device memory (torch) | {torch.cuda.max_memory_allocated()/2**30:.2f} GiB | |")


if __name__ == "__main__":
    main()
