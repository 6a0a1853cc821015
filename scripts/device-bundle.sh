#!/usr/bin/env bash
# Makes build/bundle: vlembed's binaries, test and bench binaries (in the same layout as BUILD,
# so `tests/run_gpu.sh build/bundle` and `bench/run.sh build/bundle` work there) plus every
# shared library they load that the GPU machine (Ubuntu 24.04 + CUDA 13, ../shared/GPU.md) does
# not provide, in build/bundle/lib. Run there with LD_LIBRARY_PATH=build/bundle/lib. < 64 MiB.
#   usage: scripts/device-bundle.sh [BUILD]
set -euo pipefail
BUILD=${1:-build}
OUTD=$BUILD/bundle
rm -rf "$OUTD"
mkdir -p "$OUTD/lib"
bins=("$BUILD"/vlembed-* "$BUILD"/vlembedctl)
# The CPU unit tests (tests/test_*) run in CI, not there: only with VL_BUNDLE_CPU_TESTS=1, which
# can exceed the transfer limit.
cpu_tests=()
[ -n "${VL_BUNDLE_CPU_TESTS:-}" ] && cpu_tests=("$BUILD"/tests/test_*)
for t in "${cpu_tests[@]}" "$BUILD"/tests/gpu_* "$BUILD"/bench/*; do
  [ -x "$t" ] && [ -f "$t" ] && bins+=("$t")
done
# Provided by the GPU machine (or the kernel): never copied.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libgcc_s|libstdc\+\+|libcuda\.so|libcudart|libcublas|libcudnn|libnvidia|libnvrtc)'
for b in "${bins[@]}"; do
  rel=${b#"$BUILD"/}
  mkdir -p "$OUTD/$(dirname "$rel")"
  cp "$b" "$OUTD/$rel"
  ldd "$b" | awk '/=> \//{print $1" "$3}' | while read -r name path; do
    if echo "$name" | grep -qE "$skip"; then continue; fi
    [ -e "$OUTD/lib/$name" ] || cp -L "$path" "$OUTD/lib/$name"
  done
done
strip --strip-unneeded "$OUTD"/lib/*.so* 2>/dev/null || true
size=$(du -sm "$OUTD" | cut -f1)
echo "bundle: $OUTD (${#bins[@]} binaries, $(ls "$OUTD/lib" | wc -l) libraries, ${size} MiB)"
if [ "$size" -ge 60 ]; then echo "bundle: too large for the GPU machine's 64 MiB transfer" >&2; exit 1; fi
echo "run there with: LD_LIBRARY_PATH=$OUTD/lib $OUTD/vlembed-worker ...  (or tests/run_gpu.sh $OUTD)"
