/* Helpers for the GPU tests (tests/unit/gpu_*.c) and CUDA benchmarks: random bf16 data, device
 * buffers poisoned with NaN before each run, and comparisons that print both sides. */
#ifndef VL_TESTS_GPU_UTIL_H
#define VL_TESTS_GPU_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/cuda/bf16.h"
#include "worker/cuda/device.h"

static uint64_t gu_rng = 0x243f6a8885a308d3ull;

static inline uint64_t gu_next(void)
{
    gu_rng ^= gu_rng << 13;
    gu_rng ^= gu_rng >> 7;
    gu_rng ^= gu_rng << 17;
    return gu_rng;
}

/* Uniform in [lo, hi). */
static inline float gu_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((gu_next() >> 40) * (1.0 / 16777216.0));
}

static inline uint16_t *gu_rand_bf16(size_t n, float lo, float hi)
{
    uint16_t *h = (uint16_t *)malloc(n * 2 + 16);
    for (size_t i = 0; i < n; i++)
        h[i] = vl_float_to_bf16(gu_uniform(lo, hi));
    return h;
}

static inline void *gu_upload(const void *h, size_t bytes)
{
    void *d = vl_cuda_malloc(bytes ? bytes : 16);
    vl_cuda_h2d(d, h, bytes, NULL);
    vl_cuda_stream_sync(NULL);
    return d;
}

static inline void *gu_download(const void *d, size_t bytes)
{
    void *h = malloc(bytes ? bytes : 16);
    vl_cuda_d2h(h, d, bytes, NULL);
    vl_cuda_stream_sync(NULL);
    return h;
}

/* Fills a device buffer with 0xFF bytes: NaN as bf16 and as float32, so an element that a
 * kernel forgets to write fails the comparison. */
static inline void gu_poison(void *d, size_t bytes)
{
    vl_cuda_memset(d, 0xff, bytes, NULL);
    vl_cuda_stream_sync(NULL);
}

/* Compares n values; got/ref as floats. Passes when every value is finite and
 * ||got - ref|| / ||ref|| <= tol. Prints the worst element on failure. Returns 1 if ok. */
static inline int gu_compare(const char *what, const float *got, const float *ref, size_t n,
                             double tol)
{
    double num = 0, den = 0, worst = -1;
    size_t wi = 0, nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) {
            if (!nonfinite)
                wi = i;
            nonfinite++;
            continue;
        }
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
        if (!nonfinite && fabs(d) > worst)
            worst = fabs(d), wi = i;
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    int ok = nonfinite == 0 && rel <= tol;
    fprintf(stderr, "  %-44s n=%-9zu rel_err=%.3e (tol %.1e)%s\n", what, n, rel, tol,
            ok ? "" : "  <-- FAIL");
    if (!ok)
        fprintf(stderr, "    %zu non-finite; element %zu: got %.6g ref %.6g\n", nonfinite, wi,
                (double)got[wi], (double)ref[wi]);
    return ok;
}

static inline float *gu_bf16_to_f32(const uint16_t *h, size_t n)
{
    float *f = (float *)malloc(n * sizeof(float) + 16);
    for (size_t i = 0; i < n; i++)
        f[i] = vl_bf16_to_float(h[i]);
    return f;
}

/* Compares a device bf16 buffer with a float reference. */
static inline int gu_compare_dev_bf16(const char *what, const uint16_t *d, const float *ref,
                                      size_t n, double tol)
{
    uint16_t *h = (uint16_t *)gu_download(d, n * 2);
    float *f = gu_bf16_to_f32(h, n);
    int ok = gu_compare(what, f, ref, n, tol);
    free(h);
    free(f);
    return ok;
}

#endif
