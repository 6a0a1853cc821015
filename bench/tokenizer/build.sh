#!/usr/bin/env bash
# Builds bench_tok (tokenizer throughput) into OUTDIR with only libcjson and libutf8proc as
# shared dependencies, and copies those two libraries next to it for the GPU machine:
#   bench/tokenizer/build.sh OUTDIR      then: LD_LIBRARY_PATH=OUTDIR OUTDIR/bench_tok ...
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-build/bench-tok}
mkdir -p "$OUT"
${CC:-cc} -std=gnu17 -O2 -g -Wall -Wextra -Wno-unused-parameter -I. -D_GNU_SOURCE -pthread \
  -o "$OUT/bench_tok" bench/tokenizer/bench_tok.c gateway/tokenizer.c gateway/tok_encode.c \
  gateway/tok_bpe.c gateway/tok_unicode.c common/alloc.c common/log.c -lcjson -lutf8proc -lm
for lib in libcjson.so.1 libutf8proc.so.2; do
  cp -L "/usr/lib/x86_64-linux-gnu/$lib" "$OUT/"
done
echo "built $OUT/bench_tok"
