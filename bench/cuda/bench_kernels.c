/* Kernel benchmarks on the GPU machine (make bench): the cuBLAS bf16 GEMM ceiling at the
 * model's projection shapes, and the varlen attention kernel's TFLOP/s at the language
 * model's and vision towers' shapes, each next to its reference ceiling. Random inputs, device
 * events, warm-up then the median of repeated runs. Prints one table (markdown). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/gpu/gpu_util.h"
#include "worker/cuda/attention.h"
#include "worker/cuda/device.h"
#include "worker/cuda/act.h"
#include "worker/cuda/gemm.h"
#include "worker/cuda/gemm_sm90.h"
#include "worker/cuda/rope.h"

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Median milliseconds of `reps` timed calls of fn(ctx) after `warm` untimed ones. */
static float time_ms(void (*fn)(void *), void *ctx, int warm, int reps)
{
    vl_event_t e0 = vl_cuda_event_create(), e1 = vl_cuda_event_create();
    float t[64] = {0};
    if (reps > 64)
        reps = 64;
    for (int i = 0; i < warm; i++)
        fn(ctx);
    for (int i = 0; i < reps; i++) {
        vl_cuda_event_record(e0, NULL);
        fn(ctx);
        vl_cuda_event_record(e1, NULL);
        vl_cuda_event_sync(e1);
        t[i] = vl_cuda_event_ms(e0, e1);
    }
    qsort(t, reps, sizeof(float), cmp_f);
    vl_cuda_event_destroy(e0);
    vl_cuda_event_destroy(e1);
    return t[reps / 2];
}

struct gemm_ctx {
    struct vl_gemm *g;
    int M, N, K;
    uint16_t *x, *w, *y;
    size_t w_elems; /* room at w for this many bf16 values */
};

static void gemm_fn(void *p)
{
    struct gemm_ctx *c = p;
    vl_gemm_bf16(c->g, NULL, c->M, c->N, c->K, c->x, c->w, NULL, c->y, VL_GEMM_PLAIN, 0);
}

/* Mean milliseconds per call of 40 back-to-back calls (after 5), each with the next of up to 8
 * distinct weight copies, as in a forward where every layer has its own weights and the card
 * runs at its sustained (power-limited) clock rather than a short burst's. */
static float gemm_sustained_ms(struct gemm_ctx *c)
{
    size_t we = (size_t)c->N * c->K;
    int nw = (int)(c->w_elems / we);
    if (nw > 8)
        nw = 8;
    vl_event_t e0 = vl_cuda_event_create(), e1 = vl_cuda_event_create();
    for (int i = 0; i < 45; i++) {
        if (i == 5)
            vl_cuda_event_record(e0, NULL);
        vl_gemm_bf16(c->g, NULL, c->M, c->N, c->K, c->x, c->w + (size_t)(i % nw) * we, NULL, c->y,
                     VL_GEMM_PLAIN, 0);
    }
    vl_cuda_event_record(e1, NULL);
    vl_cuda_event_sync(e1);
    float ms = vl_cuda_event_ms(e0, e1) / 40;
    vl_cuda_event_destroy(e0);
    vl_cuda_event_destroy(e1);
    return ms;
}

struct attn_ctx {
    struct vl_attn_args a;
    int warps;
};

static void attn_fn(void *p)
{
    struct attn_ctx *c = p;
    vl_attention_variant(NULL, &c->a, c->warps);
}

/* 1 when `v` is one of the comma-separated numbers in `sel` */
static int attn_selected(const char *sel, int v)
{
    for (const char *p = sel; *p;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p)
            return 0;
        if (x == v)
            return 1;
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}

static void bench_attn(const char *label, int nh, int nkv, int hd, int causal, int seqlen,
                       int total)
{
    int nseq = total / seqlen, T = nseq * seqlen, W = (nh + 2 * nkv) * hd;
    uint16_t *qkv = vl_cuda_malloc((size_t)T * W * 2), *o = vl_cuda_malloc((size_t)T * nh * hd * 2);
    vl_cuda_fill_random_bf16(qkv, (size_t)T * W, 7, 2.0f, NULL);
    int32_t *cu = malloc((size_t)(nseq + 1) * 4);
    for (int i = 0; i <= nseq; i++)
        cu[i] = i * seqlen;
    int32_t *dcu = gu_upload(cu, (size_t)(nseq + 1) * 4);
    struct attn_ctx c = {0};
    c.a.q = qkv;
    c.a.k = qkv + nh * hd;
    c.a.v = qkv + (nh + nkv) * hd;
    c.a.q_stride = c.a.k_stride = c.a.v_stride = W;
    c.a.o = o;
    c.a.o_stride = nh * hd;
    c.a.cu_seqlens = dcu;
    c.a.n_seqs = nseq;
    c.a.max_seqlen = seqlen;
    c.a.n_heads = nh;
    c.a.n_kv_heads = nkv;
    c.a.head_dim = hd;
    c.a.causal = causal;
    c.a.scale = 1.0f / sqrtf((float)hd);
    /* FLOPs: 4 * S^2 * hd per head per sequence, halved for causal */
    double flops = 4.0 * seqlen * (double)seqlen * hd * nh * nseq * (causal ? 0.5 : 1.0);
    /* the mma.sync kernel's variants and the wgmma kernel's (attention.h), in the same run */
    static const struct {
        int v;
        const char *name;
    } vars[] = {
        {2, "mma.sync 4 warps x 32 rows"},
        {4, "mma.sync 4 warps x 16 rows"},
        {VL_ATTN_SM90_N128, "wgmma 128-key tiles, 2 stages"},
        {VL_ATTN_SM90_N64, "wgmma 64-key tiles, 2 stages"},
        {VL_ATTN_SM90_N64_S4, "wgmma 64-key tiles, 4 stages"},
        {VL_ATTN_SM90_N64_S4_OV, "wgmma 64-key tiles, 4 stages, overlap"},
        {VL_ATTN_SM90_N128_S3_OV, "wgmma 128-key tiles, 3 stages, overlap"},
        {VL_ATTN_SM90_N128_S4_OV_1B, "wgmma 128-key tiles, 4 stages, overlap, 1 block/SM"},
        {VL_ATTN_SM90_N32_S4_OV, "wgmma 32-key tiles, 4 stages, overlap"},
        {VL_ATTN_SM90_WS, "wgmma warp-specialised persistent (107)"},
        {VL_ATTN_SM90_WS_PP, "wgmma warp-specialised persistent, ping-pong (108)"},
        {VL_ATTN_SM90_WS3, "wgmma warp-specialised persistent, 3 consumer WGs (109)"},
        {VL_ATTN_SM90_WS_BIG, "wgmma warp-specialised persistent, 128-key tiles, setmaxnreg (110)"},
        {VL_ATTN_SM90_WS_RR, "wgmma warp-specialised persistent, setmaxnreg (111)"},
        {VL_ATTN_SM90_OV_E2, "wgmma 103 + 2/8 exp2 on the FMA pipe (112)"},
        {VL_ATTN_SM90_OV_E3, "wgmma 103 + 3/8 exp2 on the FMA pipe (113)"},
        {VL_ATTN_SM90_OV_E4, "wgmma 103 + 4/8 exp2 on the FMA pipe (114)"},
        {VL_ATTN_SM90_WS_BIG_E2, "wgmma 110 + 2/8 exp2 on the FMA pipe (115)"},
        {VL_ATTN_SM90_WS_BIG_E3, "wgmma 110 + 3/8 exp2 on the FMA pipe (116)"},
        {VL_ATTN_SM90_WS_BIG_E4, "wgmma 110 + 4/8 exp2 on the FMA pipe (117)"},
        {VL_ATTN_SM90_N64_E2, "wgmma 101 + 2/8 exp2 on the FMA pipe (118)"},
        {VL_ATTN_SM90_WS_E2, "wgmma 107 + 2/8 exp2 on the FMA pipe (119)"},
        {VL_ATTN_SM90_N64_GP, "wgmma 101 + head pairs (120)"},
        {VL_ATTN_SM90_WS4, "wgmma warp-specialised persistent, 4 consumer WGs, setmaxnreg (123)"},
    };
    /* VL_BENCH_ATTN: comma-separated variant numbers (attention.h; 0 = the default rule) to
     * time instead of every one */
    const char *sel = getenv("VL_BENCH_ATTN");
    for (size_t vi = 0; vi <= sizeof vars / sizeof vars[0]; vi++) {
        c.warps = vi < sizeof vars / sizeof vars[0] ? vars[vi].v : 0;
        if (sel && !attn_selected(sel, c.warps))
            continue;
        if (!sel && c.warps == 0) /* the default's own row only when asked for */
            continue;
        if ((c.warps == 2 && hd > 80) || !vl_attention_variant_available(&c.a, c.warps))
            continue;
        float ms = time_ms(attn_fn, &c, 3, 15);
        printf("| attention %s, S=%d x %d seqs, %s | %.3f ms | %.0f TFLOP/s |\n", label, seqlen,
               nseq, c.warps ? vars[vi].name : "default rule", ms, flops / (ms * 1e-3) / 1e12);
        fflush(stdout);
    }
    vl_cuda_free(qkv), vl_cuda_free(o), vl_cuda_free(dcu), free(cu);
}

/* cuBLASLt bf16 GEMM at the models' projection shapes: the ceiling the other rows compare to. */
static void bench_gemms(void)
{
    /* the forward's workspace size (cuda_backend_forward.c); one context keeps cuBLASLt's
     * heuristic pick, the other measures (vl_gemm_tune at M = 256 .. the row count) */
    struct vl_gemm *g = vl_gemm_create(32u << 20), *gt = vl_gemm_create(32u << 20);
    struct {
        const char *name;
        int N, K;
    } shp[] = {{"2B qkv", 4096, 2048},   {"2B o", 2048, 2048},       {"2B gate_up", 12288, 2048},
               {"2B down", 2048, 6144},  {"8B qkv", 6144, 4096},     {"8B gate_up", 24576, 4096},
               {"8B down", 4096, 12288}, {"ViT-2B fc1", 4096, 1024}, {"ViT-2B qkv", 3072, 1024}};
    int Ms[] = {512, 4096, 16384};
    size_t maxn = 24576, maxk = 12288, maxm = 16384;
    struct gemm_ctx c = {g,
                         0,
                         0,
                         0,
                         vl_cuda_malloc(maxm * maxk * 2),
                         vl_cuda_malloc(maxn * maxk * 2),
                         vl_cuda_malloc(maxm * maxn * 2),
                         maxn * maxk};
    vl_cuda_fill_random_bf16(c.x, maxm * maxk, 1, 1.0f, NULL);
    vl_cuda_fill_random_bf16(c.w, maxn * maxk, 2, 0.05f, NULL);
    printf("| GEMM rows: cuBLASLt heuristic pick / measured choice (vl_gemm_tune); burst = median "
           "of single synchronised calls, sust = mean of 40 back-to-back calls over 8 weight "
           "copies | | |\n");
    for (size_t i = 0; i < sizeof shp / sizeof shp[0]; i++)
        for (int mi = 0; mi < 3; mi++) {
            c.M = Ms[mi], c.N = shp[i].N, c.K = shp[i].K;
            double fl = 2.0 * c.M * (double)c.N * c.K;
            c.g = g;
            float hb = time_ms(gemm_fn, &c, 3, 15), hs = gemm_sustained_ms(&c);
            const uint16_t *ws[4];
            size_t we = (size_t)c.N * c.K;
            int nw = c.w_elems / we < 4 ? (int)(c.w_elems / we) : 4;
            for (int k = 0; k < nw; k++)
                ws[k] = c.w + (size_t)k * we;
            for (int m = 256; m <= c.M; m *= 2)
                vl_gemm_tune(gt, NULL, m, c.N, c.K, c.x, ws, NULL, nw, c.y, VL_GEMM_PLAIN, 0);
            c.g = gt;
            float tb = time_ms(gemm_fn, &c, 3, 15), ts = gemm_sustained_ms(&c);
#define TF(ms) (fl / ((ms)*1e-3) / 1e12)
            printf("| cuBLASLt GEMM %s M=%d N=%d K=%d | burst %.3f / %.3f ms, sust %.3f / %.3f ms "
                   "| burst %.0f / %.0f, sust %.0f / %.0f TFLOP/s |\n",
                   shp[i].name, c.M, c.N, c.K, hb, tb, hs, ts, TF(hb), TF(tb), TF(hs), TF(ts));
#undef TF
            fflush(stdout);
        }
    vl_cuda_free(c.x), vl_cuda_free(c.w), vl_cuda_free(c.y);
    vl_gemm_free(g);
    vl_gemm_free(gt);
}

/* Own sm_90a GEMM (gemm_sm90.h) against cuBLASLt's heuristic pick (as the forward runs it without
 * tuning) at the language models' shapes, same process, same buffers: each variant as the mean
 * of 40 back-to-back calls over 8 weight copies (after 5), the variants alternated over 3 rounds,
 * best round kept. "cuBLASLt" for gate_up is GEMM [M, 2I] then vl_swiglu; "sm90 plain" the own
 * GEMM to [M, 2I] without the SwiGLU; "sm90 fused" vl_gemm_sm90_swiglu. qkv rows (mode 3):
 * cuBLASLt alone, cuBLASLt + vl_qk_norm_mrope (the cublas path), the own plain GEMM alone, and
 * vl_gemm_sm90_qk_norm_mrope. ViT qkv rows (mode 4): cuBLASLt with its bias epilogue, the same +
 * vl_vit_rope, the own plain GEMM (no bias), and vl_gemm_sm90_vit_qkv_rope. */
struct sm90_case {
    int M, N, K, mode; /* 0 plain, 1 + residual, 2 gate_up + SwiGLU, 3 LM qkv, 4 ViT qkv */
    int nq, nkv;       /* mode 3: heads (head_dim 128); mode 4: nq heads of head_dim 64 */
    uint16_t *x, *w, *y, *act, *cs, *bias;
    float *vcs;
    size_t w_elems;
    struct vl_gemm *g;
};

static float sm90_run_ms(struct sm90_case *c, int variant)
{
    size_t we = (size_t)c->N * c->K;
    int nw = (int)(c->w_elems / we);
    if (nw > 8)
        nw = 8;
    vl_event_t e0 = vl_cuda_event_create(), e1 = vl_cuda_event_create();
    int acc = c->mode == 1;
    for (int i = 0; i < 45; i++) {
        if (i == 5)
            vl_cuda_event_record(e0, NULL);
        const uint16_t *w = c->w + (size_t)(i % nw) * we;
        if (c->mode == 3) {
            if (variant <= 1)
                vl_gemm_bf16(c->g, NULL, c->M, c->N, c->K, c->x, w, NULL, c->y, VL_GEMM_PLAIN, 0);
            else if (variant == 2)
                vl_gemm_sm90_bf16(NULL, c->M, c->N, c->K, c->x, w, c->y, 0);
            else
                vl_gemm_sm90_qk_norm_mrope(NULL, c->M, c->nq, c->nkv, 128, c->K, c->x, w, c->y,
                                           c->bias, c->bias + 128, c->cs, 1e-6f);
            if (variant == 1)
                vl_qk_norm_mrope(NULL, c->y, c->M, c->nq, c->nkv, 128, c->bias, c->bias + 128,
                                 c->cs, 1e-6f);
            continue;
        }
        if (c->mode == 4) {
            if (variant <= 1)
                vl_gemm_bf16(c->g, NULL, c->M, c->N, c->K, c->x, w, c->bias, c->y, VL_GEMM_BIAS, 0);
            else if (variant == 2)
                vl_gemm_sm90_bf16(NULL, c->M, c->N, c->K, c->x, w, c->y, 0);
            else
                vl_gemm_sm90_vit_qkv_rope(NULL, c->M, c->nq, 64, c->K, c->x, w, c->bias, c->y,
                                          c->vcs);
            if (variant == 1)
                vl_vit_rope(NULL, c->y, c->M, c->nq, 64, c->vcs);
            continue;
        }
        if (variant == 0) {
            vl_gemm_bf16(c->g, NULL, c->M, c->N, c->K, c->x, w, NULL, c->y, VL_GEMM_PLAIN, acc);
            if (c->mode == 2)
                vl_swiglu(NULL, c->y, c->act, c->M, c->N / 2);
        } else if (variant == 1) {
            vl_gemm_sm90_bf16(NULL, c->M, c->N, c->K, c->x, w, c->y, acc);
        } else {
            vl_gemm_sm90_swiglu(NULL, c->M, c->N / 2, c->K, c->x, w, c->act);
        }
    }
    vl_cuda_event_record(e1, NULL);
    vl_cuda_event_sync(e1);
    float ms = vl_cuda_event_ms(e0, e1) / 40;
    vl_cuda_event_destroy(e0);
    vl_cuda_event_destroy(e1);
    return ms;
}

static void bench_sm90(void)
{
    if (!vl_gemm_sm90_available()) {
        printf("| own sm_90a GEMM | not available on this device | |\n");
        return;
    }
    struct {
        const char *name;
        int N, K, mode, nq, nkv;
    } shp[] = {{"2B gate_up+SwiGLU", 12288, 2048, 2, 0, 0},   {"2B down+res", 2048, 6144, 1, 0, 0},
               {"2B qkv+qknorm+mrope", 4096, 2048, 3, 16, 8}, {"2B o+res", 2048, 2048, 1, 0, 0},
               {"8B gate_up+SwiGLU", 24576, 4096, 2, 0, 0},   {"8B down+res", 4096, 12288, 1, 0, 0},
               {"8B qkv+qknorm+mrope", 6144, 4096, 3, 32, 8}, {"8B o+res", 4096, 4096, 1, 0, 0},
               {"ViT-2B qkv+bias+rope", 3072, 1024, 4, 16, 0}};
    const char *only = getenv("VL_BENCH_SM90_ONLY"); /* substring of the row names to run */
    /* row counts: VL_BENCH_SM90_M (comma-separated, each 1..16384, at most 8) or 4464, 16384 */
    int Ms[8] = {4464, 16384}, nms = 2;
    const char *em = getenv("VL_BENCH_SM90_M");
    if (em && *em) {
        nms = 0;
        for (const char *p = em; *p && nms < 8;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) { /* not a number: skip one character */
                p++;
                continue;
            }
            if (v >= 1 && v <= 16384)
                Ms[nms++] = (int)v;
            p = end;
        }
    }
    size_t maxn = 24576, maxk = 12288, maxm = 16384;
    struct sm90_case c = {0};
    c.g = vl_gemm_create(32u << 20);
    c.x = vl_cuda_malloc(maxm * maxk * 2), c.w = vl_cuda_malloc(maxn * maxk * 2);
    c.y = vl_cuda_malloc(maxm * maxn * 2), c.act = vl_cuda_malloc(maxm * maxn);
    c.w_elems = maxn * maxk;
    vl_cuda_fill_random_bf16(c.x, maxm * maxk, 3, 1.0f, NULL);
    vl_cuda_fill_random_bf16(c.w, maxn * maxk, 4, 0.05f, NULL);
    vl_cuda_fill_random_bf16(c.y, maxm * maxn, 5, 1.0f, NULL);
    c.cs = vl_cuda_malloc(maxm * 128 * 2), c.bias = vl_cuda_malloc(maxn * 2);
    c.vcs = vl_cuda_malloc(maxm * 64 * sizeof(float));
    vl_cuda_fill_random_bf16(c.cs, maxm * 128, 6, 1.0f, NULL);
    vl_cuda_fill_random_bf16(c.bias, maxn, 8, 1.0f, NULL);
    {
        int32_t *pos4 = malloc(maxm * 16);
        for (size_t i = 0; i < maxm; i++)
            pos4[4 * i] = (int32_t)(i / 128), pos4[4 * i + 1] = (int32_t)(i % 128),
                     pos4[4 * i + 2] = pos4[4 * i + 3] = 128;
        int32_t *dp = gu_upload(pos4, maxm * 16);
        vl_vit_rope_table(NULL, dp, (int)maxm, 64, c.vcs);
        vl_cuda_stream_sync(NULL);
        vl_cuda_free(dp), free(pos4);
    }
    printf("| own sm_90a GEMM vs cuBLASLt heuristic pick: mean of 40 back-to-back calls over 8 "
           "weight copies, best of 3 alternated rounds; TFLOP/s of the GEMM | | |\n");
    for (size_t i = 0; i < sizeof shp / sizeof shp[0]; i++)
        for (int mi = 0; mi < nms; mi++) {
            if (only && !strstr(shp[i].name, only))
                continue;
            c.M = Ms[mi], c.N = shp[i].N, c.K = shp[i].K, c.mode = shp[i].mode;
            c.nq = shp[i].nq, c.nkv = shp[i].nkv;
            int nv = c.mode >= 3 ? 4 : c.mode == 2 ? 3 : 2;
            float best[4] = {1e30f, 1e30f, 1e30f, 1e30f};
            for (int r = 0; r < 3; r++)
                for (int v = 0; v < nv; v++) {
                    float t = sm90_run_ms(&c, v);
                    if (t < best[v])
                        best[v] = t;
                }
            double fl = 2.0 * c.M * (double)c.N * c.K;
#define TF(ms) (fl / ((ms)*1e-3) / 1e12)
            if (c.mode == 3)
                printf("| %s M=%d N=%d K=%d | cuBLASLt %.3f ms, cuBLASLt+qk_norm_mrope %.3f ms, "
                       "sm90 plain %.3f ms, sm90 fused %.3f ms (%.3fx) | %.0f / %.0f / %.0f / %.0f "
                       "TFLOP/s |\n",
                       shp[i].name, c.M, c.N, c.K, best[0], best[1], best[2], best[3],
                       best[1] / best[3], TF(best[0]), TF(best[1]), TF(best[2]), TF(best[3]));
            else if (c.mode == 4)
                printf("| %s M=%d N=%d K=%d | cuBLASLt+bias %.3f ms, cuBLASLt+bias+vit_rope %.3f "
                       "ms, sm90 plain (no bias) %.3f ms, sm90 fused %.3f ms (%.3fx) | %.0f / %.0f "
                       "/ %.0f / %.0f TFLOP/s |\n",
                       shp[i].name, c.M, c.N, c.K, best[0], best[1], best[2], best[3],
                       best[1] / best[3], TF(best[0]), TF(best[1]), TF(best[2]), TF(best[3]));
            else if (c.mode == 2)
                printf("| %s M=%d N=%d K=%d | cuBLASLt+swiglu %.3f ms, sm90 plain %.3f ms, "
                       "sm90 fused %.3f ms (%.3fx) | %.0f / %.0f / %.0f TFLOP/s |\n",
                       shp[i].name, c.M, c.N, c.K, best[0], best[1], best[2], best[0] / best[2],
                       TF(best[0]), TF(best[1]), TF(best[2]));
            else
                printf("| %s M=%d N=%d K=%d | cuBLASLt %.3f ms, sm90 %.3f ms (%.3fx) | %.0f / "
                       "%.0f TFLOP/s |\n",
                       shp[i].name, c.M, c.N, c.K, best[0], best[1], best[0] / best[1], TF(best[0]),
                       TF(best[1]));
#undef TF
            fflush(stdout);
        }
    vl_cuda_free(c.x), vl_cuda_free(c.w), vl_cuda_free(c.y), vl_cuda_free(c.act);
    vl_cuda_free(c.cs), vl_cuda_free(c.bias), vl_cuda_free(c.vcs);
    vl_gemm_free(c.g);
}

/* `bench_kernels attention` runs the attention rows only, `bench_kernels sm90` the own-GEMM rows
 * only (VL_BENCH_SM90_ONLY=substring: only the own-GEMM rows whose name contains it;
 * VL_BENCH_SM90_M=comma-separated row counts instead of 4464,16384; VL_BENCH_ATTN=comma-separated
 * attention variants, 0 = the default rule, instead of every variant). */
int main(int argc, char **argv)
{
    int attn_only = argc > 1 && strcmp(argv[1], "attention") == 0;
    int sm90_only = argc > 1 && strcmp(argv[1], "sm90") == 0;
    struct vl_device_info info;
    char err[256];
    if (vl_cuda_device_count() < 1 || vl_cuda_device_open(0, &info, err, sizeof err)) {
        fprintf(stderr, "bench_kernels: no CUDA device\n");
        return 1;
    }
    printf("\n### Kernels on %s (%d SMs)\n\n| case | time | rate |\n|---|---|---|\n", info.name,
           info.sm_count);
    fflush(stdout);
    if (sm90_only) {
        bench_sm90();
        vl_cuda_device_sync();
        return 0;
    }
    if (!attn_only) {
        bench_gemms();
        bench_sm90();
    }
    bench_attn("LM hd128 GQA16/8 causal", 16, 8, 128, 1, 128, 16384);
    bench_attn("LM hd128 GQA16/8 causal", 16, 8, 128, 1, 512, 16384);
    bench_attn("LM-8B hd128 GQA32/8 causal", 32, 8, 128, 1, 512, 16384);
    bench_attn("LM hd128 GQA16/8 causal", 16, 8, 128, 1, 2048, 16384);
    bench_attn("LM hd128 GQA16/8 causal", 16, 8, 128, 1, 8192, 16384);
    bench_attn("ViT-2B hd64 full", 16, 16, 64, 0, 1024, 16384);
    bench_attn("ViT-2B hd64 full", 16, 16, 64, 0, 7056, 14112);
    bench_attn("ViT-8B hd72 full", 16, 16, 72, 0, 1024, 16384);
    vl_cuda_device_sync();
    return 0;
}
