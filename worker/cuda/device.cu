/* Device plumbing (device.h): thin checked wrappers over the CUDA runtime, plus the random
 * bf16 fill used to build random-weight models of the real size on the device. */
#include "worker/cuda/device.h"

#include <cuda_bf16.h>
#include <stdio.h>
#include <string.h>

#include "worker/cuda/cuda_check.h"

extern "C" int vl_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no driver" error: it is not a device fault */
        return 0;
    }
    return n;
}

extern "C" int vl_cuda_device_open(int ordinal, struct vl_device_info *info, char *err,
                                   size_t errlen)
{
    int n = vl_cuda_device_count();
    if (ordinal < 0 || ordinal >= n) {
        snprintf(err, errlen, "CUDA device %d does not exist (%d visible)", ordinal, n);
        return -1;
    }
    VL_CUDA_CHECK(cudaSetDevice(ordinal));
    cudaDeviceProp p;
    VL_CUDA_CHECK(cudaGetDeviceProperties(&p, ordinal));
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->sm_count = p.multiProcessorCount;
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->total_mem = p.totalGlobalMem;
    info->l2_bytes = (size_t)p.l2CacheSize;
    info->smem_per_block_optin = p.sharedMemPerBlockOptin;
    return 0;
}

extern "C" void *vl_cuda_malloc(size_t n)
{
    if (n == 0)
        return NULL;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        vl_error("cudaMalloc(%zu bytes) failed: %s", n, cudaGetErrorString(e));
        abort();
    }
    return p;
}

extern "C" void vl_cuda_free(void *p)
{
    if (p)
        VL_CUDA_CHECK(cudaFree(p));
}

extern "C" void *vl_cuda_host_alloc(size_t n)
{
    if (n == 0)
        return NULL;
    void *p = NULL;
    cudaError_t e = cudaHostAlloc(&p, n, cudaHostAllocDefault);
    if (e != cudaSuccess) {
        vl_error("cudaHostAlloc(%zu bytes) failed: %s", n, cudaGetErrorString(e));
        abort();
    }
    return p;
}

extern "C" void vl_cuda_host_free(void *p)
{
    if (p)
        VL_CUDA_CHECK(cudaFreeHost(p));
}

extern "C" size_t vl_cuda_mem_used(void)
{
    size_t free_b = 0, total_b = 0;
    VL_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return total_b - free_b;
}

extern "C" vl_stream_t vl_cuda_stream_create(void)
{
    cudaStream_t s;
    VL_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
}

extern "C" void vl_cuda_stream_destroy(vl_stream_t s)
{
    if (s)
        VL_CUDA_CHECK(cudaStreamDestroy(s));
}

extern "C" void vl_cuda_stream_sync(vl_stream_t s)
{
    VL_CUDA_CHECK(cudaStreamSynchronize(s));
}

extern "C" void vl_cuda_device_sync(void)
{
    VL_CUDA_CHECK(cudaDeviceSynchronize());
}

extern "C" vl_event_t vl_cuda_event_create(void)
{
    cudaEvent_t e;
    VL_CUDA_CHECK(cudaEventCreate(&e));
    return e;
}

extern "C" void vl_cuda_event_destroy(vl_event_t e)
{
    if (e)
        VL_CUDA_CHECK(cudaEventDestroy(e));
}

extern "C" void vl_cuda_event_record(vl_event_t e, vl_stream_t s)
{
    VL_CUDA_CHECK(cudaEventRecord(e, s));
}

extern "C" void vl_cuda_stream_wait(vl_stream_t s, vl_event_t e)
{
    VL_CUDA_CHECK(cudaStreamWaitEvent(s, e, 0));
}

extern "C" void vl_cuda_event_sync(vl_event_t e)
{
    VL_CUDA_CHECK(cudaEventSynchronize(e));
}

extern "C" float vl_cuda_event_ms(vl_event_t start, vl_event_t stop)
{
    float ms = 0;
    VL_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms;
}

extern "C" void vl_cuda_h2d(void *dst, const void *src, size_t n, vl_stream_t s)
{
    if (n)
        VL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s));
}

extern "C" void vl_cuda_d2h(void *dst, const void *src, size_t n, vl_stream_t s)
{
    if (n)
        VL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s));
}

extern "C" void vl_cuda_d2d(void *dst, const void *src, size_t n, vl_stream_t s)
{
    if (n)
        VL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s));
}

extern "C" void vl_cuda_memset(void *dst, int byte, size_t n, vl_stream_t s)
{
    if (n)
        VL_CUDA_CHECK(cudaMemsetAsync(dst, byte, n, s));
}

/* splitmix64: a counter-based hash, so values depend only on (seed, index). */
static __device__ __forceinline__ uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static __global__ void fill_random_kernel(__nv_bfloat16 *dst, size_t n, uint64_t seed, float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t h = mix64(seed * 0x2545f4914f6cdd1dull + i);
        float u = (float)(h >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
        dst[i] = __float2bfloat16((2.0f * u - 1.0f) * scale);
    }
}

static __global__ void fill_value_kernel(__nv_bfloat16 *dst, size_t n, float v)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16(v);
}

extern "C" void vl_cuda_fill_random_bf16(uint16_t *dst, size_t n, uint64_t seed, float scale,
                                         vl_stream_t s)
{
    if (!n)
        return;
    size_t blocks = (n + 255) / 256;
    if (blocks > 8192)
        blocks = 8192;
    fill_random_kernel<<<(unsigned)blocks, 256, 0, s>>>((__nv_bfloat16 *)dst, n, seed, scale);
    VL_LAUNCH_CHECK("fill_random_kernel");
}

extern "C" void vl_cuda_fill_bf16(uint16_t *dst, size_t n, float value, vl_stream_t s)
{
    if (!n)
        return;
    size_t blocks = (n + 255) / 256;
    if (blocks > 8192)
        blocks = 8192;
    fill_value_kernel<<<(unsigned)blocks, 256, 0, s>>>((__nv_bfloat16 *)dst, n, value);
    VL_LAUNCH_CHECK("fill_value_kernel");
}

extern "C" void vl_cuda_check_launch(const char *what)
{
    VL_LAUNCH_CHECK(what);
}
