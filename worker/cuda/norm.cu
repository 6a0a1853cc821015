/* Row normalisations (norm.h). Rows up to 2048 wide: one warp per row; wider rows: one block
 * of 256 threads per row. Each thread keeps its 16-byte slices of the row in registers, so the
 * row is read from memory once. */
#include "worker/cuda/norm.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/kcommon.h"

#define NORM_THREADS 256
#define NORM_MAXV 4 /* 16-byte vectors per thread: dim <= 256 * 4 * 8 = 8192 */

static __device__ __forceinline__ int load_row(const bf16 *x, int dim, bf16x8 *buf)
{
    int nv = dim / 8;
    const uint4 *xv = (const uint4 *)x;
#pragma unroll
    for (int i = 0; i < NORM_MAXV; i++) {
        int idx = threadIdx.x + i * NORM_THREADS;
        if (idx < nv)
            buf[i].u = xv[idx];
    }
    return nv;
}

static __global__ void __launch_bounds__(NORM_THREADS)
    rmsnorm_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w, bf16 *__restrict__ y,
                   int dim, float eps)
{
    __shared__ float scratch[32];
    const bf16 *xr = x + (size_t)blockIdx.x * dim;
    bf16x8 buf[NORM_MAXV];
    int nv = load_row(xr, dim, buf);
    float ss = 0;
#pragma unroll
    for (int i = 0; i < NORM_MAXV; i++) {
        int idx = threadIdx.x + i * NORM_THREADS;
        if (idx < nv)
#pragma unroll
            for (int j = 0; j < 8; j++) {
                float v = bf(buf[i].h[j]);
                ss += v * v;
            }
    }
    ss = block_sum(ss, scratch);
    float r = rsqrtf(ss / (float)dim + eps);
    const uint4 *wv = (const uint4 *)w;
    uint4 *yv = (uint4 *)(y + (size_t)blockIdx.x * dim);
#pragma unroll
    for (int i = 0; i < NORM_MAXV; i++) {
        int idx = threadIdx.x + i * NORM_THREADS;
        if (idx < nv) {
            bf16x8 wt, o;
            wt.u = wv[idx];
#pragma unroll
            for (int j = 0; j < 8; j++)
                o.h[j] = tobf(rbf(bf(buf[i].h[j]) * r) * bf(wt.h[j]));
            yv[idx] = o.u;
        }
    }
}

static __global__ void __launch_bounds__(NORM_THREADS)
    layernorm_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w,
                     const bf16 *__restrict__ b, bf16 *__restrict__ y, int dim, float eps)
{
    __shared__ float scratch[32];
    const bf16 *xr = x + (size_t)blockIdx.x * dim;
    bf16x8 buf[NORM_MAXV];
    int nv = load_row(xr, dim, buf);
    float sum = 0;
#pragma unroll
    for (int i = 0; i < NORM_MAXV; i++) {
        int idx = threadIdx.x + i * NORM_THREADS;
        if (idx < nv)
#pragma unroll
            for (int j = 0; j < 8; j++)
                sum += bf(buf[i].h[j]);
    }
    float mean = block_sum(sum, scratch) / (float)dim;
    float sq = 0;
#pragma unroll
    for (int i = 0; i < NORM_MAXV; i++) {
        int idx = threadIdx.x + i * NORM_THREADS;
        if (idx < nv)
#pragma unroll
            for (int j = 0; j < 8; j++) {
                float d = bf(buf[i].h[j]) - mean;
                sq += d * d;
            }
    }
    float rstd = rsqrtf(block_sum(sq, scratch) / (float)dim + eps);
    const uint4 *wv = (const uint4 *)w, *bv = (const uint4 *)b;
    uint4 *yv = (uint4 *)(y + (size_t)blockIdx.x * dim);
#pragma unroll
    for (int i = 0; i < NORM_MAXV; i++) {
        int idx = threadIdx.x + i * NORM_THREADS;
        if (idx < nv) {
            bf16x8 wt, bt, o;
            wt.u = wv[idx];
            bt.u = bv[idx];
#pragma unroll
            for (int j = 0; j < 8; j++)
                o.h[j] = tobf((bf(buf[i].h[j]) - mean) * rstd * bf(wt.h[j]) + bf(bt.h[j]));
            yv[idx] = o.u;
        }
    }
}

static __global__ void __launch_bounds__(NORM_THREADS)
    pool_kernel(const bf16 *__restrict__ h, const int32_t *__restrict__ rows,
                const bf16 *__restrict__ w, int dim, float eps, float *__restrict__ out)
{
    __shared__ float scratch[32];
    const bf16 *xr = h + (size_t)(rows ? rows[blockIdx.x] : (int32_t)blockIdx.x) * dim;
    bf16x8 buf[NORM_MAXV];
    int nv = load_row(xr, dim, buf);
    float ss = 0;
#pragma unroll
    for (int i = 0; i < NORM_MAXV; i++) {
        int idx = threadIdx.x + i * NORM_THREADS;
        if (idx < nv)
#pragma unroll
            for (int j = 0; j < 8; j++) {
                float v = bf(buf[i].h[j]);
                ss += v * v;
            }
    }
    float r = rsqrtf(block_sum(ss, scratch) / (float)dim + eps);
    const uint4 *wv = (const uint4 *)w;
    float yv[NORM_MAXV][8];
    float ss2 = 0;
#pragma unroll
    for (int i = 0; i < NORM_MAXV; i++) {
        int idx = threadIdx.x + i * NORM_THREADS;
        if (idx < nv) {
            bf16x8 wt;
            wt.u = wv[idx];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                float v = rbf(rbf(bf(buf[i].h[j]) * r) * bf(wt.h[j])); /* last_hidden_state */
                yv[i][j] = v;
                ss2 += v * v;
            }
        }
    }
    float nrm = sqrtf(block_sum(ss2, scratch));
    float inv = 1.0f / fmaxf(nrm, 1e-12f);
    float *o = out + (size_t)blockIdx.x * dim;
#pragma unroll
    for (int i = 0; i < NORM_MAXV; i++) {
        int idx = threadIdx.x + i * NORM_THREADS;
        if (idx < nv)
#pragma unroll
            for (int j = 0; j < 8; j++)
                o[idx * 8 + j] = yv[i][j] * inv;
    }
}

/* Rows of at most 2048 elements: one warp per row (8 rows per block), no block barriers; the
 * per-block version leaves most threads idle on 1024-wide rows. */
#define WROW_MAXV 8 /* 16-byte vectors per lane: dim <= 32 * 8 * 8 = 2048 */

static __global__ void __launch_bounds__(256)
    rmsnorm_warp_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w,
                        bf16 *__restrict__ y, int rows, int dim, float eps)
{
    int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    int nv = dim / 8;
    const uint4 *xv = (const uint4 *)(x + (size_t)row * dim);
    bf16x8 buf[WROW_MAXV];
    float ss = 0;
#pragma unroll
    for (int i = 0; i < WROW_MAXV; i++) {
        int idx = lane + i * 32;
        if (idx < nv) {
            buf[i].u = xv[idx];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                float v = bf(buf[i].h[j]);
                ss += v * v;
            }
        }
    }
    float r = rsqrtf(warp_sum(ss) / (float)dim + eps);
    const uint4 *wv = (const uint4 *)w;
    uint4 *yv = (uint4 *)(y + (size_t)row * dim);
#pragma unroll
    for (int i = 0; i < WROW_MAXV; i++) {
        int idx = lane + i * 32;
        if (idx < nv) {
            bf16x8 wt, o;
            wt.u = wv[idx];
#pragma unroll
            for (int j = 0; j < 8; j++)
                o.h[j] = tobf(rbf(bf(buf[i].h[j]) * r) * bf(wt.h[j]));
            yv[idx] = o.u;
        }
    }
}

static __global__ void __launch_bounds__(256)
    layernorm_warp_kernel(const bf16 *__restrict__ x, const bf16 *__restrict__ w,
                          const bf16 *__restrict__ b, bf16 *__restrict__ y, int rows, int dim,
                          float eps)
{
    int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    int nv = dim / 8;
    const uint4 *xv = (const uint4 *)(x + (size_t)row * dim);
    bf16x8 buf[WROW_MAXV];
    float sum = 0;
#pragma unroll
    for (int i = 0; i < WROW_MAXV; i++) {
        int idx = lane + i * 32;
        if (idx < nv) {
            buf[i].u = xv[idx];
#pragma unroll
            for (int j = 0; j < 8; j++)
                sum += bf(buf[i].h[j]);
        }
    }
    float mean = warp_sum(sum) / (float)dim;
    float sq = 0;
#pragma unroll
    for (int i = 0; i < WROW_MAXV; i++) {
        int idx = lane + i * 32;
        if (idx < nv)
#pragma unroll
            for (int j = 0; j < 8; j++) {
                float d = bf(buf[i].h[j]) - mean;
                sq += d * d;
            }
    }
    float rstd = rsqrtf(warp_sum(sq) / (float)dim + eps);
    const uint4 *wv = (const uint4 *)w, *bv = (const uint4 *)b;
    uint4 *yv = (uint4 *)(y + (size_t)row * dim);
#pragma unroll
    for (int i = 0; i < WROW_MAXV; i++) {
        int idx = lane + i * 32;
        if (idx < nv) {
            bf16x8 wt, bt, o;
            wt.u = wv[idx];
            bt.u = bv[idx];
#pragma unroll
            for (int j = 0; j < 8; j++)
                o.h[j] = tobf((bf(buf[i].h[j]) - mean) * rstd * bf(wt.h[j]) + bf(bt.h[j]));
            yv[idx] = o.u;
        }
    }
}

static void check_dim(const char *what, int dim)
{
    if (dim % 8 || dim > NORM_THREADS * NORM_MAXV * 8 || dim <= 0) {
        vl_error("%s: unsupported row size %d", what, dim);
        abort();
    }
}

extern "C" void vl_rmsnorm(vl_stream_t s, const uint16_t *x, const uint16_t *w, uint16_t *y,
                           int rows, int dim, float eps)
{
    check_dim("vl_rmsnorm", dim);
    if (rows <= 0)
        return;
    if (dim <= 32 * WROW_MAXV * 8) {
        rmsnorm_warp_kernel<<<(rows + 7) / 8, 256, 0, s>>>((const bf16 *)x, (const bf16 *)w,
                                                           (bf16 *)y, rows, dim, eps);
        VL_LAUNCH_CHECK("rmsnorm_warp_kernel");
        return;
    }
    rmsnorm_kernel<<<rows, NORM_THREADS, 0, s>>>((const bf16 *)x, (const bf16 *)w, (bf16 *)y, dim,
                                                 eps);
    VL_LAUNCH_CHECK("rmsnorm_kernel");
}

extern "C" void vl_layernorm(vl_stream_t s, const uint16_t *x, const uint16_t *w, const uint16_t *b,
                             uint16_t *y, int rows, int dim, float eps)
{
    check_dim("vl_layernorm", dim);
    if (rows <= 0)
        return;
    if (dim <= 32 * WROW_MAXV * 8) {
        layernorm_warp_kernel<<<(rows + 7) / 8, 256, 0, s>>>(
            (const bf16 *)x, (const bf16 *)w, (const bf16 *)b, (bf16 *)y, rows, dim, eps);
        VL_LAUNCH_CHECK("layernorm_warp_kernel");
        return;
    }
    layernorm_kernel<<<rows, NORM_THREADS, 0, s>>>((const bf16 *)x, (const bf16 *)w,
                                                   (const bf16 *)b, (bf16 *)y, dim, eps);
    VL_LAUNCH_CHECK("layernorm_kernel");
}

extern "C" void vl_pool_last_l2(vl_stream_t s, const uint16_t *h, const int32_t *rows_idx, int n,
                                const uint16_t *w, int dim, float eps, float *out)
{
    check_dim("vl_pool_last_l2", dim);
    if (n <= 0)
        return;
    pool_kernel<<<n, NORM_THREADS, 0, s>>>((const bf16 *)h, rows_idx, (const bf16 *)w, dim, eps,
                                           out);
    VL_LAUNCH_CHECK("pool_kernel");
}
