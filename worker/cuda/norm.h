/* Row normalisations in bf16 with fp32 statistics, matching the reference's roundings
 * (spec §10.4, §10.6, §10.9):
 *   RMSNorm:   y = bf16( bf16(x * rsqrt(mean(x^2) + eps)) * w )     (Qwen3 LM, spec §4.4)
 *   LayerNorm: y = bf16( (x - mean) * rsqrt(var + eps) * w + b )    (ViT and mergers, §3.4)
 *   Pool:      out[b] = L2-normalise( RMSNorm(h[row[b]]) ) as float32 (spec §5)
 * One block per row; dim must be a multiple of 8 and at most 8192; pointers 16-byte aligned. */
#ifndef VL_WORKER_CUDA_NORM_H
#define VL_WORKER_CUDA_NORM_H

#include <stdint.h>

#include "worker/cuda/device.h"

#ifdef __cplusplus
extern "C" {
#endif

void vl_rmsnorm(vl_stream_t s, const uint16_t *x, const uint16_t *w, uint16_t *y, int rows, int dim,
                float eps);
void vl_layernorm(vl_stream_t s, const uint16_t *x, const uint16_t *w, const uint16_t *b,
                  uint16_t *y, int rows, int dim, float eps);
/* rows_idx: n device int32 row indices into h[?, dim], or NULL for rows 0..n-1; out: n * dim
 * float32 (device). */
void vl_pool_last_l2(vl_stream_t s, const uint16_t *h, const int32_t *rows_idx, int n,
                     const uint16_t *w, int dim, float eps, float *out);

#ifdef __cplusplus
}
#endif

#endif
