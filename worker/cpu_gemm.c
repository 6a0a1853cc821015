/* y = x W^T + b in float32 with PyTorch's [out, in] weight layout: every output element is
 * a dot product of two contiguous rows. The work is cut into tiles of TM rows x TN outputs
 * (one pool task each); inside a tile a 4x4 micro-kernel keeps 4 weight rows hot while it
 * walks 4 input rows at a time. Rows and outputs that do not fill a 4-group are computed by
 * the same kernel with repeated pointers (results discarded), so every element sees the
 * same instruction sequence whatever its neighbours: batching never changes a value.
 * On CPUs with AVX2+FMA a cloned kernel is picked at load time (GCC target_clones). */
#include <string.h>

#include "worker/cpu.h"

#define TM 64
#define TN 64
#define VL 8

typedef float v8 __attribute__((vector_size(32), aligned(4)));

/* out[i][j] = dot(x[i], w[j]) for 4 x rows and 4 w rows over k in [0, K). The loops are
 * unrolled so the 16 accumulators live in registers (32 vector registers with AVX-512). */
__attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default"))) static void
kernel4x4(const float *const x[4], const float *const w[4], int K, float out[4][4])
{
    v8 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            acc[i][j] = (v8){0};
    int k = 0;
    for (; k + VL <= K; k += VL) {
        v8 xv[4], wv;
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            memcpy(&xv[i], x[i] + k, sizeof(v8));
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            memcpy(&wv, w[j] + k, sizeof(v8));
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                acc[i][j] += xv[i] * wv;
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const v8 a = acc[i][j]; /* fixed pairwise order */
            float s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
            for (int kk = k; kk < K; kk++)
                s += x[i][kk] * w[j][kk];
            out[i][j] = s;
        }
}

struct gemm_job {
    const struct cpu_linear *l;
    const float *x;
    int64_t ldx, m;
    float *y;
    int64_t ldy;
    int64_t tiles_n;
};

static void gemm_task(void *arg, int task, int thread)
{
    (void)thread;
    const struct gemm_job *g = arg;
    const struct cpu_linear *l = g->l;
    int64_t tm = task / g->tiles_n, tn = task % g->tiles_n;
    int64_t m0 = tm * TM, m1 = m0 + TM < g->m ? m0 + TM : g->m;
    int64_t n0 = tn * TN, n1 = n0 + TN < l->out ? n0 + TN : l->out;
    for (int64_t j0 = n0; j0 < n1; j0 += 4) {
        const float *w[4];
        int nj = n1 - j0 < 4 ? (int)(n1 - j0) : 4;
        for (int j = 0; j < 4; j++)
            w[j] = l->w + (size_t)(j0 + (j < nj ? j : 0)) * (size_t)l->in;
        for (int64_t i0 = m0; i0 < m1; i0 += 4) {
            const float *x[4];
            int ni = m1 - i0 < 4 ? (int)(m1 - i0) : 4;
            for (int i = 0; i < 4; i++)
                x[i] = g->x + (size_t)(i0 + (i < ni ? i : 0)) * (size_t)g->ldx;
            float out[4][4];
            kernel4x4(x, w, l->in, out);
            for (int i = 0; i < ni; i++) {
                float *yr = g->y + (size_t)(i0 + i) * (size_t)g->ldy;
                for (int j = 0; j < nj; j++)
                    yr[j0 + j] = out[i][j] + (l->b ? l->b[j0 + j] : 0.0f);
            }
        }
    }
}

void cpu_linear_run(struct cpu_pool *p, const struct cpu_linear *l, const float *x, int64_t ldx,
                    int64_t m, float *y, int64_t ldy)
{
    if (m <= 0)
        return;
    struct gemm_job g = {l, x, ldx, m, y, ldy, (l->out + TN - 1) / TN};
    int64_t tiles = ((m + TM - 1) / TM) * g.tiles_n;
    cpu_pool_run(p, gemm_task, &g, (int)tiles);
}
