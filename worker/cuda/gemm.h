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
 * Algorithms: by default cuBLASLt's first heuristic pick, once per shape, cached. vl_gemm_tune
 * measures instead (below); a shape near a tuned one uses the tuned choice. The workspace is
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

/* Measured algorithm choice for one shape class (N, K, epilogue, accumulate) at M rows. The
 * candidates are up to 12 of cuBLASLt's heuristic list and, for M >= 4096, the same rows as 2 or
 * 4 calls of the choice already tuned for exactly M/2 or M/4 (tune small M first to offer those).
 * Each is timed in 3 rounds (every candidate once per round, so clock drift hits all alike; per
 * round 1 warm-up call, then the mean of 4 back-to-back calls on stream s, call i with weights
 * W[i % n_w] and bias[i % n_w]: pass several layers' weights so they are not L2-resident as no
 * layer's are in a forward); its best round counts. Another candidate replaces the heuristic's
 * first pick only if at least 3 % faster. Later vl_gemm_bf16 calls of the class with M' rows,
 * M - M/16 <= M' <= M, use this choice if cuBLASLt accepts its algorithm for M'
 * (cublasLtMatmulAlgoCheck); other row counts keep the heuristic. The choice is fixed once made,
 * so a given shape always runs the same algorithm in a process; candidates differ only in fp32
 * accumulation order. X, W, bias, Y are scratch of the call's shape: Y is overwritten
 * (accumulate = 1 adds the product many times), X should hold non-zero data (timing on zeros
 * flatters); bias (an array of n_w pointers) is required for the bias epilogues. Blocks on the
 * stream. Returns the heuristic pick's time divided by the chosen one's (>= 1), or 0 if the class
 * at this M was tuned already or tuning is off (environment VL_GEMM_TUNE=0). */
double vl_gemm_tune(struct vl_gemm *g, vl_stream_t s, int M, int N, int K, const uint16_t *X,
                    const uint16_t *const *W, const uint16_t *const *bias, int n_w, uint16_t *Y,
                    enum vl_gemm_epilogue epi, int accumulate);

/* Records for the class at M rows the choice "run the rows in chunks of `chunk` rows" as if
 * vl_gemm_tune had measured it (chunk >= 8, a multiple of 8, < M), without timing anything: for
 * tests of the chunked path. Ignored if the class at M is tuned already. */
void vl_gemm_pin_chunks(struct vl_gemm *g, int M, int N, int K, enum vl_gemm_epilogue epi,
                        int accumulate, int chunk);

/* 1 unless the environment sets VL_GEMM_TUNE=0 (then vl_gemm_tune does nothing). */
int vl_gemm_tune_enabled(void);

#ifdef __cplusplus
}
#endif

#endif
