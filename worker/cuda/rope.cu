/* Rotary position embeddings (rope.h). The LM kernel gives each (row, head) one warp: a lane
 * holds 4 of the 128 dims, the rotate_half partner (dim +- 64) is 16 lanes away. */
#include "worker/cuda/rope.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/kcommon.h"

#define MROPE_WARPS 8

static __global__ void __launch_bounds__(MROPE_WARPS * 32)
    qk_norm_mrope_kernel(bf16 *__restrict__ qkv, int nq, int nkv, const bf16 *__restrict__ qw,
                         const bf16 *__restrict__ kw, const int32_t *__restrict__ pos, float eps,
                         float theta)
{
    int row = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int stride = (nq + 2 * nkv) * 128;
    bf16 *base = qkv + (size_t)row * stride;
    int pt = pos[row * 3 + 0], ph = pos[row * 3 + 1], pw = pos[row * 3 + 2];
    int d0 = lane * 4;
    /* cos/sin of this lane's 4 dims: frequency index i = d mod 64 */
    float c[4], sn[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        int i = (d0 + j) & 63;
        float inv = 1.0f / powf(theta, (float)(2 * i) / 128.0f);
        int p = pt;
        if (i < 60 && i % 3 == 1)
            p = ph;
        else if (i < 60 && i % 3 == 2)
            p = pw;
        float a = (float)p * inv;
        float sa, ca;
        sincosf(a, &sa, &ca);
        c[j] = rbf(ca);
        sn[j] = rbf(sa);
    }
    for (int hh = warp; hh < nq + nkv; hh += MROPE_WARPS) {
        bf16 *hp = base + hh * 128 + d0;
        const bf16 *w = (hh < nq ? qw : kw) + d0;
        union {
            uint2 u;
            bf16 h[4];
        } in, out;
        in.u = *(const uint2 *)hp;
        float x[4], ss = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            x[j] = bf(in.h[j]);
            ss += x[j] * x[j];
        }
        ss = warp_sum(ss);
        float r = rsqrtf(ss / 128.0f + eps);
#pragma unroll
        for (int j = 0; j < 4; j++)
            x[j] = rbf(rbf(x[j] * r) * bf(w[j]));
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float partner = __shfl_xor_sync(0xffffffffu, x[j], 16);
            float rh = lane < 16 ? -partner : partner; /* rotate_half */
            out.h[j] = tobf(rbf(x[j] * c[j]) + rbf(rh * sn[j]));
        }
        *(uint2 *)hp = out.u;
    }
}

static __global__ void vit_rope_kernel(bf16 *__restrict__ qkv, int rows, int heads, int hd,
                                       const int32_t *__restrict__ pos4)
{
    int half = hd / 2;
    size_t total = (size_t)rows * heads * half;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
         t += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(t % half);
        int h = (int)((t / half) % heads);
        int row = (int)(t / ((size_t)half * heads));
        int q4 = half / 2; /* frequencies per axis */
        int j = i < q4 ? i : i - q4;
        float inv = 1.0f / powf(10000.0f, (float)(2 * j) / (float)half);
        int p = i < q4 ? pos4[row * 4 + 0] : pos4[row * 4 + 1];
        float sa, ca;
        sincosf((float)p * inv, &sa, &ca);
        size_t rowoff = (size_t)row * 3 * heads * hd;
#pragma unroll
        for (int qk = 0; qk < 2; qk++) {
            bf16 *hp = qkv + rowoff + (size_t)qk * heads * hd + (size_t)h * hd;
            float a = bf(hp[i]), b = bf(hp[i + half]);
            hp[i] = tobf(a * ca - b * sa);
            hp[i + half] = tobf(b * ca + a * sa);
        }
    }
}

extern "C" void vl_qk_norm_mrope(vl_stream_t s, uint16_t *qkv, int rows, int nq, int nkv,
                                 const uint16_t *qw, const uint16_t *kw, const int32_t *pos,
                                 float eps, float theta)
{
    if (rows <= 0)
        return;
    qk_norm_mrope_kernel<<<rows, MROPE_WARPS * 32, 0, s>>>(
        (bf16 *)qkv, nq, nkv, (const bf16 *)qw, (const bf16 *)kw, pos, eps, theta);
    VL_LAUNCH_CHECK("qk_norm_mrope_kernel");
}

extern "C" void vl_vit_rope(vl_stream_t s, uint16_t *qkv, int rows, int heads, int head_dim,
                            const int32_t *pos4)
{
    if (rows <= 0)
        return;
    size_t total = (size_t)rows * heads * (head_dim / 2);
    size_t blocks = (total + 255) / 256;
    if (blocks > 65535)
        blocks = 65535;
    vit_rope_kernel<<<(unsigned)blocks, 256, 0, s>>>((bf16 *)qkv, rows, heads, head_dim, pos4);
    VL_LAUNCH_CHECK("vit_rope_kernel");
}
