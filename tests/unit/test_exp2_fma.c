/* vl_exp2_fma (worker/cuda/exp2_fma.h), the FMA-pipe 2^x of the Hopper attention kernel's
 * softmax, on the CPU (the same source the kernel compiles; fmaf is exact fused multiply-add in
 * both): every 13th float (by bit pattern; 1.7e8 of them) in [-124, 8] within relative error 7.5e-5
 * of 2^x in double (the header's promise; the polynomial's minimax error is 7.48e-5, so a wrong
 * coefficient or reduction fails by far), and below -124 (down to -inf) finite, >= 0 and <= 2^-123,
 * never NaN. Also checks the bound is tight (the error reaches > 5e-5 somewhere: a test that cannot
 * fail would not). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tests/test.h"
#include "worker/cuda/exp2_fma.h"

static float f_of(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

TEST(test_range_relative_error)
{
    /* every 13th float in [-124, 8]: walk the bit patterns of the negative half down from -0
     * and of the positive half up from +0 (13: prime, so every mantissa residue is hit) */
    double worst = 0, worst_x = 0;
    long n = 0, bad = 0;
    for (int sign = 0; sign < 2; sign++) {
        for (uint32_t b = sign ? 0x80000000u : 0u;; b += 13) {
            float x = f_of(b);
            if (sign ? x < -124.0f : x > 8.0f)
                break;
            double want = exp2((double)x), got = vl_exp2_fma(x);
            double rel = fabs(got / want - 1.0);
            if (!(rel <= 7.5e-5))
                bad++;
            if (rel > worst)
                worst = rel, worst_x = x;
            n++;
        }
    }
    fprintf(stderr, "  %ld sampled floats in [-124, 8]: max relative error %.3e at x = %.9g\n", n,
            worst, worst_x);
    CHECK_EQ_INT(bad, 0);
    CHECK(worst > 5e-5); /* the polynomial's error shows: the values came from it */
    CHECK(n > 160000000L);
}

TEST(test_below_range)
{
    long n = 0, bad = 0;
    for (uint32_t b = 0x80000000u | 0x42f80000u /* -124 */; b < 0xff800001u; b += 97) {
        float x = f_of(b), r = vl_exp2_fma(x);
        if (!(r >= 0.0f && r <= 0x1p-123f))
            bad++;
        n++;
    }
    float r = vl_exp2_fma(-INFINITY);
    CHECK(r >= 0.0f && r <= 0x1p-123f);
    r = vl_exp2_fma(-FLT_MAX);
    CHECK(r >= 0.0f && r <= 0x1p-123f);
    CHECK_EQ_INT(bad, 0);
    CHECK(n > 1000);
    /* exact points */
    CHECK_NEAR(vl_exp2_fma(0.0f), 1.0, 7.5e-5);
    CHECK_NEAR(vl_exp2_fma(8.0f), 256.0, 256 * 7.5e-5);
    CHECK_NEAR(vl_exp2_fma(-1.5f), 0.35355339059327373, 0.3536 * 7.5e-5);
}

TEST_MAIN(test_range_relative_error, test_below_range)
