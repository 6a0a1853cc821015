/* Attention over packed variable-length batches, no padding (spec §3.4, §4.4).
 *
 * Sequences are concatenated along the row axis; cu_seqlens (device int32, n_seqs + 1 entries,
 * cu_seqlens[0] = 0) gives their boundaries. Query head h of row r starts at
 * q + r * q_stride + h * head_dim (likewise k, v with kv head h / (n_heads / n_kv_heads), i.e.
 * GQA); the output is o[r * o_stride + h * head_dim + d]. Softmax(q k^T * scale) v with fp32
 * scores, fp32 softmax statistics and fp32 accumulation (bf16 probabilities into the second
 * product, as FlashAttention-2 does); causal masks keys after the query within its sequence.
 * Never reads across sequence boundaries.
 *
 * Head dims 64, 72 and 128 (the 2B / 8B vision towers and the language models), and 16, 32,
 * 80 (small test checkpoints). Strides must
 * keep every head 16-byte aligned. max_seqlen bounds the grid; a larger sequence is an error.
 * Implementation: on a compute capability 9.0 device (H100, H200), head dims 64 and 128 run a
 * FlashAttention-3 style kernel on warpgroup MMA (attention_sm90.cu); everything else runs a
 * FlashAttention-2 style kernel on mma.sync bf16 tensor-core instructions with cp.async
 * double-buffered K/V tiles (attention.cu). docs/cuda.md records the measured TFLOP/s. */
#ifndef VL_WORKER_CUDA_ATTENTION_H
#define VL_WORKER_CUDA_ATTENTION_H

#include <stdint.h>

#include "worker/cuda/device.h"

#ifdef __cplusplus
extern "C" {
#endif

struct vl_attn_args {
    const uint16_t *q, *k, *v;
    uint16_t *o;
    int q_stride, k_stride, v_stride, o_stride; /* elements between consecutive rows */
    const int32_t *cu_seqlens;
    int n_seqs, max_seqlen;
    int n_heads, n_kv_heads, head_dim;
    int causal;
    float scale; /* usually head_dim^-0.5 */
};

void vl_attention(vl_stream_t s, const struct vl_attn_args *a);

/* Variant selector for tests and benchmarks. mma.sync kernel (any CUDA device): 4 or 8 = warps
 * per block of 16 query rows each (64 or 128 rows; head dims 64/72/128, and 4 for 16/32/80);
 * 2 = 4 warps of 32 rows each (head dims <= 80). wgmma kernel (compute capability 9.0 only;
 * blocks of 2 warpgroups x 64 query rows; head dims 64 and 128 unless noted): the key-tile size,
 * the shared-memory stages, and OV = the softmax of one tile overlapped with the P V product of
 * the previous one inside each warpgroup. 0 picks the default by the measured rule in
 * attention.cu. An uncovered combination aborts. */
enum {
    VL_ATTN_SM90_N128 = 100,          /* 128-key tiles, 2 stages */
    VL_ATTN_SM90_N64 = 101,           /* 64-key tiles, 2 stages */
    VL_ATTN_SM90_N64_S4 = 102,        /* 64-key tiles, 4 stages */
    VL_ATTN_SM90_N64_S4_OV = 103,     /* 64-key tiles, 4 stages, OV */
    VL_ATTN_SM90_N128_S3_OV = 104,    /* 128-key tiles, 3 stages, OV */
    VL_ATTN_SM90_N128_S4_OV_1B = 105, /* head dim 64: 128-key tiles, 4 stages, OV, 1 block/SM */
    VL_ATTN_SM90_N32_S4_OV = 106,     /* head dim 128: 32-key tiles, 4 stages, OV */
    /* warp-specialised, persistent (one block per SM): a producer warpgroup fills 4 K/V
     * stages through mbarriers for 2 consumer warpgroups (128 query rows), OV; key tiles of 128
     * (head dim 64) or 64 (head dim 128) */
    VL_ATTN_SM90_WS = 107,
    VL_ATTN_SM90_WS_PP = 108, /* VL_ATTN_SM90_WS + ping-pong between the consumer warpgroups */
    VL_ATTN_SM90_WS3 = 109,   /* head dim 64: 3 consumer warpgroups (192 rows), 64-key tiles */
    /* 128-key tiles at the registers setmaxnreg gives the consumers: head dim 128 with 2
     * stages and ping-pong, head dim 64 with 3 consumer warpgroups */
    VL_ATTN_SM90_WS_BIG = 110,
    VL_ATTN_SM90_WS_RR = 111, /* VL_ATTN_SM90_WS with setmaxnreg (40 / 232 registers) */
    /* a variant above with E of every 8 softmax exponentials computed on the FMA pipe (degree-3
     * polynomial, relative error <= 7.5e-5, worker/cuda/exp2_fma.h) instead of the MUFU; each
     * covers one head dim only */
    VL_ATTN_SM90_OV_E2 = 112,     /* head dim 64: VL_ATTN_SM90_N64_S4_OV, E = 2 */
    VL_ATTN_SM90_OV_E3 = 113,     /* head dim 64: VL_ATTN_SM90_N64_S4_OV, E = 3 */
    VL_ATTN_SM90_OV_E4 = 114,     /* head dim 64: VL_ATTN_SM90_N64_S4_OV, E = 4 */
    VL_ATTN_SM90_WS_BIG_E2 = 115, /* head dim 64: VL_ATTN_SM90_WS_BIG, E = 2 */
    VL_ATTN_SM90_WS_BIG_E3 = 116, /* head dim 64: VL_ATTN_SM90_WS_BIG, E = 3 */
    VL_ATTN_SM90_WS_BIG_E4 = 117, /* head dim 64: VL_ATTN_SM90_WS_BIG, E = 4 */
    VL_ATTN_SM90_N64_E2 = 118,    /* head dim 128: VL_ATTN_SM90_N64, E = 2 */
    VL_ATTN_SM90_WS_E2 = 119,     /* head dim 128: VL_ATTN_SM90_WS, E = 2 */
    /* head dim 128 with an even GQA group (n_heads / n_kv_heads) only: VL_ATTN_SM90_N64 (2
     * blocks per SM) with head pairs: a block is 64 query positions of two query heads sharing
     * a kv head, one warpgroup per head, so every K/V tile loaded serves both and both
     * warpgroups end at the same causal diagonal. (121 and 122, the persistent kernel with head
     * pairs, were measured no faster than 107 / 108 and removed: docs/cuda.md.) */
    VL_ATTN_SM90_N64_GP = 120,
    /* head dim 64: warp-specialised persistent, 4 consumer warpgroups (256 query rows: a
     * 1024-patch image in 4 whole tiles), 64-key tiles, 4 stages, setmaxnreg (producer 24,
     * consumers 112 registers; without it ptxas caps a 640-thread block at 96 registers, spills
     * and serializes the wgmma) */
    VL_ATTN_SM90_WS4 = 123,
    VL_ATTN_SM90_LAST = VL_ATTN_SM90_WS4,
};
void vl_attention_variant(vl_stream_t s, const struct vl_attn_args *a, int variant);

/* 1 when the wgmma variant can run here (device of compute capability 9.0, head dim covered). */
int vl_attention_variant_available(const struct vl_attn_args *a, int variant);

#ifdef __cplusplus
}
#endif

#endif
