#!/usr/bin/env python3
"""Builds the committed tiny random-weight Qwen3-VL checkpoint and the model goldens.

Runs on the GPU machine (transformers, torch, tokenizers there; docs/model.md says how):

    python3 scripts/ref/make_model_goldens.py --tokenizer PATH/tokenizer.json --out DIR

writes DIR/tiny-model/ (config.json, sharded bf16 safetensors + index; saved with
transformers' save_pretrained) and DIR/goldens/ (model_goldens.json + PNG frames), which are
committed as tests/data/tiny-model/ and tests/data/goldens/ (format: tests/data/goldens/README.md).

For each item the prompt is rendered per spec §6 (+ §7.5 timestamps for video), tokenized with
the real Qwen3 tokenizer, images are resized per §7.1 with Pillow, and transformers computes the
position ids and the embeddings: float32 + eager attention on the CPU (the CPU backend's
reference) and bfloat16 + sdpa on the GPU (the CUDA backend's). `--dry-run` exercises everything
that needs no torch/transformers/tokenizers (prompts, resizing, patchify, positions, files) so the
logic can be tested on a machine without them.
"""
import argparse
import hashlib
import io
import json
import math
import os
import platform
import shutil
import sys
import traceback
import unicodedata

import numpy as np
from PIL import Image

IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END = 151655, 151656, 151652, 151653
DEFAULT_INSTRUCTION = "Represent the user's input."
SEED = 20261127

# The tiny model: non-default head counts, GQA ratio 3, two deepstack levels at blocks 1 and 3,
# mrope_section [4, 2, 2] (head_dim 16), the real vocabulary (so the real tokenizer's ids work).
# hidden 32 keeps embed_tokens at 151936 x 32 bf16 = 9.7 MB; the rest is ~1 MB.
TEXT_CONFIG = dict(
    hidden_size=32, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
    head_dim=16, intermediate_size=96, vocab_size=151936, rms_norm_eps=1e-6, hidden_act="silu",
    attention_bias=False, max_position_embeddings=262144,
)
ROPE = {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [4, 2, 2],
        "mrope_interleaved": True}
VISION_CONFIG = dict(
    depth=4, hidden_size=48, num_heads=3, intermediate_size=96, patch_size=16,
    temporal_patch_size=2, spatial_merge_size=2, in_channels=3, out_hidden_size=32,
    num_position_embeddings=2304, hidden_act="gelu_pytorch_tanh", deepstack_visual_indexes=[1, 3],
)
# The real 2B shape (spec §1), random weights: for a one-off parity check of the CPU backend at
# full size on the GPU machine (not committed: 4.3 GB).
PRESETS = {
    "tiny": dict(text=TEXT_CONFIG, vision=VISION_CONFIG, rope=ROPE, shard="4MB", dir="tiny-model"),
    "2b": dict(
        text=dict(TEXT_CONFIG, hidden_size=2048, num_hidden_layers=28, num_attention_heads=16,
                  num_key_value_heads=8, head_dim=128, intermediate_size=6144),
        vision=dict(VISION_CONFIG, depth=24, hidden_size=1024, num_heads=16,
                    intermediate_size=4096, out_hidden_size=2048,
                    deepstack_visual_indexes=[5, 11, 17]),
        rope=dict(ROPE, mrope_section=[24, 20, 20]), shard="2GB", dir="model-2b"),
}


# ---- preprocessing (spec §6, §7) -------------------------------------------------------------

def smart_resize(h, w, factor=32, min_pixels=4 * 32 * 32, max_pixels=1800 * 32 * 32):
    assert max(h, w) / min(h, w) <= 200
    hb = max(factor, round(h / factor) * factor)
    wb = max(factor, round(w / factor) * factor)
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb = math.floor(h / beta / factor) * factor
        wb = math.floor(w / beta / factor) * factor
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb = math.ceil(h * beta / factor) * factor
        wb = math.ceil(w * beta / factor) * factor
    return hb, wb


def to_rgb(img):
    if img.mode == "RGBA":
        bg = Image.new("RGB", img.size, (255, 255, 255))
        bg.paste(img, mask=img.split()[3])
        return bg
    return img.convert("RGB")


def resize_image(img):
    img = to_rgb(img)
    hb, wb = smart_resize(img.height, img.width)
    return img.resize((wb, hb), resample=Image.BICUBIC)


def patchify(frames):
    """frames: (T, H, W, 3) uint8, T even -> ([T/2*gh*gw, 1536] float32, (T/2, gh, gw))."""
    x = (frames.astype(np.float32) - 127.5) / 127.5
    x = x.transpose(0, 3, 1, 2)
    T, C, H, W = x.shape
    gt, gh, gw = T // 2, H // 16, W // 16
    x = x.reshape(gt, 2, C, gh // 2, 2, 16, gw // 2, 2, 16)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return np.ascontiguousarray(x.reshape(gt * gh * gw, C * 2 * 16 * 16)), (gt, gh, gw)


def norm_instruction(s):
    s = s.strip()
    if s and not unicodedata.category(s[-1]).startswith("P"):
        s += "."
    return s


def render_prompt(instruction, visuals, texts):
    """visuals: list of dicts with kind and grid, in content order (videos first, then images)."""
    instr = norm_instruction(instruction) if instruction is not None else DEFAULT_INSTRUCTION
    parts = []
    for v in visuals:
        gt, gh, gw = v["grid"]
        if v["kind"] == "video":
            for k in range(gt):
                parts.append(f"<{v['timestamps'][k]:.1f} seconds>")
                parts.append("<|vision_start|>" + "<|video_pad|>" * (gh * gw // 4) + "<|vision_end|>")
        else:
            parts.append("<|vision_start|>" + "<|image_pad|>" * (gh * gw // 4) + "<|vision_end|>")
    body = "".join(parts) + "".join(texts)
    if not visuals and not "".join(texts):
        body = "NULL"
    return (f"<|im_start|>system\n{instr}<|im_end|>\n<|im_start|>user\n{body}<|im_end|>\n"
            f"<|im_start|>assistant\n")


def video_timestamps(indices, fps=2.0):
    idx = list(indices)
    if len(idx) % 2:
        idx.append(idx[-1])
    return [(idx[2 * k] / fps + idx[2 * k + 1] / fps) / 2 for k in range(len(idx) // 2)]


def positions_spec(ids, visuals):
    """spec §4.2: returns [3][n] lists. Image pads take images in order, video pads take video
    frame pairs in order."""
    img_blocks = [(v["grid"][1] // 2, v["grid"][2] // 2) for v in visuals if v["kind"] == "image"]
    vid_blocks = [(v["grid"][1] // 2, v["grid"][2] // 2) for v in visuals if v["kind"] == "video"
                  for _ in range(v["grid"][0])]
    pt, ph, pw = [], [], []
    nxt, i, n = 0, 0, len(ids)
    while i < n:
        if ids[i] not in (IMAGE_PAD, VIDEO_PAD):
            pt.append(nxt); ph.append(nxt); pw.append(nxt); nxt += 1; i += 1
            continue
        gh, gw = (img_blocks if ids[i] == IMAGE_PAD else vid_blocks).pop(0)
        off = nxt
        for r in range(gh):
            for c in range(gw):
                pt.append(off); ph.append(off + r); pw.append(off + c)
        nxt = off + max(gh, gw)
        i += gh * gw
    return [pt, ph, pw]


# ---- synthetic media ---------------------------------------------------------------------------

def synth_image(rng, h, w, mode="RGB"):
    """Smooth gradients, a few shapes and mild noise: compresses well as PNG yet is not flat."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = rng.uniform(0.5, 3.0, 3)
    r = 127 + 120 * np.sin(xx / w * a * math.pi + rng.uniform(0, 6))
    g = 127 + 120 * np.cos(yy / h * b * math.pi + rng.uniform(0, 6))
    bl = 127 + 120 * np.sin((xx + yy) / (w + h) * c * math.pi)
    img = np.stack([r, g, bl], -1)
    for _ in range(3):
        cy, cx, rad = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, max(6, min(h, w) / 3))
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < rad ** 2
        img[mask] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 1.5, img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if mode == "RGBA":
        alpha = np.clip(np.rint(255 * (xx / max(w - 1, 1)) * (0.5 + 0.5 * (yy / max(h - 1, 1)))),
                        0, 255).astype(np.uint8)
        return Image.fromarray(np.dstack([img, alpha]), "RGBA")
    return Image.fromarray(img, "RGB")


# ---- items ---------------------------------------------------------------------------------------

def build_items(out_goldens, rng):
    """Returns the item list with media written under out_goldens/media/."""
    media = os.path.join(out_goldens, "media")
    os.makedirs(media, exist_ok=True)

    def save(img, name):
        img.save(os.path.join(media, name), format="PNG", optimize=True)
        return "media/" + name

    def image_visual(name, orig):
        res = resize_image(orig)
        return {"kind": "image", "source": save(orig, name + "_orig.png"),
                "frames": [save(res, name + ".png")],
                "grid": [1, res.height // 16, res.width // 16]}

    # A frame-list video: 4 frames of 352x384, the size that both readings of §7.3 (the per-frame
    # image resize and the video-level resize with min_pixels 128*32*32) leave unchanged.
    frames = [synth_image(rng, 352, 384) for _ in range(4)]
    frame_files = [save(f, f"video_f{i}.png") for i, f in enumerate(frames)]
    video4 = {"kind": "video", "frames": frame_files, "grid": [2, 22, 24],
              "frame_indices": [0, 1, 2, 3], "fps": 2.0,
              "timestamps": video_timestamps([0, 1, 2, 3])}
    video2 = {"kind": "video", "frames": frame_files[:2], "grid": [1, 22, 24],
              "frame_indices": [0, 1], "fps": 2.0, "timestamps": video_timestamps([0, 1])}

    items = [
        {"name": "text", "instruction": None, "texts": ["A photo of a cat sitting on a red sofa."],
         "visuals": []},
        {"name": "text_instruction",
         "instruction": "  Retrieve passages that answer this question  ",
         "texts": ["What is the capital of France?"], "visuals": []},
        {"name": "image", "instruction": None, "texts": [],
         "visuals": [image_visual("image", synth_image(rng, 150, 200))]},
        {"name": "images_text", "instruction": "Find images matching this description",
         "texts": ["Compare these two pictures: ", "which one is brighter?"],
         "visuals": [image_visual("images_text_0", synth_image(rng, 80, 100)),
                     image_visual("images_text_1", synth_image(rng, 300, 64))]},
        {"name": "rgba", "instruction": None, "texts": [],
         "visuals": [image_visual("rgba", synth_image(rng, 90, 120, "RGBA"))]},
        {"name": "video", "instruction": None, "texts": [], "visuals": [video4]},
        {"name": "video_image_text", "instruction": "Describe the scene.",
         "texts": ["A short clip and a still."],
         "visuals": [video2, image_visual("video_image_text", synth_image(rng, 100, 140))]},
        {"name": "empty", "instruction": None, "texts": [], "visuals": []},
    ]
    return items


def load_frames(out_goldens, visual):
    fr = [np.asarray(Image.open(os.path.join(out_goldens, f)).convert("RGB")) for f in visual["frames"]]
    if visual["kind"] == "image":
        fr = [fr[0], fr[0]]
    return np.stack(fr)


def hf_pixels(visual, frames, log):
    """pixel_values from transformers' own processors (do_resize=False), or None."""
    try:
        if visual["kind"] == "image":
            import transformers
            cls = getattr(transformers, "Qwen2VLImageProcessorPil", None) or \
                transformers.Qwen2VLImageProcessor
            ip = cls(patch_size=16, temporal_patch_size=2, merge_size=2,
                     image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
            out = ip(images=[Image.fromarray(frames[0])], do_resize=False, return_tensors="np")
            return np.asarray(out["pixel_values"], dtype=np.float32), \
                [int(x) for x in np.asarray(out["image_grid_thw"])[0]], cls.__name__
        from transformers import Qwen3VLVideoProcessor
        vp = Qwen3VLVideoProcessor(patch_size=16, temporal_patch_size=2, merge_size=2,
                                   image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
        import torch
        vid = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
        out = vp(videos=[vid], do_resize=False, do_sample_frames=False, return_tensors="pt")
        return out["pixel_values_videos"].float().numpy(), \
            [int(x) for x in out["video_grid_thw"][0]], "Qwen3VLVideoProcessor"
    except Exception as e:  # recorded; the numpy path (spec §7.1) is used instead
        log(f"  HF processor failed for a {visual['kind']}: {type(e).__name__}: {e}")
        return None


# ---- main ----------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    args = ap.parse_args()
    args.p = PRESETS[args.preset]
    os.makedirs(args.out, exist_ok=True)
    logf = open(os.path.join(args.out, "log.txt"), "w") if os.path.isdir(args.out) else None

    def log(*a):
        s = " ".join(str(x) for x in a)
        print(s, flush=True)
        if logf:
            logf.write(s + "\n")
            logf.flush()

    out_model = os.path.join(args.out, args.p["dir"])
    out_gold = os.path.join(args.out, "goldens")
    for d in (out_model, out_gold):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    rng = np.random.default_rng(SEED)
    items = build_items(out_gold, rng)

    tok_sha = hashlib.sha256(open(args.tokenizer, "rb").read()).hexdigest()
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "pillow": Image.__version__ if hasattr(Image, "__version__") else "?",
                "tokenizer_json_sha256": tok_sha}
    if args.dry_run:
        specials = {"<|im_start|>": 151644, "<|im_end|>": 151645, "<|vision_start|>": VISION_START,
                    "<|vision_end|>": VISION_END, "<|image_pad|>": IMAGE_PAD,
                    "<|video_pad|>": VIDEO_PAD}

        def encode(s):  # stand-in: specials exact, every other character one id
            ids, i = [], 0
            while i < len(s):
                for k, v in specials.items():
                    if s.startswith(k, i):
                        ids.append(v); i += len(k); break
                else:
                    ids.append(ord(s[i]) % 1000); i += 1
            return ids
    else:
        import PIL
        import tokenizers
        import torch
        import transformers
        versions.update(torch=torch.__version__, transformers=transformers.__version__,
                        tokenizers=tokenizers.__version__, pillow=PIL.__version__,
                        cuda=torch.version.cuda,
                        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
        tk = tokenizers.Tokenizer.from_file(args.tokenizer)

        def encode(s):
            a = tk.encode(s, add_special_tokens=False).ids
            b = tk.encode(s, add_special_tokens=True).ids
            if a != b:
                log("  NOTE: add_special_tokens changes the ids; using add_special_tokens=False")
            return a
    log("versions:", json.dumps(versions))

    # prompts, ids, pixels, positions
    for it in items:
        it["prompt"] = render_prompt(it["instruction"], it["visuals"], it["texts"])
        it["ids"] = encode(it["prompt"])
        it["positions_spec"] = positions_spec(it["ids"], it["visuals"])
        for v in it["visuals"]:
            fr = load_frames(out_gold, v)
            pv, grid = patchify(fr)
            assert list(grid) == v["grid"], (it["name"], grid, v["grid"])
            v["pixels_np"] = pv
        n_img = sum(x == IMAGE_PAD for x in it["ids"])
        n_vid = sum(x == VIDEO_PAD for x in it["ids"])
        want_img = sum(v["grid"][0] * v["grid"][1] * v["grid"][2] // 4 for v in it["visuals"]
                       if v["kind"] == "image")
        want_vid = sum(v["grid"][0] * v["grid"][1] * v["grid"][2] // 4 for v in it["visuals"]
                       if v["kind"] == "video")
        assert (n_img, n_vid) == (want_img, want_vid), (it["name"], n_img, n_vid, want_img, want_vid)
        log(f"item {it['name']}: {len(it['ids'])} tokens, grids "
            f"{[v['grid'] for v in it['visuals']]}")

    results = {"pixel_check": [], "position_check": []}
    if not args.dry_run:
        run_model(args, items, out_model, out_gold, log, results, versions)

    # goldens JSON
    doc = {
        "format": 1,
        "about": "tests/data/goldens/README.md",
        "versions": versions,
        "seed": SEED,
        "model_dir": "tests/data/tiny-model",
        "special_ids": {"image_pad": IMAGE_PAD, "video_pad": VIDEO_PAD,
                        "vision_start": VISION_START, "vision_end": VISION_END},
        "items": [],
    }
    for it in items:
        rec = {"name": it["name"], "instruction": it["instruction"], "texts": it["texts"],
               "prompt": it["prompt"], "ids": it["ids"],
               "positions": it.get("positions_hf", it["positions_spec"]),
               "positions_source": "transformers" if "positions_hf" in it else "spec",
               "visuals": []}
        for v in it["visuals"]:
            vr = {k: v[k] for k in ("kind", "grid", "frames") if k in v}
            for k in ("source", "frame_indices", "fps", "timestamps"):
                if k in v:
                    vr[k] = v[k]
            pv = v.get("pixels_hf", v["pixels_np"])
            vr["pixel_values_shape"] = list(pv.shape)
            vr["pixel_values_sum"] = float(np.float64(pv).sum())
            vr["pixel_values_abs_sum"] = float(np.abs(np.float64(pv)).sum())
            vr["pixel_values_source"] = v.get("pixels_src", "numpy (spec 7.1)")
            rec["visuals"].append(vr)
        for k in ("embedding_f32", "embedding_bf16", "pooled_hidden_f32"):
            if k in it:
                rec[k] = it[k]
        doc["items"].append(rec)
    if "debug" in results:
        doc["debug"] = results["debug"]
    doc["checks"] = {k: v for k, v in results.items() if k != "debug"}
    with open(os.path.join(out_gold, "model_goldens.json"), "w") as f:
        json.dump(doc, f, indent=1)
    log("wrote", os.path.join(out_gold, "model_goldens.json"))
    log("SUMMARY", json.dumps(doc["checks"]))
    log("ALL OK" if not results.get("failed") else "SOME ITEMS FAILED")


def reinit_wide(model, torch):
    """Replaces the default init (std 0.02, too small to exercise anything) with weights that
    keep activations O(1): linear weights ~ N(0, 1/fan_in), norms ~ 1 + N(0, 0.2^2),
    biases ~ N(0, 0.1^2), embeddings ~ N(0, 1), pos_embed ~ N(0, 0.5^2)."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.dim() == 1 and "norm" in name and name.endswith("weight"):
                v = 1 + 0.2 * r
            elif name.endswith("bias"):
                v = 0.1 * r
            elif "embed_tokens" in name:
                v = r
            elif "pos_embed" in name:
                v = 0.5 * r
            else:
                fan_in = p[0].numel()
                v = r / math.sqrt(fan_in)
                if "qkv" in name or "q_proj" in name or "k_proj" in name:
                    v = v * 1.5
            p.copy_(v.to(p.dtype))


def run_model(args, items, out_model, out_gold, log, results, versions):
    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(SEED)

    P = args.p
    rope = P["rope"]
    hd = P["text"]["head_dim"]
    tc = dict(P["text"], rope_parameters=dict(rope), tie_word_embeddings=True)
    cfg = Qwen3VLConfig(text_config=tc, vision_config=dict(P["vision"]),
                        image_token_id=IMAGE_PAD, video_token_id=VIDEO_PAD,
                        vision_start_token_id=VISION_START, vision_end_token_id=VISION_END,
                        tie_word_embeddings=True)
    cfg.text_config.rope_parameters = dict(rope)  # spec §12: never trust the default
    log("text rope_parameters:", cfg.text_config.rope_parameters)
    model = Qwen3VLForConditionalGeneration(cfg).eval()
    reinit_wide(model, torch)
    rot = getattr(model.model.language_model, "rotary_emb", None)
    if rot is None:
        log("WARNING: no language_model.rotary_emb to check")
    else:
        log("rotary mrope_section:", getattr(rot, "mrope_section", None),
            "inv_freq[:4]:", rot.inv_freq[:4].tolist())
        want_inv = 1.0 / (5e6 ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        assert torch.allclose(rot.inv_freq.float(), want_inv), "wrong rope theta"
        ms = getattr(rot, "mrope_section", None)
        assert ms is None or list(ms) == rope["mrope_section"], f"wrong mrope_section {ms}"

    model = model.to(torch.bfloat16)
    model.save_pretrained(out_model, max_shard_size=P["shard"])
    files = sorted(os.listdir(out_model))
    log("saved:", files)
    idx_path = os.path.join(out_model, "model.safetensors.index.json")
    if not os.path.exists(idx_path):  # max_shard_size ignored: shard it ourselves
        from safetensors.torch import load_file, save_file
        single = os.path.join(out_model, "model.safetensors")
        sd = load_file(single)
        os.remove(single)
        names = sorted(sd)
        groups = [[n for n in names if ".visual." in n], [n for n in names if "embed_tokens" in n]]
        groups.append([n for n in names if n not in groups[0] and n not in groups[1]])
        wm = {}
        for k, grp in enumerate(groups):
            fn = f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
            save_file({n: sd[n] for n in grp}, os.path.join(out_model, fn), metadata={"format": "pt"})
            wm.update({n: fn for n in grp})
        total = sum(t.numel() * t.element_size() for t in sd.values())
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, open(idx_path, "w"), indent=2)
        log("save_pretrained wrote one file; sharded it into", len(groups))
    idx = json.load(open(idx_path))
    if "lm_head.weight" in idx["weight_map"]:  # tied: drop the redundant copy (9.7 MB)
        from safetensors.torch import load_file, save_file
        shard = idx["weight_map"].pop("lm_head.weight")
        sd = load_file(os.path.join(out_model, shard))
        sd.pop("lm_head.weight")
        save_file(sd, os.path.join(out_model, shard), metadata={"format": "pt"})
        json.dump(idx, open(idx_path, "w"), indent=2)
        log("removed lm_head.weight from", shard)
    keys = sorted(idx["weight_map"])
    log("tensors:", len(keys), "first:", keys[:2], "last:", keys[-2:])
    total = sum(os.path.getsize(os.path.join(out_model, f)) for f in os.listdir(out_model))
    log("checkpoint bytes:", total)
    versions["checkpoint_saved_by"] = f"transformers {transformers.__version__} save_pretrained"

    def load(dtype, attn, device):
        m, info = Qwen3VLForConditionalGeneration.from_pretrained(
            out_model, dtype=dtype, attn_implementation=attn, output_loading_info=True)
        missing = [k for k in info.get("missing_keys", []) if "lm_head" not in k]
        bad = missing + list(info.get("unexpected_keys", [])) + list(info.get("mismatched_keys", []))
        assert not bad, f"checkpoint did not load cleanly: {bad[:5]}"
        return m.to(device).eval()

    ref32 = load(torch.float32, "eager", "cpu")
    # the loaded weights are the saved bf16 values
    a = ref32.model.language_model.embed_tokens.weight
    b = model.model.language_model.embed_tokens.weight.float()
    assert torch.equal(a, b), "reloaded weights differ"
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ref16 = load(torch.bfloat16, "sdpa", dev)

    # HF processors vs the numpy patchify
    for it in items:
        for v in it["visuals"]:
            frames = load_frames(out_gold, v)
            r = hf_pixels(v, frames, log)
            if r is not None:
                pv, grid, name = r
                diff = float(np.abs(pv - v["pixels_np"]).max()) if pv.shape == v["pixels_np"].shape else None
                results["pixel_check"].append({"item": it["name"], "processor": name,
                                               "grid_equal": grid == v["grid"],
                                               "max_abs_diff_vs_numpy": diff})
                if grid == v["grid"] and diff is not None and diff < 1e-5:
                    v["pixels_hf"], v["pixels_src"] = pv, name

    captured = {}

    def pre_hook(mod, a, kw):
        captured["pos"] = kw.get("position_ids")
    ref32.model.language_model.register_forward_pre_hook(pre_hook, with_kwargs=True)

    debug_taps = {}

    def tap(name):
        def h(mod, a, out):
            o = out[0] if isinstance(out, (tuple, list)) else out
            if hasattr(o, "last_hidden_state"):
                o = o.last_hidden_state
            debug_taps[name] = o.detach().float().cpu()
        return h
    vis = ref32.model.visual
    hooks = [vis.patch_embed.register_forward_hook(tap("patch_embed")),
             vis.blocks[0].register_forward_hook(tap("block0")),
             vis.merger.register_forward_hook(tap("merger")),
             vis.deepstack_merger_list[0].register_forward_hook(tap("deepstack0")),
             ref32.model.language_model.layers[0].register_forward_hook(tap("lm_layer0"))]

    def forward(m, it, device):
        ids = torch.tensor([it["ids"]], dtype=torch.long, device=device)
        kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
        imgs = [v for v in it["visuals"] if v["kind"] == "image"]
        vids = [v for v in it["visuals"] if v["kind"] == "video"]
        if imgs:
            kw["pixel_values"] = torch.from_numpy(np.concatenate(
                [v.get("pixels_hf", v["pixels_np"]) for v in imgs])).to(device)
            kw["image_grid_thw"] = torch.tensor([v["grid"] for v in imgs], device=device)
        if vids:
            kw["pixel_values_videos"] = torch.from_numpy(np.concatenate(
                [v.get("pixels_hf", v["pixels_np"]) for v in vids])).to(device)
            kw["video_grid_thw"] = torch.tensor([v["grid"] for v in vids], device=device)
        mm = torch.zeros_like(ids)
        mm[ids == IMAGE_PAD] = 1
        mm[ids == VIDEO_PAD] = 2
        with torch.no_grad():
            try:
                out = m.model(**kw, mm_token_type_ids=mm)
            except TypeError:
                out = m.model(**kw)
        h = out.last_hidden_state[0, -1]
        return h, F.normalize(h, dim=-1).float()  # in the model dtype, as the reference

    for it in items:
        try:
            captured.clear()
            debug_taps.clear()
            h, e = forward(ref32, it, "cpu")
            it["pooled_hidden_f32"] = h.tolist()
            it["embedding_f32"] = e.tolist()
            pos = captured.get("pos")
            if pos is not None:
                pos = pos.detach().cpu()
                if pos.dim() == 3 and pos.shape[0] == 4:
                    pos = pos[1:]
                if pos.dim() == 3:
                    pos = pos[:, 0, :]
                if pos.dim() == 2 and pos.shape[0] == 1:
                    pos = pos.expand(3, -1)
                it["positions_hf"] = pos.long().tolist()
                results["position_check"].append(
                    {"item": it["name"], "equal_spec": it["positions_hf"] == it["positions_spec"],
                     "shape": list(captured["pos"].shape)})
            if it["name"] == "image" and args.preset == "tiny":
                results["debug"] = {"item": "image", **{
                    k: {"shape": list(t.shape), "values": [round(x, 7) for x in t.flatten().tolist()]}
                    for k, t in debug_taps.items()}}
            _, e16 = forward(ref16, it, dev)
            it["embedding_bf16"] = e16.tolist()
            cos = float(torch.dot(torch.tensor(it["embedding_f32"]), e16.cpu()))
            results.setdefault("cos_f32_vs_bf16", {})[it["name"]] = round(cos, 6)
            log(f"item {it['name']}: ok; |h|={float(h.norm()):.3f} cos(f32,bf16)={cos:.6f}")
        except Exception:
            log(f"item {it['name']}: FAILED\n{traceback.format_exc()}")
            results.setdefault("failed", []).append(it["name"])
    for hk in hooks:
        hk.remove()

    saved = json.load(open(os.path.join(out_model, "config.json")))
    log("saved text_config rope:", {k: v for k, v in saved.get("text_config", {}).items()
                                    if "rope" in k})


if __name__ == "__main__":
    main()
