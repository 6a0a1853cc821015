/* Hopper (sm_90a) PTX primitives shared by the own kernels that use the tensor cores' async
 * proxy: the wgmma GEMM (gemm_sm90.cu) and the wgmma attention (attention_sm90.cu). Each is one
 * PTX instruction (or a wait loop on one) with the memory clobbers the callers rely on; include
 * only inside an `#ifdef VL_SM90A` region (the sm_90a device pass), where they compile. */
#ifndef VL_WORKER_CUDA_SM90_PTX_CUH
#define VL_WORKER_CUDA_SM90_PTX_CUH

#include <cuda_bf16.h>
#include <stdint.h>

/* The shared-window address of a pointer into shared memory. */
static __device__ __forceinline__ uint32_t smem_addr(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* (lo, hi) rounded to bf16 (round to nearest even), lo in the low half. */
static __device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* Makes this thread's generic-proxy shared-memory writes (cp.async, st.shared) visible to the
 * async proxy (wgmma operands, TMA stores); a barrier after it publishes them to other threads. */
static __device__ __forceinline__ void fence_proxy_async()
{
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

static __device__ __forceinline__ void wgmma_fence()
{
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void wgmma_commit()
{
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
/* Waits until at most N committed wgmma groups of this warpgroup are still in flight. */
template <int N> static __device__ __forceinline__ void wgmma_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Keeps the compiler from moving accesses of wgmma accumulators across a wgmma wait. */
static __device__ __forceinline__ void reg_fence(float &x)
{
    asm volatile("" : "+f"(x)::"memory");
}

/* mbarrier in shared memory (address from smem_addr): init with an arrival count, arrive, and
 * block until the phase of parity `parity` has completed (acquire: the arrivals' prior writes
 * are visible afterwards). */
static __device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
static __device__ __forceinline__ void mbar_arrive(uint32_t bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
static __device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity)
{
    uint32_t ok;
    do {
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(ok)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!ok);
}

#endif
