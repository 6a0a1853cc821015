/* Rotary position embeddings, in place on the fused QKV projection output.
 *
 * vl_qk_norm_mrope (language model, spec §4.3-4.4): qkv is [rows, (nq + 2*nkv) * head_dim]
 * with the q heads, then k heads, then v heads. Each q and k head gets its RMSNorm (weights
 * qw / kw, [head_dim]) and then the interleaved multimodal RoPE with mrope_section {s_t, s_h,
 * s_w} ([24, 20, 20] for the released models): frequency i (of head_dim / 2) uses the h
 * position if i % 3 == 1 and i < 3 s_h, the w position if i % 3 == 2 and i < 3 s_w, else the t
 * position; cos/sin are rounded to bf16 and the rotation is done in bf16 roundings like the
 * reference. pos is [rows, 3] int32 (t, h, w). v is not touched. head_dim even, <= 512.
 *
 * vl_vit_rope (vision tower, spec §3.3): qkv is [rows, 3 * heads * head_dim]; q and k of each
 * head are rotated in fp32 (rotate_half pairs i, i + head_dim/2) by angles row * inv_freq and
 * col * inv_freq (inv_freq over head_dim/2 with theta 10000), rounded once to bf16. pos4 is
 * [rows, 4] int32 of which [0] = row and [1] = column in full-resolution patch units. */
#ifndef VL_WORKER_CUDA_ROPE_H
#define VL_WORKER_CUDA_ROPE_H

#include <stdint.h>

#include "worker/cuda/device.h"

#ifdef __cplusplus
extern "C" {
#endif

void vl_qk_norm_mrope(vl_stream_t s, uint16_t *qkv, int rows, int nq, int nkv, int head_dim,
                      const int *mrope_section, const uint16_t *qw, const uint16_t *kw,
                      const int32_t *pos, float eps, float theta);
void vl_vit_rope(vl_stream_t s, uint16_t *qkv, int rows, int heads, int head_dim,
                 const int32_t *pos4);

#ifdef __cplusplus
}
#endif

#endif
