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
 *   vl_gemm_sm90_qk_norm_mrope: qkv[M, (nq + 2 nkv) 128] = X · W^T for the fused qkv weight,
 *                        then each q and k head (head_dim 128) RMSNormed (qw / kw) and rotated
 *                        with the MRoPE table cs ([M, 128] bf16 cos | sin, vl_mrope_table) in the
 *                        epilogue; v heads stored plain. Bit-identical to vl_gemm_sm90_bf16 then
 *                        vl_qk_norm_mrope (rope.h) on the same inputs: the product is rounded to
 *                        bf16 first and then gets that kernel's roundings, and its sum of squares
 *                        has the order of vl_qk_norm_mrope's head_dim-128 kernel.
 *   vl_gemm_sm90_vit_qkv_rope: qkv[M, 3 heads 64] = X · W^T + bias (the vision tower's fused
 *                        qkv with its bias, head_dim 64), then the q and k heads rotated with the
 *                        fp32 2-D rope table cs ([M, 64] cos | sin, vl_vit_rope_table) in the
 *                        epilogue: bit-identical to cuBLASLt's bias epilogue (vl_gemm_bf16,
 *                        VL_GEMM_BIAS: fp32 add, one rounding) then vl_vit_rope, given equal fp32
 *                        accumulators.
 *
 * bf16 operands, fp32 accumulation over K in order, the product rounded once to bf16. The
 * accumulate form then adds it to Y in bf16 (TMA reduce-add): two roundings, as the reference's
 * residual add h + proj(x) of two bf16 tensors; cuBLASLt's beta = 1 rounds once (the two agree
 * except for rare 1-ulp ties; gpu_gemm measured them bit-identical where cuBLASLt does not
 * split K).
 * Requirements: a cc 9.0 device (vl_gemm_sm90_available), M, N, K >= 1, K % 8 == 0, N % 8 == 0,
 * I % 128 == 0 for the SwiGLU form, head_dim == 128 and qw, kw, cs 4-byte aligned for the q/k
 * form, head_dim == 64, an even head count and bias, cs 8-byte aligned for the ViT form, X, W
 * and Y (act) 16-byte aligned. Calls allocate nothing
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

/* Which fused epilogues the forward runs on these kernels when vl_gemm_sm90_selected(): a mask
 * of VL_SM90_FUSE_* from the environment's VL_GEMM_FUSE (comma-separated "swiglu", "qkrope",
 * "vitrope", or "none"; unset: the measured faster set, docs/cuda.md; an unknown word warns and is
 * ignored). Read once per process. */
enum { VL_SM90_FUSE_SWIGLU = 1, VL_SM90_FUSE_QKROPE = 2, VL_SM90_FUSE_VITROPE = 4 };
int vl_gemm_sm90_fused(void);

void vl_gemm_sm90_bf16(vl_stream_t s, int M, int N, int K, const uint16_t *X, const uint16_t *W,
                       uint16_t *Y, int accumulate);

void vl_gemm_sm90_swiglu(vl_stream_t s, int M, int I, int K, const uint16_t *X, const uint16_t *W,
                         uint16_t *act);

void vl_gemm_sm90_qk_norm_mrope(vl_stream_t s, int M, int nq, int nkv, int head_dim, int K,
                                const uint16_t *X, const uint16_t *W, uint16_t *qkv,
                                const uint16_t *qw, const uint16_t *kw, const uint16_t *cs,
                                float eps);

void vl_gemm_sm90_vit_qkv_rope(vl_stream_t s, int M, int heads, int head_dim, int K,
                               const uint16_t *X, const uint16_t *W, const uint16_t *bias,
                               uint16_t *qkv, const float *cs);

#ifdef __cplusplus
}
#endif

#endif
