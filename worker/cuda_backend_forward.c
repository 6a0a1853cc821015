/* The CUDA backend's batched forward (cuda_backend.h): token-budget batching, host staging in
 * pinned memory (two sets, so the host prepares batch k+1 while the device runs batch k), the
 * vision tower over all patches of a batch, the language model over all its tokens packed
 * without padding, last-token pooling. Every buffer is allocated in vl_cuda_ctx_create; the
 * embed path allocates nothing. */
#ifndef VL_NO_CUDA
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/limits.h"
#include "common/log.h"
#include "worker/cuda/act.h"
#include "worker/cuda/attention.h"
#include "worker/cuda/embed.h"
#include "worker/cuda/gemm.h"
#include "worker/cuda/gemm_sm90.h"
#include "worker/cuda/norm.h"
#include "worker/cuda/rope.h"
#include "worker/cuda/vision.h"
#include "worker/cuda_backend.h"
#include "worker/model.h"
#include "worker/positions.h"

#define DEFAULT_BUDGET 16384

/* Per-op device time, when profiling is on (vl_cuda_ctx_profile): events between ops. */
enum prof_tag {
    P_UPLOAD,
    P_V_PATCH,
    P_V_NORM,
    P_V_QKV,
    P_V_ROPE,
    P_V_ATTN,
    P_V_PROJ,
    P_V_MLP,
    P_V_MERGER,
    P_EMBED,
    P_NORM,
    P_QKV,
    P_QKNORM_ROPE,
    P_ATTN,
    P_O,
    P_GATE_UP,
    P_SWIGLU,
    P_DOWN,
    P_DEEPSTACK,
    P_POOL,
    P_END,
    P_N
};
static const char *prof_name[P_N] = {"upload",          "vit.patch_embed", "vit.layernorm",
                                     "vit.qkv",         "vit.rope",        "vit.attention",
                                     "vit.proj",        "vit.mlp",         "vit.mergers",
                                     "lm.embed",        "lm.rmsnorm",      "lm.qkv",
                                     "lm.qk_norm_rope", "lm.attention",    "lm.o_proj",
                                     "lm.gate_up",      "lm.swiglu",       "lm.down",
                                     "lm.deepstack",    "pool+download",   "end"};
#define PROF_MAX 4096

/* One set of a batch's inputs: pinned host staging and the device copies it is uploaded to. Two
 * sets alternate, so batch k + 1 is packed on the host and copied on the copy stream while the
 * compute stream runs batch k. */
struct staging {
    int32_t *ids, *pos, *cu, *last, *vis_idx, *vpos4, *vcu;
    int64_t *vframes;
    uint8_t *pixels;
    float *out;
    int32_t *d_ids, *d_pos, *d_cu, *d_last, *d_vis_idx, *d_vpos4, *d_vcu;
    int64_t *d_vframes;
    uint8_t *d_pixels;
    vl_event_t copied, done;
    int busy, first_item, n_items;
};

struct vl_cuda_ctx {
    struct vl_cuda_config cfg;
    const struct vl_cuda_weights *w;
    vl_stream_t stream;  /* the forward */
    vl_stream_t cstream; /* host-to-device copies of the next batch's inputs */
    struct vl_gemm *gemm;
    int sm90;       /* SM90_* bits: LM projections on the own sm_90a GEMM (gemm_sm90.h) */
    int prune_last; /* the last decoder layer past attention on the pooled rows only */
    int64_t budget_tokens, budget_patches;
    int64_t cap_tokens, cap_patches;
    size_t cap_pixels;
    /* device workspace */
    uint16_t *h, *xn, *qkv, *att, *gu, *act, *rope_cs;
    float *vrope_cs;
    uint16_t *vx, *vxn, *vqkv, *vatt, *vfc, *m1, *vis_out, *ds_out[VL_CUDA_MAX_DEEPSTACK];
    float *out;
    struct staging st[2];
    const struct staging *in; /* the set whose device inputs the forward being enqueued reads */
    /* host scratch */
    int32_t *pos_tmp, *img_rows, *vid_rows;
    struct vl_cuda_stats stats;
    int prof, npev;
    vl_event_t *pev;
    int *ptag;
    double prof_ms[P_N];
};

/* Which language-model projections run on the own sm_90a GEMM when it is selected
 * (vl_gemm_sm90_selected: a cc 9.0 device and VL_GEMM_KERNEL not "cublas"); the others stay on
 * cuBLASLt. GATE_UP is the fused gate_up + SwiGLU (no [T, 2I] tensor, no SwiGLU pass), QK_ROPE
 * the qkv GEMM with q/k RMSNorm + MRoPE in its epilogue (no vl_qk_norm_mrope pass), VIT the vision
 * blocks' qkv GEMM with bias + 2-D rope in its epilogue (no vl_vit_rope pass); which fused
 * forms run is vl_gemm_sm90_fused (VL_GEMM_FUSE). */
enum {
    SM90_GATE_UP = 1,
    SM90_DOWN = 2,
    SM90_QKV = 4,
    SM90_O = 8,
    SM90_QK_ROPE = 16,
    SM90_VIT = 32
};

/* Batches below these row counts keep cuBLASLt + the separate kernel even where QK_ROPE / VIT
 * are selected: the own kernel's 128 x 256 tiles leave the card part-idle there (H100, fused vs
 * cuBLASLt + separate kernel: LM qkv 0.49-0.94 x at 32-512 rows, 1024 rows 1.18 x for 2B but
 * 0.90 x for 8B, 4464 rows 1.00-1.05 x; ViT qkv 0.65-0.97 x at 32-1024 patches, 0.95-1.04 x at
 * 4464, 1.21 x at 16384; a 32-token query took 2.79-2.86 ms fused vs 2.40-2.43 ms; docs/cuda.md).
 * Rows: the batch's tokens (LM) or patches (ViT). */
#define SM90_QK_ROPE_MIN_ROWS 4096
#define SM90_VIT_MIN_ROWS 8192

static void mark(struct vl_cuda_ctx *c, int tag)
{
    if (!c->prof || c->npev >= PROF_MAX)
        return;
    vl_cuda_event_record(c->pev[c->npev], c->stream);
    c->ptag[c->npev++] = tag;
}

void vl_cuda_ctx_profile(struct vl_cuda_ctx *c, int on)
{
    if (on && !c->pev) {
        c->pev = vl_malloc(PROF_MAX * sizeof *c->pev);
        c->ptag = vl_malloc(PROF_MAX * sizeof *c->ptag);
        for (int i = 0; i < PROF_MAX; i++)
            c->pev[i] = vl_cuda_event_create();
    }
    memset(c->prof_ms, 0, sizeof c->prof_ms);
    c->npev = 0;
    c->prof = on;
}

int vl_cuda_ctx_profile_report(const struct vl_cuda_ctx *c, char *buf, size_t n)
{
    double tot = 0;
    for (int i = 0; i < P_END; i++)
        tot += c->prof_ms[i];
    size_t o = (size_t)snprintf(buf, n, "device %.2f ms:", tot);
    for (int i = 0; i < P_END && o < n; i++)
        if (c->prof_ms[i] > 0)
            o += (size_t)snprintf(buf + o, n - o, " %s %.2f (%.1f%%)", prof_name[i], c->prof_ms[i],
                                  tot > 0 ? 100 * c->prof_ms[i] / tot : 0);
    return (int)o;
}

static void prof_collect(struct vl_cuda_ctx *c)
{
    if (!c->prof)
        return;
    mark(c, P_END);
    vl_cuda_stream_sync(c->stream);
    for (int i = 0; i + 1 < c->npev; i++)
        c->prof_ms[c->ptag[i]] += vl_cuda_event_ms(c->pev[i], c->pev[i + 1]);
    c->npev = 0;
}

static size_t bf(size_t elems)
{
    return elems * 2;
}

struct tune_sum {
    int shapes;
    double gain_sum, gain_max;
};

#define TUNE_W 4 /* distinct layers' weights per timing (as in a forward, none L2-resident) */

/* vl_gemm_tune at M = 256, 512, ... up to max_m (small first: the row-chunk candidates of M use
 * the choices tuned for M/2 and M/4). */
static void tune_class(struct vl_cuda_ctx *c, struct tune_sum *ts, int64_t max_m, int N, int K,
                       const uint16_t *X, const uint16_t *const *W, const uint16_t *const *bias,
                       int n_w, uint16_t *Y, enum vl_gemm_epilogue epi, int acc)
{
    for (int64_t M = 256; M <= max_m; M *= 2) {
        double gain = vl_gemm_tune(c->gemm, c->stream, (int)M, N, K, X, W, bias, n_w, Y, epi, acc);
        if (gain > 0) {
            ts->shapes++;
            ts->gain_sum += gain;
            if (gain > ts->gain_max)
                ts->gain_max = gain;
        }
    }
}

/* Measured GEMM algorithms (gemm.h) for the language model's four projections, on the workspace
 * buffers (random-filled first; overwritten later by every batch anyway) and the weights of the
 * first TUNE_W layers. The vision tower's GEMMs keep the heuristic: tuning them measured no gain
 * end to end (2B 512x512 images -0.3, -0.1, -1.5 % in three H100 runs, bench/NOTES.md). */
static void tune_gemms(struct vl_cuda_ctx *c)
{
    if (!vl_gemm_tune_enabled())
        return;
    const struct vl_cuda_config *k = &c->cfg;
    const struct vl_cuda_weights *w = c->w;
    vl_stream_t s = c->stream;
    size_t T = (size_t)c->cap_tokens;
    int H = k->hidden, hd = k->head_dim, nq = k->heads, nkv = k->kv_heads, I = k->inter;
    int Wq = (nq + 2 * nkv) * hd;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vl_cuda_fill_random_bf16(c->xn, T * H, 11, 1.0f, s);
    vl_cuda_fill_random_bf16(c->att, T * nq * hd, 12, 1.0f, s);
    vl_cuda_fill_random_bf16(c->act, T * I, 13, 1.0f, s);
    vl_cuda_fill_random_bf16(c->h, T * H, 14, 1.0f, s);
    struct tune_sum ts = {0};
    const uint16_t *wa[TUNE_W], *wb[TUNE_W], *wc[TUNE_W], *wd[TUNE_W];
    int nl = k->layers < TUNE_W ? k->layers : TUNE_W;
    for (int l = 0; l < nl; l++) {
        const struct vl_cuda_layer *L = &w->layer[l];
        wa[l] = L->qkv_w, wb[l] = L->o_w, wc[l] = L->gate_up_w, wd[l] = L->down_w;
    }
    if (!(c->sm90 & SM90_QKV)) /* also with QK_ROPE: batches below its row bound use cuBLASLt */
        tune_class(c, &ts, c->cap_tokens, Wq, H, c->xn, wa, NULL, nl, c->qkv, VL_GEMM_PLAIN, 0);
    if (!(c->sm90 & SM90_O))
        tune_class(c, &ts, c->cap_tokens, H, nq * hd, c->att, wb, NULL, nl, c->h, VL_GEMM_PLAIN, 1);
    if (!(c->sm90 & SM90_GATE_UP))
        tune_class(c, &ts, c->cap_tokens, 2 * I, H, c->xn, wc, NULL, nl, c->gu, VL_GEMM_PLAIN, 0);
    if (!(c->sm90 & SM90_DOWN))
        tune_class(c, &ts, c->cap_tokens, H, I, c->act, wd, NULL, nl, c->h, VL_GEMM_PLAIN, 1);
    vl_cuda_stream_sync(s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    vl_info("GEMM tuning: %d shapes in %.0f ms; heuristic pick / chosen time: mean %.3f, max %.3f",
            ts.shapes, (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
            ts.shapes ? ts.gain_sum / ts.shapes : 1.0, ts.gain_max);
}

struct vl_cuda_ctx *vl_cuda_ctx_create(const struct vl_cuda_config *cfg,
                                       const struct vl_cuda_weights *w, int64_t max_batch_tokens,
                                       int64_t max_batch_patches, char *err, size_t errlen)
{
    if (max_batch_tokens < 0 || max_batch_patches < 0 || max_batch_tokens > (1 << 20) ||
        max_batch_patches > (1 << 22)) {
        snprintf(err, errlen, "batch budgets out of range (tokens %lld, patches %lld)",
                 (long long)max_batch_tokens, (long long)max_batch_patches);
        return NULL;
    }
    struct vl_cuda_ctx *c = vl_calloc(1, sizeof *c);
    c->cfg = *cfg;
    c->w = w;
    c->budget_tokens = max_batch_tokens ? max_batch_tokens : DEFAULT_BUDGET;
    c->budget_patches = max_batch_patches ? max_batch_patches : DEFAULT_BUDGET;
    /* any single valid item must fit: <= VL_MAX_SEQ_TOKENS tokens, each visual token 4 patches */
    c->cap_tokens = c->budget_tokens > VL_MAX_SEQ_TOKENS ? c->budget_tokens : VL_MAX_SEQ_TOKENS;
    int64_t item_patches = 4 * (int64_t)VL_MAX_SEQ_TOKENS;
    c->cap_patches = c->budget_patches > item_patches ? c->budget_patches : item_patches;
    c->cap_pixels = (size_t)c->cap_patches * 2 * 16 * 16 * 3;
    size_t T = (size_t)c->cap_tokens, P = (size_t)c->cap_patches;
    size_t H = cfg->hidden, hd = cfg->head_dim, nq = cfg->heads, nkv = cfg->kv_heads;
    size_t I = cfg->inter, V = cfg->v_hidden, Iv = cfg->v_inter, O = cfg->v_out;
    size_t before = vl_cuda_mem_used();

    c->stream = vl_cuda_stream_create();
    c->gemm = vl_gemm_create(32u << 20);
    c->h = vl_cuda_malloc(bf(T * H));
    c->xn = vl_cuda_malloc(bf(T * H));
    c->qkv = vl_cuda_malloc(bf(T * (nq + 2 * nkv) * hd));
    c->att = vl_cuda_malloc(bf(T * nq * hd));
    c->prune_last = vl_model_prune_last_layer(cfg->layers, cfg->n_deepstack);
    vl_info("CUDA backend: last decoder layer past attention on %s",
            c->prune_last ? "the pooled rows only" : "every row");
    if (vl_gemm_sm90_selected()) {
        int f = vl_gemm_sm90_fused();
        if ((f & VL_SM90_FUSE_SWIGLU) && I % 128 == 0)
            c->sm90 |= SM90_GATE_UP;
        if ((f & VL_SM90_FUSE_QKROPE) && hd == 128)
            c->sm90 |= SM90_QK_ROPE;
        if ((f & VL_SM90_FUSE_VITROPE) && cfg->v_head_dim == 64 && cfg->v_heads % 2 == 0)
            c->sm90 |= SM90_VIT;
    }
    vl_info("CUDA backend: LM gate_up + SwiGLU on %s", c->sm90 & SM90_GATE_UP
                                                           ? "the own sm_90a GEMM (fused epilogue)"
                                                           : "cuBLASLt + vl_swiglu");
    if (c->sm90 & SM90_QK_ROPE)
        vl_info("CUDA backend: LM qkv + q/k norm + MRoPE on the own sm_90a GEMM (fused epilogue) "
                "for batches of >= %d tokens, else cuBLASLt + vl_qk_norm_mrope",
                SM90_QK_ROPE_MIN_ROWS);
    else
        vl_info("CUDA backend: LM qkv + q/k norm + MRoPE on cuBLASLt + vl_qk_norm_mrope");
    if (c->sm90 & SM90_VIT)
        vl_info("CUDA backend: ViT qkv + bias + 2-D rope on the own sm_90a GEMM (fused epilogue) "
                "for batches of >= %d patches, else cuBLASLt + vl_vit_rope",
                SM90_VIT_MIN_ROWS);
    else
        vl_info("CUDA backend: ViT qkv + bias + 2-D rope on cuBLASLt + vl_vit_rope");
    if (!(c->sm90 & SM90_GATE_UP)) /* the fused form never writes gate_up */
        c->gu = vl_cuda_malloc(bf(T * 2 * I));
    c->act = vl_cuda_malloc(bf(T * I));
    c->rope_cs = vl_cuda_malloc(bf(T * hd));
    c->vrope_cs = vl_cuda_malloc(P * cfg->v_head_dim * sizeof(float));
    c->vx = vl_cuda_malloc(bf(P * V));
    c->vxn = vl_cuda_malloc(bf(P * V));
    c->vqkv = vl_cuda_malloc(bf(P * 3 * V));
    c->vatt = vl_cuda_malloc(bf(P * V));
    c->vfc = vl_cuda_malloc(bf(P * (Iv > VL_PATCH_DIM ? Iv : VL_PATCH_DIM)));
    c->m1 = vl_cuda_malloc(bf(P * V));
    c->vis_out = vl_cuda_malloc(bf(P / 4 * O));
    for (int i = 0; i < cfg->n_deepstack; i++)
        c->ds_out[i] = vl_cuda_malloc(bf(P / 4 * O));
    c->out = vl_cuda_malloc(T * H * sizeof(float));
    c->cstream = vl_cuda_stream_create();
    for (int s = 0; s < 2; s++) {
        struct staging *g = &c->st[s];
        g->ids = vl_cuda_host_alloc(T * 4);
        g->pos = vl_cuda_host_alloc(T * 12);
        g->cu = vl_cuda_host_alloc((T + 1) * 4);
        g->last = vl_cuda_host_alloc(T * 4);
        g->vis_idx = vl_cuda_host_alloc(P / 4 * 4);
        g->vpos4 = vl_cuda_host_alloc(P * 16);
        g->vcu = vl_cuda_host_alloc((P / 4 + 1) * 4);
        g->vframes = vl_cuda_host_alloc(P * 16);
        g->pixels = vl_cuda_host_alloc(c->cap_pixels);
        g->out = vl_cuda_host_alloc(T * H * sizeof(float));
        g->d_ids = vl_cuda_malloc(T * 4);
        g->d_pos = vl_cuda_malloc(T * 12);
        g->d_cu = vl_cuda_malloc((T + 1) * 4);
        g->d_last = vl_cuda_malloc(T * 4);
        g->d_vis_idx = vl_cuda_malloc(P / 4 * 4);
        g->d_vpos4 = vl_cuda_malloc(P * 16);
        g->d_vcu = vl_cuda_malloc((P / 4 + 1) * 4);
        g->d_vframes = vl_cuda_malloc(P * 16);
        g->d_pixels = vl_cuda_malloc(c->cap_pixels);
        g->copied = vl_cuda_event_create();
        g->done = vl_cuda_event_create();
    }
    c->pos_tmp = vl_malloc(T * 12);
    c->img_rows = vl_malloc(T * 4);
    c->vid_rows = vl_malloc(T * 4);
    vl_cuda_device_sync();
    tune_gemms(c);
    c->stats.weights_bytes = w->bytes;
    c->stats.workspace_bytes = vl_cuda_mem_used() - before;
    c->stats.peak_device_bytes = vl_cuda_mem_used();
    vl_info("CUDA backend: workspace %.1f MiB for %lld tokens / %lld patches per batch "
            "(budgets %lld / %lld)",
            c->stats.workspace_bytes / 1048576.0, (long long)c->cap_tokens,
            (long long)c->cap_patches, (long long)c->budget_tokens, (long long)c->budget_patches);
    return c;
}

void vl_cuda_ctx_free(struct vl_cuda_ctx *c)
{
    if (!c)
        return;
    if (c->stream)
        vl_cuda_stream_sync(c->stream);
    if (c->cstream)
        vl_cuda_stream_sync(c->cstream);
    uint16_t *bufs[] = {c->h,   c->xn,   c->qkv,  c->att, c->gu, c->act,    c->vx,
                        c->vxn, c->vqkv, c->vatt, c->vfc, c->m1, c->vis_out};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        vl_cuda_free(bufs[i]);
    for (int i = 0; i < VL_CUDA_MAX_DEEPSTACK; i++)
        vl_cuda_free(c->ds_out[i]);
    vl_cuda_free(c->out);
    vl_cuda_free(c->rope_cs), vl_cuda_free(c->vrope_cs);
    for (int s = 0; s < 2; s++) {
        struct staging *g = &c->st[s];
        vl_cuda_host_free(g->ids), vl_cuda_host_free(g->pos), vl_cuda_host_free(g->cu);
        vl_cuda_host_free(g->last), vl_cuda_host_free(g->vis_idx), vl_cuda_host_free(g->vpos4);
        vl_cuda_host_free(g->vcu), vl_cuda_host_free(g->vframes), vl_cuda_host_free(g->pixels);
        vl_cuda_host_free(g->out);
        vl_cuda_free(g->d_ids), vl_cuda_free(g->d_pos), vl_cuda_free(g->d_cu);
        vl_cuda_free(g->d_last), vl_cuda_free(g->d_vis_idx), vl_cuda_free(g->d_vpos4);
        vl_cuda_free(g->d_vcu), vl_cuda_free(g->d_vframes), vl_cuda_free(g->d_pixels);
        vl_cuda_event_destroy(g->copied);
        vl_cuda_event_destroy(g->done);
    }
    if (c->gemm)
        vl_gemm_free(c->gemm);
    vl_cuda_stream_destroy(c->stream);
    vl_cuda_stream_destroy(c->cstream);
    free(c->pos_tmp), free(c->img_rows), free(c->vid_rows);
    if (c->pev) {
        for (int i = 0; i < PROF_MAX; i++)
            vl_cuda_event_destroy(c->pev[i]);
        free(c->pev), free(c->ptag);
    }
    free(c);
}

void vl_cuda_ctx_stats(const struct vl_cuda_ctx *c, struct vl_cuda_stats *st)
{
    *st = c->stats;
}

static int64_t item_patches(const struct vl_item *it)
{
    int64_t p = 0;
    for (int v = 0; v < it->n_visuals; v++)
        p += (int64_t)it->visuals[v].grid_t * it->visuals[v].grid_h * it->visuals[v].grid_w;
    return p;
}

/* The merger MLP: y[n, O] = fc2(gelu_erf(fc1(x[n, 4V]))) with biases. */
static void merger_mlp(struct vl_cuda_ctx *c, const struct vl_cuda_merger *m, const uint16_t *x,
                       int n, uint16_t *y)
{
    int V4 = 4 * c->cfg.v_hidden;
    vl_gemm_bf16(c->gemm, c->stream, n, V4, V4, x, m->fc1_w, m->fc1_b, c->m1, VL_GEMM_BIAS, 0);
    vl_gelu_erf(c->stream, c->m1, (size_t)n * V4);
    vl_gemm_bf16(c->gemm, c->stream, n, c->cfg.v_out, V4, c->m1, m->fc2_w, m->fc2_b, y,
                 VL_GEMM_BIAS, 0);
}

static void vit_forward(struct vl_cuda_ctx *c, int P, int nseg, int max_seg)
{
    const struct vl_cuda_config *k = &c->cfg;
    const struct vl_cuda_weights *w = c->w;
    vl_stream_t s = c->stream;
    int V = k->v_hidden, Iv = k->v_inter;
    mark(c, P_V_PATCH);
    vl_patchify(s, c->in->d_pixels, c->in->d_vpos4, c->in->d_vframes, P, c->vfc);
    vl_gemm_bf16(c->gemm, s, P, V, VL_PATCH_DIM, c->vfc, w->patch_w, w->patch_b, c->vx,
                 VL_GEMM_BIAS, 0);
    vl_pos_embed_add(s, c->vx, w->pos_embed, k->v_pos_side, c->in->d_vpos4, P, V);
    vl_vit_rope_table(s, c->in->d_vpos4, P, k->v_head_dim, c->vrope_cs);
    struct vl_attn_args a = {0};
    a.q = c->vqkv, a.k = c->vqkv + V, a.v = c->vqkv + 2 * V;
    a.q_stride = a.k_stride = a.v_stride = 3 * V;
    a.o = c->vatt, a.o_stride = V;
    a.cu_seqlens = c->in->d_vcu, a.n_seqs = nseg, a.max_seqlen = max_seg;
    a.n_heads = a.n_kv_heads = k->v_heads, a.head_dim = k->v_head_dim;
    a.causal = 0;
    a.scale = 1.0f / sqrtf((float)k->v_head_dim);
    int ds = 0;
    for (int b = 0; b < k->v_depth; b++) {
        const struct vl_cuda_vblock *B = &w->vblock[b];
        mark(c, P_V_NORM);
        vl_layernorm(s, c->vx, B->norm1_w, B->norm1_b, c->vxn, P, V, k->v_eps);
        mark(c, P_V_QKV);
        if ((c->sm90 & SM90_VIT) && P >= SM90_VIT_MIN_ROWS) { /* bias + rope in its epilogue */
            vl_gemm_sm90_vit_qkv_rope(s, P, k->v_heads, k->v_head_dim, V, c->vxn, B->qkv_w,
                                      B->qkv_b, c->vqkv, c->vrope_cs);
            mark(c, P_V_ROPE);
        } else {
            vl_gemm_bf16(c->gemm, s, P, 3 * V, V, c->vxn, B->qkv_w, B->qkv_b, c->vqkv, VL_GEMM_BIAS,
                         0);
            mark(c, P_V_ROPE);
            vl_vit_rope(s, c->vqkv, P, k->v_heads, k->v_head_dim, c->vrope_cs);
        }
        mark(c, P_V_ATTN);
        vl_attention(s, &a);
        mark(c, P_V_PROJ);
        vl_gemm_bf16(c->gemm, s, P, V, V, c->vatt, B->proj_w, B->proj_b, c->vx, VL_GEMM_BIAS, 1);
        mark(c, P_V_NORM);
        vl_layernorm(s, c->vx, B->norm2_w, B->norm2_b, c->vxn, P, V, k->v_eps);
        mark(c, P_V_MLP);
        vl_gemm_bf16(c->gemm, s, P, Iv, V, c->vxn, B->fc1_w, B->fc1_b, c->vfc,
                     VL_GEMM_BIAS_GELU_TANH, 0);
        vl_gemm_bf16(c->gemm, s, P, V, Iv, c->vfc, B->fc2_w, B->fc2_b, c->vx, VL_GEMM_BIAS, 1);
        mark(c, P_V_MERGER);
        if (ds < k->n_deepstack && b == k->deepstack_idx[ds]) {
            /* post-shuffle norm: rows of 4 patches = one 2x2 window, LayerNorm over 4V */
            vl_layernorm(s, c->vx, w->deepstack[ds].norm_w, w->deepstack[ds].norm_b, c->vxn, P / 4,
                         4 * V, k->v_eps);
            merger_mlp(c, &w->deepstack[ds], c->vxn, P / 4, c->ds_out[ds]);
            ds++;
        }
    }
    vl_layernorm(s, c->vx, w->merger.norm_w, w->merger.norm_b, c->vxn, P, V, k->v_eps);
    merger_mlp(c, &w->merger, c->vxn, P / 4, c->vis_out);
}

/* One language-model projection Y (+)= X W^T: the own sm_90a GEMM if bit `which` of c->sm90 is
 * set, else cuBLASLt. */
static void lm_gemm(struct vl_cuda_ctx *c, int which, int M, int N, int K, const uint16_t *X,
                    const uint16_t *W, uint16_t *Y, int accumulate)
{
    if (c->sm90 & which)
        vl_gemm_sm90_bf16(c->stream, M, N, K, X, W, Y, accumulate);
    else
        vl_gemm_bf16(c->gemm, c->stream, M, N, K, X, W, NULL, Y, VL_GEMM_PLAIN, accumulate);
}

static void lm_forward(struct vl_cuda_ctx *c, int T, int B, int max_len, int nvis)
{
    const struct vl_cuda_config *k = &c->cfg;
    const struct vl_cuda_weights *w = c->w;
    vl_stream_t s = c->stream;
    int H = k->hidden, hd = k->head_dim, nq = k->heads, nkv = k->kv_heads, I = k->inter;
    int Wq = (nq + 2 * nkv) * hd;
    mark(c, P_EMBED);
    vl_embed_gather(s, w->embed, c->in->d_ids, T, H, c->h);
    vl_mrope_table(s, c->in->d_pos, T, hd, k->mrope_section, k->rope_theta, c->rope_cs);
    if (nvis)
        vl_rows_scatter(s, c->vis_out, c->in->d_vis_idx, nvis, H, c->h, 0);
    struct vl_attn_args a = {0};
    a.q = c->qkv, a.k = c->qkv + nq * hd, a.v = c->qkv + (nq + nkv) * hd;
    a.q_stride = a.k_stride = a.v_stride = Wq;
    a.o = c->att, a.o_stride = nq * hd;
    a.cu_seqlens = c->in->d_cu, a.n_seqs = B, a.max_seqlen = max_len;
    a.n_heads = nq, a.n_kv_heads = nkv, a.head_dim = hd, a.causal = 1;
    a.scale = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < k->layers; l++) {
        const struct vl_cuda_layer *L = &w->layer[l];
        mark(c, P_NORM);
        vl_rmsnorm(s, c->h, L->in_norm, c->xn, T, H, k->rms_eps);
        mark(c, P_QKV);
        if ((c->sm90 & SM90_QK_ROPE) && T >= SM90_QK_ROPE_MIN_ROWS) { /* norm + rope fused */
            vl_gemm_sm90_qk_norm_mrope(s, T, nq, nkv, hd, H, c->xn, L->qkv_w, c->qkv, L->q_norm,
                                       L->k_norm, c->rope_cs, k->rms_eps);
            mark(c, P_QKNORM_ROPE);
        } else {
            lm_gemm(c, SM90_QKV, T, Wq, H, c->xn, L->qkv_w, c->qkv, 0);
            mark(c, P_QKNORM_ROPE);
            vl_qk_norm_mrope(s, c->qkv, T, nq, nkv, hd, L->q_norm, L->k_norm, c->rope_cs,
                             k->rms_eps);
        }
        mark(c, P_ATTN);
        vl_attention(s, &a);
        int R = T; /* rows that go on through the rest of the layer */
        const uint16_t *att = c->att;
        if (l == k->layers - 1 && c->prune_last) {
            /* Only each sequence's last row is pooled, and after the last attention no row
             * reads another: finish the layer on those B rows. att rows -> qkv (free now),
             * h rows -> xn -> h[0, B) (a gather in place could read a row already written). */
            mark(c, P_POOL);
            vl_embed_gather(s, c->att, c->in->d_last, B, nq * hd, c->qkv);
            vl_embed_gather(s, c->h, c->in->d_last, B, H, c->xn);
            vl_cuda_d2d(c->h, c->xn, (size_t)B * H * sizeof(uint16_t), s);
            R = B;
            att = c->qkv;
        }
        mark(c, P_O);
        lm_gemm(c, SM90_O, R, H, nq * hd, att, L->o_w, c->h, 1);
        mark(c, P_NORM);
        vl_rmsnorm(s, c->h, L->post_norm, c->xn, R, H, k->rms_eps);
        mark(c, P_GATE_UP);
        if (c->sm90 & SM90_GATE_UP) { /* act = SwiGLU(gate_up) in the GEMM's epilogue */
            vl_gemm_sm90_swiglu(s, R, I, H, c->xn, L->gate_up_w, c->act);
            mark(c, P_SWIGLU);
        } else {
            vl_gemm_bf16(c->gemm, s, R, 2 * I, H, c->xn, L->gate_up_w, NULL, c->gu, VL_GEMM_PLAIN,
                         0);
            mark(c, P_SWIGLU);
            vl_swiglu(s, c->gu, c->act, R, I);
        }
        mark(c, P_DOWN);
        lm_gemm(c, SM90_DOWN, R, H, I, c->act, L->down_w, c->h, 1);
        mark(c, P_DEEPSTACK);
        if (nvis && l < k->n_deepstack) /* DeepStack: after decoder layer l, at visual rows */
            vl_rows_scatter(s, c->ds_out[l], c->in->d_vis_idx, nvis, H, c->h, 1);
    }
    mark(c, P_POOL);
    vl_pool_last_l2(s, c->h, c->prune_last ? NULL : c->in->d_last, B, w->final_norm, H, k->rms_eps,
                    c->out);
}

/* Fills staging set g with items [i0, i1) and enqueues copies, forward and the result copy. */
static void run_batch(struct vl_cuda_ctx *c, struct staging *g, const struct vl_item *items, int i0,
                      int i1)
{
    const struct vl_cuda_config *k = &c->cfg;
    int T = 0, P = 0, nseg = 0, nvis = 0, max_len = 0, max_seg = 0;
    size_t pix = 0;
    g->cu[0] = 0;
    g->vcu[0] = 0;
    for (int i = i0; i < i1; i++) {
        const struct vl_item *it = &items[i];
        int n = it->n_ids;
        char err[256];
        memcpy(g->ids + T, it->ids, (size_t)n * 4);
        if (vl_positions_compute(it, k->image_token_id, k->video_token_id, 2, c->pos_tmp, err,
                                 sizeof err)) {
            vl_error("positions of a validated item failed: %s", err); /* checked before */
            abort();
        }
        for (int t = 0; t < n; t++)
            for (int ax = 0; ax < 3; ax++)
                g->pos[(size_t)(T + t) * 3 + ax] = c->pos_tmp[(size_t)ax * n + t];
        int ni = 0, nv = 0, ci = 0, cv = 0;
        for (int t = 0; t < n; t++) {
            if (it->ids[t] == k->image_token_id)
                c->img_rows[ni++] = T + t;
            else if (it->ids[t] == k->video_token_id)
                c->vid_rows[nv++] = T + t;
        }
        for (int v = 0; v < it->n_visuals; v++) {
            const struct vl_visual *vis = &it->visuals[v];
            size_t fbytes = (size_t)vis->height * vis->width * 3;
            memcpy(g->pixels + pix, vis->pixels, (size_t)vis->n_frames * fbytes);
            for (int t = 0; t < vis->grid_t; t++) {
                size_t f0 = vis->kind == VL_VISUAL_IMAGE ? 0 : (size_t)2 * t;
                size_t f1 = vis->kind == VL_VISUAL_IMAGE ? 0 : (size_t)2 * t + 1;
                for (int hb = 0; hb < vis->grid_h / 2; hb++)
                    for (int wb = 0; wb < vis->grid_w / 2; wb++)
                        for (int hi = 0; hi < 2; hi++)
                            for (int wi = 0; wi < 2; wi++, P++) {
                                int32_t *p4 = g->vpos4 + (size_t)P * 4;
                                p4[0] = hb * 2 + hi, p4[1] = wb * 2 + wi;
                                p4[2] = vis->grid_h, p4[3] = vis->grid_w;
                                g->vframes[(size_t)P * 2] = (int64_t)(pix + f0 * fbytes);
                                g->vframes[(size_t)P * 2 + 1] = (int64_t)(pix + f1 * fbytes);
                            }
                g->vcu[++nseg] = P;
                int seg = vis->grid_h * vis->grid_w;
                if (seg > max_seg)
                    max_seg = seg;
            }
            int ntok = vis->grid_t * vis->grid_h * vis->grid_w / 4;
            for (int q = 0; q < ntok; q++)
                g->vis_idx[nvis++] =
                    vis->kind == VL_VISUAL_IMAGE ? c->img_rows[ci++] : c->vid_rows[cv++];
            pix += (size_t)vis->n_frames * fbytes;
        }
        T += n;
        g->cu[i - i0 + 1] = T;
        g->last[i - i0] = T - 1;
        if (n > max_len)
            max_len = n;
    }
    int B = i1 - i0;
    vl_stream_t s = c->stream, cs = c->cstream;
    /* Set g's device inputs are free: finish_batch waited for the last batch that read them. The
     * copies run on the copy stream, beside the batch the compute stream is still running; the
     * forward waits for them (the profile's "upload" is that wait). */
    vl_cuda_h2d(g->d_ids, g->ids, (size_t)T * 4, cs);
    vl_cuda_h2d(g->d_pos, g->pos, (size_t)T * 12, cs);
    vl_cuda_h2d(g->d_cu, g->cu, (size_t)(B + 1) * 4, cs);
    vl_cuda_h2d(g->d_last, g->last, (size_t)B * 4, cs);
    if (P) {
        vl_cuda_h2d(g->d_vis_idx, g->vis_idx, (size_t)nvis * 4, cs);
        vl_cuda_h2d(g->d_vpos4, g->vpos4, (size_t)P * 16, cs);
        vl_cuda_h2d(g->d_vframes, g->vframes, (size_t)P * 16, cs);
        vl_cuda_h2d(g->d_vcu, g->vcu, (size_t)(nseg + 1) * 4, cs);
        vl_cuda_h2d(g->d_pixels, g->pixels, pix, cs);
    }
    vl_cuda_event_record(g->copied, cs);
    c->in = g;
    mark(c, P_UPLOAD);
    vl_cuda_stream_wait(s, g->copied);
    if (P)
        vit_forward(c, P, nseg, max_seg);
    lm_forward(c, T, B, max_len, nvis);
    vl_cuda_d2h(g->out, c->out, (size_t)B * k->hidden * sizeof(float), s);
    vl_cuda_event_record(g->done, s);
    prof_collect(c);
    g->busy = 1;
    g->first_item = i0;
    g->n_items = B;
    c->stats.batches++;
    c->stats.lm_tokens += T;
    c->stats.vit_patches += P;
}

static void finish_batch(struct vl_cuda_ctx *c, struct staging *g, float *out)
{
    if (!g->busy)
        return;
    vl_cuda_event_sync(g->done);
    memcpy(out + (size_t)g->first_item * c->cfg.hidden, g->out,
           (size_t)g->n_items * c->cfg.hidden * sizeof(float));
    g->busy = 0;
}

int vl_cuda_embed(struct vl_cuda_ctx *c, const struct vl_item *items, int n, float *out, char *err,
                  size_t errlen)
{
    const struct vl_cuda_config *k = &c->cfg;
    /* validate everything first: an invalid item means nothing is computed */
    for (int i = 0; i < n; i++) {
        const struct vl_item *it = &items[i];
        char e[256];
        if (vl_item_validate(it, k->image_token_id, k->video_token_id, VL_MAX_SEQ_TOKENS, e,
                             sizeof e)) {
            snprintf(err, errlen, "item %d: %s", i, e);
            return -1;
        }
        for (int t = 0; t < it->n_ids; t++)
            if (it->ids[t] < 0 || it->ids[t] >= k->vocab) {
                snprintf(err, errlen, "item %d: token id %d at %d is outside the vocabulary", i,
                         it->ids[t], t);
                return -1;
            }
        if (vl_positions_compute(it, k->image_token_id, k->video_token_id, 2, c->pos_tmp, e,
                                 sizeof e)) {
            snprintf(err, errlen, "item %d: %s", i, e);
            return -1;
        }
    }
    int i = 0, set = 0;
    while (i < n) {
        int64_t tok = items[i].n_ids, pat = item_patches(&items[i]);
        int j = i + 1;
        while (j < n && tok + items[j].n_ids <= c->budget_tokens &&
               pat + item_patches(&items[j]) <= c->budget_patches) {
            tok += items[j].n_ids;
            pat += item_patches(&items[j]);
            j++;
        }
        struct staging *g = &c->st[set];
        finish_batch(c, g, out); /* its previous batch; the other set's may still run */
        run_batch(c, g, items, i, j);
        set ^= 1;
        i = j;
    }
    finish_batch(c, &c->st[set], out);
    finish_batch(c, &c->st[set ^ 1], out);
    size_t used = vl_cuda_mem_used();
    if (used > c->stats.peak_device_bytes)
        c->stats.peak_device_bytes = used;
    return 0;
}
#endif
