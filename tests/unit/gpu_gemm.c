/* GPU test of the own Hopper GEMM (worker/cuda/gemm_sm90.h) against a float64 CPU reference and
 * against cuBLASLt (gemm.h) + vl_swiglu (act.h), at the language models' real widths.
 *
 * Inputs are random (X uniform in [-1, 1], W in [-0.1, 0.1], never zeros), drawn on the device;
 * outputs are poisoned (NaN) before every call. Row counts M in {1, 7, 64, 333, 4464, 16384}
 * (none but 64 and 16384 a multiple of the 128-row tile), plus shapes whose N is not a multiple
 * of the 256-column tile and whose K is not a multiple of the 64-deep k-block.
 *
 * Checks and tolerances (relative L2 error ||got - ref|| / ||ref||, every value finite):
 *  - vs the CPU reference (float64 sums of the same bf16 inputs; SwiGLU: gate and up rounded to
 *    bf16, silu rounded to bf16, product rounded, as vl_swiglu): 8e-3, only the output's bf16
 *    rounding remains (an indexing error gives > 5e-2). Rows: all for M <= 64, else 8 rows
 *    (first, last, and spread between) -- the CPU cannot do 16384 x 24576 x 4096 in a test.
 *  - vs cuBLASLt on every element: 4e-3 (fp32 accumulation order differs, so a bf16 output
 *    flips by one ulp now and then; the share of bit-identical outputs is printed). The residual
 *    form adds in bf16 after rounding the product (gemm_sm90.h), cuBLASLt adds in fp32: the same
 *    bound holds (measured <= 2.8e-3, bit-identical where cuBLASLt does not split K).
 *  - SwiGLU epilogue bit-exact: vl_gemm_sm90_swiglu must equal, in every bit, vl_swiglu applied
 *    to this kernel's own plain [M, 2I] output (identical fp32 accumulators: same kernel, same
 *    K order), i.e. the fused epilogue reproduces vl_swiglu's roundings exactly.
 *  - q/k RMSNorm + MRoPE epilogue (vl_gemm_sm90_qk_norm_mrope) bit-exact: every output equal, in
 *    every bit, to the own plain GEMM then vl_qk_norm_mrope on the same inputs (the epilogue
 *    follows that kernel's roundings and its sum-of-squares order); against cuBLASLt +
 *    vl_qk_norm_mrope (the cublas path) 4e-3 like the plain form, the share of bit-identical
 *    values printed; against the CPU reference (float64 product rounded to bf16, then RMSNorm
 *    with a float64 sum of squares and the reference's bf16 roundings, cos/sin from the device
 *    table vl_mrope_table, which gpu_kernels checks) 8e-3. Random activations, weights, norm
 *    weights (uniform in [0.5, 1.5], never zero) and (t, h, w) positions below 4096; M in {1, 7,
 *    333, 4464, 16384} at the 2B (16 q / 8 kv heads, K 2048) and 8B (32 / 8, K 4096) widths, and
 *    3 q / 1 kv heads (a tile holding a q and a k head, N = 640 not a multiple of 256).
 *  - ViT qkv + bias + 2-D rope epilogue (vl_gemm_sm90_vit_qkv_rope, head_dim 64): against
 *    cuBLASLt's bias epilogue + vl_vit_rope 4e-3, and the share of bit-identical values printed
 *    (the own kernel's fp32 accumulators equal cuBLASLt's where it does not split K, and the
 *    epilogue does cuBLASLt's fp32 bias add and vl_vit_rope's fp32 rotation, so 100 % is
 *    expected there); against the CPU reference (float64 product + bias rounded to bf16, the
 *    rotation with each product and the sum rounded to fp32, cos/sin from vl_vit_rope_table)
 *    8e-3. Bias uniform in [-1, 1], positions below 128; M in {1, 7, 333, 4464, 16384} at the 2B
 *    vision width (16 heads, K 1024), and 2 heads (N = 384: a half tile past N). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/gpu/gpu_util.h"
#include "tests/test.h"
#include "worker/cuda/act.h"
#include "worker/cuda/bf16.h"
#include "worker/cuda/device.h"
#include "worker/cuda/gemm.h"
#include "worker/cuda/gemm_sm90.h"
#include "worker/cuda/rope.h"

#define REF_TOL 8e-3
#define CUBLAS_TOL 4e-3
#define REF_ROWS 8

static struct vl_gemm *g_lt;
static uint64_t g_seed = 1;

/* Sampled rows for the CPU reference: all when M <= 64, else REF_ROWS spread over [0, M). */
static int ref_rows(int M, int *rows)
{
    if (M <= 64) {
        for (int i = 0; i < M; i++)
            rows[i] = i;
        return M;
    }
    for (int i = 0; i < REF_ROWS; i++)
        rows[i] = (int)((int64_t)(M - 1) * i / (REF_ROWS - 1));
    rows[1] = 1; /* the second row and a row in the last tile's middle, too */
    rows[REF_ROWS - 2] = M - 1 - (M % 128) / 2;
    return REF_ROWS;
}

/* Row r of a device [*, cols] bf16 matrix as floats. */
static float *get_row(const uint16_t *d, int r, int cols)
{
    uint16_t *h = gu_download(d + (size_t)r * cols, (size_t)cols * 2);
    float *f = gu_bf16_to_f32(h, cols);
    free(h);
    return f;
}

/* Relative L2 difference of two device bf16 buffers of n values, in chunks; counts identical
 * values and non-finite ones in a. */
static double diff_dev(const uint16_t *a, const uint16_t *b, size_t n, size_t *same, size_t *bad)
{
    size_t chunk = 1 << 24;
    uint16_t *ha = malloc(chunk * 2), *hb = malloc(chunk * 2);
    double num = 0, den = 0;
    *same = 0, *bad = 0;
    for (size_t at = 0; at < n; at += chunk) {
        size_t k = n - at < chunk ? n - at : chunk;
        vl_cuda_d2h(ha, a + at, k * 2, NULL);
        vl_cuda_d2h(hb, b + at, k * 2, NULL);
        vl_cuda_stream_sync(NULL);
        for (size_t i = 0; i < k; i++) {
            float x = vl_bf16_to_float(ha[i]), y = vl_bf16_to_float(hb[i]);
            if (!isfinite(x)) {
                (*bad)++;
                continue;
            }
            *same += ha[i] == hb[i];
            num += (double)(x - y) * (x - y);
            den += (double)y * y;
        }
    }
    free(ha), free(hb);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int check_vs(const char *what, const uint16_t *got, const uint16_t *ref, size_t n,
                    double tol)
{
    size_t same, bad;
    double rel = diff_dev(got, ref, n, &same, &bad);
    int ok = bad == 0 && rel <= tol;
    fprintf(stderr, "  %-52s rel=%.3e (tol %.0e) identical %.2f%%%s\n", what, rel, tol,
            100.0 * same / n, ok ? "" : "  <-- FAIL");
    if (bad)
        fprintf(stderr, "    %zu non-finite outputs\n", bad);
    return ok;
}

/* Plain / accumulate form: Y = (Y0 +) X W^T, N x K weights. */
/* The n bf16 values at device pointer w as host floats (caller frees). */
static float *weights_f32(const uint16_t *w, size_t n)
{
    uint16_t *hw = gu_download(w, n * 2);
    float *f = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        f[i] = vl_bf16_to_float(hw[i]);
    free(hw);
    return f;
}

/* sum over k of x[k] w[k], in double, k ascending: the CPU reference of one output value. */
static double dot_f64(const float *x, const float *w, int K)
{
    double s = 0;
    for (int k = 0; k < K; k++)
        s += (double)x[k] * w[k];
    return s;
}

static void plain_case(int M, int N, int K, int acc)
{
    size_t xn = (size_t)M * K, wn = (size_t)N * K, yn = (size_t)M * N;
    uint16_t *x = vl_cuda_malloc(xn * 2), *w = vl_cuda_malloc(wn * 2);
    uint16_t *y0 = vl_cuda_malloc(yn * 2), *y = vl_cuda_malloc(yn * 2),
             *yl = vl_cuda_malloc(yn * 2);
    vl_cuda_fill_random_bf16(x, xn, g_seed++, 1.0f, NULL);
    vl_cuda_fill_random_bf16(w, wn, g_seed++, 0.1f, NULL);
    vl_cuda_fill_random_bf16(y0, yn, g_seed++, 1.0f, NULL);
    if (acc) {
        vl_cuda_d2d(y, y0, yn * 2, NULL);
        vl_cuda_d2d(yl, y0, yn * 2, NULL);
    } else {
        gu_poison(y, yn * 2);
        gu_poison(yl, yn * 2);
    }
    vl_cuda_stream_sync(NULL);
    vl_gemm_sm90_bf16(NULL, M, N, K, x, w, y, acc);
    vl_gemm_bf16(g_lt, NULL, M, N, K, x, w, NULL, yl, VL_GEMM_PLAIN, acc);
    vl_cuda_stream_sync(NULL);

    int rows[64], nr = ref_rows(M, rows);
    float *ref = malloc((size_t)nr * N * sizeof(float)), *got = malloc((size_t)nr * N * 4);
    float *wf = weights_f32(w, wn);
    for (int i = 0; i < nr; i++) {
        float *xr = get_row(x, rows[i], K), *yr = get_row(y, rows[i], N);
        float *y0r = acc ? get_row(y0, rows[i], N) : NULL;
        for (int n = 0; n < N; n++) {
            double s = dot_f64(xr, wf + (size_t)n * K, K);
            if (acc)
                s += y0r[n];
            ref[(size_t)i * N + n] = (float)s;
            got[(size_t)i * N + n] = yr[n];
        }
        free(xr), free(yr), free(y0r);
    }
    char name[128];
    snprintf(name, sizeof name, "sm90 M=%d N=%d K=%d acc=%d vs CPU (%d rows)", M, N, K, acc, nr);
    CHECK(gu_compare(name, got, ref, (size_t)nr * N, REF_TOL));
    snprintf(name, sizeof name, "sm90 M=%d N=%d K=%d acc=%d vs cuBLASLt", M, N, K, acc);
    CHECK(check_vs(name, y, yl, yn, CUBLAS_TOL));
    free(ref), free(got), free(wf);
    vl_cuda_free(x), vl_cuda_free(w), vl_cuda_free(y0), vl_cuda_free(y), vl_cuda_free(yl);
}

static float silu_bf16(float g)
{
    return vl_bf16_round(g / (1.0f + expf(-g)));
}

/* SwiGLU form: act[M, I] from the fused [2I, K] gate_up weight. */
static void swiglu_case(int M, int I, int K)
{
    size_t xn = (size_t)M * K, wn = (size_t)2 * I * K, an = (size_t)M * I;
    uint16_t *x = vl_cuda_malloc(xn * 2), *w = vl_cuda_malloc(wn * 2);
    uint16_t *gu = vl_cuda_malloc(2 * an * 2), *act = vl_cuda_malloc(an * 2),
             *act_own = vl_cuda_malloc(an * 2), *act_lt = vl_cuda_malloc(an * 2);
    vl_cuda_fill_random_bf16(x, xn, g_seed++, 1.0f, NULL);
    vl_cuda_fill_random_bf16(w, wn, g_seed++, 0.1f, NULL);
    gu_poison(act, an * 2);
    gu_poison(act_own, an * 2);
    gu_poison(act_lt, an * 2);
    gu_poison(gu, 2 * an * 2);
    vl_gemm_sm90_swiglu(NULL, M, I, K, x, w, act);
    /* the same accumulators through the unfused path: own plain GEMM, then vl_swiglu */
    vl_gemm_sm90_bf16(NULL, M, 2 * I, K, x, w, gu, 0);
    vl_swiglu(NULL, gu, act_own, M, I);
    /* the current production path: cuBLASLt, then vl_swiglu */
    gu_poison(gu, 2 * an * 2);
    vl_gemm_bf16(g_lt, NULL, M, 2 * I, K, x, w, NULL, gu, VL_GEMM_PLAIN, 0);
    vl_swiglu(NULL, gu, act_lt, M, I);
    vl_cuda_stream_sync(NULL);

    char name[128];
    size_t same, bad;
    diff_dev(act, act_own, an, &same, &bad);
    int exact = same == an && bad == 0;
    fprintf(stderr, "  %-52s %zu of %zu differ%s\n", "", an - same, an, exact ? "" : "  <-- FAIL");
    snprintf(name, sizeof name, "swiglu M=%d I=%d K=%d bit-exact vs own GEMM + vl_swiglu", M, I, K);
    fprintf(stderr, "  ^ %s\n", name);
    CHECK(exact);
    snprintf(name, sizeof name, "swiglu M=%d I=%d K=%d vs cuBLASLt + vl_swiglu", M, I, K);
    CHECK(check_vs(name, act, act_lt, an, CUBLAS_TOL));

    int rows[64], nr = ref_rows(M, rows);
    float *ref = malloc((size_t)nr * I * sizeof(float)), *got = malloc((size_t)nr * I * 4);
    float *wf = weights_f32(w, wn);
    for (int i = 0; i < nr; i++) {
        float *xr = get_row(x, rows[i], K), *ar = get_row(act, rows[i], I);
        for (int n = 0; n < I; n++) {
            double sg = dot_f64(xr, wf + (size_t)n * K, K);
            double su = dot_f64(xr, wf + (size_t)(I + n) * K, K);
            float gq = vl_bf16_round((float)sg), uq = vl_bf16_round((float)su);
            ref[(size_t)i * I + n] = silu_bf16(gq) * uq;
            got[(size_t)i * I + n] = ar[n];
        }
        free(xr), free(ar);
    }
    snprintf(name, sizeof name, "swiglu M=%d I=%d K=%d vs CPU (%d rows)", M, I, K, nr);
    CHECK(gu_compare(name, got, ref, (size_t)nr * I, REF_TOL));
    free(ref), free(got), free(wf);
    vl_cuda_free(x), vl_cuda_free(w), vl_cuda_free(gu), vl_cuda_free(act);
    vl_cuda_free(act_own), vl_cuda_free(act_lt);
}

/* CPU q/k norm + MRoPE of one bf16-valued head v[128] in place (the reference's roundings). */
static void cpu_qk_norm_mrope(float *v, const float *w, const uint16_t *cs_row, float eps)
{
    double ss = 0;
    for (int d = 0; d < 128; d++)
        ss += (double)v[d] * v[d];
    float rs = (float)(1.0 / sqrt(ss / 128 + eps)), xn[128];
    for (int d = 0; d < 128; d++)
        xn[d] = vl_bf16_round(vl_bf16_round(v[d] * rs) * w[d]);
    for (int d = 0; d < 128; d++) {
        int i = d % 64;
        float c = vl_bf16_to_float(cs_row[i]), sn = vl_bf16_to_float(cs_row[64 + i]);
        float rh = d < 64 ? -xn[d + 64] : xn[d - 64];
        v[d] = vl_bf16_round(vl_bf16_round(xn[d] * c) + vl_bf16_round(rh * sn));
    }
}

/* qkv GEMM with the q/k RMSNorm + MRoPE epilogue: [M, (nq + 2 nkv) 128] from X [M, K]. */
static void qkrope_case(int M, int nq, int nkv, int K)
{
    const int hd = 128, sec[3] = {24, 20, 20};
    const float eps = 1e-6f;
    int N = (nq + 2 * nkv) * hd;
    size_t xn = (size_t)M * K, wn = (size_t)N * K, yn = (size_t)M * N;
    uint16_t *x = vl_cuda_malloc(xn * 2), *w = vl_cuda_malloc(wn * 2);
    uint16_t *y = vl_cuda_malloc(yn * 2), *yo = vl_cuda_malloc(yn * 2),
             *yl = vl_cuda_malloc(yn * 2);
    vl_cuda_fill_random_bf16(x, xn, g_seed++, 1.0f, NULL);
    vl_cuda_fill_random_bf16(w, wn, g_seed++, 0.1f, NULL);
    uint16_t *hqw = gu_rand_bf16(hd, 0.5f, 1.5f), *hkw = gu_rand_bf16(hd, 0.5f, 1.5f);
    int32_t *pos = malloc((size_t)M * 3 * 4);
    for (int i = 0; i < 3 * M; i++)
        pos[i] = (int32_t)(gu_next() % 4096);
    uint16_t *qw = gu_upload(hqw, hd * 2), *kw = gu_upload(hkw, hd * 2);
    int32_t *dpos = gu_upload(pos, (size_t)M * 3 * 4);
    uint16_t *cs = vl_cuda_malloc((size_t)M * hd * 2);
    gu_poison(cs, (size_t)M * hd * 2);
    vl_mrope_table(NULL, dpos, M, hd, sec, 5e6f, cs);
    gu_poison(y, yn * 2);
    gu_poison(yo, yn * 2);
    gu_poison(yl, yn * 2);
    vl_gemm_sm90_qk_norm_mrope(NULL, M, nq, nkv, hd, K, x, w, y, qw, kw, cs, eps);
    /* the same accumulators unfused: own plain GEMM, then the separate kernel */
    vl_gemm_sm90_bf16(NULL, M, N, K, x, w, yo, 0);
    vl_qk_norm_mrope(NULL, yo, M, nq, nkv, hd, qw, kw, cs, eps);
    /* the cublas path: cuBLASLt, then the separate kernel */
    vl_gemm_bf16(g_lt, NULL, M, N, K, x, w, NULL, yl, VL_GEMM_PLAIN, 0);
    vl_qk_norm_mrope(NULL, yl, M, nq, nkv, hd, qw, kw, cs, eps);
    vl_cuda_stream_sync(NULL);

    char name[128];
    size_t same, bad;
    diff_dev(y, yo, yn, &same, &bad);
    int exact = same == yn && bad == 0;
    fprintf(stderr, "  %-52s %zu of %zu differ, %zu non-finite%s\n", "", yn - same, yn, bad,
            exact ? "" : "  <-- FAIL");
    snprintf(name, sizeof name, "qkrope M=%d nq=%d nkv=%d K=%d bit-exact vs own GEMM + kernel", M,
             nq, nkv, K);
    fprintf(stderr, "  ^ %s\n", name);
    CHECK(exact);
    snprintf(name, sizeof name, "qkrope M=%d nq=%d nkv=%d K=%d vs cuBLASLt + kernel", M, nq, nkv,
             K);
    CHECK(check_vs(name, y, yl, yn, CUBLAS_TOL));

    int rows[64], nr = ref_rows(M, rows);
    float *ref = malloc((size_t)nr * N * sizeof(float)), *got = malloc((size_t)nr * N * 4);
    float *wf = weights_f32(w, wn), qwf[128], kwf[128];
    for (int d = 0; d < hd; d++)
        qwf[d] = vl_bf16_to_float(hqw[d]), kwf[d] = vl_bf16_to_float(hkw[d]);
    for (int i = 0; i < nr; i++) {
        float *xr = get_row(x, rows[i], K), *yr = get_row(y, rows[i], N);
        uint16_t *csr = gu_download(cs + (size_t)rows[i] * hd, hd * 2);
        float *rr = ref + (size_t)i * N;
        for (int n = 0; n < N; n++) {
            double sm = dot_f64(xr, wf + (size_t)n * K, K);
            rr[n] = vl_bf16_round((float)sm);
            got[(size_t)i * N + n] = yr[n];
        }
        for (int hh = 0; hh < nq + nkv; hh++)
            cpu_qk_norm_mrope(rr + hh * hd, hh < nq ? qwf : kwf, csr, eps);
        free(xr), free(yr), free(csr);
    }
    snprintf(name, sizeof name, "qkrope M=%d nq=%d nkv=%d K=%d vs CPU (%d rows)", M, nq, nkv, K,
             nr);
    CHECK(gu_compare(name, got, ref, (size_t)nr * N, REF_TOL));
    free(ref), free(got), free(wf), free(hqw), free(hkw), free(pos);
    vl_cuda_free(x), vl_cuda_free(w), vl_cuda_free(y), vl_cuda_free(yo), vl_cuda_free(yl);
    vl_cuda_free(qw), vl_cuda_free(kw), vl_cuda_free(dpos), vl_cuda_free(cs);
}

/* ViT qkv with bias and the 2-D rope: [M, 3 heads 64] from X [M, K]. */
static void vitrope_case(int M, int heads, int K)
{
    const int hd = 64;
    int N = 3 * heads * hd;
    size_t xn = (size_t)M * K, wn = (size_t)N * K, yn = (size_t)M * N;
    uint16_t *x = vl_cuda_malloc(xn * 2), *w = vl_cuda_malloc(wn * 2), *b = vl_cuda_malloc(N * 2);
    uint16_t *y = vl_cuda_malloc(yn * 2), *yl = vl_cuda_malloc(yn * 2);
    vl_cuda_fill_random_bf16(x, xn, g_seed++, 1.0f, NULL);
    vl_cuda_fill_random_bf16(w, wn, g_seed++, 0.1f, NULL);
    vl_cuda_fill_random_bf16(b, N, g_seed++, 1.0f, NULL);
    int32_t *pos4 = malloc((size_t)M * 16);
    for (int i = 0; i < M; i++) {
        pos4[4 * i] = (int32_t)(gu_next() % 128), pos4[4 * i + 1] = (int32_t)(gu_next() % 128);
        pos4[4 * i + 2] = pos4[4 * i + 3] = 128;
    }
    int32_t *dpos = gu_upload(pos4, (size_t)M * 16);
    float *cs = vl_cuda_malloc((size_t)M * hd * 4);
    gu_poison(cs, (size_t)M * hd * 4);
    vl_vit_rope_table(NULL, dpos, M, hd, cs);
    gu_poison(y, yn * 2);
    gu_poison(yl, yn * 2);
    vl_gemm_sm90_vit_qkv_rope(NULL, M, heads, hd, K, x, w, b, y, cs);
    vl_gemm_bf16(g_lt, NULL, M, N, K, x, w, b, yl, VL_GEMM_BIAS, 0);
    vl_vit_rope(NULL, yl, M, heads, hd, cs);
    vl_cuda_stream_sync(NULL);

    char name[128];
    snprintf(name, sizeof name, "vitrope M=%d heads=%d K=%d vs cuBLASLt+bias + vit_rope", M, heads,
             K);
    CHECK(check_vs(name, y, yl, yn, CUBLAS_TOL));

    int rows[64], nr = ref_rows(M, rows);
    float *ref = malloc((size_t)nr * N * sizeof(float)), *got = malloc((size_t)nr * N * 4);
    float *wf = weights_f32(w, wn), *bf = get_row(b, 0, N);
    for (int i = 0; i < nr; i++) {
        float *xr = get_row(x, rows[i], K), *yr = get_row(y, rows[i], N);
        float *csr = gu_download(cs + (size_t)rows[i] * hd, hd * 4);
        float *rr = ref + (size_t)i * N;
        for (int n = 0; n < N; n++) {
            double sm = dot_f64(xr, wf + (size_t)n * K, K);
            rr[n] = vl_bf16_round((float)(sm + bf[n]));
            got[(size_t)i * N + n] = yr[n];
        }
        for (int hh = 0; hh < 2 * heads; hh++) { /* q and k heads */
            float *v = rr + hh * hd;
            for (int d = 0; d < hd / 2; d++) {
                float a = v[d], bb = v[d + hd / 2], c = csr[d], sn = csr[hd / 2 + d];
                float pa = a * c, pb = bb * sn, qa = bb * c, qb = a * sn;
                v[d] = vl_bf16_round(pa - pb);
                v[d + hd / 2] = vl_bf16_round(qa + qb);
            }
        }
        free(xr), free(yr), free(csr);
    }
    snprintf(name, sizeof name, "vitrope M=%d heads=%d K=%d vs CPU (%d rows)", M, heads, K, nr);
    CHECK(gu_compare(name, got, ref, (size_t)nr * N, REF_TOL));
    free(ref), free(got), free(wf), free(bf), free(pos4);
    vl_cuda_free(x), vl_cuda_free(w), vl_cuda_free(b), vl_cuda_free(y), vl_cuda_free(yl);
    vl_cuda_free(dpos), vl_cuda_free(cs);
}

static const int g_ms[] = {1, 7, 64, 333, 4464, 16384};
#define N_MS (int)(sizeof g_ms / sizeof g_ms[0])

TEST(test_odd_shapes)
{
    plain_case(300, 264, 200, 0); /* N past one 256 tile, K not a multiple of 64 */
    plain_case(130, 72, 96, 1);
    plain_case(1, 8, 8, 0);
    swiglu_case(129, 128, 136);
    qkrope_case(129, 3, 1, 136); /* a tile with a q and a k head; N = 640 */
    qkrope_case(1, 3, 1, 64);
    vitrope_case(129, 2, 136); /* N = 384: the second column tile's second half is past N */
    vitrope_case(1, 2, 64);
}

TEST(test_qkrope)
{
    static const int ms[] = {1, 7, 333, 4464, 16384};
    for (int i = 0; i < 5; i++) {
        qkrope_case(ms[i], 16, 8, 2048); /* 2B */
        qkrope_case(ms[i], 32, 8, 4096); /* 8B */
        vitrope_case(ms[i], 16, 1024);   /* 2B vision tower */
    }
}

TEST(test_2b)
{
    for (int i = 0; i < N_MS; i++) {
        int M = g_ms[i];
        swiglu_case(M, 6144, 2048);   /* gate_up + SwiGLU */
        plain_case(M, 4096, 2048, 0); /* qkv */
        plain_case(M, 2048, 2048, 1); /* o + residual */
        plain_case(M, 2048, 6144, 1); /* down + residual */
    }
    plain_case(4464, 12288, 2048, 0); /* gate_up unfused */
}

TEST(test_8b)
{
    for (int i = 0; i < N_MS; i++) {
        int M = g_ms[i];
        swiglu_case(M, 12288, 4096);   /* gate_up + SwiGLU */
        plain_case(M, 4096, 12288, 1); /* down + residual */
    }
}

static void test_all(void)
{
    struct vl_device_info info;
    char err[256];
    if (vl_cuda_device_count() < 1 || vl_cuda_device_open(0, &info, err, sizeof err)) {
        fprintf(stderr, "no CUDA device: this test needs the GPU machine\n");
        test_failures++;
        return;
    }
    fprintf(stderr, "device: %s (%d SMs, cc %d.%d)\n", info.name, info.sm_count, info.cc_major,
            info.cc_minor);
    if (!vl_gemm_sm90_available()) {
        if (info.cc_major == 9 && info.cc_minor == 0) {
            fprintf(stderr, "cc 9.0 device but the sm_90a GEMM is not available\n");
            test_failures++;
        } else {
            fprintf(stderr, "not a cc 9.0 device: the sm_90a GEMM is not used here, nothing to "
                            "test\n");
        }
        return;
    }
    g_lt = vl_gemm_create(32u << 20);
    TEST_RUN_ONE(test_odd_shapes);
    TEST_RUN_ONE(test_2b);
    TEST_RUN_ONE(test_8b);
    TEST_RUN_ONE(test_qkrope);
    vl_gemm_free(g_lt);
}

TEST_MAIN(test_all)
