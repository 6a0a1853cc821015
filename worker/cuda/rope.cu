/* Rotary position embeddings (rope.h). */
#include "worker/cuda/rope.h"

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/kcommon.h"

#define MROPE_WARPS 8

/* cos/sin of every (row, frequency) once per forward: cs[row] = {cos[hd/2], sin[hd/2]} rounded
 * to bf16 like the reference; the 28-36 layers then only read them. */
static __global__ void mrope_table_kernel(const int32_t *__restrict__ pos, int rows, int hd,
                                          float theta, int h_end, int w_end, bf16 *__restrict__ cs)
{
    int half = hd / 2;
    size_t total = (size_t)rows * half;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
         t += (size_t)gridDim.x * blockDim.x) {
        int row = (int)(t / half), i = (int)(t % half);
        float inv = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        /* interleaved sections: h at i = 1, 4, ... < 3 s_h; w at i = 2, 5, ... < 3 s_w */
        int p = pos[row * 3 + 0];
        if (i % 3 == 1 && i < h_end)
            p = pos[row * 3 + 1];
        else if (i % 3 == 2 && i < w_end)
            p = pos[row * 3 + 2];
        float sa, ca;
        sincosf((float)p * inv, &sa, &ca);
        cs[(size_t)row * hd + i] = tobf(ca);
        cs[(size_t)row * hd + half + i] = tobf(sa);
    }
}

/* One block per row; each warp takes heads: RMSNorm over the head in fp32, the normalised head
 * kept in shared memory for the rotate_half partner. */
static __global__ void __launch_bounds__(MROPE_WARPS * 32)
    qk_norm_mrope_kernel(bf16 *__restrict__ qkv, int nq, int nkv, int hd,
                         const bf16 *__restrict__ qw, const bf16 *__restrict__ kw,
                         const bf16 *__restrict__ cs, float eps)
{
    extern __shared__ float sm[]; /* MROPE_WARPS x hd */
    int row = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int half = hd / 2;
    float *xs = sm + warp * hd;
    bf16 *base = qkv + (size_t)row * (nq + 2 * nkv) * hd;
    const bf16 *cr = cs + (size_t)row * hd, *sr = cr + half;
    for (int hh = warp; hh < nq + nkv; hh += MROPE_WARPS) {
        bf16 *hp = base + hh * hd;
        const bf16 *w = hh < nq ? qw : kw;
        float ss = 0;
        for (int d = lane; d < hd; d += 32) {
            float x = bf(hp[d]);
            ss += x * x;
        }
        float r = rsqrtf(warp_sum(ss) / (float)hd + eps);
        for (int d = lane; d < hd; d += 32)
            xs[d] = rbf(rbf(bf(hp[d]) * r) * bf(w[d]));
        __syncwarp();
        for (int d = lane; d < hd; d += 32) {
            int i = d < half ? d : d - half;
            float rh = d < half ? -xs[d + half] : xs[d - half]; /* rotate_half */
            hp[d] = tobf(rbf(xs[d] * bf(cr[i])) + rbf(rh * bf(sr[i])));
        }
        __syncwarp();
    }
}

static __global__ void vit_rope_table_kernel(const int32_t *__restrict__ pos4, int rows, int hd,
                                             float *__restrict__ cs)
{
    int half = hd / 2, q4 = half / 2;
    size_t total = (size_t)rows * half;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
         t += (size_t)gridDim.x * blockDim.x) {
        int row = (int)(t / half), i = (int)(t % half);
        int j = i < q4 ? i : i - q4;
        float inv = 1.0f / powf(10000.0f, (float)(2 * j) / (float)half);
        int p = i < q4 ? pos4[row * 4 + 0] : pos4[row * 4 + 1];
        float sa, ca;
        sincosf((float)p * inv, &sa, &ca);
        cs[(size_t)row * hd + i] = ca;
        cs[(size_t)row * hd + half + i] = sa;
    }
}

static __global__ void vit_rope_kernel(bf16 *__restrict__ qkv, int rows, int heads, int hd,
                                       const float *__restrict__ cs)
{
    int half = hd / 2;
    size_t total = (size_t)rows * heads * half;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
         t += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(t % half);
        int h = (int)((t / half) % heads);
        int row = (int)(t / ((size_t)half * heads));
        float ca = cs[(size_t)row * hd + i], sa = cs[(size_t)row * hd + half + i];
        size_t rowoff = (size_t)row * 3 * heads * hd;
#pragma unroll
        for (int qk = 0; qk < 2; qk++) {
            bf16 *hp = qkv + rowoff + (size_t)qk * heads * hd + (size_t)h * hd;
            float a = bf(hp[i]), b = bf(hp[i + half]);
            hp[i] = tobf(__fsub_rn(__fmul_rn(a, ca), __fmul_rn(b, sa)));
            hp[i + half] = tobf(__fadd_rn(__fmul_rn(b, ca), __fmul_rn(a, sa)));
        }
    }
}

/* head_dim 128 (the released models): one half-warp per (row, head), a lane holds 8
 * consecutive dims (16-byte accesses: twice the bytes in flight per thread of a lane-per-4-dims
 * layout, which measured ~1.8 TB/s); the rotate_half partner (dim +- 64) is 8 lanes away. */
static __global__ void __launch_bounds__(256)
    qk_norm_mrope128_kernel(bf16 *__restrict__ qkv, int rows, int nq, int nkv,
                            const bf16 *__restrict__ qw, const bf16 *__restrict__ kw,
                            const bf16 *__restrict__ cs, float eps)
{
    int nh = nq + nkv;
    long long g = ((long long)blockIdx.x * 256 + threadIdx.x) >> 4, total = (long long)rows * nh;
    int lane = threadIdx.x & 15;
    if ((g & ~1LL) >= total) /* both heads of this warp out of range */
        return;
    bool ok = g < total; /* the other half-warp must still join the shuffles */
    int row = ok ? (int)(g / nh) : 0, hh = ok ? (int)(g % nh) : 0;
    bf16 *hp = qkv + (size_t)row * (nq + 2 * nkv) * 128 + hh * 128 + lane * 8;
    const bf16 *w = (hh < nq ? qw : kw) + lane * 8;
    int i0 = (lane * 8) & 63;
    bf16x8 in, wt, c, sn, out;
    in.u = ok ? *(const uint4 *)hp : make_uint4(0, 0, 0, 0);
    wt.u = *(const uint4 *)w;
    c.u = *(const uint4 *)(cs + (size_t)row * 128 + i0);
    sn.u = *(const uint4 *)(cs + (size_t)row * 128 + 64 + i0);
    /* Sum of squares in the order the qkv GEMM's fused epilogue (gemm_sm90.cu) can also follow,
     * so the two are bit-identical: s[q] = x[2q+1]^2 + x[2q]^2 (one fma) per column pair, each
     * summed over the 16 lanes by a butterfly (xor 8, 4, 2, 1), then (s0 + s1) + (s2 + s3). */
    float x[8], s[4];
#pragma unroll
    for (int j = 0; j < 8; j++)
        x[j] = bf(in.h[j]);
#pragma unroll
    for (int q = 0; q < 4; q++)
        s[q] = __fmaf_rn(x[2 * q + 1], x[2 * q + 1], __fmul_rn(x[2 * q], x[2 * q]));
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) /* sum over the half-warp */
#pragma unroll
        for (int q = 0; q < 4; q++)
            s[q] = __fadd_rn(s[q], __shfl_xor_sync(0xffffffffu, s[q], o));
    float ss = __fadd_rn(__fadd_rn(s[0], s[1]), __fadd_rn(s[2], s[3]));
    float r = rsqrtf(ss / 128.0f + eps);
#pragma unroll
    for (int j = 0; j < 8; j++)
        x[j] = rbf(__fmul_rn(rbf(__fmul_rn(x[j], r)), bf(wt.h[j])));
#pragma unroll
    for (int j = 0; j < 8; j++) {
        float partner = __shfl_xor_sync(0xffffffffu, x[j], 8);
        float rh = lane < 8 ? -partner : partner; /* rotate_half */
        out.h[j] =
            tobf(__fadd_rn(rbf(__fmul_rn(x[j], bf(c.h[j]))), rbf(__fmul_rn(rh, bf(sn.h[j])))));
    }
    if (ok)
        *(uint4 *)hp = out.u;
}

/* 4 consecutive rotation pairs per thread (8-byte bf16 and 16-byte table accesses). */
static __global__ void vit_rope4_kernel(bf16 *__restrict__ qkv, int rows, int heads, int hd,
                                        const float *__restrict__ cs)
{
    int half = hd / 2, g = half / 4;
    size_t total = (size_t)rows * heads * 2 * g;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
         t += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(t % g) * 4;
        size_t rest = t / g;
        int qk = (int)(rest % 2);
        rest /= 2;
        int h = (int)(rest % heads);
        int row = (int)(rest / heads);
        float4 ca = *(const float4 *)(cs + (size_t)row * hd + i);
        float4 sa = *(const float4 *)(cs + (size_t)row * hd + half + i);
        bf16 *hp = qkv + (size_t)row * 3 * heads * hd + (size_t)qk * heads * hd + (size_t)h * hd;
        union {
            uint2 u;
            bf16 h[4];
        } a, b, oa, ob;
        a.u = *(const uint2 *)(hp + i);
        b.u = *(const uint2 *)(hp + i + half);
        float cv[4] = {ca.x, ca.y, ca.z, ca.w}, sv[4] = {sa.x, sa.y, sa.z, sa.w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float x = bf(a.h[j]), y = bf(b.h[j]);
            oa.h[j] = tobf(__fsub_rn(__fmul_rn(x, cv[j]), __fmul_rn(y, sv[j])));
            ob.h[j] = tobf(__fadd_rn(__fmul_rn(y, cv[j]), __fmul_rn(x, sv[j])));
        }
        *(uint2 *)(hp + i) = oa.u;
        *(uint2 *)(hp + i + half) = ob.u;
    }
}

static unsigned grid_for(size_t total)
{
    size_t blocks = (total + 255) / 256;
    if (blocks > 65535)
        blocks = 65535;
    return blocks ? (unsigned)blocks : 1;
}

extern "C" void vl_mrope_table(vl_stream_t s, const int32_t *pos, int rows, int head_dim,
                               const int *mrope_section, float theta, uint16_t *cs)
{
    if (rows <= 0)
        return;
    mrope_table_kernel<<<grid_for((size_t)rows * head_dim / 2), 256, 0, s>>>(
        pos, rows, head_dim, theta, 3 * mrope_section[1], 3 * mrope_section[2], (bf16 *)cs);
    VL_LAUNCH_CHECK("mrope_table_kernel");
}

extern "C" void vl_vit_rope_table(vl_stream_t s, const int32_t *pos4, int rows, int head_dim,
                                  float *cs)
{
    if (rows <= 0)
        return;
    vit_rope_table_kernel<<<grid_for((size_t)rows * head_dim / 2), 256, 0, s>>>(pos4, rows,
                                                                                head_dim, cs);
    VL_LAUNCH_CHECK("vit_rope_table_kernel");
}

extern "C" void vl_qk_norm_mrope(vl_stream_t s, uint16_t *qkv, int rows, int nq, int nkv,
                                 int head_dim, const uint16_t *qw, const uint16_t *kw,
                                 const uint16_t *cs, float eps)
{
    if (rows <= 0)
        return;
    if (head_dim % 2 || head_dim > 512) {
        vl_error("vl_qk_norm_mrope: unsupported head dim %d", head_dim);
        abort();
    }
    if (head_dim == 128) {
        qk_norm_mrope128_kernel<<<(unsigned)(((size_t)rows * (nq + nkv) + 15) / 16), 256, 0, s>>>(
            (bf16 *)qkv, rows, nq, nkv, (const bf16 *)qw, (const bf16 *)kw, (const bf16 *)cs, eps);
        VL_LAUNCH_CHECK("qk_norm_mrope128_kernel");
        return;
    }
    size_t smem = (size_t)MROPE_WARPS * head_dim * sizeof(float);
    qk_norm_mrope_kernel<<<rows, MROPE_WARPS * 32, smem, s>>>(
        (bf16 *)qkv, nq, nkv, head_dim, (const bf16 *)qw, (const bf16 *)kw, (const bf16 *)cs, eps);
    VL_LAUNCH_CHECK("qk_norm_mrope_kernel");
}

extern "C" void vl_vit_rope(vl_stream_t s, uint16_t *qkv, int rows, int heads, int head_dim,
                            const float *cs)
{
    if (rows <= 0)
        return;
    if (head_dim % 8 == 0) {
        vit_rope4_kernel<<<grid_for((size_t)rows * heads * (head_dim / 8) * 2), 256, 0, s>>>(
            (bf16 *)qkv, rows, heads, head_dim, cs);
        VL_LAUNCH_CHECK("vit_rope4_kernel");
        return;
    }
    vit_rope_kernel<<<grid_for((size_t)rows * heads * (head_dim / 2)), 256, 0, s>>>(
        (bf16 *)qkv, rows, heads, head_dim, cs);
    VL_LAUNCH_CHECK("vit_rope_kernel");
}
