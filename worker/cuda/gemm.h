/* bf16 GEMMs through cuBLASLt for every projection of the model (weights in PyTorch's
 * nn.Linear layout [out, in], row-major activations):
 *
 *   Y[M, N] = X[M, K] · W[N, K]^T (+ bias[N]) (then GELU-tanh)      (accumulate = 0)
 *   Y[M, N] = Y[M, N] + X[M, K] · W[N, K]^T (+ bias[N])              (accumulate = 1)
 *
 * bf16 operands, fp32 accumulation, bf16 output rounded once. accumulate = 1 fuses the
 * residual add of a transformer block into the projection (C = D in cuBLASLt, beta = 1).
 * The GELU epilogue is cuBLASLt's, which is the tanh approximation (checked against
 * gelu_pytorch_tanh: notes/perf-anchors.md §4), so the ViT's fc1 + bias + GELU is one call.
 * Algorithms are chosen by cuBLASLt's heuristic once per shape and cached; the workspace is
 * fixed at creation, so calls allocate nothing and are CUDA-graph capturable. */
#ifndef VL_WORKER_CUDA_GEMM_H
#define VL_WORKER_CUDA_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "worker/cuda/device.h"

#ifdef __cplusplus
extern "C" {
#endif

enum vl_gemm_epilogue {
    VL_GEMM_PLAIN = 0,
    VL_GEMM_BIAS = 1,           /* + bias[N] */
    VL_GEMM_BIAS_GELU_TANH = 2, /* gelu_tanh(. + bias[N]) */
};

struct vl_gemm;

/* Creates a cuBLASLt handle with a workspace of workspace_bytes on the current device. */
struct vl_gemm *vl_gemm_create(size_t workspace_bytes);
void vl_gemm_free(struct vl_gemm *g);

/* See the file comment. All pointers are device pointers, 16-byte aligned; M, N, K >= 1.
 * bias is required for the BIAS epilogues and ignored otherwise. */
void vl_gemm_bf16(struct vl_gemm *g, vl_stream_t s, int M, int N, int K, const uint16_t *X,
                  const uint16_t *W, const uint16_t *bias, uint16_t *Y, enum vl_gemm_epilogue epi,
                  int accumulate);

#ifdef __cplusplus
}
#endif

#endif
