#!/usr/bin/env bash
# vlembedctl tokenize: ids equal to HF's for corpus lines, one error line naming the input line
# for invalid UTF-8 (and exit status 1), refusal of a missing or malformed tokenizer (exit 100).
set -u
B=${VL_BUILD:-build}
TOK=$B/deps/tokenizer-qwen3/tokenizer.json
[ -f "$TOK" ] || TOK=build/deps/tokenizer-qwen3/tokenizer.json
CORPUS=tests/data/tokenizer/corpus.jsonl
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# 200 corpus lines through the CLI, compared with HF's ids
head -n 200 "$CORPUS" > "$tmp/in.jsonl"
"$B/vlembedctl" tokenize --tokenizer "$TOK" < "$tmp/in.jsonl" > "$tmp/out.jsonl" || fail "exit status $?"
python3 - "$tmp/in.jsonl" "$tmp/out.jsonl" <<'PY' || fail "ids differ"
import json, sys
want = [json.loads(l)["ids"] for l in open(sys.argv[1], encoding="utf-8")]
got = [json.loads(l)["ids"] for l in open(sys.argv[2], encoding="utf-8")]
assert len(want) == len(got) == 200, (len(want), len(got))
bad = [i for i in range(200) if want[i] != got[i]]
assert not bad, bad[:5]
PY

# invalid UTF-8 on line 2: an error line naming it, the other lines still answered
printf '{"text":"ok"}\n{"text":"bad \xff byte"}\n{"text":"<|im_start|>hi"}\n' > "$tmp/bad.jsonl"
"$B/vlembedctl" tokenize --tokenizer "$TOK" < "$tmp/bad.jsonl" > "$tmp/bad.out" 2> "$tmp/bad.err"
rc=$?
[ $rc -eq 1 ] || fail "exit status $rc for a bad line, want 1"
sed -n 2p "$tmp/bad.out" | grep -q '"error":"line 2: invalid UTF-8 at byte 4"' || fail "line 2: $(sed -n 2p "$tmp/bad.out")"
sed -n 3p "$tmp/bad.out" | grep -q '{"ids":\[151644,6023\]}' || fail "line 3: $(sed -n 3p "$tmp/bad.out")"
grep -q "line 2" "$tmp/bad.err" || fail "no message on stderr"

# missing and malformed tokenizer files are refused at load with a message, exit 100
"$B/vlembedctl" tokenize --tokenizer /nonexistent.json < /dev/null 2> "$tmp/e1"; rc=$?
[ $rc -eq 100 ] && grep -q "cannot open" "$tmp/e1" || fail "missing file: rc $rc $(cat "$tmp/e1")"
echo '{"model": {"type": "Unigram", "vocab": []}}' > "$tmp/uni.json"
"$B/vlembedctl" tokenize --tokenizer "$tmp/uni.json" < /dev/null 2> "$tmp/e2"; rc=$?
[ $rc -eq 100 ] && grep -q 'model type "Unigram" is not supported' "$tmp/e2" || fail "unigram: rc $rc $(cat "$tmp/e2")"
"$B/vlembedctl" tokenize < /dev/null 2>/dev/null; [ $? -eq 2 ] || fail "no --tokenizer should be a usage error"
echo "ok"
