/* Own bf16 GEMM for Hopper (sm_90a) in the layout of vl_gemm_bf16 (gemm.h), with epilogues
 * cuBLASLt lacks:
 *
 *   vl_gemm_sm90_bf16:   Y[M, N] = X[M, K] · W[N, K]^T                    (accumulate = 0)
 *                        Y[M, N] = bf16(Y[M, N] + bf16(X[M, K] · W[N, K]^T))  (accumulate = 1)
 *   vl_gemm_sm90_swiglu: act[M, I] = swiglu(X[M, K] · W[2I, K]^T), W = [gate rows; up rows]
 *                        (the fused gate_up weight as loaded, rows 0..I-1 gate, I..2I-1 up):
 *                        act[m, i] = bf16( bf16(silu(g)) * u ), g = bf16(acc_gate[m, i]),
 *                        u = bf16(acc_up[m, i]) -- exactly vl_swiglu (act.h) applied to the
 *                        bf16 gate_up product, without writing the [M, 2I] tensor.
 *
 * bf16 operands, fp32 accumulation over K in order, the product rounded once to bf16. The
 * accumulate form then adds it to Y in bf16 (TMA reduce-add): two roundings, as the reference's
 * residual add h + proj(x) of two bf16 tensors; cuBLASLt's beta = 1 rounds once (the two agree
 * except for rare 1-ulp ties; gpu_gemm measured them bit-identical where cuBLASLt does not
 * split K).
 * Requirements: a cc 9.0 device (vl_gemm_sm90_available), M, N, K >= 1, K % 8 == 0, N % 8 == 0,
 * I % 128 == 0 for the SwiGLU form, X, W and Y (act) 16-byte aligned. Calls allocate nothing
 * (the TMA descriptors are kernel parameters; the first vl_gemm_sm90_available on a device makes
 * its 128 KiB SiLU table) and are CUDA-graph capturable. A failed CUDA call or unsupported
 * argument aborts. */
#ifndef VL_WORKER_CUDA_GEMM_SM90_H
#define VL_WORKER_CUDA_GEMM_SM90_H

#include <stdint.h>

#include "worker/cuda/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if the current device is cc 9.0 and this build holds the sm_90a kernels, else 0. */
int vl_gemm_sm90_available(void);

/* 1 if the language model should use these kernels: available, and the environment's
 * VL_GEMM_KERNEL is not "cublas" (sm90 or unset: use them, the measured faster default; see
 * docs/cuda.md; any other value warns and means the default). Read once per process. */
int vl_gemm_sm90_selected(void);

void vl_gemm_sm90_bf16(vl_stream_t s, int M, int N, int K, const uint16_t *X, const uint16_t *W,
                       uint16_t *Y, int accumulate);

void vl_gemm_sm90_swiglu(vl_stream_t s, int M, int I, int K, const uint16_t *X, const uint16_t *W,
                         uint16_t *act);

#ifdef __cplusplus
}
#endif

#endif
