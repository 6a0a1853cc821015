/* bf16 <-> float on the host, as plain C: round-to-nearest-even like the device's
 * __float2bfloat16 and PyTorch's .to(bfloat16). Used by the CUDA backend's host code, the
 * CPU references of the GPU tests and the benchmarks. */
#ifndef VL_WORKER_CUDA_BF16_H
#define VL_WORKER_CUDA_BF16_H

#include <stdint.h>
#include <string.h>

static inline float vl_bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t vl_float_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) /* NaN stays a quiet NaN */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Rounds a float to the nearest bf16 value and returns it as a float. */
static inline float vl_bf16_round(float f)
{
    return vl_bf16_to_float(vl_float_to_bf16(f));
}

#endif
