/* bf16 GEMMs through cuBLASLt (gemm.h). Row-major Y[M,N] = X[M,K] W[N,K]^T is computed as the
 * column-major Y^T[N,M] = op(W) X^T with op = transpose ("TN"), which is also the layout FP8
 * would require later. */
#include "worker/cuda/gemm.h"

#include <cublasLt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/cuda/cuda_check.h"

#define VL_CUBLAS_CHECK(call)                                                                      \
    do {                                                                                           \
        cublasStatus_t st_ = (call);                                                               \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                                        \
            vl_error("%s failed at %s:%d: %s", #call, __FILE__, __LINE__,                          \
                     cublasGetStatusString(st_));                                                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define GEMM_CACHE 512
#define TUNE_MAX 256
#define TUNE_CANDIDATES 12
#define TUNE_ROUNDS 3 /* every candidate timed once per round, best round kept: clock drift */
#define TUNE_WARM 1
#define TUNE_REPS 4
#define TUNE_MARGIN 0.97f /* another candidate must beat the heuristic pick by 3 % */

struct gemm_plan {
    int M, N, K, epi, acc;
    int chunk; /* > 0: the rows run in chunks of this many (each its own plan); algo unused */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
};

/* A measured choice for the class (N, K, epi, acc) at M rows (vl_gemm_tune). */
struct gemm_tuned {
    int M, N, K, epi, acc;
    int chunk;
    cublasLtMatmulAlgo_t algo;
};

struct vl_gemm {
    cublasLtHandle_t lt;
    void *workspace;
    size_t workspace_bytes;
    struct gemm_plan plans[GEMM_CACHE];
    int n_plans;
    int next_evict;
    struct gemm_tuned tuned[TUNE_MAX];
    int n_tuned;
};

extern "C" int vl_gemm_tune_enabled(void)
{
    const char *e = getenv("VL_GEMM_TUNE");
    return !(e && !strcmp(e, "0"));
}

extern "C" struct vl_gemm *vl_gemm_create(size_t workspace_bytes)
{
    struct vl_gemm *g = (struct vl_gemm *)calloc(1, sizeof *g);
    if (!g) {
        vl_error("out of memory creating the GEMM context");
        abort();
    }
    VL_CUBLAS_CHECK(cublasLtCreate(&g->lt));
    g->workspace_bytes = workspace_bytes;
    if (workspace_bytes)
        VL_CUDA_CHECK(cudaMalloc(&g->workspace, workspace_bytes));
    return g;
}

static void plan_destroy(struct gemm_plan *p)
{
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    if (p->a)
        cublasLtMatrixLayoutDestroy(p->a);
    if (p->b)
        cublasLtMatrixLayoutDestroy(p->b);
    if (p->c)
        cublasLtMatrixLayoutDestroy(p->c);
    memset(p, 0, sizeof *p);
}

extern "C" void vl_gemm_free(struct vl_gemm *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_plans; i++)
        plan_destroy(&g->plans[i]);
    if (g->workspace)
        cudaFree(g->workspace);
    if (g->lt)
        cublasLtDestroy(g->lt);
    free(g);
}

/* Descriptors of p for its shape (p->M.. set); no algorithm yet. */
static void plan_init(struct gemm_plan *p)
{
    VL_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    VL_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    VL_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_DEFAULT;
    if (p->epi == VL_GEMM_BIAS)
        e = CUBLASLT_EPILOGUE_BIAS;
    else if (p->epi == VL_GEMM_BIAS_GELU_TANH)
        e = CUBLASLT_EPILOGUE_GELU_BIAS;
    VL_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
    if (p->epi != VL_GEMM_PLAIN) {
        cudaDataType_t bt = CUDA_R_16BF;
        VL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                       &bt, sizeof bt));
    }
    /* A = W: column-major K x N (ld K), transposed; B = X: column-major K x M (ld K);
     * C = D = Y: column-major N x M (ld N). */
    VL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, p->K, p->N, p->K));
    VL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, p->K, p->M, p->K));
    VL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->c, CUDA_R_16BF, p->N, p->M, p->N));
}

/* Up to max heuristic candidates for p's shape that fit the workspace; returns how many. */
static int plan_candidates(struct vl_gemm *g, const struct gemm_plan *p,
                           cublasLtMatmulHeuristicResult_t *res, int max)
{
    cublasLtMatmulPreference_t pref;
    VL_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    VL_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &g->workspace_bytes, sizeof g->workspace_bytes));
    int n = 0;
    VL_CUBLAS_CHECK(
        cublasLtMatmulAlgoGetHeuristic(g->lt, p->desc, p->a, p->b, p->c, p->c, pref, max, res, &n));
    cublasLtMatmulPreferenceDestroy(pref);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (res[i].state == CUBLAS_STATUS_SUCCESS && res[i].workspaceSize <= g->workspace_bytes)
            res[k++] = res[i];
    return k;
}

/* The tuned entry of p's class for p->M: tuned at M0 with M0 - M0/16 <= M <= M0. Only a
 * little below: at other row counts the tile grid (and its last partial wave) differs, and a
 * choice measured at M0 was seen to lose to the heuristic there (e.g. M0 = 4096, M = 4464). */
static const struct gemm_tuned *tuned_match(const struct vl_gemm *g, const struct gemm_plan *p)
{
    const struct gemm_tuned *best = NULL;
    for (int i = 0; i < g->n_tuned; i++) {
        const struct gemm_tuned *t = &g->tuned[i];
        if (t->N != p->N || t->K != p->K || t->epi != p->epi || t->acc != p->acc)
            continue;
        if (p->M <= t->M && p->M >= t->M - t->M / 16 && (!best || t->M < best->M))
            best = t;
    }
    return best;
}

static void plans_flush(struct vl_gemm *g)
{
    for (int i = 0; i < g->n_plans; i++)
        plan_destroy(&g->plans[i]);
    g->n_plans = 0;
    g->next_evict = 0;
}

static struct gemm_plan *plan_get(struct vl_gemm *g, int M, int N, int K, int epi, int acc)
{
    for (int i = 0; i < g->n_plans; i++) {
        struct gemm_plan *p = &g->plans[i];
        if (p->M == M && p->N == N && p->K == K && p->epi == epi && p->acc == acc)
            return p;
    }
    struct gemm_plan *p;
    if (g->n_plans < GEMM_CACHE) {
        p = &g->plans[g->n_plans++];
    } else { /* many distinct token counts: recycle round-robin */
        p = &g->plans[g->next_evict];
        g->next_evict = (g->next_evict + 1) % GEMM_CACHE;
        plan_destroy(p);
    }
    p->M = M, p->N = N, p->K = K, p->epi = epi, p->acc = acc;
    plan_init(p);
    const struct gemm_tuned *t = tuned_match(g, p);
    if (t && t->chunk > 0 && M > t->chunk) {
        p->chunk = t->chunk;
        return p;
    }
    if (t && t->chunk == 0) {
        cublasLtMatmulHeuristicResult_t chk;
        memset(&chk, 0, sizeof chk);
        if (cublasLtMatmulAlgoCheck(g->lt, p->desc, p->a, p->b, p->c, p->c, &t->algo, &chk) ==
                CUBLAS_STATUS_SUCCESS &&
            chk.workspaceSize <= g->workspace_bytes) {
            p->algo = t->algo;
            return p;
        }
    }
    cublasLtMatmulHeuristicResult_t res[1];
    if (plan_candidates(g, p, res, 1) < 1) {
        vl_error("cuBLASLt has no algorithm for a bf16 GEMM M=%d N=%d K=%d epilogue %d", M, N, K,
                 epi);
        abort();
    }
    p->algo = res[0].algo;
    return p;
}

extern "C" void vl_gemm_bf16(struct vl_gemm *g, vl_stream_t s, int M, int N, int K,
                             const uint16_t *X, const uint16_t *W, const uint16_t *bias,
                             uint16_t *Y, enum vl_gemm_epilogue epi, int accumulate)
{
    if (M <= 0 || N <= 0 || K <= 0) {
        vl_error("vl_gemm_bf16: bad shape M=%d N=%d K=%d", M, N, K);
        abort();
    }
    struct gemm_plan *p = plan_get(g, M, N, K, (int)epi, accumulate ? 1 : 0);
    if (p->chunk > 0) { /* measured faster as several calls of fewer rows (vl_gemm_tune) */
        int ch = p->chunk;
        for (int r = 0; r < M; r += ch)
            vl_gemm_bf16(g, s, M - r < ch ? M - r : ch, N, K, X + (size_t)r * K, W, bias,
                         Y + (size_t)r * N, epi, accumulate);
        return;
    }
    if (epi != VL_GEMM_PLAIN)
        VL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                       &bias, sizeof bias));
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    VL_CUBLAS_CHECK(cublasLtMatmul(g->lt, p->desc, &alpha, W, p->a, X, p->b, &beta, Y, p->c, Y,
                                   p->c, &p->algo, g->workspace, g->workspace_bytes, s));
}

/* Mean milliseconds of TUNE_REPS back-to-back runs of candidate `algo` of plan p (chunk > 0:
 * rows in chunks through vl_gemm_bf16), after TUNE_WARM, call i with weights W[i % n_w]; negative
 * if cuBLASLt refuses it. */
static float tune_time(struct vl_gemm *g, vl_stream_t s, struct gemm_plan *p,
                       const cublasLtMatmulAlgo_t *algo, int chunk, const uint16_t *X,
                       const uint16_t *const *W, const uint16_t *const *bias, int n_w, uint16_t *Y,
                       cudaEvent_t e0, cudaEvent_t e1)
{
    float alpha = 1.0f, beta = p->acc ? 1.0f : 0.0f;
    for (int i = 0; i < TUNE_WARM + TUNE_REPS; i++) {
        const uint16_t *w = W[i % n_w], *b = bias ? bias[i % n_w] : NULL;
        if (i == TUNE_WARM)
            VL_CUDA_CHECK(cudaEventRecord(e0, s));
        if (chunk > 0) {
            for (int r = 0; r < p->M; r += chunk)
                vl_gemm_bf16(g, s, p->M - r < chunk ? p->M - r : chunk, p->N, p->K,
                             X + (size_t)r * p->K, w, b, Y + (size_t)r * p->N,
                             (enum vl_gemm_epilogue)p->epi, p->acc);
            continue;
        }
        if (p->epi != VL_GEMM_PLAIN)
            VL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
                p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
        cublasStatus_t st = cublasLtMatmul(g->lt, p->desc, &alpha, w, p->a, X, p->b, &beta, Y, p->c,
                                           Y, p->c, algo, g->workspace, g->workspace_bytes, s);
        if (st != CUBLAS_STATUS_SUCCESS) {
            vl_debug("GEMM tuning: a candidate for M=%d N=%d K=%d was refused: %s", p->M, p->N,
                     p->K, cublasGetStatusString(st));
            VL_CUDA_CHECK(cudaStreamSynchronize(s));
            return -1;
        }
    }
    VL_CUDA_CHECK(cudaEventRecord(e1, s));
    VL_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    VL_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    return ms / TUNE_REPS;
}

static int tuned_exact(const struct vl_gemm *g, int M, int N, int K, int epi, int acc)
{
    for (int i = 0; i < g->n_tuned; i++) {
        const struct gemm_tuned *t = &g->tuned[i];
        if (t->M == M && t->N == N && t->K == K && t->epi == epi && t->acc == acc)
            return 1;
    }
    return 0;
}

extern "C" double vl_gemm_tune(struct vl_gemm *g, vl_stream_t s, int M, int N, int K,
                               const uint16_t *X, const uint16_t *const *W,
                               const uint16_t *const *bias, int n_w, uint16_t *Y,
                               enum vl_gemm_epilogue epi, int accumulate)
{
    int acc = accumulate ? 1 : 0;
    if (!vl_gemm_tune_enabled() || M <= 0 || N <= 0 || K <= 0 || n_w < 1 ||
        g->n_tuned >= TUNE_MAX || tuned_exact(g, M, N, K, (int)epi, acc))
        return 0;
    if (epi != VL_GEMM_PLAIN && !bias) {
        vl_error("vl_gemm_tune: the bias epilogues need biases");
        abort();
    }
    struct gemm_plan p;
    memset(&p, 0, sizeof p);
    p.M = M, p.N = N, p.K = K, p.epi = (int)epi, p.acc = acc;
    plan_init(&p);
    /* candidates: cuBLASLt's heuristic list (its first pick first), then row chunks */
    struct {
        cublasLtMatmulAlgo_t algo;
        int chunk;
        float ms;
    } cand[TUNE_CANDIDATES + 2];
    cublasLtMatmulHeuristicResult_t res[TUNE_CANDIDATES];
    int n = plan_candidates(g, &p, res, TUNE_CANDIDATES);
    for (int i = 0; i < n; i++)
        cand[i].algo = res[i].algo, cand[i].chunk = 0, cand[i].ms = -1;
    for (int parts = 2; parts <= 4 && M >= 4096; parts *= 2) {
        int ch = M / parts; /* the same rows as calls of the choice tuned for exactly M / parts */
        if (M % parts == 0 && ch % 8 == 0 && tuned_exact(g, ch, N, K, (int)epi, acc)) {
            memset(&cand[n].algo, 0, sizeof cand[n].algo);
            cand[n].chunk = ch, cand[n].ms = -1;
            n++;
        }
    }
    cudaEvent_t e0, e1;
    VL_CUDA_CHECK(cudaEventCreate(&e0));
    VL_CUDA_CHECK(cudaEventCreate(&e1));
    for (int r = 0; r < TUNE_ROUNDS; r++)
        for (int i = 0; i < n; i++) {
            if (r > 0 && cand[i].ms < 0)
                continue; /* refused in round 0 */
            float ms =
                tune_time(g, s, &p, &cand[i].algo, cand[i].chunk, X, W, bias, n_w, Y, e0, e1);
            if (ms > 0 && (cand[i].ms < 0 || ms < cand[i].ms))
                cand[i].ms = ms;
        }
    VL_CUDA_CHECK(cudaEventDestroy(e0));
    VL_CUDA_CHECK(cudaEventDestroy(e1));
    plan_destroy(&p);
    plans_flush(g); /* plans made meanwhile (chunk timing) or before may now map elsewhere */
    int best = -1;
    float t_first = n > 0 && cand[0].chunk == 0 ? cand[0].ms : -1;
    for (int i = 0; i < n; i++) {
        if (cand[i].ms <= 0)
            continue;
        float bar = best < 0 ? 0 : cand[best].ms * (best == 0 && t_first > 0 ? TUNE_MARGIN : 1);
        if (best < 0 || cand[i].ms < bar)
            best = i;
    }
    if (best < 0)
        return 0; /* nothing ran: the heuristic stays */
    struct gemm_tuned *t = &g->tuned[g->n_tuned++];
    memset(t, 0, sizeof *t);
    t->M = M, t->N = N, t->K = K, t->epi = (int)epi, t->acc = acc;
    t->algo = cand[best].algo, t->chunk = cand[best].chunk;
    vl_debug("GEMM tuned M=%d N=%d K=%d epi=%d acc=%d: candidate %d of %d, %.4f ms (heuristic "
             "pick %.4f ms)%s",
             M, N, K, (int)epi, acc, best, n, cand[best].ms, t_first,
             t->chunk ? ", in row chunks" : "");
    return t_first > 0 ? t_first / cand[best].ms : 1.0;
}

extern "C" void vl_gemm_pin_chunks(struct vl_gemm *g, int M, int N, int K,
                                   enum vl_gemm_epilogue epi, int accumulate, int chunk)
{
    int acc = accumulate ? 1 : 0;
    if (chunk < 8 || chunk % 8 || chunk >= M) {
        vl_error("vl_gemm_pin_chunks: bad chunk %d for M=%d", chunk, M);
        abort();
    }
    if (tuned_exact(g, M, N, K, (int)epi, acc) || g->n_tuned >= TUNE_MAX)
        return;
    struct gemm_tuned *t = &g->tuned[g->n_tuned++];
    memset(t, 0, sizeof *t);
    t->M = M, t->N = N, t->K = K, t->epi = (int)epi, t->acc = acc, t->chunk = chunk;
    plans_flush(g);
}
