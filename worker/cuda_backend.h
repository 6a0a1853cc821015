/* The CUDA backend's model on the device: configuration, bf16 weights (fused QKV and gate/up
 * projections), the preallocated workspace, and the batched forward. vl_backend_cuda_create
 * (cuda_backend.c) builds these from a loaded checkpoint; the benchmarks build them with
 * random weights of the real sizes (cannot ship gigabytes of checkpoints). */
#ifndef VL_WORKER_CUDA_BACKEND_H
#define VL_WORKER_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "common/item.h"
#include "worker/cuda/device.h"

#define VL_CUDA_MAX_LAYERS 64
#define VL_CUDA_MAX_DEEPSTACK 4

struct vl_cuda_config {
    /* language model (spec §1.1) */
    int hidden, layers, heads, kv_heads, head_dim, inter, vocab;
    int mrope_section[3];
    float rms_eps, rope_theta;
    /* vision tower (spec §1.2) */
    int v_hidden, v_depth, v_heads, v_head_dim, v_inter, v_out;
    int v_pos_side; /* 48 = sqrt(2304) */
    float v_eps;    /* LayerNorm eps, 1e-6 */
    int n_deepstack, deepstack_idx[VL_CUDA_MAX_DEEPSTACK];
    int32_t image_token_id, video_token_id;
};

/* The released Qwen3-VL-Embedding-2B / 8B shapes (spec §1). which: "2B" or "8B". */
int vl_cuda_config_preset(const char *which, struct vl_cuda_config *c);

struct vl_cuda_layer {
    uint16_t *in_norm, *qkv_w, *q_norm, *k_norm, *o_w, *post_norm, *gate_up_w, *down_w;
};
struct vl_cuda_vblock {
    uint16_t *norm1_w, *norm1_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
    uint16_t *norm2_w, *norm2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
};
struct vl_cuda_merger {
    uint16_t *norm_w, *norm_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
};

/* All weights live in one device allocation (arena). */
struct vl_cuda_weights {
    void *arena;
    size_t bytes;
    uint16_t *embed, *final_norm;
    struct vl_cuda_layer layer[VL_CUDA_MAX_LAYERS];
    uint16_t *patch_w, *patch_b, *pos_embed;
    struct vl_cuda_vblock vblock[VL_CUDA_MAX_LAYERS];
    struct vl_cuda_merger merger, deepstack[VL_CUDA_MAX_DEEPSTACK];
};

/* Carves the arena for cfg (allocates it on the current device). Returns 0 or -1 with err. */
int vl_cuda_weights_alloc(const struct vl_cuda_config *cfg, struct vl_cuda_weights *w, char *err,
                          size_t errlen);
/* Fills every tensor with random bf16 values (norm weights around 1, projections uniform with
 * std ~ 0.02): a model of the real size whose speed equals a checkpoint's. */
void vl_cuda_weights_random(const struct vl_cuda_config *cfg, struct vl_cuda_weights *w,
                            uint64_t seed);
void vl_cuda_weights_free(struct vl_cuda_weights *w);

struct vl_cuda_ctx; /* device, stream, GEMM handle, workspace, pinned staging */

/* Creates the forward context on device ordinal `device` for batches of up to
 * max_batch_tokens language-model tokens and max_batch_patches vision patches (0: the
 * defaults 16384 / 16384). The workspace is sized so that any single valid item fits, even
 * one larger than the budgets. Returns NULL with err on failure. */
struct vl_cuda_ctx *vl_cuda_ctx_create(const struct vl_cuda_config *cfg,
                                       const struct vl_cuda_weights *w, int64_t max_batch_tokens,
                                       int64_t max_batch_patches, char *err, size_t errlen);
void vl_cuda_ctx_free(struct vl_cuda_ctx *c);

/* Embeds n items into out[n * hidden] (float32, L2-normalised), batching them by the token
 * and patch budgets. Returns 0, or -1 with err for an invalid item (nothing is computed). */
int vl_cuda_embed(struct vl_cuda_ctx *c, const struct vl_item *items, int n, float *out, char *err,
                  size_t errlen);

/* Statistics of the context: peak device memory in use seen after a forward, bytes of the
 * workspace, batches run. */
struct vl_cuda_stats {
    size_t weights_bytes, workspace_bytes, peak_device_bytes;
    int64_t batches, lm_tokens, vit_patches;
};
void vl_cuda_ctx_stats(const struct vl_cuda_ctx *c, struct vl_cuda_stats *st);

/* Per-op device-time profiling for the benchmarks: on = 1 resets the counters and records
 * device events between the forward's ops (each batch then ends synchronised, so there is no
 * host/device overlap while it is on); the report is one line "device T ms: op ms (%) ...". */
void vl_cuda_ctx_profile(struct vl_cuda_ctx *c, int on);
int vl_cuda_ctx_profile_report(const struct vl_cuda_ctx *c, char *buf, size_t n);

#endif
