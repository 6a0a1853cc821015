/* Own Hopper GEMM (gemm_sm90.h): TMA + mbarrier pipeline, warp-specialised, persistent.
 *
 * Block = 3 warpgroups (384 threads), one block per SM, persistent over output tiles of
 * BM x BN = 128 x 256 (the SwiGLU form: 128 rows x 128 act columns, whose 128 gate and 128 up
 * weight rows make the same 256-wide product tile). Warpgroup 0 is the producer: after
 * setmaxnreg.dec one thread issues the TMA loads (cp.async.bulk.tensor, 128-byte swizzle) of the
 * X tile [128 x 64] and two W half-tiles [128 x 64] per k-block into a ring of ST stages, each
 * guarded by a "full" mbarrier (transaction bytes) and an "empty" mbarrier (one arrival per
 * consumer warpgroup). Warpgroups 1 and 2 consume (setmaxnreg.inc): each owns 64 rows of the
 * tile and runs wgmma m64n256k16 with both operands K-major in shared memory, fp32 accumulators
 * in registers (128 per thread), one wgmma group in flight so the previous stage is released
 * while the current one computes. Epilogue: each consumer warpgroup writes its 64 rows as bf16
 * into its own two [64 x 64] boxes of shared memory (128 columns at a time, 128-byte swizzle, no
 * bank conflicts) and one of its threads stores them with TMA (cp.async.bulk.tensor; rows and
 * columns past M and N are clipped), or adds them to Y with TMA's bf16 reduce-add for the
 * residual form; the warpgroup goes on to the next tile while the store drains, and the producer
 * has already streamed the next tile's first stages. Tiles go out in groups of GROUP_M row tiles
 * (column tile slowest within a group) so the tiles in flight share X and W through L2.
 *
 * SwiGLU epilogue: g = bf16(acc_gate), u = bf16(acc_up), act = bf16(silu(g) * u) with silu(g)
 * read from a 65536-entry table indexed by g's bits, made once per device by
 * silu_table_kernel with vl_swiglu's own formula (expf, IEEE division, bf16 rounding), so the
 * result is bit-identical to vl_swiglu. Computing expf and the division in the epilogue instead
 * ran at 0.85 x the plain GEMM's rate (the table: 0.95 x), also when spread over the next tile's
 * k-loop (docs/cuda.md).
 *
 * q/k RMSNorm + MRoPE epilogue (qk_norm_mrope_head) and ViT bias + 2-D rope epilogue
 * (vit_bias_rope_half): per 128-column half tile (one LM head of 128, two ViT heads of 64), in
 * the accumulator layout, bit-identical to the separate kernels of rope.cu; their bf16-valued
 * steps run as fma.rn.bf16x2 (one instruction per two values), results go to a separate array
 * (writing the accumulators makes ptxas serialise the next tile's wgmma), and the MRoPE cos / sin
 * are loaded while the tile's last wgmma group runs.
 *
 * Measured (H100 SXM, bench_kernels sm90; tables in docs/cuda.md): fused gate_up + SwiGLU 1.13 x
 * (2B) / 1.05 x (8B) faster than cuBLASLt + vl_swiglu; fused qkv + q/k norm + MRoPE 1.03-1.11 x
 * cuBLASLt + vl_qk_norm_mrope; ViT qkv + bias + rope 1.21 x cuBLASLt bias + vl_vit_rope at
 * M = 16384 (0.95-1.04 x at 4464); the plain and residual forms 0.95-1.04 x cuBLASLt at
 * M = 16384 and 0.73-0.97 x at M = 4464, so the forward uses only the fused forms.
 *
 * The W half-tiles are rows [n0, n0 + 128) and [n0 + 128, n0 + 256) for the plain form and
 * rows [j0, j0 + 128) (gate) and [I + j0, I + j0 + 128) (up) for the SwiGLU form: a thread's
 * accumulator for gate column j sits in the same thread as up column j (register group + 16),
 * so no weight permutation is needed. Rows past M or N and columns past K are zero-filled by
 * TMA. */
#include "worker/cuda/gemm_sm90.h"

#include <cuda.h> /* CUtensorMap and its enums only: the encoder comes via the runtime */
#include <stdlib.h>
#include <string.h>

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/kcommon.h"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define VL_SM90A 1
#endif

#define BM 128
#define BN 256
#define BK 64
#define ST 4 /* ring stages: 4 x 48 KiB + 32 KiB of output boxes + alignment = 225 KiB */
#define GROUP_M 16
#define A_BYTES (BM * BK * 2)
#define BH_BYTES (BN / 2 * BK * 2)
#define STAGE_BYTES (A_BYTES + 2 * BH_BYTES)
#define C_BOX_BYTES (64 * 64 * 2)     /* one [64 rows x 64 cols] output box, 128-byte swizzled */
#define C_BYTES (2 * 2 * C_BOX_BYTES) /* per consumer warpgroup: two boxes (128 columns) */
#define SMEM_BYTES (ST * STAGE_BYTES + C_BYTES + 1024)

enum { EPI_PLAIN = 0, EPI_ACC = 1, EPI_SWIGLU = 2, EPI_QKROPE = 3, EPI_VITROPE = 4 };

/* What the epilogues read besides the accumulators (a kernel parameter, by value). */
struct epi_args {
    const uint16_t *silu;    /* EPI_SWIGLU: silu_table_kernel's table */
    const uint16_t *qw, *kw; /* EPI_QKROPE: [128] RMSNorm weights of q and k heads */
    const uint16_t *cs;      /* EPI_QKROPE: [M, 128] bf16 cos | sin (vl_mrope_table) */
    int nq, nkv, M;          /* EPI_QKROPE: q heads, k heads, rows; EPI_VITROPE: nq heads, M */
    float eps;
    const uint16_t *bias; /* EPI_VITROPE: [N] */
    const float *vcs;     /* EPI_VITROPE: [M, 64] fp32 cos | sin (vl_vit_rope_table) */
    int N;                /* EPI_VITROPE: columns (3 nq 64) */
};

#ifdef VL_SM90A

#include "worker/cuda/sm90_ptx.cuh"

static __device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                 : "memory");
}

/* 2-D TMA load of box (c0 = column, c1 = row) into shared memory, completing on bar. */
static __device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap *map, uint32_t bar,
                                                int c0, int c1)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4}], [%2];\n" ::"r"(dst),
                 "l"((uint64_t)map), "r"(bar), "r"(c0), "r"(c1)
                 : "memory");
}

/* 2-D TMA store (or bf16 reduce-add, add = 1) of a shared-memory box to (c0 = column, c1 = row);
 * rows and columns past the tensor's end are not written. */
static __device__ __forceinline__ void tma_store(const CUtensorMap *map, uint32_t src, int c0,
                                                 int c1, int add)
{
    if (add)
        asm volatile("cp.reduce.async.bulk.tensor.2d.global.shared::cta.add.bulk_group"
                     " [%0, {%2, %3}], [%1];\n" ::"l"((uint64_t)map),
                     "r"(src), "r"(c0), "r"(c1)
                     : "memory");
    else
        asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group"
                     " [%0, {%2, %3}], [%1];\n" ::"l"((uint64_t)map),
                     "r"(src), "r"(c0), "r"(c1)
                     : "memory");
}
static __device__ __forceinline__ void bulk_commit()
{
    asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
/* Waits until this thread's bulk stores have finished reading shared memory. */
static __device__ __forceinline__ void bulk_wait_read()
{
    asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
/* Waits until this thread's bulk stores are complete (written to global memory). */
static __device__ __forceinline__ void bulk_wait_all()
{
    asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}
/* Barrier of one warpgroup (128 threads) on named barrier id. */
static __device__ __forceinline__ void wg_bar(int id)
{
    asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory");
}
static __device__ __forceinline__ void st_shared_u32(uint32_t addr, uint32_t v)
{
    asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}

/* Shared-memory matrix descriptor, K-major, 128-byte swizzle: rows of 128 B, 8-row groups
 * 1024 B apart (stride byte offset); the leading offset is unused for this layout. */
static __device__ __forceinline__ uint64_t sdesc(uint32_t addr)
{
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           (1ull << 62);
}

/* D[64 x 256] (+)= A[64 x 16] B[16 x 256]^T, A and B K-major (128-byte swizzle) in shared
 * memory; scale_d = 0 overwrites D. */
static __device__ __forceinline__ void wgmma_n256(float *d, uint64_t da, uint64_t db, int scale_d)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, "
        "%111, "
        "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, "
        "%127"
        "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
          "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
          "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
          "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
          "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
          "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
          "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
          "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
          "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]),
          "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]),
          "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]),
          "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]),
          "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]),
          "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
          "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]),
          "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]),
          "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]),
          "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(da), "l"(db), "r"(scale_d));
}

/* Tile t of the grouped order -> (row tile, column tile). */
static __device__ __forceinline__ void tile_coords(int t, int tiles_m, int tiles_n, int *tm,
                                                   int *tn)
{
    int per = GROUP_M * tiles_n, g = t / per, first = g * GROUP_M;
    int gs = tiles_m - first < GROUP_M ? tiles_m - first : GROUP_M, r = t - g * per;
    *tm = first + r % gs;
    *tn = r / gs;
}

static __device__ __forceinline__ float silu_ref(float g)
{
    return rbf(g / (1.0f + expf(-g))); /* as vl_swiglu (act.cu), same flags, same rounding */
}

/* silu_ref of the bf16 value with bits b, from the 65536-entry table silu_table_kernel wrote:
 * the same result without the epilogue's expf and division. */
static __device__ __forceinline__ float silu_lut(const uint16_t *__restrict__ t, uint32_t b)
{
    return __uint_as_float((uint32_t)__ldg(t + b) << 16);
}

/* bf16x2 arithmetic, each lane's result rounded once (round to nearest even) from the exact
 * value: fma.rn.bf16x2. For bf16 operands these equal the fp32 forms of rope.cu followed by a
 * bf16 rounding: a bf16 x bf16 product is exact in fp32 (16 significant bits), and a sum of two
 * bf16 values is exact in fp32 unless their exponents differ by more than 15, where both forms
 * return the larger operand. One instruction per two values instead of a float multiply and a
 * conversion per value (the conversions bound the epilogue: docs/cuda.md). */
static __device__ __forceinline__ uint32_t bmul2(uint32_t a, uint32_t b)
{
    uint32_t d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(0x80008000u));
    return d;
}
static __device__ __forceinline__ uint32_t badd2(uint32_t a, uint32_t b)
{
    uint32_t d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(0x3f803f80u), "r"(b));
    return d;
}
static __device__ __forceinline__ uint32_t bsub2(uint32_t a, uint32_t b)
{
    uint32_t d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(b), "r"(0xbf80bf80u), "r"(a));
    return d;
}

/* q/k RMSNorm + MRoPE of one 128-column head held in the wgmma accumulator layout: a[4 i + 2 h +
 * e] is row row0 + 8 h, head column 8 i + 2 q + e (i < 16, h, e < 2, q = lane % 4), so column c
 * and its rotate_half partner c + 64 sit in chunks i and i + 8 of the same thread and a row's 128
 * columns are spread over the 4 threads of a quad. Writes the output pair (columns 8 i + 2 q,
 * + 1) of row h as bf16x2 into o[2 i + h] (the accumulators stay read-only: writing them would
 * make ptxas serialise the next tile's wgmma). Each value is exactly what
 * vl_qk_norm_mrope (rope.cu, head_dim 128) writes for the bf16-rounded accumulator: x = bf16(a),
 * the sum of squares in that kernel's order (pairs (8i+2q, 8i+2q+1) fused, a tree over i, then
 * (q0 + q1) + (q2 + q3)), r = rsqrt(ss / 128 + eps), y = bf16(bf16(x r) w), out = bf16(bf16(y cos)
 * + bf16(rotate_half(y) sin)). cos / sin: rope_prefetch's pre. */
static __device__ __forceinline__ void qk_norm_mrope_head(const float *a, uint32_t *o,
                                                          const uint16_t *__restrict__ w,
                                                          const uint32_t *pre, int q, float eps)
{
    const uint32_t *w2 = (const uint32_t *)w + q; /* columns (8 i + 2 q, + 1) as one bf16x2 */
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const uint32_t *cv = pre + 16 * h, *sv = pre + 16 * h + 8;
        uint32_t xb[16];
        float p[16];
#pragma unroll
        for (int i = 0; i < 16; i++) {
            xb[i] = pack_bf16x2(a[4 * i + 2 * h], a[4 * i + 2 * h + 1]);
            float x0 = __uint_as_float(xb[i] << 16), x1 = __uint_as_float(xb[i] & 0xffff0000u);
            p[i] = __fmaf_rn(x1, x1, __fmul_rn(x0, x0));
        }
#pragma unroll
        for (int i = 0; i < 8; i++) /* the tree: i + 8, + 4, + 2, + 1 */
            p[i] = __fadd_rn(p[i], p[i + 8]);
#pragma unroll
        for (int i = 0; i < 4; i++)
            p[i] = __fadd_rn(p[i], p[i + 4]);
        p[0] = __fadd_rn(p[0], p[2]);
        p[1] = __fadd_rn(p[1], p[3]);
        p[0] = __fadd_rn(p[0], p[1]);
        float ss = __fadd_rn(p[0], __shfl_xor_sync(0xffffffffu, p[0], 1));
        ss = __fadd_rn(ss, __shfl_xor_sync(0xffffffffu, ss, 2));
        float r = rsqrtf(ss / 128.0f + eps);
#pragma unroll
        for (int i = 0; i < 16; i++) {
            float x0 = __uint_as_float(xb[i] << 16), x1 = __uint_as_float(xb[i] & 0xffff0000u);
            xb[i] = bmul2(pack_bf16x2(__fmul_rn(x0, r), __fmul_rn(x1, r)), __ldg(w2 + 4 * i));
        }
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint32_t lo = xb[i], hi = xb[i + 8];
            o[2 * i + h] = bsub2(bmul2(lo, cv[i]), bmul2(hi, sv[i]));
            o[2 * (i + 8) + h] = badd2(bmul2(hi, cv[i]), bmul2(lo, sv[i]));
        }
    }
}

/* ViT qkv epilogue for one 128-column half tile (two heads of 64) in the accumulator layout of
 * qk_norm_mrope_head: x = bf16(acc + bias) (cuBLASLt's bias epilogue: fp32 add, one rounding),
 * then, if rope, the 2-D rotation of vl_vit_rope (rope.cu) in fp32: column c < 32 of a head and
 * its partner c + 32 (chunks i and i + 4 of the head, same thread) become bf16(x_c cos - x_{c+32}
 * sin) and bf16(x_{c+32} cos + x_c sin), each product and the sum rounded to fp32 separately.
 * Output pair (columns 8 i + 2 q, + 1) of row h as bf16x2 in o[2 i + h]. bias2 = the bias at the
 * half tile's column 2 q as bf16x2 words. */
static __device__ __forceinline__ void vit_bias_rope_half(const float *a, uint32_t *o,
                                                          const uint32_t *__restrict__ bias2,
                                                          const float *__restrict__ cs, int row0,
                                                          int M, bool rope)
{
    float bl[16], bh[16];
#pragma unroll
    for (int i = 0; i < 16; i++) {
        uint32_t b = __ldg(bias2 + 4 * i);
        bl[i] = __uint_as_float(b << 16), bh[i] = __uint_as_float(b & 0xffff0000u);
    }
    int q = (threadIdx.x % 128) % 4;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        uint32_t xb[16];
#pragma unroll
        for (int i = 0; i < 16; i++)
            xb[i] = pack_bf16x2(__fadd_rn(a[4 * i + 2 * h], bl[i]),
                                __fadd_rn(a[4 * i + 2 * h + 1], bh[i]));
        if (!rope) {
#pragma unroll
            for (int i = 0; i < 16; i++)
                o[2 * i + h] = xb[i];
            continue;
        }
        int row = row0 + 8 * h;
        row = row < M ? row : M - 1;
        const float2 *c2 = (const float2 *)(cs + (size_t)row * 64) + q;
        float2 cv[4], sv[4];
#pragma unroll
        for (int ci = 0; ci < 4; ci++)
            cv[ci] = __ldg(c2 + 4 * ci), sv[ci] = __ldg(c2 + 16 + 4 * ci);
#pragma unroll
        for (int hh = 0; hh < 2; hh++)
#pragma unroll
            for (int ci = 0; ci < 4; ci++) {
                uint32_t lo = xb[8 * hh + ci], hi = xb[8 * hh + ci + 4];
                float a0 = __uint_as_float(lo << 16), a1 = __uint_as_float(lo & 0xffff0000u);
                float b0 = __uint_as_float(hi << 16), b1 = __uint_as_float(hi & 0xffff0000u);
                float c0 = cv[ci].x, c1 = cv[ci].y, s0 = sv[ci].x, s1 = sv[ci].y;
                o[2 * (8 * hh + ci) + h] =
                    pack_bf16x2(__fsub_rn(__fmul_rn(a0, c0), __fmul_rn(b0, s0)),
                                __fsub_rn(__fmul_rn(a1, c1), __fmul_rn(b1, s1)));
                o[2 * (8 * hh + ci + 4) + h] =
                    pack_bf16x2(__fadd_rn(__fmul_rn(b0, c0), __fmul_rn(a0, s0)),
                                __fadd_rn(__fmul_rn(b1, c1), __fmul_rn(a1, s1)));
            }
    }
}

/* The MRoPE cos / sin a consumer thread's EPI_QKROPE epilogue needs for its rows row0 and
 * row0 + 8 (clamped to M - 1: rows past M are clipped by the store), loaded when the tile starts
 * so that the L2 latency hides behind the tile's products instead of stalling the epilogue (and
 * once per tile, not per half tile). pre[16 h + j]: j < 8 the bf16x2 cos of columns (8 j + 2 q,
 * + 1), j >= 8 the sin of columns 8 (j - 8) + 2 q, + 1. */
static __device__ __forceinline__ void rope_prefetch(uint32_t *pre, const epi_args &ea, int row0,
                                                     int q)
{
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int row = row0 + 8 * h;
        row = row < ea.M ? row : ea.M - 1;
        const uint32_t *c2 = (const uint32_t *)(ea.cs + (size_t)row * 128) + q;
#pragma unroll
        for (int i = 0; i < 8; i++)
            pre[16 * h + i] = __ldg(c2 + 4 * i), pre[16 * h + 8 + i] = __ldg(c2 + 32 + 4 * i);
    }
}

#endif /* VL_SM90A */

/* n_step: W rows per column tile (256 plain, 128 SwiGLU); b_off: row offset of the second W
 * half-tile (128 plain, I SwiGLU). N: Y's columns (act's for SwiGLU). */
template <int EPI>
static __global__ void __launch_bounds__(384, 1)
    gemm_sm90_kernel(const __grid_constant__ CUtensorMap ta, const __grid_constant__ CUtensorMap tb,
                     const __grid_constant__ CUtensorMap ty, const epi_args ea, int K, int tiles_m,
                     int tiles_n, int n_step, int b_off)
{
#ifdef VL_SM90A
    extern __shared__ uint8_t smem_raw[];
    __shared__ __align__(8) uint64_t bars[2 * ST];
    uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;
    uint32_t full = smem_addr(&bars[0]), empty = smem_addr(&bars[ST]);
    int wg = threadIdx.x / 128, nk = (K + BK - 1) / BK, total = tiles_m * tiles_n;
    if (threadIdx.x == 0) {
        for (int i = 0; i < ST; i++) {
            mbar_init(full + 8 * i, 1);
            mbar_init(empty + 8 * i, 2);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
        if (threadIdx.x != 0)
            return;
        int st = 0;
        uint32_t ph = 0;
        for (int t = blockIdx.x; t < total; t += gridDim.x) {
            int tm, tn;
            tile_coords(t, tiles_m, tiles_n, &tm, &tn);
            int r0 = tn * n_step;
            for (int kb = 0; kb < nk; kb++) {
                mbar_wait(empty + 8 * st, ph ^ 1);
                uint32_t fb = full + 8 * st, sa = base + st * STAGE_BYTES;
                mbar_expect_tx(fb, STAGE_BYTES);
                tma_load(sa, &ta, fb, kb * BK, tm * BM);
                tma_load(sa + A_BYTES, &tb, fb, kb * BK, r0);
                tma_load(sa + A_BYTES + BH_BYTES, &tb, fb, kb * BK, r0 + b_off);
                if (++st == ST)
                    st = 0, ph ^= 1;
            }
        }
        return;
    }

    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    int c = wg - 1, tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;

    float acc[128];
#pragma unroll
    for (int i = 0; i < 128; i++)
        acc[i] = 0.0f;
    int st = 0;
    uint32_t ph = 0;
    for (int t = blockIdx.x; t < total; t += gridDim.x) {
        int tm, tn;
        tile_coords(t, tiles_m, tiles_n, &tm, &tn);
        int r0 = warp * 16 + lane / 4, q = lane % 4; /* a thread's accumulator rows, columns */

        int prev = 0;
        for (int kb = 0; kb < nk; kb++) {
            mbar_wait(full + 8 * st, ph);
            uint32_t sa = base + st * STAGE_BYTES + c * (64 * 128),
                     sb = base + st * STAGE_BYTES + A_BYTES;
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < BK / 16; kk++)
                wgmma_n256(acc, sdesc(sa + kk * 32), sdesc(sb + kk * 32), kb > 0 || kk > 0);
            wgmma_commit();
            if (kb > 0) {
                wgmma_wait<1>();
                if (tid == 0)
                    mbar_arrive(empty + 8 * prev);
            }
            prev = st;
            if (++st == ST)
                st = 0, ph ^= 1;
        }
        /* EPI_QKROPE: cos / sin of this thread's rows, loaded while the last wgmma group runs
         * (at the tile's start, 32 more registers across the k-loop spill) */
        uint32_t pre[EPI == EPI_QKROPE ? 32 : 1];
        if (EPI == EPI_QKROPE)
            rope_prefetch(pre, ea, tm * BM + c * 64 + r0, q);
        wgmma_wait<0>();
#pragma unroll
        for (int i = 0; i < 128; i++)
            reg_fence(acc[i]);
        if (tid == 0)
            mbar_arrive(empty + 8 * prev);

        /* Epilogue: this warpgroup's 64 rows go through its own two 8 KB boxes of shared memory
         * (128 columns at a time, 128-byte swizzle: row r's 16-byte chunk j at j ^ (r % 8), so
         * a warp's 4-byte writes hit 32 distinct banks), then one thread stores them by TMA
         * while the warpgroup starts the next tile's products. */
        uint32_t cbase = base + ST * STAGE_BYTES + c * (2 * C_BOX_BYTES);
        int out_row = tm * BM + c * 64;
        constexpr int halves = EPI == EPI_SWIGLU ? 1 : 2;
#pragma unroll
        for (int hf = 0; hf < halves; hf++) {
            /* EPI_QKROPE: head (tn * 256 + hf * 128) / 128 is q, k or v (uniform per block) */
            bool normed = EPI == EPI_QKROPE && tn * 2 + hf < ea.nq + ea.nkv;
            /* EPI_VITROPE: the half tile's 2 heads are q, k (rotated) or v (bias only) */
            uint32_t qo[EPI == EPI_QKROPE || EPI == EPI_VITROPE ? 32 : 1];
            if (EPI == EPI_VITROPE) { /* columns past N: nothing to read (the store clips) */
                int col0 = tn * BN + hf * 128, v = ea.nq * 64;
                normed = col0 < ea.N;
                if (normed)
                    vit_bias_rope_half(acc + 64 * hf, qo, (const uint32_t *)(ea.bias + col0) + q,
                                       ea.vcs, out_row + r0, ea.M, col0 < 2 * v);
            }
            if (EPI == EPI_QKROPE && normed)
                qk_norm_mrope_head(acc + 64 * hf, qo, tn * 2 + hf < ea.nq ? ea.qw : ea.kw, pre, q,
                                   ea.eps);
            if (tid == 0)
                bulk_wait_read(); /* the previous stores have read the boxes */
            wg_bar(1 + c);
#pragma unroll
            for (int i = 0; i < 16; i++) {
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    int r = r0 + 8 * h;
                    uint32_t v;
                    if (EPI == EPI_SWIGLU) {
                        uint32_t gw = pack_bf16x2(acc[4 * i + 2 * h], acc[4 * i + 2 * h + 1]);
                        float u0 = rbf(acc[4 * (i + 16) + 2 * h]);
                        float u1 = rbf(acc[4 * (i + 16) + 2 * h + 1]);
                        v = pack_bf16x2(silu_lut(ea.silu, gw & 0xffffu) * u0,
                                        silu_lut(ea.silu, gw >> 16) * u1);
                    } else if ((EPI == EPI_QKROPE || EPI == EPI_VITROPE) && normed) {
                        v = qo[2 * i + h];
                    } else {
                        int j = 16 * hf + i;
                        v = pack_bf16x2(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
                    }
                    uint32_t addr = cbase + (i / 8) * C_BOX_BYTES + r * 128 +
                                    (((i % 8) ^ (r % 8)) << 4) + q * 4;
                    st_shared_u32(addr, v);
                }
            }
            fence_proxy_async();
            wg_bar(1 + c);
            if (tid == 0) {
                int col = EPI == EPI_SWIGLU ? tn * 128 : tn * BN + hf * 128;
                tma_store(&ty, cbase, col, out_row, EPI == EPI_ACC);
                tma_store(&ty, cbase + C_BOX_BYTES, col + 64, out_row, EPI == EPI_ACC);
                bulk_commit();
            }
        }
    }
    if (tid == 0)
        bulk_wait_all();
#endif
}

/* t[b] = bits of silu_ref(the bf16 value with bits b), b < 65536. */
static __global__ void silu_table_kernel(uint16_t *t)
{
#ifdef VL_SM90A
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b < 65536) {
        bf16 v = tobf(silu_ref(__uint_as_float((uint32_t)b << 16)));
        t[b] = *(uint16_t *)&v;
    }
#endif
}

/* Writes 1 in the sm_90a build, 0 in the PTX build other devices would JIT. */
static __global__ void sm90_probe(int *flag)
{
#ifdef VL_SM90A
    *flag = 1;
#else
    *flag = 0;
#endif
}

/* ---- host ---- */

typedef CUresult (*encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                              const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                              const cuuint32_t *, CUtensorMapInterleave, CUtensorMapSwizzle,
                              CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

#define MAX_DEV 64
static struct {
    int known, avail, sms;
    encode_fn encode;
    uint16_t *silu; /* silu_table_kernel's table, 128 KiB, made once per device */
} g_dev[MAX_DEV];

static int cur_dev(void)
{
    int d = 0;
    VL_CUDA_CHECK(cudaGetDevice(&d));
    if (d < 0 || d >= MAX_DEV) {
        vl_error("gemm_sm90: device ordinal %d out of range", d);
        abort();
    }
    return d;
}

/* Probes the device once: cc 9.0, the sm_90a image present (the probe kernel of the sm_90a
 * build writes 1; a PTX-only build writes 0), the tensor-map encoder, the smem opt-in. */
static void probe(int d)
{
    if (g_dev[d].known)
        return;
    g_dev[d].known = 1;
    int major = 0, minor = 0;
    VL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d));
    VL_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, d));
    VL_CUDA_CHECK(cudaDeviceGetAttribute(&g_dev[d].sms, cudaDevAttrMultiProcessorCount, d));
    if (major != 9 || minor != 0)
        return;
    int *dflag = NULL, flag = 0;
    VL_CUDA_CHECK(cudaMalloc(&dflag, sizeof(int)));
    VL_CUDA_CHECK(cudaMemset(dflag, 0, sizeof(int)));
    sm90_probe<<<1, 1>>>(dflag);
    VL_LAUNCH_CHECK("sm90_probe");
    VL_CUDA_CHECK(cudaMemcpy(&flag, dflag, sizeof(int), cudaMemcpyDeviceToHost));
    VL_CUDA_CHECK(cudaFree(dflag));
    if (!flag)
        return;
    void *fn = NULL;
    cudaDriverEntryPointQueryResult q;
    VL_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                                   cudaEnableDefault, &q));
    if (q != cudaDriverEntryPointSuccess || !fn)
        return;
    g_dev[d].encode = (encode_fn)fn;
    VL_CUDA_CHECK(cudaFuncSetAttribute(gemm_sm90_kernel<EPI_PLAIN>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
    VL_CUDA_CHECK(cudaFuncSetAttribute(gemm_sm90_kernel<EPI_ACC>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
    VL_CUDA_CHECK(cudaFuncSetAttribute(gemm_sm90_kernel<EPI_SWIGLU>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
    VL_CUDA_CHECK(cudaFuncSetAttribute(gemm_sm90_kernel<EPI_QKROPE>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
    VL_CUDA_CHECK(cudaFuncSetAttribute(gemm_sm90_kernel<EPI_VITROPE>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
    VL_CUDA_CHECK(cudaMalloc(&g_dev[d].silu, 65536 * sizeof(uint16_t)));
    silu_table_kernel<<<256, 256>>>(g_dev[d].silu);
    VL_LAUNCH_CHECK("silu_table_kernel");
    VL_CUDA_CHECK(cudaDeviceSynchronize());
    g_dev[d].avail = 1;
}

extern "C" int vl_gemm_sm90_available(void)
{
    int d = cur_dev();
    probe(d);
    return g_dev[d].avail;
}

/* The default when VL_GEMM_KERNEL is unset (docs/cuda.md: the measured end-to-end choice). */
#define SM90_DEFAULT 1

extern "C" int vl_gemm_sm90_selected(void)
{
    static int want = -1;
    if (want < 0) {
        const char *e = getenv("VL_GEMM_KERNEL");
        if (e && !strcmp(e, "sm90"))
            want = 1;
        else if (e && !strcmp(e, "cublas"))
            want = 0;
        else {
            if (e && *e)
                vl_warn("VL_GEMM_KERNEL=%s is neither cublas nor sm90: using the default", e);
            want = SM90_DEFAULT;
        }
    }
    return want && vl_gemm_sm90_available();
}

/* The fused epilogues used when VL_GEMM_FUSE is unset (docs/cuda.md: measured end to end). */
#define FUSE_DEFAULT (VL_SM90_FUSE_SWIGLU | VL_SM90_FUSE_QKROPE | VL_SM90_FUSE_VITROPE)

extern "C" int vl_gemm_sm90_fused(void)
{
    static int mask = -1;
    if (mask >= 0)
        return mask;
    const char *e = getenv("VL_GEMM_FUSE");
    if (!e) {
        mask = FUSE_DEFAULT;
        return mask;
    }
    int m = 0;
    char word[32];
    for (const char *p = e; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 0 && n < sizeof word) {
            memcpy(word, p, n);
            word[n] = 0;
            if (!strcmp(word, "swiglu"))
                m |= VL_SM90_FUSE_SWIGLU;
            else if (!strcmp(word, "qkrope"))
                m |= VL_SM90_FUSE_QKROPE;
            else if (!strcmp(word, "vitrope"))
                m |= VL_SM90_FUSE_VITROPE;
            else if (strcmp(word, "none"))
                vl_warn("VL_GEMM_FUSE: unknown epilogue '%s' ignored", word);
        } else if (n > 0) {
            vl_warn("VL_GEMM_FUSE: overlong word ignored");
        }
        p += n;
        if (*p == ',')
            p++;
    }
    mask = m;
    return mask;
}

/* Row-major [rows, K] bf16 matrix as a 2-D tensor map with a [box_rows x 64] box, 128-byte
 * swizzle. */
static void make_map(encode_fn enc, CUtensorMap *m, const uint16_t *p, int rows, int K,
                     int box_rows)
{
    cuuint64_t dims[2] = {(cuuint64_t)K, (cuuint64_t)rows};
    cuuint64_t strides[1] = {(cuuint64_t)K * 2};
    cuuint32_t box[2] = {64, (cuuint32_t)box_rows}, es[2] = {1, 1};
    CUresult r = enc(m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void *)p, dims, strides, box, es,
                     CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                     CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        vl_error("gemm_sm90: cuTensorMapEncodeTiled failed (%d) for [%d x %d] at %p", (int)r, rows,
                 K, (const void *)p);
        abort();
    }
}

static int check_args(int d, int M, int N, int K, const uint16_t *X, const uint16_t *W,
                      const uint16_t *Y, const char *what)
{
    if (!g_dev[d].avail) {
        vl_error("%s: no sm_90a device (call vl_gemm_sm90_available first)", what);
        abort();
    }
    if (M <= 0 || N <= 0 || K <= 0 || K % 8 || N % 8 ||
        ((uintptr_t)X | (uintptr_t)W | (uintptr_t)Y) % 16) {
        vl_error("%s: unsupported shape M=%d N=%d K=%d or alignment", what, M, N, K);
        abort();
    }
    return 0;
}

static void launch(int epi, vl_stream_t s, int M, int N, int K, const uint16_t *X,
                   const uint16_t *W, int w_rows, uint16_t *Y, int tiles_n, int n_step, int b_off,
                   epi_args ea)
{
    int d = cur_dev();
    CUtensorMap ta, tb, ty;
    make_map(g_dev[d].encode, &ta, X, M, K, 128);
    make_map(g_dev[d].encode, &tb, W, w_rows, K, 128);
    make_map(g_dev[d].encode, &ty, Y, M, N, 64);
    int tiles_m = (M + BM - 1) / BM, total = tiles_m * tiles_n;
    unsigned grid = (unsigned)(total < g_dev[d].sms ? total : g_dev[d].sms);
    void (*k)(const CUtensorMap, const CUtensorMap, const CUtensorMap, const epi_args, int, int,
              int, int, int) = epi == EPI_PLAIN    ? gemm_sm90_kernel<EPI_PLAIN>
                               : epi == EPI_ACC    ? gemm_sm90_kernel<EPI_ACC>
                               : epi == EPI_SWIGLU ? gemm_sm90_kernel<EPI_SWIGLU>
                               : epi == EPI_QKROPE ? gemm_sm90_kernel<EPI_QKROPE>
                                                   : gemm_sm90_kernel<EPI_VITROPE>;
    ea.silu = g_dev[d].silu;
    k<<<grid, 384, SMEM_BYTES, s>>>(ta, tb, ty, ea, K, tiles_m, tiles_n, n_step, b_off);
    VL_LAUNCH_CHECK("gemm_sm90_kernel");
}

extern "C" void vl_gemm_sm90_bf16(vl_stream_t s, int M, int N, int K, const uint16_t *X,
                                  const uint16_t *W, uint16_t *Y, int accumulate)
{
    int d = cur_dev();
    check_args(d, M, N, K, X, W, Y, "vl_gemm_sm90_bf16");
    launch(accumulate ? EPI_ACC : EPI_PLAIN, s, M, N, K, X, W, N, Y, (N + BN - 1) / BN, BN, BN / 2,
           epi_args{});
}

extern "C" void vl_gemm_sm90_swiglu(vl_stream_t s, int M, int I, int K, const uint16_t *X,
                                    const uint16_t *W, uint16_t *act)
{
    int d = cur_dev();
    check_args(d, M, I, K, X, W, act, "vl_gemm_sm90_swiglu");
    if (I % 128) {
        vl_error("vl_gemm_sm90_swiglu: intermediate size %d is not a multiple of 128", I);
        abort();
    }
    launch(EPI_SWIGLU, s, M, I, K, X, W, 2 * I, act, I / 128, 128, I, epi_args{});
}

extern "C" void vl_gemm_sm90_qk_norm_mrope(vl_stream_t s, int M, int nq, int nkv, int head_dim,
                                           int K, const uint16_t *X, const uint16_t *W,
                                           uint16_t *qkv, const uint16_t *qw, const uint16_t *kw,
                                           const uint16_t *cs, float eps)
{
    int d = cur_dev();
    int N = (nq + 2 * nkv) * head_dim;
    check_args(d, M, N, K, X, W, qkv, "vl_gemm_sm90_qk_norm_mrope");
    if (head_dim != 128 || nq < 1 || nkv < 1 ||
        ((uintptr_t)qw | (uintptr_t)kw | (uintptr_t)cs) % 4) {
        vl_error("vl_gemm_sm90_qk_norm_mrope: unsupported head dim %d (128 only), heads %d/%d or "
                 "alignment",
                 head_dim, nq, nkv);
        abort();
    }
    epi_args ea = {};
    ea.qw = qw, ea.kw = kw, ea.cs = cs, ea.nq = nq, ea.nkv = nkv, ea.M = M, ea.eps = eps;
    launch(EPI_QKROPE, s, M, N, K, X, W, N, qkv, (N + BN - 1) / BN, BN, BN / 2, ea);
}

extern "C" void vl_gemm_sm90_vit_qkv_rope(vl_stream_t s, int M, int heads, int head_dim, int K,
                                          const uint16_t *X, const uint16_t *W,
                                          const uint16_t *bias, uint16_t *qkv, const float *cs)
{
    int d = cur_dev();
    int N = 3 * heads * head_dim;
    check_args(d, M, N, K, X, W, qkv, "vl_gemm_sm90_vit_qkv_rope");
    if (head_dim != 64 || heads < 2 || heads % 2 || ((uintptr_t)bias | (uintptr_t)cs) % 8) {
        vl_error("vl_gemm_sm90_vit_qkv_rope: unsupported head dim %d (64 only), heads %d (even) "
                 "or alignment",
                 head_dim, heads);
        abort();
    }
    epi_args ea = {};
    ea.bias = bias, ea.vcs = cs, ea.nq = heads, ea.M = M, ea.N = N;
    launch(EPI_VITROPE, s, M, N, K, X, W, N, qkv, (N + BN - 1) / BN, BN, BN / 2, ea);
}
