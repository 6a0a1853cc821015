/* Internal to the .cu files of worker/cuda: small device helpers shared by the kernels
 * (vector bf16 access, warp and block reductions). */
#ifndef VL_WORKER_CUDA_KCOMMON_H
#define VL_WORKER_CUDA_KCOMMON_H

#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

static __device__ __forceinline__ float bf(bf16 v)
{
    return __bfloat162float(v);
}
static __device__ __forceinline__ bf16 tobf(float v)
{
    return __float2bfloat16(v); /* round to nearest even, like torch's .to(bfloat16) */
}
/* Rounds through bf16 and back: emulates a bf16 intermediate of the reference. */
static __device__ __forceinline__ float rbf(float v)
{
    return __bfloat162float(__float2bfloat16(v));
}

/* 8 bf16 in one 16-byte vector. */
union bf16x8 {
    uint4 u;
    bf16 h[8];
};

static __device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
 * `scratch` is 32 floats of shared memory; the function synchronises the block. */
static __device__ __forceinline__ float block_sum(float v, float *scratch)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* scratch may still be read by a previous call */
    if (lane == 0)
        scratch[wid] = v;
    __syncthreads();
    float t = lane < nw ? scratch[lane] : 0.0f;
    return warp_sum(t);
}

#endif
