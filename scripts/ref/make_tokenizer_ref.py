#!/usr/bin/env python3
"""Reference data for the C tokenizer and prompt renderer (gateway/tokenizer.c, gateway/prompt.c).

Runs on the GPU machine (HF `tokenizers` + `transformers` live there; no GPU is used):

    python3 scripts/ref/make_tokenizer_ref.py --tokenizer PATH/tokenizer.json --out DIR \
        [--bench-bin DIR/bench_tok]

Writes into DIR (commit the first six under tests/data/tokenizer/):
  corpus.jsonl     >= 2,000 strings (fixed seed) with HF ids for encode(add_special_tokens=False),
                   encode(add_special_tokens=True) and decode(ids, skip_special_tokens=False)
  flags.jsonl      ids from a copy of tokenizer.json with lstrip/rstrip/single_word/normalized
                   set on a few added tokens (FLAG_CHANGES), for FLAG_TEXTS and 300 strings
  post_eos.jsonl   ids from a copy of tokenizer.json whose post_processor is a TemplateProcessing
                   appending <|endoftext|> (add_special_tokens True), for the first 300 strings
  prompts.jsonl    rendered prompts + ids from Qwen3VLProcessor (native embedder form) and from
                   apply_chat_template (chat form), with the reconstructed Qwen3-VL chat template
  unicode.json     per-code-point character classes as HF's pre-tokenizer regex sees them
                   (letter / number / space / other, run-length coded) and the code points whose
                   NFC (HF normalizer) differs from themselves
  info.json        versions, what transformers does with the post-processor, timings
and, with --bench-bin, runs the C encoder and HF tokenizers on the same multilingual corpus on
one core and prints both throughputs (bench.txt).
"""
import argparse
import copy
import json
import os
import random
import subprocess
import sys
import time
import traceback

SEED = 20261127

# The Qwen3-VL chat template as reconstructed from spec §6 / [TPL] (the embedding repo's own
# file was not readable). Only what an embedding request uses: system/user/assistant turns,
# text, image and video parts, add_generation_prompt. No tools.
QWEN3_VL_TEMPLATE = (
    "{%- if messages[0].role == 'system' -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages[0].content is string -%}{{- messages[0].content -}}"
    "{%- else -%}{%- for c in messages[0].content -%}{%- if 'text' in c -%}{{- c.text -}}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) -%}"
    "{{- '<|im_start|>' + message.role + '\\n' -}}"
    "{%- if message.content is string -%}{{- message.content -}}"
    "{%- else -%}{%- for c in message.content -%}"
    "{%- if c.type == 'image' or 'image' in c or 'image_url' in c -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif c.type == 'video' or 'video' in c -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in c -%}{{- c.text -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- elif message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if message.content is string -%}{{- message.content -}}"
    "{%- else -%}{%- for c in message.content -%}{%- if 'text' in c -%}{{- c.text -}}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


# ---------------------------------------------------------------------------------------------
# corpus

FRAG = {
    "en": ["The quick brown fox jumps over the lazy dog.", "Hello, world!", "It's a test.",
           "I'M SURE THEY'LL COME", "don'T", "We'Re here", "you've", "She'd've", "'s 'S 't 'T",
           "'re 'RE 've 'VE 'm 'M 'll 'LL 'd 'D", "o'clock", "rock 'n' roll", "Ma'am",
           "ſ 'ſ 'ſs", "’s ‘quoted’", "Mr. O'Neil's dog", "e-mail", "state-of-the-art"],
    "digits": ["0", "12", "123", "1234567890", "3.14159", "1,000,000", "+1-800-555-0199",
               "2026-11-27T15:14:41Z", "v1.2.3", "0x7fffffff", "١٢٣٤٥", "१२३", "๑๒๓", "½ ¾ ²³",
               "Ⅻ ⅻ", "①②③", "𝟘𝟙𝟚"],
    "punct": ["!!!", "???", "...", "…", "---", "—–", "«»", "“quoted”", "(a)[b]{c}", "!?!?",
              "a!!!\n\nb", "#$%&*", "@user", "~/path/to/file.txt", "C:\\Windows\\", "<>",
              "</div>", "/* c */", "::", "=>", "!=", "&&", "||", "¿Qué?", "¡Hola!", "。", "，",
              "、", "！？", "《》", "【】"],
    "ws": ["a    b", "   leading", "trailing   ", "\t\tx", "x\t", " \n ", "\n\n\n", "a\r\nb",
           "\r\r\n", "line1\n  line2", "a \n\n b", "\u00a0", "x\u00a0y", "x\u3000y", "x\u2003y",
           "x\u0085y", "x\u1680y", "x\u180ey", "x\u200by", "x\ufeffy", "x\x1cy", "x\x1fy",
           "x\u2028y", "x\u2029y", "x\u202fy", "x\u205fy", " \t \n", "\v\f", "  \r\n  ",
           " !", "  !", "\n!", " \u00a0x", "\u00a0 x", "end \n", "end\n ", "tab\t\n"],
    "special": ["<|im_start|>", "<|endoftext|>", "<|im_end|>", "<think>", "</think>",
                "<|im_start", "im_start|>", "<|im_start|><|im_end|>", "x<tool_call>y",
                "<|fim_prefix|>", "<|image_pad|><|image_pad|>", "<|vision_start|>",
                "<<|im_end|>>", "<|im_end|>\n", " <|endoftext|> ", "<|box_start|>1<|box_end|>",
                "<tool_response>", "<|repo_name|>", "<|file_sep|>"],
    "zh": ["你好，世界！", "今天天气很好。", "机器学习是人工智能的一个分支。", "我爱北京天安门",
           "中文English混合123", "「引号」", "这是一个很长的句子没有任何标点符号用来测试长片段"],
    "ja": ["こんにちは世界", "カタカナとひらがな", "東京都渋谷区", "ｶﾀｶﾅ半角", "ありがとうございます。"],
    "ko": ["안녕하세요", "한국어 텍스트", "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af"],
    "ar": ["مرحبا بالعالم", "اللُّغَةُ العَرَبِيَّة", "١٢٣ رقم", "سلام دنیا", "שלום עולם"],
    "hi": ["नमस्ते दुनिया", "हिन्दी भाषा", "क्षत्रिय", "বাংলা", "தமிழ்", "ગુજરાતી"],
    "th": ["สวัสดีชาวโลก", "ภาษาไทยไม่มีช่องว่างระหว่างคำ", "กรุงเทพมหานคร"],
    "emoji": ["👨\u200d👩\u200d👧\u200d👦", "👍🏽", "👍🏿👍🏻", "🇺🇸🇯🇵", "1️⃣", "❤️", "🏳️\u200d🌈",
              "🧑🏽\u200d💻", "😀😃😄", "a😀b", "👩\u200d❤️\u200d💋\u200d👨", "☺︎", "🫠"],
    "comb": ["e\u0301", "Cafe\u0301", "a\u0308o\u0308u\u0308", "\u212b", "\u2126", "n\u0303",
             "\u0041\u030a", "\u1e9b\u0323", "q\u0307\u0323", "ﬁ ﬂ", "x\u0301\u0301\u0301",
             "\u0301start", "Z\u0351\u036b\u0343\u036a\u0302\u036b", "\u00c5\u0301", "ǅ", "ﬀ",
             "\u0958", "\u2adc", "\u0344", "\u0f73"],
    "unassigned": ["\u0378", "\u0870x", "\U0002fffe", "\U0010ffff", "\ue000", "\U000f0000",
                   "\U00031350", "\U0002ebf0", "\u2ffc\u2ffd", "\u31e4", "\U00010d40",
                   "\u1c89", "\U0001fae9", "\U000e0001\U000e0020", "\ufdd0", "\uffff"],
    "ctrl": ["\x01\x02", "\x7f", "\x1b[31mred\x1b[0m", "a\x08b"],
    "code": ["def f(x):\n    return x + 1\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
             "SELECT * FROM t WHERE id = 42;", "https://example.com/a?b=c&d=e#f",
             "user@example.org", "{\"key\": [1, 2, 3]}", "# Title\n\n- item\n- item 2",
             "    indented\n        more\n", "x = y // 2  # comment", "<a href=\"x\">link</a>"],
}


def rand_cp(rng):
    r = rng.random()
    if r < 0.5:
        return rng.randint(0x20, 0x7e)
    if r < 0.7:
        return rng.randint(0xa0, 0x2fff)
    if r < 0.8:
        return rng.randint(0x3000, 0x9fff)
    if r < 0.85:
        return rng.randint(0xac00, 0xd7a3)
    if r < 0.9:
        return rng.choice([0x1f600, 0x1f3fd, 0x200d, 0x1f468, 0xfe0f, 0x301, 0x308, 0x20, 0xa, 0xd])
    if r < 0.95:
        return rng.randint(0x10000, 0x3ffff)
    cp = rng.randint(0xe000, 0x10ffff)
    return cp


def make_corpus():
    rng = random.Random(SEED)
    out = []
    for k, frags in FRAG.items():
        out.extend(frags)
    allfrags = [f for v in FRAG.values() for f in v]
    seps = ["", " ", "  ", "\n", "\r\n", "\t", " \n", "\n\n", "\u3000", "\u00a0", ". ", ", ", "'"]
    # fragment mixes
    while len(out) < 1500:
        n = rng.randint(1, 6)
        s = ""
        for _ in range(n):
            f = rng.choice(allfrags)
            r = rng.random()
            if r < 0.2:
                f = f.upper()
            elif r < 0.3:
                f = f.lower()
            s += f + rng.choice(seps)
        if rng.random() < 0.3:
            s = rng.choice(seps) + s
        out.append(s)
    # random code points (surrogates excluded)
    while len(out) < 2100:
        n = rng.randint(1, 40)
        cps = []
        for _ in range(n):
            c = rand_cp(rng)
            if 0xd800 <= c <= 0xdfff:
                c = 0x41
            cps.append(c)
        out.append("".join(map(chr, cps)))
    # contractions in every case
    for w in ["s", "t", "re", "ve", "m", "ll", "d"]:
        for v in sorted({w, w.upper(), w.capitalize(), w[0] + w[1:].upper()}):
            out.append("it'" + v + " x'" + v + "y '" + v)
    # digits / punctuation / spaces systematically
    for n in range(1, 12):
        out.append("7" * n)
        out.append(" " * n + "x")
        out.append("x" + " " * n)
        out.append("!" * n + "a")
        out.append("\n" * n + " " * n + "z")
    # long inputs
    out.append("a" * 5000)
    out.append("ab" * 3000)
    out.append("的" * 2000)
    out.append("9" * 2000)
    out.append(" " * 3000)
    out.append("\n" * 1000)
    out.append("😀" * 500)
    out.append("สวัสดี" * 400)
    out.append("".join(rng.choice(allfrags) + rng.choice(seps) for _ in range(1500)))
    out.append("x" + "\u0301" * 300)
    # no NUL (the C tests read JSON through cJSON, which stops strings at NUL)
    return [s.replace("\x00", "") for s in out if s.replace("\x00", "")]


def make_bench_corpus():
    """Multilingual text, ~2 MB, for throughput (separate seed from the test corpus)."""
    rng = random.Random(SEED + 1)
    langs = ["en", "zh", "ja", "ko", "ar", "hi", "th", "code", "digits", "punct", "emoji"]
    weights = [40, 12, 6, 5, 6, 6, 4, 12, 4, 3, 2]
    texts = []
    total = 0
    while total < 2_000_000:
        parts = []
        for _ in range(rng.randint(5, 40)):
            lang = rng.choices(langs, weights)[0]
            parts.append(rng.choice(FRAG[lang]))
        s = " ".join(parts)
        texts.append(s)
        total += len(s.encode())
    return texts


# ---------------------------------------------------------------------------------------------

def eos_tokenizer_json(path):
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    j["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 1}},
                 {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}}],
        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [151643],
                                             "tokens": ["<|endoftext|>"]}},
    }
    return j


# Added-token flags the real file does not use, set on a copy to check their handling.
FLAG_CHANGES = {"<think>": {"lstrip": True}, "</think>": {"rstrip": True},
                "<tool_call>": {"single_word": True}, "<|fim_prefix|>": {"normalized": True},
                "<|file_sep|>": {"lstrip": True, "rstrip": True}}

FLAG_TEXTS = ["a <think> b", "a   <think>b", "\n\t<think>", "x</think>   y", "x</think>\n\ny",
              "<tool_call>", "a <tool_call> b", "a<tool_call>b", "_<tool_call>", "1<tool_call>",
              "<tool_call>x", "é<tool_call> ", "<|fim_prefix|>", "a<|fim_prefix|>b",
              "  <|file_sep|>  ", "x <|file_sep|> <think> y", "<think></think>",
              " <think> </think> ", "</think><think>", "a\u3000<think>\u00a0b",
              "<tool_call><tool_call>", " <tool_call>\t"]


def flags_tokenizer_json(path):
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    for t in j["added_tokens"]:
        t.update(FLAG_CHANGES.get(t["content"], {}))
    return j


def unicode_tables(tk):
    pre = tk.pre_tokenizer
    norm = tk.normalizer
    classes = []  # (start, class) runs
    nfc = {}
    cur = None
    t0 = time.time()
    cps = list(range(0, 0x40000)) + list(range(0xe0000, 0xe1000)) + list(range(0xf0000, 0xf0100))
    for cp in cps:
        if 0xd800 <= cp <= 0xdfff or cp == 0:
            continue
        c = chr(cp)
        x = len(pre.pre_tokenize_str("a" + c + "a"))
        if x == 1:
            k = "L"
        elif x == 3 and c not in "\r\n":
            k = "N"
        else:
            y = len(pre.pre_tokenize_str("!" + c))
            k = "S" if y == 2 or c in "\r\n" else "O"
        if k != cur:
            classes.append([cp, k])
            cur = k
        n = norm.normalize_str(c)
        if n != c:
            nfc[cp] = n
    return {"class_runs": classes, "nfc": {str(k): v for k, v in nfc.items()},
            "covered": "U+0001..U+3FFFF, U+E0000..U+E0FFF, U+F0000..U+F00FF (no surrogates)",
            "seconds": time.time() - t0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bench-bin")
    ap.add_argument("--skip-unicode", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    import tokenizers
    import transformers
    from tokenizers import Tokenizer

    info = {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
            "python": sys.version.split()[0]}
    tk = Tokenizer.from_file(a.tokenizer)
    corpus = make_corpus()
    t0 = time.time()
    rows = []
    for s in corpus:
        e = tk.encode(s, add_special_tokens=False).ids
        es = tk.encode(s, add_special_tokens=True).ids
        d = tk.decode(e, skip_special_tokens=False)
        rows.append({"text": s, "ids": e, "ids_special": es, "decoded": d})
    info["corpus_strings"] = len(rows)
    info["corpus_encode_s"] = time.time() - t0
    info["post_processor_adds_ids"] = sum(r["ids"] != r["ids_special"] for r in rows)
    with open(os.path.join(a.out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    # modified tokenizer with a TemplateProcessing post-processor appending <|endoftext|>
    eos_path = os.path.join("/tmp", "tokenizer_eos.json")
    with open(eos_path, "w", encoding="utf-8") as f:
        json.dump(eos_tokenizer_json(a.tokenizer), f, ensure_ascii=False)
    tke = Tokenizer.from_file(eos_path)
    with open(os.path.join(a.out, "post_eos.jsonl"), "w", encoding="utf-8") as f:
        for s in corpus[:300]:
            f.write(json.dumps({"text": s, "ids": tke.encode(s, add_special_tokens=True).ids,
                                "ids_plain": tke.encode(s, add_special_tokens=False).ids},
                               ensure_ascii=False) + "\n")

    # added-token flags (lstrip / rstrip / single_word / normalized) on a modified copy
    flags_path = os.path.join("/tmp", "tokenizer_flags.json")
    with open(flags_path, "w", encoding="utf-8") as f:
        json.dump(flags_tokenizer_json(a.tokenizer), f, ensure_ascii=False)
    tkf = Tokenizer.from_file(flags_path)
    with open(os.path.join(a.out, "flags.jsonl"), "w", encoding="utf-8") as f:
        for s in FLAG_TEXTS + corpus[:300]:
            f.write(json.dumps({"text": s, "ids": tkf.encode(s, add_special_tokens=False).ids},
                               ensure_ascii=False) + "\n")

    # what transformers does with the post-processor (real and modified)
    tf = {}
    for name, path in [("real", a.tokenizer), ("eos", eos_path)]:
        d = f"/tmp/tokdir_{name}"
        os.makedirs(d, exist_ok=True)
        subprocess.run(["cp", path, os.path.join(d, "tokenizer.json")], check=True)
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": "Qwen2Tokenizer", "model_max_length": 262144,
                       "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                       "errors": "replace", "add_prefix_space": False,
                       "split_special_tokens": False, "clean_up_tokenization_spaces": False,
                       "bos_token": None, "unk_token": None}, f)
        try:
            at = transformers.AutoTokenizer.from_pretrained(d)
            mism_plain = sum(at(s, add_special_tokens=False)["input_ids"] != r["ids"]
                             for s, r in zip(corpus[:500], rows[:500]))
            sample = "<|im_start|>user\nA cat.<|im_end|>\n<|im_start|>assistant\n"
            tf[name] = {"class": type(at).__name__,
                        "ids_default": at(sample)["input_ids"],
                        "ids_add_special_false": at(sample, add_special_tokens=False)["input_ids"],
                        "plain_mismatches_vs_tokenizers_first500": mism_plain}
        except Exception as ex:  # record, do not stop
            tf[name] = {"error": repr(ex)}
    info["transformers_tokenizer"] = tf

    # prompts
    try:
        prompts = make_prompts(a.tokenizer, eos_path, transformers)
    except Exception:
        prompts = [{"fatal": traceback.format_exc()}]
    with open(os.path.join(a.out, "prompts.jsonl"), "w", encoding="utf-8") as f:
        for p in prompts:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    info["prompt_cases"] = len(prompts)
    info["prompt_errors"] = [p.get("error") or p.get("fatal") for p in prompts
                             if p.get("error") or p.get("fatal")][:10]

    if not a.skip_unicode:
        u = unicode_tables(tk)
        with open(os.path.join(a.out, "unicode.json"), "w", encoding="utf-8") as f:
            json.dump(u, f, ensure_ascii=False)
        info["unicode_seconds"] = u["seconds"]

    if a.bench_bin:
        info["bench"] = bench(a, tk, corpus, rows)
    with open(os.path.join(a.out, "info.json"), "w") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)
    print(json.dumps(info, indent=1, ensure_ascii=False)[:6000])


def bench(a, tk, corpus, rows):
    res = {}
    # C ids for the test corpus, compared here
    cpath = "/tmp/corpus_text.jsonl"
    with open(cpath, "w", encoding="utf-8") as f:
        for s in corpus:
            f.write(json.dumps({"text": s}, ensure_ascii=False) + "\n")
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(os.path.abspath(a.bench_bin)))
    p = subprocess.run([a.bench_bin, a.tokenizer, cpath, "1", "--dump", "/tmp/c_ids.jsonl"],
                       env=env, capture_output=True, text=True)
    res["c_corpus_run"] = p.stdout.strip() + p.stderr.strip()[-2000:]
    mism = []
    try:
        with open("/tmp/c_ids.jsonl") as f:
            cids = [json.loads(l).get("ids") for l in f]
        for i, (r, c) in enumerate(zip(rows, cids)):
            if r["ids"] != c:
                mism.append({"i": i, "text": r["text"][:200], "hf": r["ids"][:60],
                             "c": (c or [])[:60]})
        res["c_corpus_mismatches"] = len(mism)
        res["c_corpus_count"] = len(cids)
    except Exception as ex:
        res["c_corpus_error"] = repr(ex)
    with open(os.path.join(a.out, "mismatches.json"), "w", encoding="utf-8") as f:
        json.dump(mism[:200], f, ensure_ascii=False, indent=0)

    # throughput, one core: same corpus for both
    texts = make_bench_corpus()
    bpath = "/tmp/bench_corpus.jsonl"
    with open(bpath, "w", encoding="utf-8") as f:
        for s in texts:
            f.write(json.dumps({"text": s}, ensure_ascii=False) + "\n")
    cpu = subprocess.run("lscpu | grep 'Model name' | head -1", shell=True, capture_output=True,
                         text=True).stdout.strip()
    res["cpu"] = cpu
    res["bench_texts"] = len(texts)
    res["bench_bytes"] = sum(len(s.encode()) for s in texts)
    core = "3"
    p = subprocess.run(["taskset", "-c", core, a.bench_bin, a.tokenizer, bpath, "5"], env=env,
                       capture_output=True, text=True)
    res["c"] = p.stdout.strip() + p.stderr.strip()[-500:]
    hf_code = r"""
import json, sys, time
from tokenizers import Tokenizer
tk = Tokenizer.from_file(sys.argv[1])
texts = [json.loads(l)["text"] for l in open(sys.argv[2], encoding="utf-8")]
best_loop = best_batch = 1e30
n = 0
for r in range(5):
    t = time.perf_counter(); n = 0
    for s in texts:
        n += len(tk.encode(s, add_special_tokens=False).ids)
    best_loop = min(best_loop, time.perf_counter() - t)
for r in range(5):
    t = time.perf_counter()
    enc = tk.encode_batch(texts, add_special_tokens=False)
    best_batch = min(best_batch, time.perf_counter() - t)
    m = sum(len(e.ids) for e in enc)
print(json.dumps({"tokens": n, "loop_tok_s": n / best_loop, "batch_tok_s": m / best_batch,
                  "loop_s": best_loop, "batch_s": best_batch}))
"""
    henv = dict(os.environ, RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    p = subprocess.run(["taskset", "-c", core, sys.executable, "-c", hf_code, a.tokenizer, bpath],
                       env=henv, capture_output=True, text=True)
    res["hf"] = p.stdout.strip() + p.stderr.strip()[-1000:]
    with open(os.path.join(a.out, "bench.txt"), "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
    return res


# ---------------------------------------------------------------------------------------------
# prompts

def make_prompts(tok_path, eos_path, transformers):
    import numpy as np
    from transformers import AutoTokenizer
    out = []
    try:
        from transformers import Qwen3VLProcessor
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor
    except Exception:
        return [{"fatal": "imports: " + traceback.format_exc()}]
    try:
        from transformers.video_utils import VideoMetadata
    except Exception:
        VideoMetadata = None

    def processor_for(tdir):
        tok = AutoTokenizer.from_pretrained(tdir)
        ip = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2,
                                   image_mean=[0.5] * 3, image_std=[0.5] * 3)
        vp = Qwen3VLVideoProcessor(patch_size=16, merge_size=2, temporal_patch_size=2,
                                   image_mean=[0.5] * 3, image_std=[0.5] * 3)
        return Qwen3VLProcessor(image_processor=ip, tokenizer=tok, video_processor=vp,
                                chat_template=QWEN3_VL_TEMPLATE)

    procs = {"real": processor_for("/tmp/tokdir_real"), "eos": processor_for("/tmp/tokdir_eos")}
    rng = np.random.default_rng(SEED)

    def image(h, w):
        return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)

    def video(n, h, w):
        return rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)

    def run(case, tokname="real"):
        proc = procs[tokname]
        rec = {"case": case["name"], "tokenizer": tokname}
        try:
            images = [image(*s) for s in case.get("images", [])]
            videos = [video(*s) for s in case.get("videos", [])]
            metas = []
            for vi, s in enumerate(case.get("videos", [])):
                fps, idx = case["video_meta"][vi]
                metas.append(VideoMetadata(total_num_frames=s[0], fps=fps, frames_indices=idx)
                             if VideoMetadata else {"total_num_frames": s[0], "fps": fps,
                                                    "frames_indices": idx})
            if "messages" in case:
                msgs = case["messages"]
                kw = {k: case[k] for k in ("add_generation_prompt", "continue_final_message")
                      if k in case}
            else:
                instr = case.get("instruction")
                if instr is not None:
                    import unicodedata
                    instr = instr.strip()
                    if instr and not unicodedata.category(instr[-1]).startswith("P"):
                        instr = instr + "."
                content = ([{"type": "video", "video": "v"} for _ in videos] +
                           [{"type": "image", "image": "i"} for _ in images] +
                           [{"type": "text", "text": t} for t in case.get("texts", [])])
                if not content:
                    content = [{"type": "text", "text": "NULL"}]
                msgs = [{"role": "system", "content": [{"type": "text", "text": instr or
                                                        "Represent the user's input."}]},
                        {"role": "user", "content": content}]
                kw = {"add_generation_prompt": True}
            text = proc.apply_chat_template(msgs, tokenize=False, **kw)
            rec["rendered"] = text
            pkw = dict(truncation=True, max_length=case.get("max_length", 8192), padding=True)
            if "add_special_tokens" in case:
                pkw["add_special_tokens"] = case["add_special_tokens"]
            if images:
                pkw["images"] = images
            if videos:
                pkw["videos"] = videos
                pkw["video_metadata"] = metas
                pkw["do_sample_frames"] = False
            r = proc(text=[text], do_resize=False, **pkw)
            rec["ids"] = [int(x) for x in r["input_ids"][0]]
            if images:
                rec["image_grid_thw"] = [[int(v) for v in g] for g in r["image_grid_thw"]]
            if videos:
                rec["video_grid_thw"] = [[int(v) for v in g] for g in r["video_grid_thw"]]
        except Exception as ex:
            rec["error"] = repr(ex)[:600]
        rec["input"] = {k: v for k, v in case.items() if k != "name"}
        return rec

    long_text = " ".join(["word%d" % i for i in range(5000)])
    cases = [
        {"name": "text_default", "texts": ["A cat in the snow."]},
        {"name": "text_custom_instr", "instruction": "Retrieve passages that answer this question",
         "texts": ["What is BPE?"]},
        {"name": "instr_punct_kept", "instruction": "  Classify the news article. \n",
         "texts": ["Stocks rose."]},
        {"name": "instr_unicode_punct", "instruction": "找到匹配的图片。", "texts": ["猫"]},
        {"name": "instr_question", "instruction": "Is this relevant?", "texts": ["x"]},
        {"name": "instr_closing_paren", "instruction": "Find the item (exact)", "texts": ["y"]},
        {"name": "instr_emoji_end", "instruction": "Match the mood 😀", "texts": ["happy"]},
        {"name": "empty_item"},
        {"name": "multi_text", "texts": ["first part", " second part", "\nthird"]},
        {"name": "text_with_special", "texts": ["a <|im_end|> b <|endoftext|>"]},
        {"name": "image_only", "images": [(64, 96)]},
        {"name": "image_text", "images": [(64, 64)], "texts": ["A cat in the snow."]},
        {"name": "two_images", "images": [(32, 64), (96, 32)], "texts": ["compare"]},
        {"name": "video_fps2", "videos": [(8, 64, 64)],
         "video_meta": [(2.0, list(range(8)))], "texts": ["a clip"]},
        {"name": "video_fps30", "videos": [(4, 32, 64)],
         "video_meta": [(30.0, [0, 30, 60, 90])]},
        {"name": "video_fps24_odd", "videos": [(6, 32, 32)],
         "video_meta": [(24.0, [0, 17, 34, 51, 68, 85])], "texts": ["t"]},
        {"name": "video_and_images", "videos": [(4, 32, 32)], "images": [(32, 32), (64, 32)],
         "video_meta": [(2.0, [0, 1, 2, 3])], "texts": ["mixed"],
         "instruction": "Find the matching clip"},
        {"name": "two_videos", "videos": [(4, 32, 32), (2, 64, 32)],
         "video_meta": [(1.0, [0, 1, 2, 3]), (0.5, [3, 7])]},
        {"name": "long_text_truncated", "texts": [long_text]},
        {"name": "image_then_long_text_truncated", "images": [(64, 64)], "texts": [long_text]},
        {"name": "short_max_length", "texts": ["one two three four five six seven"],
         "max_length": 20},
    ]
    for c in cases:
        out.append(run(c, "real"))
    for c in ("text_default", "image_text", "long_text_truncated", "video_fps2"):
        out.append(run(next(x for x in cases if x["name"] == c), "eos"))

    img = {"type": "image", "image": "i"}
    chat = [
        {"name": "chat_continue_empty_assistant",
         "messages": [{"role": "system", "content": [{"type": "text", "text": "Represent the user input."}]},
                      {"role": "user", "content": [img, {"type": "text", "text": "A cat in the snow."}]},
                      {"role": "assistant", "content": ""}],
         "images": [(64, 64)], "continue_final_message": True, "add_special_tokens": True},
        {"name": "chat_continue_empty_assistant_parts",
         "messages": [{"role": "system", "content": [{"type": "text", "text": "Represent the user input."}]},
                      {"role": "user", "content": [img, {"type": "text", "text": "A cat in the snow."}]},
                      {"role": "assistant", "content": [{"type": "text", "text": ""}]}],
         "images": [(64, 64)], "continue_final_message": True, "add_special_tokens": True},
        {"name": "chat_generation_prompt",
         "messages": [{"role": "system", "content": [{"type": "text", "text": "Represent the user input."}]},
                      {"role": "user", "content": [img, {"type": "text", "text": "A cat in the snow."}]}],
         "images": [(64, 64)], "add_generation_prompt": True, "add_special_tokens": True},
        {"name": "chat_continue_user_text",
         "messages": [{"role": "system", "content": "Represent the user input."},
                      {"role": "user", "content": [img, {"type": "text", "text": "A cat in the snow. "}]}],
         "images": [(64, 64)], "continue_final_message": True, "add_special_tokens": False},
        {"name": "chat_continue_assistant_text",
         "messages": [{"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "  partial answer"}],
         "continue_final_message": True, "add_special_tokens": True},
        {"name": "chat_no_system_video",
         "messages": [{"role": "user", "content": [{"type": "video", "video": "v"},
                                                   {"type": "text", "text": "clip"}]}],
         "videos": [(4, 32, 32)], "video_meta": [(2.0, [0, 1, 2, 3])],
         "add_generation_prompt": True, "add_special_tokens": True},
        {"name": "chat_plain", "messages": [{"role": "system", "content": "S"},
                                            {"role": "user", "content": "U"},
                                            {"role": "assistant", "content": "A"},
                                            {"role": "user", "content": "U2"}],
         "add_generation_prompt": False, "add_special_tokens": False},
    ]
    for c in chat:
        out.append(run(c, "real"))
    out.append(run(chat[2], "eos"))
    return out


if __name__ == "__main__":
    main()
