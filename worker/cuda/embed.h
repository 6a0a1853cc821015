/* Row movement for the language model's input (spec §4.1, §4.4):
 *   vl_embed_gather:  out[r] = table[ids[r]]                 (token embedding lookup)
 *   vl_rows_scatter:  dst[idx[i]] = src[i]        (add = 0)  (visual features into pad rows)
 *                     dst[idx[i]] = bf16(dst[idx[i]] + src[i]) (add = 1) (DeepStack injection)
 * All index arrays are device int32; dim a multiple of 8. Ids must already be validated
 * (< vocabulary); the kernel does not bound-check them. */
#ifndef VL_WORKER_CUDA_EMBED_H
#define VL_WORKER_CUDA_EMBED_H

#include <stdint.h>

#include "worker/cuda/device.h"

#ifdef __cplusplus
extern "C" {
#endif

void vl_embed_gather(vl_stream_t s, const uint16_t *table, const int32_t *ids, int rows, int dim,
                     uint16_t *out);
void vl_rows_scatter(vl_stream_t s, const uint16_t *src, const int32_t *idx, int n, int dim,
                     uint16_t *dst, int add);

#ifdef __cplusplus
}
#endif

#endif
