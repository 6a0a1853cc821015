#!/usr/bin/env bash
# The fuzz targets in the test suite: build them (make fuzz-bins) and run each for a short fixed
# time (FUZZ_TEST_SECONDS, default 12 s; the long runs are `make fuzz`, docs/security.md). Fails
# on any crash, sanitizer report, leak or timeout. Skips (exit 0) only if clang cannot build a
# libFuzzer binary here (clang or libclang-rt-dev missing); `make deps` installs both.
set -u
ROOT=${VL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${VL_BUILD:-$ROOT/build}
cd "$ROOT"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' >"$probe/p.c"
if ! ${FUZZ_CC:-clang} -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>"$probe/err"; then
  echo "SKIP: clang with libFuzzer is not available: $(head -1 "$probe/err")"
  exit 0
fi
make -s -j2 BUILD="$BUILD" fuzz-bins || { echo "FAIL: make fuzz-bins"; exit 1; }
bash tests/fuzz/run.sh "$BUILD" "${FUZZ_TEST_SECONDS:-12}" http api_json mpapi image safetensors
