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
 * Implementation: a FlashAttention-2 style kernel on mma.sync bf16 tensor-core instructions
 * with cp.async double-buffered K/V tiles (docs/cuda.md records the measured TFLOP/s). */
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

/* Variant selector for tests and benchmarks: 4 or 8 = warps per block of 16 query rows each
 * (64 or 128 rows; head dims 64/72/128, and 4 for 16/32/80); 2 = 4 warps of 32 rows each (head
 * dims <= 80); 0 picks the default (2 for head dims <= 80, else 4). */
void vl_attention_variant(vl_stream_t s, const struct vl_attn_args *a, int warps);

#ifdef __cplusplus
}
#endif

#endif
