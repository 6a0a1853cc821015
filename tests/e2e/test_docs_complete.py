#!/usr/bin/env python3
"""Docs are a feature: everything a user can set or see is in docs/, checked from the code.

* every option of every binary and vlembedctl subcommand (from its own --help) is named in
  docs/*.md as `--name`, and --help prints a type for it;
* every metric name in the sources is in docs/metrics.md;
* every (status, code) the gateway's API code can answer is a row of docs/errors.md's table;
* every request field the JSON parser accepts (its allowed-key lists) is in docs/api.md;
* every key of what a real gateway + CPU worker serve (HTTP /v1/embeddings with text + image,
  /v1/embeddings/preview, /v1/models, /health, /ready, /metrics names, the msgpack API's result,
  preview and error answers) is in docs/api.md (or docs/metrics.md for metrics).

Fails with the list of what is missing, so a new flag, metric, error or field cannot land
undocumented."""
import glob
import os
import re
import subprocess
import sys

ROOT = os.environ.get("VL_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
BUILD = os.environ.get("VL_BUILD") or os.path.join(ROOT, "build")
DOCS = {p: open(p, encoding="utf-8").read() for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))}
ALL_DOCS = "\n".join(DOCS.values())
missing = []


def doc(name):
    return DOCS[os.path.join(ROOT, "docs", name)]


def help_options(argv):
    """(name, type) for each option line '  --name  type  help' of argv --help."""
    r = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        missing.append(f"{' '.join(argv)} --help exits {r.returncode}")
        return []
    opts = re.findall(r"^\s+--([a-z0-9-]+)\s+(string|integer|number|size|bool)\b", r.stdout, re.M)
    if not opts:
        missing.append(f"{' '.join(argv)} --help lists no options:\n{r.stdout[:300]}")
    return opts


# 1. options -------------------------------------------------------------------------------
binaries = [[os.path.join(BUILD, b)] for b in ("vlembed-supervisor", "vlembed-gateway", "vlembed-worker")]
ctl = os.path.join(BUILD, "vlembedctl")
out = subprocess.run([ctl, "--help"], capture_output=True, text=True, timeout=30)
subs = re.findall(r"^  ([a-z][a-z-]+)\s{2,}", out.stdout + out.stderr, re.M)
if len(subs) < 5:
    missing.append(f"vlembedctl --help lists {subs}")
binaries += [[ctl, s] for s in subs]
n_opts = 0
for argv in binaries:
    for name, typ in help_options(argv):
        n_opts += 1
        # `--name` anywhere, or the config-file key in backquotes in a table (`name`, `name_x`)
        keyish = {name, name.replace("-", "_")}
        if f"--{name}" not in ALL_DOCS and not any(f"`{k}`" in ALL_DOCS for k in keyish):
            missing.append(f"option --{name} of {' '.join(os.path.basename(a) for a in argv)} ({typ})")

# 2. metrics -------------------------------------------------------------------------------
src = ""
for d in ("gateway", "supervisor", "worker", "common"):
    for p in glob.glob(os.path.join(ROOT, d, "**", "*.[ch]"), recursive=True):
        src += open(p, encoding="utf-8", errors="replace").read()
metrics = {re.sub(r"_(bucket|count|sum)$", "", m) for m in re.findall(r'"(vlembed_[a-z_]+)', src)}
for m in sorted(metrics):
    if m not in doc("metrics.md"):
        missing.append(f"metric {m} not in docs/metrics.md")

# 3. errors --------------------------------------------------------------------------------
api_src = ""
for p in glob.glob(os.path.join(ROOT, "gateway", "*.c")):
    api_src += open(p, encoding="utf-8", errors="replace").read()
rows = re.findall(r"^\|\s*(\d{3})\s*\|[^|]*\|([^|]*)\|", doc("errors.md"), re.M)
documented = {(int(s), c) for s, codes in rows for c in re.findall(r"`([a-z_]+)`", codes)}
errs = set(re.findall(r'api_err_set\([^,]+,\s*(\d{3}),\s*"[a-z_]+",\s*"([a-z_]+)"', api_src))
if len(errs) < 10:
    missing.append(f"found only {len(errs)} api_err_set calls: the pattern is out of date")
for status, code in sorted(errs):
    if (int(status), code) not in documented:
        missing.append(f"error {status} {code} not a row of docs/errors.md")

# 4. request fields ------------------------------------------------------------------------
parse_src = open(os.path.join(ROOT, "gateway", "api_parse.c"), encoding="utf-8").read()
fields = set()
for lst in re.findall(r"static const char \*const \w+\[\]\s*=\s*\{([^}]*)\}", parse_src):
    fields |= set(re.findall(r'"([a-z_]+)"', lst))
if len(fields) < 10:
    missing.append(f"found only {len(fields)} request fields: the pattern is out of date")
for f in sorted(fields):
    if f"`{f}`" not in doc("api.md"):
        missing.append(f"request field `{f}` not in docs/api.md")

# 5. the served schema ----------------------------------------------------------------------
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vlharness  # noqa: E402  (starts real processes; after the static checks)


def keys_of(v, path, out):
    if isinstance(v, dict):
        for k, x in v.items():
            out.add((k, f"{path}.{k}" if path else k))
            keys_of(x, f"{path}.{k}" if path else k, out)
    elif isinstance(v, list):
        for x in v[:3]:
            keys_of(x, path + "[]", out)


def documented_key(k, text):
    return re.search(r"`[^`\n]*\b" + re.escape(k) + r"\b[^`\n]*`", text) is not None


served = set()
c = vlharness.Cluster(n_workers=1)
try:
    png = vlharness.data_uri(os.path.join(ROOT, "tests/data/goldens/media/image.png"))
    item = {"text": "a red square", "image": png, "instruction": "Find the picture."}
    for path, body in (("/v1/embeddings", {"model": "tiny", "input": ["a cat", item]}),
                       ("/v1/embeddings", {"model": "tiny", "input": "x", "encoding_format": "base64",
                                           "dimensions": 16}),
                       ("/v1/embeddings/preview", {"model": "tiny", "input": [item]}),
                       ("/v1/embeddings", {"model": "tiny", "input": [{"image": "data:image/png;base64,AAAA"}]})):
        st, _, r = c.post(body, path=path)
        if not isinstance(r, dict):
            missing.append(f"POST {path}: status {st}, not a JSON object")
            continue
        keys_of(r, "", served)
    for path in ("/v1/models", "/health", "/ready"):
        st, _, r = c.get(path)
        if isinstance(r, dict):
            keys_of(r, "", served)
        elif st != 200:
            missing.append(f"GET {path}: status {st}")
    m = vlharness.MsgpackClient(c.api_socket)
    for req in ({"id": 7, "input": ["a cat", item]}, {"id": 8, "type": "preview", "input": [item]},
                {"id": 9, "input": [{"image": b""}]}):
        m.send(req)
        a = m.recv()
        keys_of(a, "", served)
    m.close()
    st, _, text = c.get("/metrics")
    text = text if isinstance(text, str) else text.decode() if isinstance(text, bytes) else ""
    for name in sorted(set(re.findall(r"^(vlembed_[a-z_]+)", text, re.M))):
        name = re.sub(r"_(bucket|count|sum)$", "", name)
        if name not in doc("metrics.md"):
            missing.append(f"served metric {name} not in docs/metrics.md")
finally:
    c.stop()
if len(served) < 20:
    missing.append(f"only {len(served)} served keys seen: the requests above failed")
for k, path in sorted(served, key=lambda x: x[1]):
    if not documented_key(k, doc("api.md")):
        missing.append(f"served key `{k}` ({path}) not in docs/api.md")

print(f"checked {n_opts} options of {len(binaries)} commands, {len(metrics)} metrics, "
      f"{len(errs)} error codes, {len(fields)} request fields, {len(served)} served keys")
if missing:
    print("undocumented:\n  " + "\n  ".join(missing))
    sys.exit(1)
print("ok")
