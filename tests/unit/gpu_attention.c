/* GPU test of the varlen attention kernel (worker/cuda/attention.h) against a float64 CPU
 * reference on the same bf16 inputs: the language model's shape (head dim 128, GQA 16/8 and
 * 32/8, causal) and the vision towers' (head dims 64 and 72, non-causal), on packed batches
 * of odd lengths (1, tile boundaries +- 1, > several tiles), inputs random, output poisoned.
 * Every block variant (16-row warps in blocks of 4 or 8, 32-row warps) is checked.
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

static void attn_case(int nh, int nkv, int hd, int causal, const int *lens, int nseq, int warps,
                      int qkv_fused)
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
    uint16_t *dbuf = gu_upload(buf, (size_t)T * W * 2);
    int32_t *dcu = gu_upload(cu, (size_t)(nseq + 1) * 4);
    uint16_t *dout = vl_cuda_malloc((size_t)T * nh * hd * 2);
    gu_poison(dout, (size_t)T * nh * hd * 2);
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
    vl_attention_variant(NULL, &a, warps);
    vl_cuda_device_sync();

    float *ref = malloc((size_t)T * nh * hd * sizeof(float));
    double *sc = malloc((size_t)maxlen * sizeof(double));
    for (int s = 0; s < nseq; s++)
        for (int h = 0; h < nh; h++) {
            int g = h / (nh / nkv);
            for (int i = 0; i < lens[s]; i++) {
                const uint16_t *q = buf + (size_t)(cu[s] + i) * W + h * hd;
                int nk = causal ? i + 1 : lens[s];
                double mx = -1e300, sum = 0;
                for (int j = 0; j < nk; j++) {
                    const uint16_t *k = buf + (size_t)(cu[s] + j) * W + (nh + g) * hd;
                    double d = 0;
                    for (int e = 0; e < hd; e++)
                        d += (double)vl_bf16_to_float(q[e]) * vl_bf16_to_float(k[e]);
                    sc[j] = d / sqrt((double)hd);
                    if (sc[j] > mx)
                        mx = sc[j];
                }
                for (int j = 0; j < nk; j++)
                    sum += (sc[j] = exp(sc[j] - mx));
                for (int e = 0; e < hd; e++) {
                    double o = 0;
                    for (int j = 0; j < nk; j++)
                        o += sc[j] * vl_bf16_to_float(
                                         buf[(size_t)(cu[s] + j) * W + (nh + nkv + g) * hd + e]);
                    ref[(size_t)(cu[s] + i) * nh * hd + h * hd + e] = (float)(o / sum);
                }
            }
        }
    char name[96];
    snprintf(name, sizeof name, "attn h=%d/%d d=%d %s %d seqs T=%d warps=%d%s", nh, nkv, hd,
             causal ? "causal" : "full", nseq, T, warps, qkv_fused ? "" : " sep");
    CHECK(gu_compare_dev_bf16(name, dout, ref, (size_t)T * nh * hd, ATTN_TOL));
    free(buf), free(ref), free(sc);
    vl_cuda_free(dbuf), vl_cuda_free(dcu), vl_cuda_free(dout), vl_cuda_free(ds);
}

TEST(test_lm_attention)
{
    int lens[] = {1, 17, 64, 65, 200, 513, 128, 3};
    for (int w = 4; w <= 8; w += 4) {
        attn_case(16, 8, 128, 1, lens, 8, w, 1);
        attn_case(32, 8, 128, 1, lens + 3, 3, w, 0);
    }
    attn_case(6, 2, 16, 1, lens, 8, 4, 1); /* the tiny test checkpoint's shape */
    attn_case(4, 2, 32, 1, lens, 5, 4, 0);
}

TEST(test_vit_attention)
{
    int lens[] = {4, 64, 100, 1024, 16, 129};
    for (int w = 2; w <= 8; w *= 2) {
        attn_case(16, 16, 64, 0, lens, 6, w, 1);
        attn_case(16, 16, 72, 0, lens, 6, w, 1);
        attn_case(16, 16, 72, 0, lens + 4, 2, w, 0);
    }
    attn_case(3, 3, 16, 0, lens, 6, 4, 1);
    attn_case(3, 3, 16, 0, lens, 6, 2, 1);
    attn_case(4, 4, 80, 0, lens, 6, 4, 0);
    attn_case(4, 4, 80, 0, lens, 6, 2, 0);
    attn_case(4, 2, 32, 1, lens, 6, 2, 0); /* causal with 32-row warps */
    attn_case(4, 2, 64, 1, lens, 6, 2, 1);
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
