/* Internal to worker/cuda: the Hopper (sm_90a) attention kernel behind vl_attention
 * (attention.h). */
#ifndef VL_WORKER_CUDA_ATTENTION_SM90_H
#define VL_WORKER_CUDA_ATTENTION_SM90_H

#include "worker/cuda/attention.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the current device can run the wgmma kernel (compute capability exactly 9.0: the
 * sm_90a machine code runs nowhere else), else 0. Cached after the first call. */
int vl_attention_sm90_available(void);

/* 1 when `variant` (VL_ATTN_SM90_*, attention.h) covers a->head_dim, else 0. */
int vl_attention_sm90_covers(const struct vl_attn_args *a, int variant);

/* Launches the wgmma kernel variant on `s`; the caller has checked both predicates above. */
void vl_attention_sm90(vl_stream_t s, const struct vl_attn_args *a, int variant);

#ifdef __cplusplus
}
#endif

#endif
