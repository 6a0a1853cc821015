/* Activations (act.h): 16-byte vectors; SwiGLU a block per row, GELU grid-stride loops. */
#include "worker/cuda/act.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/kcommon.h"

/* One block of 256 threads per row; each thread loads up to SWIGLU_V gate/up vector pairs of
 * the row before computing any (bytes in flight; no 64-bit index division, which the earlier
 * grid-stride version paid per vector). */
#define SWIGLU_V 6
static __global__ void __launch_bounds__(256)
    swiglu_kernel(const bf16 *__restrict__ in, bf16 *__restrict__ out, int inter)
{
    int nv = inter / 8;
    const uint4 *row = (const uint4 *)(in + (size_t)blockIdx.x * 2 * inter);
    uint4 *orow = (uint4 *)(out + (size_t)blockIdx.x * inter);
    for (int base = 0; base < nv; base += SWIGLU_V * 256) {
        bf16x8 g[SWIGLU_V], u[SWIGLU_V];
#pragma unroll
        for (int k = 0; k < SWIGLU_V; k++) {
            int v = base + k * 256 + (int)threadIdx.x;
            if (v < nv) {
                g[k].u = row[v];
                u[k].u = row[nv + v];
            }
        }
#pragma unroll
        for (int k = 0; k < SWIGLU_V; k++) {
            int v = base + k * 256 + (int)threadIdx.x;
            if (v < nv) {
                bf16x8 o;
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    float x = bf(g[k].h[j]);
                    float sl = rbf(x / (1.0f + expf(-x)));
                    o.h[j] = tobf(sl * bf(u[k].h[j]));
                }
                orow[v] = o.u;
            }
        }
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
    swiglu_kernel<<<(unsigned)rows, 256, 0, s>>>((const bf16 *)in, (bf16 *)out, inter);
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
