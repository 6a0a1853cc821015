/* Activations in bf16, each the reference's computation rounded once per reference op:
 *   vl_swiglu:    out[r, i] = bf16( bf16(silu(g)) * u ),  g = in[r, i], u = in[r, inter + i]
 *                 (the fused gate/up projection writes [gate | up] per row; spec §4.4)
 *   vl_gelu_erf:  x = bf16( 0.5 x (1 + erf(x / sqrt 2)) ) in place (mergers' nn.GELU(), §3.5)
 *   vl_gelu_tanh: x = bf16( gelu_pytorch_tanh(x) ) in place (ViT MLP, §3.4; the forward uses the
 *                 cuBLASLt epilogue instead, this is its reference and fallback)
 * Sizes must be multiples of 8; pointers 16-byte aligned. */
#ifndef VL_WORKER_CUDA_ACT_H
#define VL_WORKER_CUDA_ACT_H

#include <stddef.h>
#include <stdint.h>

#include "worker/cuda/device.h"

#ifdef __cplusplus
extern "C" {
#endif

void vl_swiglu(vl_stream_t s, const uint16_t *in, uint16_t *out, int rows, int inter);
void vl_gelu_erf(vl_stream_t s, uint16_t *x, size_t n);
void vl_gelu_tanh(vl_stream_t s, uint16_t *x, size_t n);

#ifdef __cplusplus
}
#endif

#endif
