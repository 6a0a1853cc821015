/* Rotary position embeddings, in place on the fused QKV projection output. The cos/sin
 * tables depend only on positions, so each forward builds them once (vl_*_table) and every
 * layer reads them.
 *
 * vl_mrope_table (language model, spec §4.3): cs[row] = {cos[head_dim/2], sin[head_dim/2]}
 * (bf16, rounded like the reference) for pos [rows, 3] int32 (t, h, w) and the interleaved
 * mrope_section {s_t, s_h, s_w} ([24, 20, 20] in the released models): frequency i uses the h
 * position if i % 3 == 1 and i < 3 s_h, the w position if i % 3 == 2 and i < 3 s_w, else t;
 * inv_freq[i] = theta^(-2i / head_dim).
 *
 * vl_qk_norm_mrope (spec §4.4): qkv is [rows, (nq + 2*nkv) * head_dim] with the q heads, then k
 * heads, then v heads. Each q and k head gets its RMSNorm (weights qw / kw, [head_dim]) and
 * then the rotation q*cos + rotate_half(q)*sin in bf16 roundings like the reference. v is not
 * touched. head_dim even, <= 512. For head_dim 128 the sum of squares has a fixed order that the
 * qkv GEMM's fused epilogue (gemm_sm90.h) reproduces, so the two are bit-identical.
 *
 * vl_vit_rope_table (vision tower, spec §3.3): cs[row] = {cos[head_dim/2], sin[head_dim/2]} in
 * fp32 of the angles row * inv_freq and col * inv_freq (inv_freq over head_dim/2 with theta
 * 10000); pos4 is [rows, 4] int32 of which [0] = row and [1] = column in patch units.
 * vl_vit_rope: qkv is [rows, 3 * heads * head_dim]; q and k of each head are rotated in fp32
 * (rotate_half pairs i, i + head_dim/2: x_i cos - x_{i+h} sin and x_{i+h} cos + x_i sin, each
 * product and the sum rounded to fp32 separately, as the reference's unfused ops; no fma) and
 * rounded once to bf16. The qkv GEMM's fused epilogue (gemm_sm90.h) computes the same. */
#ifndef VL_WORKER_CUDA_ROPE_H
#define VL_WORKER_CUDA_ROPE_H

#include <stdint.h>

#include "worker/cuda/device.h"

#ifdef __cplusplus
extern "C" {
#endif

void vl_mrope_table(vl_stream_t s, const int32_t *pos, int rows, int head_dim,
                    const int *mrope_section, float theta, uint16_t *cs);
void vl_qk_norm_mrope(vl_stream_t s, uint16_t *qkv, int rows, int nq, int nkv, int head_dim,
                      const uint16_t *qw, const uint16_t *kw, const uint16_t *cs, float eps);
void vl_vit_rope_table(vl_stream_t s, const int32_t *pos4, int rows, int head_dim, float *cs);
void vl_vit_rope(vl_stream_t s, uint16_t *qkv, int rows, int heads, int head_dim, const float *cs);

#ifdef __cplusplus
}
#endif

#endif
