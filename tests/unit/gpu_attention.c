/* GPU test of the varlen attention kernel (worker/cuda/attention.h) against a float64 CPU
 * reference on the same bf16 inputs: the language model's shape (head dim 128, GQA 16/8 and
 * 32/8, causal) and the vision towers' (head dims 64 and 72, non-causal), on packed batches
 * of odd lengths (1, tile boundaries +- 1, > several tiles), inputs random, output poisoned.
 * Every variant (mma.sync: 16-row warps in blocks of 4 or 8, 32-row warps; wgmma: key tiles of
 * 128 or 64; the warp-specialised persistent ones, whose blocks loop over several work items
 * here; those computing part of the softmax exponentials on the FMA pipe, 112-119; the head-pair
 * one 120 (head dim 128, even GQA groups: 16/8, 32/8, 4/2, 8/2 and 2/1 here, causal and not;
 * reported as skipped on the group-1 batch) and the 4-consumer-warpgroup one 123 (head dim 64);
 * and the default) is checked against one reference per batch.
 * Tolerance: relative L2 error 1e-2. The kernel rounds probabilities to bf16 before the PV
 * product (as FlashAttention-2 does) and rounds the output to bf16: ~3e-3 expected; a wrong
 * mask or index gives > 1e-1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/gpu/gpu_util.h"
#include "tests/test.h"
#include "worker/cuda/attention.h"

#define ATTN_TOL 1e-2

/* Runs every variant in `variants` (terminated by -1) on one packed batch and compares each
 * with one float64 reference; the output is poisoned before each run. A wgmma variant the
 * device cannot run (not compute capability 9.0) is reported and skipped. */
static void attn_case(int nh, int nkv, int hd, int causal, const int *lens, int nseq,
                      const int *variants, int qkv_fused)
{
    int T = 0, maxlen = 0;
    int32_t cu[64];
    cu[0] = 0;
    for (int i = 0; i < nseq; i++) {
        T += lens[i];
        cu[i + 1] = T;
        if (lens[i] > maxlen)
            maxlen = lens[i];
    }
    /* fused layout [T, (nh + 2 nkv) hd] like the QKV projection, or separate buffers */
    int W = (nh + 2 * nkv) * hd;
    uint16_t *buf = gu_rand_bf16((size_t)T * W, -2, 2);
    float *fb = gu_bf16_to_f32(buf, (size_t)T * W);
    uint16_t *dbuf = gu_upload(buf, (size_t)T * W * 2);
    int32_t *dcu = gu_upload(cu, (size_t)(nseq + 1) * 4);
    uint16_t *dout = vl_cuda_malloc((size_t)T * nh * hd * 2);
    struct vl_attn_args a = {0};
    a.q = dbuf;
    a.k = dbuf + nh * hd;
    a.v = dbuf + (nh + nkv) * hd;
    a.q_stride = a.k_stride = a.v_stride = W;
    uint16_t *ds = NULL;
    if (!qkv_fused) { /* q, k, v as three contiguous arrays (checks the strides) */
        ds = vl_cuda_malloc((size_t)T * W * 2);
        uint16_t *sep = malloc((size_t)T * W * 2);
        for (int t = 0; t < T; t++) {
            memcpy(sep + (size_t)t * nh * hd, buf + (size_t)t * W, (size_t)nh * hd * 2);
            memcpy(sep + (size_t)T * nh * hd + (size_t)t * nkv * hd, buf + (size_t)t * W + nh * hd,
                   (size_t)nkv * hd * 2);
            memcpy(sep + (size_t)T * (nh + nkv) * hd + (size_t)t * nkv * hd,
                   buf + (size_t)t * W + (nh + nkv) * hd, (size_t)nkv * hd * 2);
        }
        vl_cuda_h2d(ds, sep, (size_t)T * W * 2, NULL);
        vl_cuda_stream_sync(NULL);
        free(sep);
        a.q = ds;
        a.k = ds + (size_t)T * nh * hd;
        a.v = ds + (size_t)T * (nh + nkv) * hd;
        a.q_stride = nh * hd;
        a.k_stride = a.v_stride = nkv * hd;
    }
    a.o = dout;
    a.o_stride = nh * hd;
    a.cu_seqlens = dcu;
    a.n_seqs = nseq;
    a.max_seqlen = maxlen;
    a.n_heads = nh;
    a.n_kv_heads = nkv;
    a.head_dim = hd;
    a.causal = causal;
    a.scale = 1.0f / sqrtf((float)hd);

    float *ref = malloc((size_t)T * nh * hd * sizeof(float));
    double *sc = malloc((size_t)maxlen * sizeof(double)),
           *acc = malloc((size_t)hd * sizeof(double));
    for (int s = 0; s < nseq; s++)
        for (int h = 0; h < nh; h++) {
            int g = h / (nh / nkv);
            for (int i = 0; i < lens[s]; i++) {
                const float *q = fb + (size_t)(cu[s] + i) * W + h * hd;
                int nk = causal ? i + 1 : lens[s];
                double mx = -1e300, sum = 0;
                for (int j = 0; j < nk; j++) {
                    const float *k = fb + (size_t)(cu[s] + j) * W + (nh + g) * hd;
                    double d = 0;
                    for (int e = 0; e < hd; e++)
                        d += (double)q[e] * k[e];
                    sc[j] = d / sqrt((double)hd);
                    if (sc[j] > mx)
                        mx = sc[j];
                }
                for (int e = 0; e < hd; e++)
                    acc[e] = 0;
                for (int j = 0; j < nk; j++) {
                    double p = exp(sc[j] - mx);
                    const float *v = fb + (size_t)(cu[s] + j) * W + (nh + nkv + g) * hd;
                    sum += p;
                    for (int e = 0; e < hd; e++)
                        acc[e] += p * v[e];
                }
                for (int e = 0; e < hd; e++)
                    ref[(size_t)(cu[s] + i) * nh * hd + h * hd + e] = (float)(acc[e] / sum);
            }
        }
    for (const int *vp = variants; *vp >= 0; vp++) {
        char name[128];
        snprintf(name, sizeof name, "attn h=%d/%d d=%d %s %d seqs T=%d max=%d var=%d%s", nh, nkv,
                 hd, causal ? "causal" : "full", nseq, T, maxlen, *vp, qkv_fused ? "" : " sep");
        if (!vl_attention_variant_available(&a, *vp)) {
            fprintf(stderr, "  %-44s skipped: variant not available on this device\n", name);
            continue;
        }
        gu_poison(dout, (size_t)T * nh * hd * 2);
        vl_attention_variant(NULL, &a, *vp);
        vl_cuda_device_sync();
        CHECK(gu_compare_dev_bf16(name, dout, ref, (size_t)T * nh * hd, ATTN_TOL));
    }
    free(buf), free(fb), free(ref), free(sc), free(acc);
    vl_cuda_free(dbuf), vl_cuda_free(dcu), vl_cuda_free(dout), vl_cuda_free(ds);
}

/* wgmma variants (attention.h) and the mma.sync ones, each list ended by -1 */
static const int V_HD128[] = {4,
                              8,
                              VL_ATTN_SM90_N128,
                              VL_ATTN_SM90_N64,
                              VL_ATTN_SM90_N64_S4,
                              VL_ATTN_SM90_N64_S4_OV,
                              VL_ATTN_SM90_N128_S3_OV,
                              VL_ATTN_SM90_N32_S4_OV,
                              VL_ATTN_SM90_WS,
                              VL_ATTN_SM90_WS_PP,
                              VL_ATTN_SM90_WS_BIG,
                              VL_ATTN_SM90_WS_RR,
                              VL_ATTN_SM90_N64_E2,
                              VL_ATTN_SM90_WS_E2,
                              VL_ATTN_SM90_N64_GP,
                              0,
                              -1};
static const int V_HD64[] = {2,
                             4,
                             8,
                             VL_ATTN_SM90_N128,
                             VL_ATTN_SM90_N64,
                             VL_ATTN_SM90_N64_S4,
                             VL_ATTN_SM90_N64_S4_OV,
                             VL_ATTN_SM90_N128_S3_OV,
                             VL_ATTN_SM90_N128_S4_OV_1B,
                             VL_ATTN_SM90_WS,
                             VL_ATTN_SM90_WS_PP,
                             VL_ATTN_SM90_WS3,
                             VL_ATTN_SM90_WS_BIG,
                             VL_ATTN_SM90_WS_RR,
                             VL_ATTN_SM90_OV_E2,
                             VL_ATTN_SM90_OV_E3,
                             VL_ATTN_SM90_OV_E4,
                             VL_ATTN_SM90_WS_BIG_E2,
                             VL_ATTN_SM90_WS_BIG_E3,
                             VL_ATTN_SM90_WS_BIG_E4,
                             VL_ATTN_SM90_WS4,
                             0,
                             -1};
static const int V_HD72[] = {2, 4, 8, 0, -1};
static const int V_SMALL[] = {4, 2, 0, -1};
static const int V_SMALL4[] = {4, 0, -1};
/* every length the brief names: 1, 3, tile edges +- 1, odd sizes, several tiles */
static const int LENS_ALL[] = {1, 3, 16, 17, 64, 65, 100, 128, 129, 200, 513, 1024};

TEST(test_lm_attention)
{
    int lens[] = {1, 17, 64, 65, 200, 513, 128, 3};
    attn_case(16, 8, 128, 1, lens, 8, V_HD128, 1);
    attn_case(32, 8, 128, 1, lens + 3, 3, V_HD128, 0);
    attn_case(4, 2, 128, 1, LENS_ALL, 12, V_HD128, 0);
    attn_case(4, 4, 128, 0, LENS_ALL, 12, V_HD128, 1); /* head dim 128 without the mask */
    attn_case(8, 2, 128, 0, LENS_ALL, 12, V_HD128, 0); /* ... with GQA (head pairs, group 4) */
    int longl[] = {2100, 5};
    attn_case(2, 1, 128, 1, longl, 2, V_HD128, 1);
    attn_case(6, 2, 16, 1, lens, 8, V_SMALL4, 1); /* the tiny test checkpoint's shape */
    attn_case(4, 2, 32, 1, lens, 5, V_SMALL4, 0);
}

TEST(test_vit_attention)
{
    int lens[] = {4, 64, 100, 1024, 16, 129};
    attn_case(16, 16, 64, 0, lens, 6, V_HD64, 1);
    attn_case(4, 4, 64, 0, LENS_ALL, 12, V_HD64, 0);
    attn_case(16, 16, 72, 0, lens, 6, V_HD72, 1);
    attn_case(16, 16, 72, 0, lens + 4, 2, V_HD72, 0);
    int longl[] = {7056, 5};
    attn_case(1, 1, 64, 0, longl, 2, V_HD64, 1); /* a 1344 x 1344 image's patch count */
    attn_case(3, 3, 16, 0, lens, 6, V_SMALL, 1);
    attn_case(4, 4, 80, 0, lens, 6, V_SMALL, 0);
    int small_c[] = {4, 2, -1};
    attn_case(4, 2, 32, 1, lens, 6, small_c, 0); /* causal with 32-row warps */
    attn_case(4, 2, 64, 1, lens, 6, V_HD64, 1);
    attn_case(4, 2, 64, 1, LENS_ALL, 12, V_HD64, 0);
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
    fprintf(stderr, "device: %s\n", info.name);
    TEST_RUN_ONE(test_lm_attention);
    TEST_RUN_ONE(test_vit_attention);
}

TEST_MAIN(test_all)
