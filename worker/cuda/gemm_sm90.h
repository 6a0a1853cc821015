/* Own bf16 GEMM for Hopper (sm_90a) in the layout of vl_gemm_bf16 (gemm.h), with epilogues
 * cuBLASLt lacks:
 *
 *   vl_gemm_sm90_bf16:   Y[M, N] = X[M, K] · W[N, K]^T            (accumulate = 0)
 *                        Y[M, N] = Y[M, N] + X[M, K] · W[N, K]^T  (accumulate = 1)
 *   vl_gemm_sm90_swiglu: act[M, I] = swiglu(X[M, K] · W[2I, K]^T), W = [gate rows; up rows]
 *                        (the fused gate_up weight as loaded, rows 0..I-1 gate, I..2I-1 up):
 *                        act[m, i] = bf16( bf16(silu(g)) * u ), g = bf16(acc_gate[m, i]),
 *                        u = bf16(acc_up[m, i]) -- exactly vl_swiglu (act.h) applied to the
 *                        bf16 gate_up product, without writing the [M, 2I] tensor.
 *
 * bf16 operands, fp32 accumulation over K in order, each output rounded once to bf16 (the
 * accumulate form adds Y in fp32 before the rounding, as cuBLASLt's beta = 1 does).
 * Requirements: a cc 9.0 device (vl_gemm_sm90_available), M, N, K >= 1, K % 8 == 0, N % 8 == 0,
 * I % 128 == 0 for the SwiGLU form, X and W 16-byte aligned. Calls allocate nothing (the TMA
 * descriptors are kernel parameters) and are CUDA-graph capturable. A failed CUDA call aborts. */
#ifndef VL_WORKER_CUDA_GEMM_SM90_H
#define VL_WORKER_CUDA_GEMM_SM90_H

#include <stdint.h>

#include "worker/cuda/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if the current device is cc 9.0 and this build holds the sm_90a kernels, else 0. */
int vl_gemm_sm90_available(void);

/* 1 if the language model's projections should use these kernels: available, and the
 * environment's VL_GEMM_KERNEL is not "cublas" (VL_GEMM_KERNEL=sm90 asks for them; unset is the
 * default, see docs/cuda.md). Read once per process. */
int vl_gemm_sm90_selected(void);

void vl_gemm_sm90_bf16(vl_stream_t s, int M, int N, int K, const uint16_t *X, const uint16_t *W,
                       uint16_t *Y, int accumulate);

void vl_gemm_sm90_swiglu(vl_stream_t s, int M, int I, int K, const uint16_t *X, const uint16_t *W,
                         uint16_t *act);

#ifdef __cplusplus
}
#endif

#endif
