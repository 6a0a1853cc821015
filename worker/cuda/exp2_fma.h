/* 2^x on the FMA pipe: the exponential the Hopper attention kernel (attention_sm90.cu) computes
 * for part of its softmax probabilities instead of the MUFU `ex2.approx` instruction, whose 16
 * results per clock per SM equal the tensor cores' rate at head dim 64.
 *
 * Cody-Waite range reduction: x = j + f with j = round(x) (by the 1.5 * 2^23 rounding-constant
 * trick: t = x + 1.5 * 2^23 holds j in its low mantissa bits) and f = x - j in [-0.5, 0.5]
 * (exact); 2^f by a degree-3 minimax polynomial (relative error, Remez exchange over
 * [-0.5, 0.5]); 2^j by adding j << 23 to the polynomial's exponent field with integer ops.
 * Seven floating-point instructions (a max, three adds, three FMAs) and two integer ones (a
 * shift and an add), no MUFU.
 *
 * Promise: for x in [-124, 8] the result's relative error to 2^x is at most 7.5e-5 (the
 * polynomial's 7.48e-5 plus fp32 rounding; tests/unit/test_exp2_fma.c checks every float in
 * that range); for x < -124, -inf included, the result is finite, >= 0 and <= 2^-123 (not 0:
 * a masked score's probability is ~2^-126, 2^126 times below the row's largest term, which is
 * >= 1 in the kernel, so it changes no sum or output); the result is never NaN or negative.
 * x > 8 does not occur in the kernel (its stale row max bounds the exponents by 8); the
 * reduction stays exact up to x < 127. Usable from C (host tests) and CUDA device code. */
#ifndef VL_WORKER_CUDA_EXP2_FMA_H
#define VL_WORKER_CUDA_EXP2_FMA_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define VL_EXP2_FMA_FN static __host__ __device__ __forceinline__
#else
#define VL_EXP2_FMA_FN static inline
#endif

/* p(f) = C0 + C1 f + C2 f^2 + C3 f^3 ~ 2^f on [-0.5, 0.5], max relative error 7.48e-5 */
#define VL_EXP2_FMA_C0 9.999280572e-01f /* 0x3f7ffb49 */
#define VL_EXP2_FMA_C1 6.932609677e-01f /* 0x3f31798d */
#define VL_EXP2_FMA_C2 2.426111251e-01f /* 0x3e786f0d */
#define VL_EXP2_FMA_C3 5.517166853e-02f /* 0x3d61fbb0 */
#define VL_EXP2_FMA_ROUND 12582912.0f   /* 1.5 * 2^23 */

VL_EXP2_FMA_FN float vl_exp2_fma(float x)
{
    /* j >= -126 keeps the exponent field below >= 0 (p's is 126 or 127); -inf -> ~2^-126 */
    x = fmaxf(x, -126.0f);
    float t = x + VL_EXP2_FMA_ROUND;
    float j = t - VL_EXP2_FMA_ROUND; /* round(x) */
    float f = x - j;
    float p =
        fmaf(fmaf(fmaf(VL_EXP2_FMA_C3, f, VL_EXP2_FMA_C2), f, VL_EXP2_FMA_C1), f, VL_EXP2_FMA_C0);
    uint32_t pb, tb;
#ifdef __CUDA_ARCH__
    pb = __float_as_uint(p);
    tb = __float_as_uint(t);
#else
    memcpy(&pb, &p, 4);
    memcpy(&tb, &t, 4);
#endif
    /* t's low 9 bits are j mod 512: shifted into the exponent field, they add j (two's
     * complement, wrapping the bits above away) to p's exponent */
    pb += tb << 23;
#ifdef __CUDA_ARCH__
    return __uint_as_float(pb);
#else
    float r;
    memcpy(&r, &pb, 4);
    return r;
#endif
}

#endif
