/* Varlen attention on Hopper (attention_sm90.h): a FlashAttention-3 style forward kernel on
 * warpgroup MMA (wgmma, sm_90a).
 *
 * Block = 2 warpgroups (256 threads) sharing one query tile of BM = 128 rows of one
 * (sequence, head); warpgroup w owns rows [64 w, 64 w + 64). Q, K and V tiles sit in shared
 * memory in the 128-byte-swizzled layout the tensor cores read through matrix descriptors:
 * each 64-column slab of the head dim is a [rows][128 B] region, row r's 16-byte chunk c stored
 * at chunk c ^ (r % 8). K/V tiles of BN keys stream through a ring of ST stages filled by
 * cp.async from every thread, ST - 1 tiles ahead (rows past the sequence end zero-filled, so
 * padded lanes stay finite; nothing is read across sequences).
 * Per key tile: S = Q K^T by wgmma with both operands K-major in shared memory (fp32
 * accumulators in registers), scale + mask + online softmax in the log2 domain with fp32
 * statistics, P rounded to bf16 in registers and used directly as the register A operand of
 * O += P V (V read N-major from the same swizzled layout: the transposed B form). Causal:
 * key tiles past the query tile are never loaded, a warpgroup skips tiles entirely after its
 * rows, and the grid puts the query-tile index slowest and reversed so the longest tiles of
 * every sequence start first. With head pairs (GP, head dim 128, even GQA groups) a block is 64
 * positions of two query heads of one kv head instead, warpgroup w on head 2 hp + w: every K/V
 * tile the block loads serves both, and both stop at the same causal diagonal.
 * A second, warp-specialised persistent kernel (attn90ws_kernel, below) runs the same tile loop
 * in consumer warpgroups fed by producer warps through mbarriers. */
#include "worker/cuda/attention_sm90.h"

#include <math.h>

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/exp2_fma.h"
#include "worker/cuda/kcommon.h"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define VL_SM90A 1
#endif

#define BM90 128 /* query rows per block: 2 warpgroups x 64 */

#ifdef VL_SM90A

#include "worker/cuda/sm90_ptx.cuh"

static __device__ __forceinline__ void cp_async16_sw(uint32_t dst, const void *src, bool valid)
{
    int n = valid ? 16 : 0; /* 0 source bytes: the 16 destination bytes are zero-filled */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n)
                 : "memory");
}
static __device__ __forceinline__ void cp_async_commit90()
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N> static __device__ __forceinline__ void cp_async_wait90()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
static __device__ __forceinline__ float ex2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* Shared-memory matrix descriptor, 128-byte swizzle: start address, leading and stride byte
 * offsets (K-major: stride = 1024 B between 8-row groups, leading unused; N-major: leading =
 * distance between 64-column slabs, stride = 1024 B between 8-row groups). */
static __device__ __forceinline__ uint64_t sdesc(uint32_t addr, uint32_t lbo, uint32_t sbo)
{
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) |
           ((uint64_t)(sbo >> 4) << 32) | (1ull << 62);
}

/* D[64 x 32] (+)= A[64 x 16] B[16 x 32]^T, A and B K-major in shared memory. */
static __device__ __forceinline__ void wgmma_ss_n32(float *d, uint64_t da, uint64_t db, int acc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
                 "}, %16, %17, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                   "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                   "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                 : "l"(da), "l"(db), "r"(acc));
}

/* D[64 x 64] (+)= A[64 x 16] B[16 x 64]^T, A and B K-major in shared memory. */
static __device__ __forceinline__ void wgmma_ss_n64(float *d, uint64_t da, uint64_t db, int acc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
                 "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                   "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                   "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),
                   "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                   "+f"(d[30]), "+f"(d[31])
                 : "l"(da), "l"(db), "r"(acc));
}

/* D[64 x 96] (+)= A[64 x 16] B[16 x 96]^T, A and B K-major in shared memory. */
static __device__ __forceinline__ void wgmma_ss_n96(float *d, uint64_t da, uint64_t db, int acc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %50, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n96k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47"
                 "}, %48, %49, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                   "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                   "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),
                   "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                   "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),
                   "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
                   "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
                 : "l"(da), "l"(db), "r"(acc));
}

/* D[64 x 128] (+)= A[64 x 16] B[16 x 128]^T, A and B K-major in shared memory. */
static __device__ __forceinline__ void wgmma_ss_n128(float *d, uint64_t da, uint64_t db, int acc)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
                 "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                   "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                   "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),
                   "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                   "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),
                   "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
                   "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),
                   "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),
                   "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db), "r"(acc));
}

/* D[64 x 64] += A[64 x 16] B[16 x 64], A in registers (4 x bf16x2 per thread), B N-major in
 * shared memory. */
static __device__ __forceinline__ void wgmma_rs_n64(float *d, const uint32_t *a, uint64_t db)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
                 "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                   "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                   "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),
                   "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                   "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

/* D[64 x 128] += A[64 x 16] B[16 x 128], A in registers (4 x bf16x2 per thread), B N-major in
 * shared memory. */
static __device__ __forceinline__ void wgmma_rs_n128(float *d, const uint32_t *a, uint64_t db)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
                 "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                   "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                   "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),
                   "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                   "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),
                   "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
                   "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),
                   "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),
                   "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

template <int N> struct wg_ss;
template <> struct wg_ss<32> {
    static __device__ __forceinline__ void run(float *d, uint64_t a, uint64_t b, int acc)
    {
        wgmma_ss_n32(d, a, b, acc);
    }
};
template <> struct wg_ss<64> {
    static __device__ __forceinline__ void run(float *d, uint64_t a, uint64_t b, int acc)
    {
        wgmma_ss_n64(d, a, b, acc);
    }
};
template <> struct wg_ss<96> {
    static __device__ __forceinline__ void run(float *d, uint64_t a, uint64_t b, int acc)
    {
        wgmma_ss_n96(d, a, b, acc);
    }
};
template <> struct wg_ss<128> {
    static __device__ __forceinline__ void run(float *d, uint64_t a, uint64_t b, int acc)
    {
        wgmma_ss_n128(d, a, b, acc);
    }
};
template <int N> struct wg_rs;
template <> struct wg_rs<64> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t b)
    {
        wgmma_rs_n64(d, a, b);
    }
};
template <> struct wg_rs<128> {
    static __device__ __forceinline__ void run(float *d, const uint32_t *a, uint64_t b)
    {
        wgmma_rs_n128(d, a, b);
    }
};

/* Copies rows [row0, row0 + ROWS) of one head (a sequence of `len` rows starting at global row
 * `start`) into the swizzled tile at shared address `dst`; rows past len are zero-filled. LROWS:
 * the rows of the tile's layout (the distance between its 64-column slabs), ROWS when the copy
 * fills the whole tile; a head pair's Q (GP) fills the two 64-row halves of a 128-row tile. */
template <int D, int ROWS, int LROWS = ROWS>
static __device__ __forceinline__ void load_tile_sw(uint32_t dst, const bf16 *g, int stride,
                                                    int start, int row0, int len)
{
    constexpr int CH = D / 8; /* 16-byte chunks per row */
    static_assert(ROWS * CH % 256 == 0, "tile chunks must divide among the block's threads");
#pragma unroll
    for (int i = 0; i < ROWS * CH / 256; i++) {
        int t = threadIdx.x + i * 256;
        int r = t / CH, c = t % CH;
        bool valid = row0 + r < len;
        const bf16 *src = g + (size_t)(start + (valid ? row0 + r : 0)) * stride + c * 8;
        uint32_t off = (c / 8) * (LROWS * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4);
        cp_async16_sw(dst + off, src, valid);
    }
}

#endif /* VL_SM90A */

#ifdef VL_SM90A

/* Rescaling the output is skipped while a row's max grows by at most this much (log2 units):
 * the stale max stays the exponent's base, so probabilities reach at most 2^8 (exact in the
 * math, no overflow in bf16 P or the fp32 sums), and the O *= corr pass (as many multiplies per
 * tile as the head dim's accumulators) runs only when a max really jumps. */
#define RESCALE_LOG2 8.0f

/* Masks one S tile (keys past the sequence, and after the row when causal), updates the running
 * row max and this thread's partial row sums (lrow: the quad's four partial sums add up to the
 * row's; reduced at the end), replaces s by the probabilities (fp32) and returns in corr the
 * factor the output accumulated so far must be scaled by (1 when the max is kept). The scale
 * (> 0) is folded into the exponent's FMA; statistics in the log2 domain:
 * p = 2^(s * scale_log2 - max * scale_log2). E of every 8 columns of 8 keys (nt with
 * nt * E mod 8 < E: spread over the tile) compute 2^x on the FMA pipe (vl_exp2_fma, relative
 * error <= 7.5e-5, exp2_fma.h), the others with the MUFU's ex2.approx: the MUFU's 16
 * results per clock per SM were thought the limit at head dim 64 (E = 0: all on the MUFU; the
 * measurements in docs/cuda.md say otherwise). */
template <int BN, int E, int CH>
static __device__ __forceinline__ void softmax_tile(float *s, float *mrow, float *lrow, float *corr,
                                                    bool mask, int n0, int len, bool causal,
                                                    int row_a, int lane, float scale_log2)
{
    if (mask) {
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = n0 + nt * 8 + (lane & 3) * 2 + (e & 1);
                int qr = row_a + (e >> 1) * 8;
                if (key >= len || (causal && key > qr))
                    s[nt * 4 + e] = -INFINITY;
            }
    }
#pragma unroll
    for (int hr = 0; hr < 2; hr++) { /* rows row_a (elements 0, 1) and row_a + 8 (2, 3) */
        /* the row max in CH independent chains (BN / (8 CH) + log2(CH) dependent steps instead
         * of BN / 8: it is on the path from S to P). CH = 4 at head dim 64; 1 at 128, the
         * serial chain as before, where registers are short (4 chains raise the 64-key
         * variant's spills from 40 to 96 bytes). max is exact: the order changes no bit. */
        float mx = mrow[hr];
        if constexpr (CH == 1) {
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++)
                mx = fmaxf(mx, fmaxf(s[nt * 4 + hr * 2], s[nt * 4 + hr * 2 + 1]));
        } else {
            constexpr int NCH = BN / 8 < CH ? BN / 8 : CH;
            float m[NCH];
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++) {
                float v = fmaxf(s[nt * 4 + hr * 2], s[nt * 4 + hr * 2 + 1]);
                m[nt % NCH] = nt < NCH ? v : fmaxf(m[nt % NCH], v);
            }
#pragma unroll
            for (int w = NCH / 2; w >= 1; w /= 2)
#pragma unroll
                for (int i = 0; i < w; i++)
                    m[i] = fmaxf(m[i], m[i + w]);
            mx = fmaxf(mx, m[0]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        /* -inf to finite: grow (corr 0); -inf to -inf: NaN, keep (all masked so far) */
        corr[hr] = 1.0f;
        if ((mx - mrow[hr]) * scale_log2 > RESCALE_LOG2) {
            corr[hr] = ex2((mrow[hr] - mx) * scale_log2);
            mrow[hr] = mx;
        }
        float base = mrow[hr] == -INFINITY ? 0.0f : mrow[hr] * scale_log2;
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++) {
            float x0 = fmaf(s[nt * 4 + hr * 2], scale_log2, -base);
            float x1 = fmaf(s[nt * 4 + hr * 2 + 1], scale_log2, -base);
            bool fma_pipe = (nt * E) % 8 < E;
            float p0 = fma_pipe ? vl_exp2_fma(x0) : ex2(x0);
            float p1 = fma_pipe ? vl_exp2_fma(x1) : ex2(x1);
            s[nt * 4 + hr * 2] = p0;
            s[nt * 4 + hr * 2 + 1] = p1;
            sum += p0 + p1;
        }
        lrow[hr] = lrow[hr] * corr[hr] + sum;
    }
}

/* The probabilities of one tile (softmax_tile's s) as bf16 wgmma A fragments. */
template <int BN> static __device__ __forceinline__ void pack_p(const float *s, uint32_t (*p)[4])
{
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
        p[kk][0] = pack_bf16x2(s[kk * 8 + 0], s[kk * 8 + 1]);
        p[kk][1] = pack_bf16x2(s[kk * 8 + 2], s[kk * 8 + 3]);
        p[kk][2] = pack_bf16x2(s[kk * 8 + 4], s[kk * 8 + 5]);
        p[kk][3] = pack_bf16x2(s[kk * 8 + 6], s[kk * 8 + 7]);
    }
}

/* The end of a warpgroup's query rows: the quad's partial row sums add up to each row's sum l
 * (lrow is updated), and the rows of O / l inside the sequence (row_a and row_a + 8 of the
 * thread's fragment; rows at or past len are skipped) are stored to og as bf16 (a row of l = 0
 * stores zeros). */
template <int D>
static __device__ __forceinline__ void store_o(const float *o, float *lrow, bf16 *og, int start,
                                               int len, int row_a, int o_stride, int head, int lane)
{
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        lrow[hr] += __shfl_xor_sync(0xffffffffu, lrow[hr], 1);
        lrow[hr] += __shfl_xor_sync(0xffffffffu, lrow[hr], 2);
    }
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        int qr = row_a + hr * 8;
        if (qr >= len)
            continue;
        float inv = lrow[hr] > 0.0f ? 1.0f / lrow[hr] : 0.0f;
        bf16 *orow = og + (size_t)(start + qr) * o_stride + head * D + (lane & 3) * 2;
#pragma unroll
        for (int dn = 0; dn < D / 8; dn++)
            *(__nv_bfloat162 *)(orow + dn * 8) =
                __floats2bfloat162_rn(o[dn * 4 + hr * 2] * inv, o[dn * 4 + hr * 2 + 1] * inv);
    }
}

template <int D> static __device__ __forceinline__ void rescale(float *o, const float *corr)
{
    if (corr[0] == 1.0f && corr[1] == 1.0f)
        return;
#pragma unroll
    for (int i = 0; i < D / 8; i++) {
        o[i * 4 + 0] *= corr[0];
        o[i * 4 + 1] *= corr[0];
        o[i * 4 + 2] *= corr[1];
        o[i * 4 + 3] *= corr[1];
    }
}

/* Issues S = Q K^T for one key tile (not waited). */
template <int D, int BN, int QROWS = BM90>
static __device__ __forceinline__ void issue_qk(float *s, uint32_t qbase, uint32_t kst)
{
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
        uint32_t qa = qbase + (ks / 4) * (QROWS * 128) + (ks % 4) * 32;
        uint32_t kb = kst + (ks / 4) * (BN * 128) + (ks % 4) * 32;
        wg_ss<BN>::run(s, sdesc(qa, 16, 1024), sdesc(kb, 16, 1024), ks > 0);
    }
}

/* Issues O += P V for one key tile (not waited). */
template <int D, int BN>
static __device__ __forceinline__ void issue_pv(float *o, uint32_t (*p)[4], uint32_t vst)
{
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++)
        wg_rs<D>::run(o, p[kk], sdesc(vst + kk * 2048, BN * 128, 1024));
}

#endif /* VL_SM90A */

/* Tile configuration: head dim D, BN keys per tile, ST shared-memory stages, MINB blocks per SM
 * (the register cap), OV = overlap the softmax of tile j with the P V product of tile j - 1
 * inside each warpgroup (FlashAttention-3's intra-warpgroup pipelining; K/V prefetched ST - 2
 * tiles ahead instead of ST - 1, since tile j - 1's V stays in use during tile j). */
template <int D, int BN, int ST, int OV> struct attn90_cfg {
    static constexpr int Q_BYTES = BM90 * D * 2;
    static constexpr int KV_BYTES = BN * D * 2;
    static constexpr int SMEM = Q_BYTES + 2 * ST * KV_BYTES + 1024; /* + 1024-byte alignment */
    static constexpr int AHEAD = OV ? ST - 2 : ST - 1;              /* tiles in flight */
    static_assert(AHEAD >= 1, "too few stages");
};

template <int D, int BN, int ST, int MINB, int OV, int E, int GP>
static __global__ void __launch_bounds__(256, MINB)
    attn90_kernel(const bf16 *__restrict__ qg, const bf16 *__restrict__ kg,
                  const bf16 *__restrict__ vg, bf16 *__restrict__ og, int q_stride, int k_stride,
                  int v_stride, int o_stride, const int32_t *__restrict__ cu_seqlens, int group,
                  int causal, float scale_log2)
{
#ifdef VL_SM90A
    using cfg = attn90_cfg<D, BN, ST, OV>;
    constexpr int AHEAD = cfg::AHEAD;
    static_assert(D % 64 == 0 && BN % 32 == 0 && BN <= 128, "unsupported tile");
    extern __shared__ unsigned char smem_raw[];
    uint32_t sQ = (smem_addr(smem_raw) + 1023u) & ~1023u;
    uint32_t sK = sQ + cfg::Q_BYTES, sV = sK + ST * cfg::KV_BYTES;

    /* GP (head pairs): the block's query tile is 64 positions of two query heads of one kv
     * head (group even), warpgroup w taking head 2 hp + w: both warpgroups read every K/V tile
     * the block loads and have the same causal extent. Otherwise 128 positions of one head. */
    constexpr int BMP = GP ? 64 : BM90; /* query positions per block */
    int head, seq, mb;
    if (causal) { /* longest tiles first: the query-tile index is slowest and reversed */
        head = blockIdx.x, seq = blockIdx.y, mb = (int)gridDim.z - 1 - (int)blockIdx.z;
    } else { /* tiles of one (sequence, head) adjacent: they share K/V in L2 */
        mb = blockIdx.x, head = blockIdx.y, seq = blockIdx.z;
    }
    if (GP)
        head *= 2; /* blockIdx counts head pairs */
    int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start;
    int m0 = mb * BMP;
    if (m0 >= len)
        return;
    int kvh = head / group;
    const bf16 *qh = qg + head * D, *kh = kg + kvh * D, *vh = vg + kvh * D;
    int kv_end = causal ? min(len, m0 + BMP) : len;
    int n_tiles = (kv_end + BN - 1) / BN;

    if (GP) {
        load_tile_sw<D, 64, BM90>(sQ, qh, q_stride, start, m0, len);
        load_tile_sw<D, 64, BM90>(sQ + 64 * 128, qh + D, q_stride, start, m0, len);
    } else {
        load_tile_sw<D, BM90>(sQ, qh, q_stride, start, m0, len);
    }
#pragma unroll
    for (int t = 0; t < AHEAD; t++) {
        if (t < n_tiles) {
            load_tile_sw<D, BN>(sK + t * cfg::KV_BYTES, kh, k_stride, start, t * BN, len);
            load_tile_sw<D, BN>(sV + t * cfg::KV_BYTES, vh, v_stride, start, t * BN, len);
        }
        cp_async_commit90();
    }

    int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
    int wg_row0 = GP ? m0 : m0 + wg * 64;
    int wg_head = GP ? head + wg : head;
    int row_a = wg_row0 + warp * 16 + (lane >> 2); /* this thread's rows: row_a, row_a + 8 */
    /* tiles this warpgroup needs: causal stops after the tile holding its last row */
    int n_wg = causal ? min(n_tiles, (wg_row0 + 64 + BN - 1) / BN) : n_tiles;
    float o[D / 2];
    uint32_t p[BN / 16][4];
#pragma unroll
    for (int i = 0; i < D / 2; i++)
        o[i] = 0.0f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f}, corr[2];
    uint32_t qbase = sQ + wg * 64 * 128;

    /* Waits for tile j, then refills the stage freed AHEAD tiles back (a block barrier: every
     * warpgroup is past its last use). Returns tile j's K and V stage addresses. */
    auto next_tile = [&](int j, uint32_t &kst, uint32_t &vst) {
        cp_async_wait90<AHEAD - 1>(); /* tile j (and Q) landed for this thread's copies */
        fence_proxy_async();
        __syncthreads(); /* ... for everyone's; and the stage refilled below is free */
        int jn = j + AHEAD;
        if (jn < n_tiles) {
            int st = jn % ST;
            load_tile_sw<D, BN>(sK + st * cfg::KV_BYTES, kh, k_stride, start, jn * BN, len);
            load_tile_sw<D, BN>(sV + st * cfg::KV_BYTES, vh, v_stride, start, jn * BN, len);
        }
        cp_async_commit90();
        kst = sK + (j % ST) * cfg::KV_BYTES;
        vst = sV + (j % ST) * cfg::KV_BYTES;
    };
    auto need_mask = [&](int n0) { return n0 + BN > len || (causal && n0 + BN - 1 > wg_row0); };

    if (!OV) {
        for (int j = 0; j < n_tiles; j++) {
            uint32_t kst, vst;
            next_tile(j, kst, vst);
            if (j >= n_wg)
                continue;    /* every key of this tile follows every row of this warpgroup */
            float s[BN / 2]; /* fresh each tile: the first k-step overwrites it */
            wgmma_fence();
            issue_qk<D, BN>(s, qbase, kst);
            wgmma_commit();
            wgmma_wait<0>();
#pragma unroll
            for (int i = 0; i < BN / 2; i++)
                reg_fence(s[i]);
            softmax_tile<BN, E, D == 64 ? 4 : 1>(s, mrow, lrow, corr, need_mask(j * BN), j * BN,
                                                 len, causal, row_a, lane, scale_log2);
            pack_p<BN>(s, p);
            rescale<D>(o, corr);
            wgmma_fence();
            issue_pv<D, BN>(o, p, vst);
            wgmma_commit();
            wgmma_wait<0>();
#pragma unroll
            for (int i = 0; i < D / 2; i++)
                reg_fence(o[i]);
        }
    } else {
        /* The first tile, then tiles 1 .. n_wg - 1 with the overlap, the last P V, then only
         * the barriers and refills of the tiles this warpgroup skips (causal). */
        uint32_t kst, vst;
        next_tile(0, kst, vst);
        float s[BN / 2];
        wgmma_fence();
        issue_qk<D, BN>(s, qbase, kst);
        wgmma_commit();
        wgmma_wait<0>();
#pragma unroll
        for (int i = 0; i < BN / 2; i++)
            reg_fence(s[i]);
        softmax_tile<BN, E, D == 64 ? 4 : 1>(s, mrow, lrow, corr, need_mask(0), 0, len, causal,
                                             row_a, lane, scale_log2);
        pack_p<BN>(s, p);
        for (int j = 1; j < n_wg; j++) {
            /* S_j = Q K_j^T and O += P_{j-1} V_{j-1} in flight together; the softmax of S_j
             * (in fp32, in place) runs while the P V product does; P_j replaces P_{j-1} once
             * that product is done */
            uint32_t vprev = vst;
            next_tile(j, kst, vst);
            float s[BN / 2]; /* fresh registers: nothing defines them while wgmma runs */
            wgmma_fence();
            issue_qk<D, BN>(s, qbase, kst);
            wgmma_commit();
            issue_pv<D, BN>(o, p, vprev);
            wgmma_commit();
            wgmma_wait<1>();
#pragma unroll
            for (int i = 0; i < BN / 2; i++)
                reg_fence(s[i]);
            softmax_tile<BN, E, D == 64 ? 4 : 1>(s, mrow, lrow, corr, need_mask(j * BN), j * BN,
                                                 len, causal, row_a, lane, scale_log2);
            wgmma_wait<0>();
#pragma unroll
            for (int i = 0; i < D / 2; i++)
                reg_fence(o[i]);
            rescale<D>(o, corr);
            pack_p<BN>(s, p);
        }
        wgmma_fence(); /* the last P V: tile n_wg - 1's V stays resident until the barrier */
        issue_pv<D, BN>(o, p, vst);
        wgmma_commit();
        wgmma_wait<0>();
#pragma unroll
        for (int i = 0; i < D / 2; i++)
            reg_fence(o[i]);
        for (int j = n_wg; j < n_tiles; j++)
            next_tile(j, kst, vst);
    }
    cp_async_wait90<0>(); /* no copy may outlive the block */

    store_o<D>(o, lrow, og, start, len, row_a, o_stride, wg_head, lane);
#else
    __trap(); /* the host never launches this without a compute capability 9.0 device */
#endif
}

template <int D, int BN, int ST, int MINB, int OV, int E = 0, int GP = 0>
static void launch90(vl_stream_t s, const struct vl_attn_args *a)
{
    using cfg = attn90_cfg<D, BN, ST, OV>;
    static bool configured; /* per instantiation; the attribute is per device function */
    if (!configured) {
        VL_CUDA_CHECK(cudaFuncSetAttribute(attn90_kernel<D, BN, ST, MINB, OV, E, GP>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, cfg::SMEM));
        configured = true;
    }
    int bmp = GP ? 64 : BM90, nhb = GP ? a->n_heads / 2 : a->n_heads;
    int mt = (a->max_seqlen + bmp - 1) / bmp;
    dim3 grid = a->causal ? dim3(nhb, a->n_seqs, mt) : dim3(mt, nhb, a->n_seqs);
    float scale_log2 = a->scale * 1.4426950408889634f;
    attn90_kernel<D, BN, ST, MINB, OV, E, GP><<<grid, 256, cfg::SMEM, s>>>(
        (const bf16 *)a->q, (const bf16 *)a->k, (const bf16 *)a->v, (bf16 *)a->o, a->q_stride,
        a->k_stride, a->v_stride, a->o_stride, a->cu_seqlens, a->n_heads / a->n_kv_heads, a->causal,
        scale_log2);
    VL_LAUNCH_CHECK("attn90_kernel");
}

/* ---- Warp-specialised persistent variant (FlashAttention-3's structure) ----
 *
 * Block = NC consumer warpgroups (NC x 64 query rows, warpgroups 0 .. NC - 1) + PW producer
 * warps (the last warps), one block per SM, persistent: block b takes work items b,
 * b + gridDim.x, ... of the list (query tile, head, sequence); causal lists the heaviest query
 * tiles first, non-causal keeps the tiles of one (sequence, head) adjacent. The producer's
 * 32 PW threads fill a ring of ST K/V stages (and QB Q buffers, 2 where shared memory allows,
 * so the next item's Q loads during this one) with cp.async in the same swizzled layout and
 * with the same zero fill past the sequence end as the kernel above (nothing read across
 * sequences); each producer thread signals a load group once its own copies landed (waited one
 * group behind, or before it blocks), after fencing them into the async proxy, by arriving on
 * the group's "full" mbarrier (32 PW arrivals). Consumers wait on "full", run the overlapped
 * Q K^T / softmax / P V loop of the kernel above, and each warp arrives on the stage's "empty"
 * mbarrier once the wgmma reading it has retired (on Q's once its last Q K^T has); the producer
 * refills a stage only after its "empty" phase completes. No block-wide barrier after the
 * start. RR = setmaxnreg: the producer warpgroup drops to P_REGS registers and the consumers
 * rise to C_REGS (ptxas allocates each region to its limit; without it a block of 9-16 warps
 * caps every thread at 168 or 128 registers). PP = ping-pong (NC = 2): named barriers 1 and 2
 * let the two consumer warpgroups issue their GEMMs in turn, so one's softmax runs under the
 * other's GEMMs; both take the same number of turns per item (n_tiles + 1), turns without work
 * included, so the turns stay paired under causal skipping. */

#ifdef VL_SM90A

/* 1 when the phase of parity `par` has completed (non-blocking). */
static __device__ __forceinline__ uint32_t mbar_test(uint32_t bar, uint32_t par)
{
    uint32_t ok;
    asm volatile("{\n.reg .pred p;\nmbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                 "selp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(ok)
                 : "r"(bar), "r"(par)
                 : "memory");
    return ok;
}
static __device__ __forceinline__ void named_sync(int id, int n)
{
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
static __device__ __forceinline__ void named_arrive(int id, int n)
{
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
template <int N> static __device__ __forceinline__ void regs_dec()
{
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N> static __device__ __forceinline__ void regs_inc()
{
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}

/* load_tile_sw for the producer's NP threads (tid 0 .. NP - 1), strength-reduced: NP is a
 * multiple of 8 x the chunks per row, so a thread's chunk column and its swizzled slot stay the
 * same across its iterations and only the row (source pointer, destination offset) advances. */
template <int D, int ROWS, int NP>
static __device__ __forceinline__ void load_tile_p(uint32_t dst, const bf16 *g, int stride,
                                                   int start, int row0, int len, int tid)
{
    constexpr int CH = D / 8, RSTEP = NP / CH;
    static_assert(ROWS * CH % NP == 0 && RSTEP % 8 == 0, "tile chunks must divide evenly");
    int c = tid % CH, r = tid / CH;
    int left = len - row0 - r; /* rows of this thread's column still inside the sequence */
    const bf16 *src = g + (size_t)(start + row0 + r) * stride + c * 8;
    const bf16 *src0 = g + (size_t)start * stride + c * 8; /* any valid address */
    uint32_t d = dst + (c / 8) * (ROWS * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4);
    size_t step = (size_t)RSTEP * stride;
#pragma unroll
    for (int i = 0; i < ROWS / RSTEP; i++) {
        bool valid = i * RSTEP < left;
        cp_async16_sw(d + i * RSTEP * 128, valid ? src : src0, valid);
        src += step;
    }
}

/* Work item w of the persistent list: query tile mb of head `head` of the sequence starting at
 * row `start` with `len` rows; returns 0 when the tile starts past the sequence's end (nothing
 * to do: producer and consumers skip it alike). */
static __device__ __forceinline__ int ws_item(int w, int mt, int nh, int ns, int causal, int bm,
                                              const int32_t *__restrict__ cu, int &mb, int &head,
                                              int &start, int &len)
{
    int seq;
    if (causal) { /* query-tile index slowest and reversed: the heaviest tiles first */
        int hs = nh * ns;
        mb = mt - 1 - w / hs;
        head = (w % hs) % nh;
        seq = (w % hs) / nh;
    } else { /* tiles of one (sequence, head) adjacent: they share K/V in L2 */
        mb = w % mt;
        head = (w / mt) % nh;
        seq = w / (mt * nh);
    }
    start = cu[seq];
    len = cu[seq + 1] - start;
    return mb * bm < len;
}

#endif /* VL_SM90A */

template <int D, int BN, int ST, int NC, int PW> struct ws_cfg {
    static constexpr int BM = 64 * NC;
    static constexpr int NP = 32 * PW; /* producer threads */
    static constexpr int THREADS = 128 * NC + NP;
    static constexpr int Q_BYTES = BM * D * 2;
    static constexpr int KV_BYTES = BN * D * 2;
    static constexpr int EXTRA = 1024 + 256; /* alignment slack + mbarriers */
    /* two Q buffers (the next item's Q loads during this one's tail) where they fit */
    static constexpr int QB = 2 * Q_BYTES + 2 * ST * KV_BYTES + EXTRA <= 232448 ? 2 : 1;
    static constexpr int SMEM = QB * Q_BYTES + 2 * ST * KV_BYTES + EXTRA;
    static_assert(SMEM <= 232448, "shared memory");
    /* with setmaxnreg (RR): producer / consumer registers, 128 P + 128 NC C <= 65536 */
    /* NC = 4: a 640-thread block starts at 96 registers a thread (the launch bound), and
     * setmaxnreg.inc only hands out what .dec released in the block: 128 (96 - 24) >= 512
     * (112 - 96) */
    static constexpr int P_REGS = NC == 2 ? 40 : NC == 3 ? 32 : 24;
    static constexpr int C_REGS = NC == 2 ? 232 : NC == 3 ? 160 : 112;
    static_assert(128 * P_REGS + 128 * NC * C_REGS <= 65536, "registers");
};

template <int D, int BN, int ST, int NC, int PP, int PW, int RR, int E>
static __global__ void __launch_bounds__(128 * NC + 32 * PW, 1)
    attn90ws_kernel(const bf16 *__restrict__ qg, const bf16 *__restrict__ kg,
                    const bf16 *__restrict__ vg, bf16 *__restrict__ og, int q_stride, int k_stride,
                    int v_stride, int o_stride, const int32_t *__restrict__ cu_seqlens, int group,
                    int causal, float scale_log2, int mt, int n_heads, int n_seqs, int n_work)
{
#ifdef VL_SM90A
    using cfg = ws_cfg<D, BN, ST, NC, PW>;
    constexpr int BM = cfg::BM, QB = cfg::QB, NP = cfg::NP;
    static_assert(D % 64 == 0 && BN % 32 == 0 && BN <= 128 && ST >= 2, "unsupported tile");
    static_assert(!PP || NC == 2, "ping-pong pairs two consumer warpgroups");
    extern __shared__ unsigned char smem_raw[];
    uint32_t sQ = (smem_addr(smem_raw) + 1023u) & ~1023u;
    uint32_t sK = sQ + QB * cfg::Q_BYTES, sV = sK + ST * cfg::KV_BYTES;
    uint32_t bar0 = sV + ST * cfg::KV_BYTES; /* full[ST], empty[ST], qfull[QB], qempty[QB] */
    auto full = [&](int st) { return bar0 + 8u * st; };
    auto empty = [&](int st) { return bar0 + 8u * (ST + st); };
    auto qfull = [&](int b) { return bar0 + 8u * (2 * ST + b); };
    auto qempty = [&](int b) { return bar0 + 8u * (2 * ST + QB + b); };
    if (threadIdx.x == 0) {
        for (int i = 0; i < ST; i++) {
            mbar_init(full(i), NP);
            mbar_init(empty(i), 4 * NC);
        }
        for (int i = 0; i < QB; i++) {
            mbar_init(qfull(i), NP);
            mbar_init(qempty(i), 4 * NC);
        }
    }
    __syncthreads();
    int wg = threadIdx.x >> 7;

    if (wg == NC) { /* the producer warp(s) */
        if (RR)
            regs_dec<cfg::P_REGS>();
        int tid = threadIdx.x - 128 * NC;
        /* the barrier of the last issued group not yet signalled (0: none). A group is
         * signalled once the next one is issued (this thread's copies of it landed, fenced into
         * the async proxy), or before blocking on a barrier. */
        uint32_t pend = 0;
        auto flush = [&]() {
            if (pend) {
                cp_async_wait90<0>();
                fence_proxy_async();
                mbar_arrive(pend);
                pend = 0;
            }
        };
        auto issued = [&](uint32_t bar) {
            cp_async_commit90();
            if (pend) {
                cp_async_wait90<1>();
                fence_proxy_async();
                mbar_arrive(pend);
            }
            pend = bar;
        };
        auto acquire = [&](uint32_t bar, uint32_t par) {
            if (!mbar_test(bar, par)) {
                flush();
                mbar_wait(bar, par);
            }
        };
        int kt = 0, qi = 0;
        for (int w = blockIdx.x; w < n_work; w += gridDim.x) {
            int mb, head, start, len;
            if (!ws_item(w, mt, n_heads, n_seqs, causal, BM, cu_seqlens, mb, head, start, len))
                continue;
            int m0 = mb * BM, kvh = head / group;
            int kv_end = causal ? min(len, m0 + BM) : len;
            int n_tiles = (kv_end + BN - 1) / BN;
            int qb = qi % QB;
            acquire(qempty(qb), ((qi / QB) & 1) ^ 1);
            load_tile_p<D, BM, NP>(sQ + qb * cfg::Q_BYTES, qg + head * D, q_stride, start, m0, len,
                                   tid);
            issued(qfull(qb));
            for (int j = 0; j < n_tiles; j++, kt++) {
                int st = kt % ST;
                acquire(empty(st), ((kt / ST) & 1) ^ 1);
                load_tile_p<D, BN, NP>(sK + st * cfg::KV_BYTES, kg + kvh * D, k_stride, start,
                                       j * BN, len, tid);
                load_tile_p<D, BN, NP>(sV + st * cfg::KV_BYTES, vg + kvh * D, v_stride, start,
                                       j * BN, len, tid);
                issued(full(st));
            }
            qi++;
        }
        flush();
        return;
    }

    /* consumers */
    if (RR)
        regs_inc<cfg::C_REGS>();
    int c = wg, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
    /* ping-pong: consumer c waits on barrier 1 + c and hands the turn to 1 + (1 - c) */
    auto turn_begin = [&]() {
        if (PP)
            named_sync(1 + c, 256);
    };
    auto turn_end = [&]() {
        if (PP)
            named_arrive(2 - c, 256);
    };
    if (PP && c == 1)
        named_arrive(1, 256); /* consumer 0 takes the first turn */
    int kt = 0, qi = 0;
    for (int w = blockIdx.x; w < n_work; w += gridDim.x) {
        int mb, head, start, len;
        if (!ws_item(w, mt, n_heads, n_seqs, causal, BM, cu_seqlens, mb, head, start, len))
            continue;
        int m0 = mb * BM;
        int kv_end = causal ? min(len, m0 + BM) : len;
        int n_tiles = (kv_end + BN - 1) / BN;
        int wg_row0 = m0 + c * 64;
        int row_a = wg_row0 + warp * 16 + (lane >> 2); /* this thread's rows: row_a, row_a + 8 */
        int n_wg = causal ? min(n_tiles, (wg_row0 + 64 + BN - 1) / BN) : n_tiles;
        int qb = qi % QB;
        uint32_t qbase = sQ + qb * cfg::Q_BYTES + c * 64 * 128;
        auto stage_wait = [&](int j, uint32_t &kst, uint32_t &vst) {
            int t = kt + j, st = t % ST;
            mbar_wait(full(st), (t / ST) & 1);
            kst = sK + st * cfg::KV_BYTES;
            vst = sV + st * cfg::KV_BYTES;
        };
        auto stage_release = [&](int j) {
            __syncwarp();
            if (lane == 0)
                mbar_arrive(empty((kt + j) % ST));
        };
        auto need_mask = [&](int n0) { return n0 + BN > len || (causal && n0 + BN - 1 > wg_row0); };
        float o[D / 2];
        uint32_t p[BN / 16][4];
#pragma unroll
        for (int i = 0; i < D / 2; i++)
            o[i] = 0.0f;
        float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f}, corr[2];
        mbar_wait(qfull(qb), (qi / QB) & 1);

        uint32_t kst, vst;
        stage_wait(0, kst, vst);
        {
            float s[BN / 2];
            turn_begin();
            wgmma_fence();
            issue_qk<D, BN, BM>(s, qbase, kst);
            wgmma_commit();
            turn_end();
            wgmma_wait<0>();
#pragma unroll
            for (int i = 0; i < BN / 2; i++)
                reg_fence(s[i]);
            softmax_tile<BN, E, D == 64 ? 4 : 1>(s, mrow, lrow, corr, need_mask(0), 0, len, causal,
                                                 row_a, lane, scale_log2);
            pack_p<BN>(s, p);
        }
        for (int j = 1; j < n_wg; j++) {
            uint32_t vprev = vst;
            stage_wait(j, kst, vst);
            float s[BN / 2];
            turn_begin();
            wgmma_fence();
            issue_qk<D, BN, BM>(s, qbase, kst);
            wgmma_commit();
            issue_pv<D, BN>(o, p, vprev);
            wgmma_commit();
            turn_end();
            wgmma_wait<1>();
#pragma unroll
            for (int i = 0; i < BN / 2; i++)
                reg_fence(s[i]);
            softmax_tile<BN, E, D == 64 ? 4 : 1>(s, mrow, lrow, corr, need_mask(j * BN), j * BN,
                                                 len, causal, row_a, lane, scale_log2);
            wgmma_wait<0>();
#pragma unroll
            for (int i = 0; i < D / 2; i++)
                reg_fence(o[i]);
            stage_release(j - 1);
            rescale<D>(o, corr);
            pack_p<BN>(s, p);
        }
        /* every Q K^T of this item has retired: Q's buffer is free */
        __syncwarp();
        if (lane == 0)
            mbar_arrive(qempty(qb));
        turn_begin();
        wgmma_fence();
        issue_pv<D, BN>(o, p, vst);
        wgmma_commit();
        turn_end();
        wgmma_wait<0>();
#pragma unroll
        for (int i = 0; i < D / 2; i++)
            reg_fence(o[i]);
        stage_release(n_wg - 1);
        for (int j = n_wg; j < n_tiles; j++) { /* tiles wholly after this warpgroup's rows */
            stage_wait(j, kst, vst);
            stage_release(j);
            turn_begin();
            turn_end();
        }
        kt += n_tiles;
        qi++;

        store_o<D>(o, lrow, og, start, len, row_a, o_stride, head, lane);
    }
    if (PP && c == 0)
        named_sync(1, 256); /* pairs consumer 1's opening arrive: no arrival left pending */
#else
    __trap(); /* the host never launches this without a compute capability 9.0 device */
#endif
}

static int sm_count(void)
{
    static int n; /* benign race: every thread computes the same value */
    if (!n) {
        int dev = 0;
        VL_CUDA_CHECK(cudaGetDevice(&dev));
        VL_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    }
    return n;
}

template <int D, int BN, int ST, int NC, int PP, int PW, int RR, int E = 0>
static void launch90ws(vl_stream_t s, const struct vl_attn_args *a)
{
    using cfg = ws_cfg<D, BN, ST, NC, PW>;
    static bool configured; /* per instantiation; the attribute is per device function */
    if (!configured) {
        VL_CUDA_CHECK(cudaFuncSetAttribute(attn90ws_kernel<D, BN, ST, NC, PP, PW, RR, E>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, cfg::SMEM));
        configured = true;
    }
    int mt = (a->max_seqlen + cfg::BM - 1) / cfg::BM;
    long long work = (long long)mt * a->n_heads * a->n_seqs;
    if (work > 0x7fffffff) {
        vl_error("vl_attention: %lld work items overflow the persistent kernel's index", work);
        abort();
    }
    int grid = (int)(work < sm_count() ? work : sm_count());
    float scale_log2 = a->scale * 1.4426950408889634f;
    static_assert(!RR || PW == 4, "setmaxnreg needs whole warpgroups");
    attn90ws_kernel<D, BN, ST, NC, PP, PW, RR, E><<<grid, cfg::THREADS, cfg::SMEM, s>>>(
        (const bf16 *)a->q, (const bf16 *)a->k, (const bf16 *)a->v, (bf16 *)a->o, a->q_stride,
        a->k_stride, a->v_stride, a->o_stride, a->cu_seqlens, a->n_heads / a->n_kv_heads, a->causal,
        scale_log2, mt, a->n_heads, a->n_seqs, (int)work);
    VL_LAUNCH_CHECK("attn90ws_kernel");
}

extern "C" int vl_attention_sm90_available(void)
{
    static int avail = -1; /* benign race: every thread computes the same value */
    if (avail < 0) {
        int dev = 0, major = 0, minor = 0;
        VL_CUDA_CHECK(cudaGetDevice(&dev));
        VL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
        VL_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
        avail = major == 9 && minor == 0;
    }
    return avail;
}

/* The variants (attention.h): tile configuration per head dim. */
extern "C" int vl_attention_sm90_covers(const struct vl_attn_args *a, int variant)
{
    int d = a->head_dim;
    if (!(a->scale > 0.0f)) /* the kernel's running max needs scale > 0 */
        return 0;
    if (variant == VL_ATTN_SM90_N128_S4_OV_1B)
        return d == 64;
    if (variant == VL_ATTN_SM90_N32_S4_OV)
        return d == 128;
    if (variant == VL_ATTN_SM90_WS || variant == VL_ATTN_SM90_WS_PP ||
        variant == VL_ATTN_SM90_WS_BIG || variant == VL_ATTN_SM90_WS_RR)
        return d == 64 || d == 128;
    if (variant == VL_ATTN_SM90_WS3)
        return d == 64;
    if (variant >= VL_ATTN_SM90_OV_E2 && variant <= VL_ATTN_SM90_WS_BIG_E4)
        return d == 64;
    if (variant == VL_ATTN_SM90_N64_E2 || variant == VL_ATTN_SM90_WS_E2)
        return d == 128;
    if (variant == VL_ATTN_SM90_N64_GP)
        return d == 128 && a->n_kv_heads > 0 && a->n_heads % a->n_kv_heads == 0 &&
               (a->n_heads / a->n_kv_heads) % 2 == 0;
    if (variant == VL_ATTN_SM90_WS4)
        return d == 64;
    return (d == 64 || d == 128) && variant >= VL_ATTN_SM90_N128 &&
           variant <= VL_ATTN_SM90_N128_S3_OV;
}

extern "C" void vl_attention_sm90(vl_stream_t s, const struct vl_attn_args *a, int variant)
{
    if (!vl_attention_sm90_covers(a, variant)) {
        vl_error("vl_attention: wgmma variant %d does not cover head dim %d", variant, a->head_dim);
        abort();
    }
    switch (variant) { /* the FMA-pipe exponential variants, one head dim each */
    case VL_ATTN_SM90_OV_E2:
        launch90<64, 64, 4, 2, 1, 2>(s, a);
        return;
    case VL_ATTN_SM90_OV_E3:
        launch90<64, 64, 4, 2, 1, 3>(s, a);
        return;
    case VL_ATTN_SM90_OV_E4:
        launch90<64, 64, 4, 2, 1, 4>(s, a);
        return;
    case VL_ATTN_SM90_WS_BIG_E2:
        launch90ws<64, 128, 4, 3, 0, 4, 1, 2>(s, a);
        return;
    case VL_ATTN_SM90_WS_BIG_E3:
        launch90ws<64, 128, 4, 3, 0, 4, 1, 3>(s, a);
        return;
    case VL_ATTN_SM90_WS_BIG_E4:
        launch90ws<64, 128, 4, 3, 0, 4, 1, 4>(s, a);
        return;
    case VL_ATTN_SM90_N64_E2:
        launch90<128, 64, 2, 2, 0, 2>(s, a);
        return;
    case VL_ATTN_SM90_WS_E2:
        launch90ws<128, 64, 4, 2, 0, 4, 0, 2>(s, a);
        return;
    case VL_ATTN_SM90_N64_GP: /* head pairs, head dim 128 */
        launch90<128, 64, 2, 2, 0, 0, 1>(s, a);
        return;
    case VL_ATTN_SM90_WS4: /* 4 consumer warpgroups, head dim 64 */
        launch90ws<64, 64, 4, 4, 0, 4, 1>(s, a);
        return;
    default:
        break;
    }
    if (variant >= VL_ATTN_SM90_WS) {
        if (a->head_dim == 64) {
            switch (variant) {
            case VL_ATTN_SM90_WS:
                launch90ws<64, 128, 4, 2, 0, 4, 0>(s, a);
                break;
            case VL_ATTN_SM90_WS_PP:
                launch90ws<64, 128, 4, 2, 1, 4, 0>(s, a);
                break;
            case VL_ATTN_SM90_WS3:
                launch90ws<64, 64, 4, 3, 0, 4, 0>(s, a);
                break;
            case VL_ATTN_SM90_WS_RR:
                launch90ws<64, 128, 4, 2, 0, 4, 1>(s, a);
                break;
            default: /* VL_ATTN_SM90_WS_BIG */
                launch90ws<64, 128, 4, 3, 0, 4, 1>(s, a);
            }
        } else if (variant == VL_ATTN_SM90_WS) {
            launch90ws<128, 64, 4, 2, 0, 4, 0>(s, a);
        } else if (variant == VL_ATTN_SM90_WS_PP) {
            launch90ws<128, 64, 4, 2, 1, 4, 0>(s, a);
        } else if (variant == VL_ATTN_SM90_WS_RR) {
            launch90ws<128, 64, 4, 2, 0, 4, 1>(s, a);
        } else { /* VL_ATTN_SM90_WS_BIG */
            launch90ws<128, 128, 2, 2, 1, 4, 1>(s, a);
        }
        return;
    }
    if (a->head_dim == 64) {
        switch (variant) {
        case VL_ATTN_SM90_N128:
            launch90<64, 128, 2, 2, 0>(s, a);
            break;
        case VL_ATTN_SM90_N64:
            launch90<64, 64, 2, 2, 0>(s, a);
            break;
        case VL_ATTN_SM90_N64_S4:
            launch90<64, 64, 4, 2, 0>(s, a);
            break;
        case VL_ATTN_SM90_N64_S4_OV:
            launch90<64, 64, 4, 2, 1>(s, a);
            break;
        case VL_ATTN_SM90_N128_S3_OV:
            launch90<64, 128, 3, 1, 1>(s, a);
            break;
        default: /* VL_ATTN_SM90_N128_S4_OV_1B */
            launch90<64, 128, 4, 1, 1>(s, a);
        }
    } else {
        switch (variant) {
        case VL_ATTN_SM90_N128:
            launch90<128, 128, 2, 1, 0>(s, a);
            break;
        case VL_ATTN_SM90_N64:
            launch90<128, 64, 2, 2, 0>(s, a);
            break;
        case VL_ATTN_SM90_N64_S4:
            launch90<128, 64, 4, 1, 0>(s, a);
            break;
        case VL_ATTN_SM90_N64_S4_OV:
            launch90<128, 64, 4, 1, 1>(s, a);
            break;
        case VL_ATTN_SM90_N128_S3_OV:
            launch90<128, 128, 3, 1, 1>(s, a);
            break;
        default: /* VL_ATTN_SM90_N32_S4_OV */
            launch90<128, 32, 4, 2, 1>(s, a);
        }
    }
}
