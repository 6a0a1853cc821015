/* Row gathers and scatters (embed.h): one block per row, 16-byte vectors. */
#include "worker/cuda/embed.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/kcommon.h"

static __global__ void gather_kernel(const bf16 *__restrict__ table,
                                     const int32_t *__restrict__ ids, int dim,
                                     bf16 *__restrict__ out)
{
    const uint4 *src = (const uint4 *)(table + (size_t)ids[blockIdx.x] * dim);
    uint4 *dst = (uint4 *)(out + (size_t)blockIdx.x * dim);
    for (int v = threadIdx.x; v < dim / 8; v += blockDim.x)
        dst[v] = src[v];
}

static __global__ void scatter_kernel(const bf16 *__restrict__ src, const int32_t *__restrict__ idx,
                                      int dim, bf16 *__restrict__ dst, int add)
{
    const uint4 *s = (const uint4 *)(src + (size_t)blockIdx.x * dim);
    uint4 *d = (uint4 *)(dst + (size_t)idx[blockIdx.x] * dim);
    for (int v = threadIdx.x; v < dim / 8; v += blockDim.x) {
        if (!add) {
            d[v] = s[v];
        } else {
            bf16x8 a, b;
            a.u = d[v];
            b.u = s[v];
#pragma unroll
            for (int j = 0; j < 8; j++)
                a.h[j] = tobf(bf(a.h[j]) + bf(b.h[j]));
            d[v] = a.u;
        }
    }
}

extern "C" void vl_embed_gather(vl_stream_t s, const uint16_t *table, const int32_t *ids, int rows,
                                int dim, uint16_t *out)
{
    if (rows <= 0)
        return;
    gather_kernel<<<rows, 256, 0, s>>>((const bf16 *)table, ids, dim, (bf16 *)out);
    VL_LAUNCH_CHECK("gather_kernel");
}

extern "C" void vl_rows_scatter(vl_stream_t s, const uint16_t *src, const int32_t *idx, int n,
                                int dim, uint16_t *dst, int add)
{
    if (n <= 0)
        return;
    scatter_kernel<<<n, 256, 0, s>>>((const bf16 *)src, idx, dim, (bf16 *)dst, add);
    VL_LAUNCH_CHECK("scatter_kernel");
}
