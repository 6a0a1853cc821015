/* Varlen attention (attention.h): a FlashAttention-2 style forward kernel.
 *
 * Block = WARPS warps, each owning 16 * MT query rows of one (sequence, head) tile of
 * BM = 16 * MT * WARPS rows (MT = 2 for the vision head dims: each K/V fragment read from
 * shared memory then feeds two m-tiles). Q is loaded once into shared memory and kept in registers
 * as mma A-fragments; K/V tiles of BN = 64 keys stream through a double-buffered shared-memory ring
 * filled with cp.async (zero-filled past the sequence end, so padded lanes stay finite).
 * S = Q K^T and O += P V use mma.sync.m16n8k16 bf16 -> fp32; the online softmax runs in the
 * log2 domain with fp32 statistics. Head dims that are not a multiple of 16 (72) are padded to
 * DP = 80 with zero columns in shared memory, which leaves Q K^T unchanged. */
#include "worker/cuda/attention.h"
#include "worker/cuda/attention_sm90.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/kcommon.h"

#define BN 64

static __device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

static __device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid)
{
    int n = valid ? 16 : 0; /* 0 source bytes: the 16 destination bytes are zero-filled */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(n));
}
static __device__ __forceinline__ void cp_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> static __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

static __device__ __forceinline__ void ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2,
                                               uint32_t &r3, const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_u32(p)));
}
static __device__ __forceinline__ void ldsm_x2(uint32_t &r0, uint32_t &r1, const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r0), "=r"(r1)
                 : "r"(smem_u32(p)));
}
static __device__ __forceinline__ void ldsm_x4_t(uint32_t &r0, uint32_t &r1, uint32_t &r2,
                                                 uint32_t &r3, const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_u32(p)));
}
static __device__ __forceinline__ void ldsm_x2_t(uint32_t &r0, uint32_t &r1, const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r0), "=r"(r1)
                 : "r"(smem_u32(p)));
}

static __device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0,
                                                uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* Copies rows [row0, row0 + nrows) (of a sequence with `len` rows starting at global row
 * `start`) of one head into a [nrows][LD] shared tile; rows past len are zero-filled. */
template <int D, int LD, int NTHREADS>
static __device__ __forceinline__ void load_tile(bf16 *sm, const bf16 *g, int stride, int start,
                                                 int row0, int len, int nrows)
{
    constexpr int CH = D / 8; /* 16-byte chunks per row */
    for (int t = threadIdx.x; t < nrows * CH; t += NTHREADS) {
        int r = t / CH, ch = t % CH;
        bool valid = row0 + r < len;
        const bf16 *src = g + (size_t)(start + (valid ? row0 + r : 0)) * stride + ch * 8;
        cp_async16(sm + r * LD + ch * 8, src, valid);
    }
}

template <int D, int WARPS, int MT>
static __global__ void __launch_bounds__(WARPS * 32)
    attn_kernel(const bf16 *__restrict__ qg, const bf16 *__restrict__ kg,
                const bf16 *__restrict__ vg, bf16 *__restrict__ og, int q_stride, int k_stride,
                int v_stride, int o_stride, const int32_t *__restrict__ cu_seqlens, int n_heads,
                int n_kv_heads, int causal, float scale_log2)
{
    constexpr int DP = (D + 15) / 16 * 16; /* head dim padded for the k-dim of Q K^T */
    constexpr int LD = DP + 8;             /* shared row pitch: conflict-free ldmatrix */
    constexpr int WM = 16 * MT;            /* query rows per warp */
    constexpr int BM = WARPS * WM;
    constexpr int NTHREADS = WARPS * 32;
    constexpr int KS = DP / 16; /* k-steps of Q K^T */
    constexpr int NO = D / 8;   /* n-tiles of the output */
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Qs = (bf16 *)smem_raw;
    bf16 *Ks = Qs + BM * LD; /* 2 buffers */
    bf16 *Vs = Ks + 2 * BN * LD;

    int seq = blockIdx.z, head = blockIdx.y;
    int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start;
    int mb = (int)gridDim.x - 1 - (int)blockIdx.x; /* heavy causal tiles first */
    int m0 = mb * BM;
    if (m0 >= len)
        return;
    int kvh = head / (n_heads / n_kv_heads);
    const bf16 *qh = qg + head * D, *kh = kg + kvh * D, *vh = vg + kvh * D;

    /* zero the padding columns [D, DP) once; cp.async never writes them */
    if (DP != D) {
        for (int t = threadIdx.x; t < (BM + 4 * BN); t += NTHREADS)
            for (int c = D; c < DP; c++)
                Qs[t * LD + c] = __float2bfloat16(0.0f);
    }
    int kv_end = causal ? min(len, m0 + BM) : len;
    int n_tiles = (kv_end + BN - 1) / BN;

    load_tile<D, LD, NTHREADS>(Qs, qh, q_stride, start, m0, len, BM);
    load_tile<D, LD, NTHREADS>(Ks, kh, k_stride, start, 0, len, BN);
    load_tile<D, LD, NTHREADS>(Vs, vh, v_stride, start, 0, len, BN);
    cp_async_commit();

    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int wrow0 = m0 + warp * WM; /* this warp's first query row */
    uint32_t qf[MT][KS][4];
    float o[MT][NO][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int i = 0; i < NO; i++)
            o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
    float mrow[MT][2], lrow[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        mrow[mt][0] = mrow[mt][1] = -INFINITY, lrow[mt][0] = lrow[mt][1] = 0.0f;

    for (int j = 0; j < n_tiles; j++) {
        int buf = j & 1;
        if (j + 1 < n_tiles) {
            load_tile<D, LD, NTHREADS>(Ks + (buf ^ 1) * BN * LD, kh, k_stride, start, (j + 1) * BN,
                                       len, BN);
            load_tile<D, LD, NTHREADS>(Vs + (buf ^ 1) * BN * LD, vh, v_stride, start, (j + 1) * BN,
                                       len, BN);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (j == 0) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                const bf16 *qw = Qs + (warp * WM + mt * 16 + (lane & 15)) * LD + (lane >> 4) * 8;
#pragma unroll
                for (int ks = 0; ks < KS; ks++)
                    ldsm_x4(qf[mt][ks][0], qf[mt][ks][1], qf[mt][ks][2], qf[mt][ks][3],
                            qw + ks * 16);
            }
        }
        const bf16 *Kb = Ks + buf * BN * LD, *Vb = Vs + buf * BN * LD;
        int n0 = j * BN;
        /* a warp whose rows all precede this tile's keys has nothing to do in it (causal) */
        if (!causal || n0 <= wrow0 + WM - 1) {

            /* S = Q K^T: each K fragment feeds MT m-tiles */
            float s[MT][BN / 8][4];
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++) {
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
                    s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
                const bf16 *kr = Kb + (nt * 8 + (lane & 7)) * LD;
#pragma unroll
                for (int ks = 0; ks + 1 < KS; ks += 2) {
                    uint32_t b0, b1, b2, b3;
                    ldsm_x4(b0, b1, b2, b3, kr + ks * 16 + (lane >> 3) * 8);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        mma16816(s[mt][nt], qf[mt][ks], b0, b1);
                        mma16816(s[mt][nt], qf[mt][ks + 1], b2, b3);
                    }
                }
                if (KS & 1) {
                    uint32_t b0, b1;
                    ldsm_x2(b0, b1, kr + (KS - 1) * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++)
                        mma16816(s[mt][nt], qf[mt][KS - 1], b0, b1);
                }
            }

            /* scale, mask, online softmax */
            bool need_mask = n0 + BN > len || (causal && n0 + BN - 1 > wrow0);
            uint32_t pa[MT][BN / 16][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                int qrow0 = wrow0 + mt * 16 + (lane >> 2);
#pragma unroll
                for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float v = s[mt][nt][e] * scale_log2;
                        if (need_mask) {
                            int key = n0 + nt * 8 + (lane & 3) * 2 + (e & 1);
                            int qr = qrow0 + (e >> 1) * 8;
                            if (key >= len || (causal && key > qr))
                                v = -INFINITY;
                        }
                        s[mt][nt][e] = v;
                    }
                float corr[2];
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    float mx = mrow[mt][hr];
#pragma unroll
                    for (int nt = 0; nt < BN / 8; nt++)
                        mx = fmaxf(mx, fmaxf(s[mt][nt][hr * 2], s[mt][nt][hr * 2 + 1]));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                    float base = mx == -INFINITY ? 0.0f : mx;
                    corr[hr] = exp2f(mrow[mt][hr] - base);
                    mrow[mt][hr] = mx;
                    float sum = 0.0f;
#pragma unroll
                    for (int nt = 0; nt < BN / 8; nt++) {
                        float p0 = exp2f(s[mt][nt][hr * 2] - base);
                        float p1 = exp2f(s[mt][nt][hr * 2 + 1] - base);
                        s[mt][nt][hr * 2] = p0;
                        s[mt][nt][hr * 2 + 1] = p1;
                        sum += p0 + p1;
                    }
                    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
                    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
                    lrow[mt][hr] = lrow[mt][hr] * corr[hr] + sum;
                }
#pragma unroll
                for (int i = 0; i < NO; i++) {
                    o[mt][i][0] *= corr[0];
                    o[mt][i][1] *= corr[0];
                    o[mt][i][2] *= corr[1];
                    o[mt][i][3] *= corr[1];
                }
#pragma unroll
                for (int kk = 0; kk < BN / 16; kk++) {
                    pa[mt][kk][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                    pa[mt][kk][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                    pa[mt][kk][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                    pa[mt][kk][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
                }
            }

            /* O += P V: each V fragment feeds MT m-tiles */
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                const bf16 *vr = Vb + (kk * 16 + (lane & 15)) * LD;
#pragma unroll
                for (int dn = 0; dn + 1 < NO; dn += 2) {
                    uint32_t b0, b1, b2, b3;
                    ldsm_x4_t(b0, b1, b2, b3, vr + dn * 8 + (lane >> 4) * 8);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        mma16816(o[mt][dn], pa[mt][kk], b0, b1);
                        mma16816(o[mt][dn + 1], pa[mt][kk], b2, b3);
                    }
                }
                if (NO & 1) {
                    uint32_t b0, b1;
                    ldsm_x2_t(b0, b1, vr + (NO - 1) * 8);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++)
                        mma16816(o[mt][NO - 1], pa[mt][kk], b0, b1);
                }
            }
        }
        __syncthreads(); /* this buffer is refilled two tiles later */
    }

#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            int qr = wrow0 + mt * 16 + (lane >> 2) + hr * 8;
            if (qr >= len)
                continue;
            float inv = lrow[mt][hr] > 0.0f ? 1.0f / lrow[mt][hr] : 0.0f;
            bf16 *orow = og + (size_t)(start + qr) * o_stride + head * D + (lane & 3) * 2;
#pragma unroll
            for (int dn = 0; dn < NO; dn++)
                *(__nv_bfloat162 *)(orow + dn * 8) =
                    __floats2bfloat162_rn(o[mt][dn][hr * 2] * inv, o[mt][dn][hr * 2 + 1] * inv);
        }
}

template <int D, int WARPS, int MT> static void launch(vl_stream_t s, const struct vl_attn_args *a)
{
    constexpr int DP = (D + 15) / 16 * 16, LD = DP + 8, BM = WARPS * 16 * MT;
    size_t smem = (size_t)(BM + 4 * BN) * LD * sizeof(bf16);
    static bool configured; /* per instantiation; the attribute is per device function */
    if (!configured) {
        VL_CUDA_CHECK(cudaFuncSetAttribute(attn_kernel<D, WARPS, MT>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    dim3 grid((a->max_seqlen + BM - 1) / BM, a->n_heads, a->n_seqs);
    float scale_log2 = a->scale * 1.4426950408889634f;
    attn_kernel<D, WARPS, MT><<<grid, WARPS * 32, smem, s>>>(
        (const bf16 *)a->q, (const bf16 *)a->k, (const bf16 *)a->v, (bf16 *)a->o, a->q_stride,
        a->k_stride, a->v_stride, a->o_stride, a->cu_seqlens, a->n_heads, a->n_kv_heads, a->causal,
        scale_log2);
    VL_LAUNCH_CHECK("attn_kernel");
}

/* The default variant, by measurement (bench_kernels, H100 80GB HBM3, 2026-11-27, every variant
 * in one run; docs/cuda.md): the wgmma kernel wherever it runs (compute capability 9.0, head
 * dims 64 and 128): 1.3-2.4x the mma.sync kernel at every benchmarked shape.
 * Head dim 64: 64-key tiles, 4 stages, softmax overlapped with the previous tile's P V
 * (VL_ATTN_SM90_N64_S4_OV): 344 / 402 TFLOP/s at S = 1024 / 7056, against 324 / 379 for
 * 128-key tiles and 316 / 358 without the overlap.
 * Head dim 128 (causal LM): 64-key tiles, 2 stages, 2 blocks per SM (VL_ATTN_SM90_N64): 92 /
 * 237 / 387 / 466 at S = 128 / 512 / 2048 / 8192, the best at each (4 stages or the overlap
 * need more shared memory than 2 blocks per SM allow and lose 10-25 %).
 * Otherwise the mma.sync kernel with 4 warps of 32 rows for head dims <= 80 and 4 warps of 16
 * rows for 128.
 * Head dim 64 with a sequence of >= HD64_LONG_ROWS rows (max_seqlen; the 1344 x 1344 image's
 * 7056 patches): the warp-specialised persistent kernel with 3 consumer warpgroups and 128-key
 * tiles (VL_ATTN_SM90_WS_BIG), 429-431 against 384-389 TFLOP/s at S = 7056 in two runs on two
 * H100s, 1344^2 images end to end 31.5 -> 32.7/s and 31.9 -> 33.3/s (bench_model 2B, same run
 * each). Below that (512 x 512 images: 1024 patches) it measured 322.7 against 328.3 images/s
 * end to end, so the block-synchronous variant stays there.
 * Not adopted: head dim 128 on VL_ATTN_SM90_WS (kernel +2-12 %, end to end within noise:
 * +0.3 / +1.3 % and -1.5 % in three runs); part of the exponentials on the FMA pipe (112-119:
 * 3-9 % slower at every split, docs/cuda.md). */
/* Since 2026-11-28, head dim 64 below HD64_LONG_ROWS: the warp-specialised kernel with 4 consumer
 * warpgroups (VL_ATTN_SM90_WS4; a 1024-patch image is exactly 4 tiles of 256 rows). Same call,
 * H100 80GB HBM3, bench_model 2B 512^2 images: per-op ViT attention 22.05 (103) -> 20.60-20.78 ms
 * (123), end to end 342.0 -> 343.3 / 344.8 images/s at budgets 16384/16384 and 336.7 / 336.4 ->
 * 338.5 / 337.0 at 16384/65536; gpu_parity passes with it forced on every head-dim-64 call.
 * The previous choice, VL_ATTN_SM90_N64_S4_OV (103), is `VL_ATTN_KERNEL=103`. */
#define DEFAULT_HD64 VL_ATTN_SM90_WS4
#define DEFAULT_HD64_LONG VL_ATTN_SM90_WS_BIG
#define HD64_LONG_ROWS 2048
#define DEFAULT_HD128 VL_ATTN_SM90_N64
/* Head dim 128 with an even GQA group and a sequence of >= HD128_LONG_ROWS rows: the same
 * kernel with head pairs (VL_ATTN_SM90_N64_GP; H100 80GB HBM3, 2026-11-28, two calls, three
 * rounds: 417-431 against 380-394 TFLOP/s at S = 2048, 500-512 against 414-454 at S = 8192;
 * 2B 4096-token documents end to end 172.2k / 174.1k -> 181.4k / 178.8k tokens/s in one call.
 * Below: at S = 512 it loses, 208-209 against 235-241 with GQA 16/8; docs/cuda.md "Head
 * pairs"). */
#define DEFAULT_HD128_LONG VL_ATTN_SM90_N64_GP
#define HD128_LONG_ROWS 2048

static int measured_rule(const struct vl_attn_args *a)
{
    if (a->head_dim == 64)
        return a->max_seqlen >= HD64_LONG_ROWS ? DEFAULT_HD64_LONG : DEFAULT_HD64;
    if (a->max_seqlen >= HD128_LONG_ROWS && vl_attention_sm90_covers(a, DEFAULT_HD128_LONG))
        return DEFAULT_HD128_LONG;
    return DEFAULT_HD128;
}

/* The rule the previous session proposed (VL_ATTN_KERNEL=ws): the default rule with head dim
 * 128 on VL_ATTN_SM90_WS. */
static int ws_rule(const struct vl_attn_args *a)
{
    if (a->head_dim == 128)
        return VL_ATTN_SM90_WS;
    return measured_rule(a);
}
static int default_variant(const struct vl_attn_args *a)
{
    /* VL_ATTN_KERNEL (docs/cuda.md): "mma" keeps every call on the mma.sync kernel; "ws"
     * selects ws_rule instead of the default rule; a wgmma variant number, or a comma-separated
     * list of up to 4, forces per call the first listed variant that covers the head dim and
     * the device; for whole-model A/B runs. Read once (benign race: every thread parses the
     * same value; the count is stored last). */
    static int n_forced = -2; /* -2 unread, -1 mma.sync, else the number of forced variants */
    static int forced[4], use_ws;
    if (n_forced == -2) {
        const char *e = getenv("VL_ATTN_KERNEL");
        int n = 0;
        if (e && strcmp(e, "mma") == 0) {
            n = -1;
        } else if (e && strcmp(e, "ws") == 0) {
            use_ws = 1;
        } else if (e) {
            for (const char *p = e; n < 4; p++) { /* numbers separated by commas */
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p)
                    break;
                if (v >= VL_ATTN_SM90_N128 && v <= VL_ATTN_SM90_LAST)
                    forced[n++] = (int)v;
                p = end;
                if (*p != ',')
                    break;
            }
        }
        n_forced = n;
    }
    for (int i = 0; i < n_forced; i++)
        if (vl_attention_variant_available(a, forced[i]))
            return forced[i];
    int v = use_ws ? ws_rule(a) : measured_rule(a);
    if (n_forced >= 0 && vl_attention_sm90_available() && vl_attention_sm90_covers(a, v))
        return v;
    return a->head_dim <= 80 ? 2 : 4;
}

extern "C" int vl_attention_variant_available(const struct vl_attn_args *a, int variant)
{
    if (variant >= VL_ATTN_SM90_N128)
        return vl_attention_sm90_available() && vl_attention_sm90_covers(a, variant);
    return 1;
}

extern "C" void vl_attention_variant(vl_stream_t s, const struct vl_attn_args *a, int warps)
{
    if (a->n_seqs <= 0 || a->max_seqlen <= 0)
        return;
    if (a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads) {
        vl_error("vl_attention: %d heads are not a multiple of %d kv heads", a->n_heads,
                 a->n_kv_heads);
        abort();
    }
    if (warps == 0)
        warps = default_variant(a);
    if (warps >= VL_ATTN_SM90_N128) {
        if (!vl_attention_variant_available(a, warps)) {
            vl_error("vl_attention: wgmma variant %d unavailable (head dim %d, or not a compute "
                     "capability 9.0 device)",
                     warps, a->head_dim);
            abort();
        }
        vl_attention_sm90(s, a, warps);
        return;
    }
    /* mma.sync variants: 4 warps x 16 rows (4), 8 warps x 16 rows (8), 4 warps x 32 rows (2:
     * each K/V fragment feeds two m-tiles, half the shared-memory traffic; head dims <= 80) */
    switch (a->head_dim * 16 + warps) {
    case 16 * 16 + 4:
        launch<16, 4, 1>(s, a);
        break; /* small test checkpoints */
    case 32 * 16 + 4:
        launch<32, 4, 1>(s, a);
        break;
    case 80 * 16 + 4:
        launch<80, 4, 1>(s, a);
        break;
    case 16 * 16 + 2:
        launch<16, 4, 2>(s, a);
        break;
    case 32 * 16 + 2:
        launch<32, 4, 2>(s, a);
        break;
    case 80 * 16 + 2:
        launch<80, 4, 2>(s, a);
        break;
    case 64 * 16 + 2:
        launch<64, 4, 2>(s, a);
        break;
    case 72 * 16 + 2:
        launch<72, 4, 2>(s, a);
        break;
    case 64 * 16 + 4:
        launch<64, 4, 1>(s, a);
        break;
    case 64 * 16 + 8:
        launch<64, 8, 1>(s, a);
        break;
    case 72 * 16 + 4:
        launch<72, 4, 1>(s, a);
        break;
    case 72 * 16 + 8:
        launch<72, 8, 1>(s, a);
        break;
    case 128 * 16 + 4:
        launch<128, 4, 1>(s, a);
        break;
    case 128 * 16 + 8:
        launch<128, 8, 1>(s, a);
        break;
    default:
        vl_error("vl_attention: unsupported head dim %d / variant %d", a->head_dim, warps);
        abort();
    }
}

extern "C" void vl_attention(vl_stream_t s, const struct vl_attn_args *a)
{
    vl_attention_variant(s, a, 0);
}
