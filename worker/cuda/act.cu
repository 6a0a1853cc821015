/* Activations (act.h): grid-stride loops over 16-byte vectors. */
#include "worker/cuda/act.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/kcommon.h"

static __global__ void swiglu_kernel(const bf16 *__restrict__ in, bf16 *__restrict__ out, int rows,
                                     int inter)
{
    int nv = inter / 8;
    size_t total = (size_t)rows * nv;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
         t += (size_t)gridDim.x * blockDim.x) {
        size_t r = t / nv, v = t % nv;
        const uint4 *row = (const uint4 *)(in + r * 2 * (size_t)inter);
        bf16x8 g, u, o;
        g.u = row[v];
        u.u = row[nv + v];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float x = bf(g.h[j]);
            float sl = rbf(x / (1.0f + expf(-x)));
            o.h[j] = tobf(sl * bf(u.h[j]));
        }
        ((uint4 *)(out + r * (size_t)inter))[v] = o.u;
    }
}

static __global__ void gelu_kernel(bf16 *__restrict__ x, size_t nv, int tanh_approx)
{
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < nv;
         t += (size_t)gridDim.x * blockDim.x) {
        bf16x8 v;
        v.u = ((uint4 *)x)[t];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float a = bf(v.h[j]), y;
            if (tanh_approx)
                y = 0.5f * a * (1.0f + tanhf(0.7978845608028654f * (a + 0.044715f * a * a * a)));
            else
                y = 0.5f * a * (1.0f + erff(a * 0.7071067811865476f));
            v.h[j] = tobf(y);
        }
        ((uint4 *)x)[t] = v.u;
    }
}

static unsigned grid_for(size_t n)
{
    size_t b = (n + 255) / 256;
    if (b > 132 * 16)
        b = 132 * 16;
    return b ? (unsigned)b : 1;
}

extern "C" void vl_swiglu(vl_stream_t s, const uint16_t *in, uint16_t *out, int rows, int inter)
{
    if (rows <= 0)
        return;
    if (inter % 8) {
        vl_error("vl_swiglu: intermediate size %d is not a multiple of 8", inter);
        abort();
    }
    swiglu_kernel<<<grid_for((size_t)rows * inter / 8), 256, 0, s>>>((const bf16 *)in, (bf16 *)out,
                                                                     rows, inter);
    VL_LAUNCH_CHECK("swiglu_kernel");
}

static void gelu(vl_stream_t s, uint16_t *x, size_t n, int t)
{
    if (!n)
        return;
    if (n % 8) {
        vl_error("vl_gelu: size %zu is not a multiple of 8", n);
        abort();
    }
    gelu_kernel<<<grid_for(n / 8), 256, 0, s>>>((bf16 *)x, n / 8, t);
    VL_LAUNCH_CHECK("gelu_kernel");
}

extern "C" void vl_gelu_erf(vl_stream_t s, uint16_t *x, size_t n)
{
    gelu(s, x, n, 0);
}

extern "C" void vl_gelu_tanh(vl_stream_t s, uint16_t *x, size_t n)
{
    gelu(s, x, n, 1);
}
