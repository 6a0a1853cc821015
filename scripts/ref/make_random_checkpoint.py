#!/usr/bin/env python3
"""Writes a random-weight Qwen3-VL checkpoint of the real 2B or 8B shape (spec §1-§2), in
bfloat16 safetensors with an index, streaming tensor by tensor (numpy only; no torch needed).
For checking that the loader and the CPU backend handle the real configurations and for
timing them; the weights are random, so the vectors mean nothing.

    /usr/bin/python3 scripts/ref/make_random_checkpoint.py --preset 2b --out /tmp/qwen3vl-2b-random
    build/vlembed-worker --check /tmp/qwen3vl-2b-random

`--sparse` writes only the headers (the data is a hole of zeros): for load tests of the 8B shape.

`--preset 2b-mini` / `8b-mini` (or `--text-layers N --vision-depth N --deepstack a,b,c` over any
preset) keep every per-layer shape of the real model (head dims 64 / 72 in the vision tower, 128
with GQA 16/8 / 32/8 in the language model, the real vocabulary) but only 4 decoder layers and 4
vision blocks (DeepStack after blocks 0, 1, 2): the CPU backend can embed real-shaped items in
seconds, so tests/unit/gpu_parity.c compares it with the CUDA backend end to end on them.
"""
import argparse
import json
import os
import struct

import numpy as np

PRESETS = {
    "2b": dict(text=dict(hidden_size=2048, num_hidden_layers=28, num_attention_heads=16,
                         num_key_value_heads=8, head_dim=128, intermediate_size=6144),
               vision=dict(depth=24, hidden_size=1024, num_heads=16, intermediate_size=4096,
                           out_hidden_size=2048, deepstack_visual_indexes=[5, 11, 17])),
    "8b": dict(text=dict(hidden_size=4096, num_hidden_layers=36, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=128, intermediate_size=12288),
               vision=dict(depth=27, hidden_size=1152, num_heads=16, intermediate_size=4304,
                           out_hidden_size=4096, deepstack_visual_indexes=[8, 16, 24])),
}
# Real per-layer shapes, few layers (see the module docstring).
MINI = dict(text_layers=4, vision_depth=4, deepstack=[0, 1, 2])


def config(p):
    t = dict(p["text"], vocab_size=151936, rms_norm_eps=1e-6, hidden_act="silu",
             attention_bias=False, max_position_embeddings=262144, tie_word_embeddings=True,
             rope_theta=5000000,  # the 4.57-era spelling, to exercise it
             rope_scaling={"mrope_interleaved": True, "mrope_section": [24, 20, 20],
                           "rope_type": "default"})
    v = dict(p["vision"], patch_size=16, temporal_patch_size=2, spatial_merge_size=2,
             in_channels=3, num_position_embeddings=2304, hidden_act="gelu_pytorch_tanh")
    return {"architectures": ["Qwen3VLForConditionalGeneration"], "model_type": "qwen3_vl",
            "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
            "vision_end_token_id": 151653, "tie_word_embeddings": True, "text_config": t,
            "vision_config": v}


def tensors(cfg):
    t, v = cfg["text_config"], cfg["vision_config"]
    V, I, O = v["hidden_size"], v["intermediate_size"], v["out_hidden_size"]
    W4 = 4 * V
    H, hd, L = t["hidden_size"], t["head_dim"], t["num_hidden_layers"]
    qd, kvd, TI = t["num_attention_heads"] * hd, t["num_key_value_heads"] * hd, t["intermediate_size"]
    vp, lp = "model.visual", "model.language_model"
    out = [(f"{vp}.patch_embed.proj.weight", [V, 3, 2, 16, 16]), (f"{vp}.patch_embed.proj.bias", [V]),
           (f"{vp}.pos_embed.weight", [2304, V])]
    for i in range(v["depth"]):
        b = f"{vp}.blocks.{i}"
        out += [(f"{b}.norm1.weight", [V]), (f"{b}.norm1.bias", [V]), (f"{b}.norm2.weight", [V]),
                (f"{b}.norm2.bias", [V]), (f"{b}.attn.qkv.weight", [3 * V, V]),
                (f"{b}.attn.qkv.bias", [3 * V]), (f"{b}.attn.proj.weight", [V, V]),
                (f"{b}.attn.proj.bias", [V]), (f"{b}.mlp.linear_fc1.weight", [I, V]),
                (f"{b}.mlp.linear_fc1.bias", [I]), (f"{b}.mlp.linear_fc2.weight", [V, I]),
                (f"{b}.mlp.linear_fc2.bias", [V])]
    mergers = [(f"{vp}.merger", V)] + [(f"{vp}.deepstack_merger_list.{k}", W4)
                                       for k in range(len(v["deepstack_visual_indexes"]))]
    for pre, nd in mergers:
        out += [(f"{pre}.norm.weight", [nd]), (f"{pre}.norm.bias", [nd]),
                (f"{pre}.linear_fc1.weight", [W4, W4]), (f"{pre}.linear_fc1.bias", [W4]),
                (f"{pre}.linear_fc2.weight", [O, W4]), (f"{pre}.linear_fc2.bias", [O])]
    out.append((f"{lp}.embed_tokens.weight", [t["vocab_size"], H]))
    for l in range(L):
        b = f"{lp}.layers.{l}"
        out += [(f"{b}.input_layernorm.weight", [H]), (f"{b}.post_attention_layernorm.weight", [H]),
                (f"{b}.self_attn.q_proj.weight", [qd, H]), (f"{b}.self_attn.k_proj.weight", [kvd, H]),
                (f"{b}.self_attn.v_proj.weight", [kvd, H]), (f"{b}.self_attn.o_proj.weight", [H, qd]),
                (f"{b}.self_attn.q_norm.weight", [hd]), (f"{b}.self_attn.k_norm.weight", [hd]),
                (f"{b}.mlp.gate_proj.weight", [TI, H]), (f"{b}.mlp.up_proj.weight", [TI, H]),
                (f"{b}.mlp.down_proj.weight", [H, TI])]
    out.append((f"{lp}.norm.weight", [H]))
    return out


CHUNK = 1 << 22  # elements drawn and converted at a time (the stream is the same as in one go)


def bf16_chunks(rng, name, shape):
    """Yields the tensor's bfloat16 bytes (round to nearest even) chunk by chunk."""
    n = int(np.prod(shape)) if shape else 1
    for start in range(0, n, CHUNK):
        k = min(CHUNK, n - start)
        if shape and len(shape) == 1 and "norm" in name and name.endswith("weight"):
            x = 1 + 0.1 * rng.standard_normal(k, dtype=np.float32)
        elif name.endswith("bias"):
            x = 0.02 * rng.standard_normal(k, dtype=np.float32)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            scale = 1.0 if "embed" in name else 1.0 / np.sqrt(fan_in)
            x = (scale * rng.standard_normal(k, dtype=np.float32)).astype(np.float32)
        u = x.view(np.uint32)
        yield ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes()


def bf16_bytes(rng, name, shape):
    return b"".join(bf16_chunks(rng, name, shape))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS) + [f"{k}-mini" for k in sorted(PRESETS)],
                    default="2b", help="a real shape; NAME-mini: 4 decoder layers, 4 vision blocks")
    ap.add_argument("--out", required=True)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--sparse", action="store_true",
                    help="write headers only and extend the files sparsely (all-zero weights): "
                         "enough to test loading, instant even for 8B")
    ap.add_argument("--text-layers", type=int, help="decoder layers (default: the preset's)")
    ap.add_argument("--vision-depth", type=int, help="vision blocks (default: the preset's)")
    ap.add_argument("--deepstack", help="DeepStack block indexes, comma-separated, increasing, "
                                        "below the vision depth (default: the preset's)")
    args = ap.parse_args()
    mini = args.preset.endswith("-mini")
    p = PRESETS[args.preset[:-5] if mini else args.preset]
    p = dict(text=dict(p["text"]), vision=dict(p["vision"]))
    layers, depth = args.text_layers, args.vision_depth
    ds = [int(x) for x in args.deepstack.split(",")] if args.deepstack is not None else None
    if mini:
        layers = MINI["text_layers"] if layers is None else layers
        depth = MINI["vision_depth"] if depth is None else depth
        ds = MINI["deepstack"] if ds is None else ds
    if layers is not None:
        p["text"]["num_hidden_layers"] = layers
    if depth is not None:
        p["vision"]["depth"] = depth
    if ds is not None:
        p["vision"]["deepstack_visual_indexes"] = ds
    v = p["vision"]
    ds = v["deepstack_visual_indexes"]
    if (p["text"]["num_hidden_layers"] < max(1, len(ds)) or
            any(b <= a for a, b in zip(ds, ds[1:])) or (ds and not 0 <= ds[0] <= ds[-1] < v["depth"])):
        ap.error(f"deepstack indexes {ds} must increase within the vision depth {v['depth']} and "
                 f"number at most the decoder layers {p['text']['num_hidden_layers']}")
    os.makedirs(args.out, exist_ok=True)
    cfg = config(p)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    ts = tensors(cfg)
    rng = np.random.default_rng(0)
    shards = [ts[i::args.shards] for i in range(args.shards)]
    wm = {}
    total = 0
    for s, part in enumerate(shards):
        fn = f"model-{s + 1:05d}-of-{args.shards:05d}.safetensors"
        hdr, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape in part:
            nb = 2 * int(np.prod(shape))
            hdr[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + nb]}
            off += nb
            wm[name] = fn
        h = json.dumps(hdr, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        with open(os.path.join(args.out, fn), "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h)
            if args.sparse:
                f.truncate(8 + len(h) + off)
            else:
                for name, shape in part:
                    for b in bf16_chunks(rng, name, shape):
                        f.write(b)
        total += off
        print(f"wrote {fn}: {len(part)} tensors, {off / 1e9:.2f} GB", flush=True)
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=1)


if __name__ == "__main__":
    main()
