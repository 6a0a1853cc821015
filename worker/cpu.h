/* The CPU backend's internals (worker/cpu_*.c): the reference forward of spec §3-§5 in
 * float32. Not used outside worker/cpu_*.c; the public entry is vl_backend_cpu_create
 * (worker/backend.h).
 *
 *   cpu_pool.c       a fixed pthread pool that runs N independent tasks
 *   cpu_gemm.c       y = x W^T + b over [out, in] float32 weights, tiled across the pool
 *   cpu_ops.c        norms, activations, rotary embeddings, segmented attention
 *   cpu_vision.c     patchify + normalise, vision tower, mergers (spec §3, §7.1, §7.4)
 *   cpu_text.c       embedding merge, decoder with DeepStack, pooling (spec §4, §5)
 *   cpu_backend.c    weights (converted to float32 once at create), batching, embed()
 *
 * Determinism: every output element of a GEMM and every attention row is computed by the
 * same instruction sequence whatever the batch around it, so a batch of items gives
 * bit-identical vectors to the items one at a time. */
#ifndef VL_WORKER_CPU_H
#define VL_WORKER_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "common/item.h"
#include "worker/model.h"

/* ---- thread pool ---- */
struct cpu_pool;
typedef void (*cpu_task_fn)(void *arg, int task, int thread);
/* Starts n-1 threads (the caller is thread 0). */
struct cpu_pool *cpu_pool_create(int n);
int cpu_pool_threads(const struct cpu_pool *p);
/* Runs fn(arg, t, thread) for t in [0, n_tasks) and returns when all are done. */
void cpu_pool_run(struct cpu_pool *p, cpu_task_fn fn, void *arg, int n_tasks);
void cpu_pool_free(struct cpu_pool *p);

/* ---- GEMM ---- */
struct cpu_linear {
    const float *w; /* [out, in] */
    const float *b; /* [out] or NULL */
    int out, in;
};
/* y[m, out] = x[m, in] (row stride ldx) W^T + b, y row stride ldy. */
void cpu_linear_run(struct cpu_pool *p, const struct cpu_linear *l, const float *x, int64_t ldx,
                    int64_t m, float *y, int64_t ldy);

/* ---- elementwise and norms (row-parallel over the pool) ---- */
void cpu_layer_norm(struct cpu_pool *p, float *x, int64_t rows, int dim, const float *w,
                    const float *b, float eps, const float *src); /* src may equal x */
void cpu_rms_norm(struct cpu_pool *p, float *y, const float *x, int64_t rows, int dim, int64_t ld,
                  const float *w, float eps); /* per row of `dim`, stride ld */
void cpu_gelu_tanh(struct cpu_pool *p, float *x, int64_t n);
void cpu_gelu_erf(struct cpu_pool *p, float *x, int64_t n);
void cpu_silu_mul(struct cpu_pool *p, float *gate, const float *up, int64_t n); /* g=silu(g)*u */

/* Rotates heads in place: x rows of n_heads * hd at stride ld, cos/sin [rows, hd]
 * (rotate_half pairing i <-> i + hd/2). */
void cpu_rope(struct cpu_pool *p, float *x, int64_t rows, int64_t ld, int n_heads, int hd,
              const float *cos, const float *sin);

/* Attention over segments (each segment attends only within itself; causal or not).
 * q: rows of nq heads (stride ldq), k/v: rows of nkv heads (stride ldk, ldv), out rows of nq
 * heads (stride ldo); query head h reads kv head h / (nq / nkv). */
struct cpu_attn_args {
    const float *q, *k, *v;
    float *out;
    int64_t ldq, ldk, ldv, ldo;
    int nq, nkv, hd;
    int causal;
    float scale;
    const int64_t *seg_start, *seg_len;
    int n_segs;
};
/* scratch: one buffer per pool thread of at least max segment length floats. */
void cpu_attention(struct cpu_pool *p, const struct cpu_attn_args *a, float **scratch);

/* ---- weights in float32 ---- */
struct cpu_vblock {
    const float *n1w, *n1b, *n2w, *n2b;
    struct cpu_linear qkv, proj, fc1, fc2;
};
struct cpu_merger {
    const float *nw, *nb;
    int norm_dim;
    struct cpu_linear fc1, fc2;
};
struct cpu_layer {
    const float *in_w, *post_w, *qn_w, *kn_w;
    struct cpu_linear q, k, v, o, gate, up, down;
};

struct cpu_state {
    const struct vl_model *m;
    struct cpu_pool *pool;
    int64_t max_tokens, max_patches;
    /* vision */
    struct cpu_linear patch; /* [V, patch_dim] */
    const float *pos_embed;  /* [G*G, V] */
    struct cpu_vblock *vb;
    struct cpu_merger merger, *ds;
    float vis_inv_freq[256];
    /* text */
    struct cpu_layer *layers;
    const float *norm_w;
    float txt_inv_freq[512];
    /* every float32 allocation, freed at destroy */
    float **allocs;
    int n_allocs, cap_allocs;
    /* workspace (grow-only) */
    float *ws;
    size_t ws_cap; /* floats */
    float **scratch;
    size_t scratch_cap; /* floats per thread */
};

/* Grows the per-thread attention scratch to n floats. */
void cpu_scratch_reserve(struct cpu_state *s, size_t n);

/* ---- the forward ---- */

/* One vision batch: every visual of the batch's items, in order. */
struct cpu_vis_batch {
    const struct vl_visual **vis; /* n_vis visuals */
    int n_vis;
    int64_t n_patches; /* sum of t*h*w */
    int64_t n_merged;  /* n_patches / 4 */
};
/* Floats of workspace the vision forward needs for this batch. */
size_t cpu_vision_ws_floats(const struct cpu_state *s, const struct cpu_vis_batch *b);
/* Runs the tower: out_main [n_merged, O], out_ds [n_deepstack][n_merged, O] (contiguous,
 * level-major). ws holds cpu_vision_ws_floats floats. */
void cpu_vision_forward(struct cpu_state *s, const struct cpu_vis_batch *b, float *ws,
                        float *out_main, float *out_ds);

/* One language-model batch of items laid end to end. */
struct cpu_text_batch {
    const struct vl_item *items;
    int n_items;
    int64_t n_tokens;
    const int32_t *pos;     /* [3][n_tokens]: t, h, w positions, items concatenated */
    const int64_t *vis_row; /* per token: row in the vision output, or -1 */
    const float *vis_main;  /* [n_merged, H] */
    const float *vis_ds;    /* [n_deepstack][n_merged, H] */
    int64_t n_merged;
};
size_t cpu_text_ws_floats(const struct cpu_state *s, const struct cpu_text_batch *b);
/* Writes each item's L2-normalised embedding to out[i * H]. */
void cpu_text_forward(struct cpu_state *s, const struct cpu_text_batch *b, float *ws, float *out);

#endif
