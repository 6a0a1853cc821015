/* bf16 GEMMs through cuBLASLt (gemm.h). Row-major Y[M,N] = X[M,K] W[N,K]^T is computed as the
 * column-major Y^T[N,M] = op(W) X^T with op = transpose ("TN"), which is also the layout FP8
 * would require later. */
#include "worker/cuda/gemm.h"

#include <cublasLt.h>
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

struct gemm_plan {
    int M, N, K, epi, acc;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
};

struct vl_gemm {
    cublasLtHandle_t lt;
    void *workspace;
    size_t workspace_bytes;
    struct gemm_plan plans[GEMM_CACHE];
    int n_plans;
    int next_evict;
};

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
    VL_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    VL_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    VL_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_DEFAULT;
    if (epi == VL_GEMM_BIAS)
        e = CUBLASLT_EPILOGUE_BIAS;
    else if (epi == VL_GEMM_BIAS_GELU_TANH)
        e = CUBLASLT_EPILOGUE_GELU_BIAS;
    VL_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
    if (epi != VL_GEMM_PLAIN) {
        cudaDataType_t bt = CUDA_R_16BF;
        VL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                       &bt, sizeof bt));
    }
    /* A = W: column-major K x N (ld K), transposed; B = X: column-major K x M (ld K);
     * C = D = Y: column-major N x M (ld N). */
    VL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, K, N, K));
    VL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, K, M, K));
    VL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->c, CUDA_R_16BF, N, M, N));

    cublasLtMatmulPreference_t pref;
    VL_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    VL_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &g->workspace_bytes, sizeof g->workspace_bytes));
    cublasLtMatmulHeuristicResult_t res[1];
    int n = 0;
    VL_CUBLAS_CHECK(
        cublasLtMatmulAlgoGetHeuristic(g->lt, p->desc, p->a, p->b, p->c, p->c, pref, 1, res, &n));
    cublasLtMatmulPreferenceDestroy(pref);
    if (n < 1) {
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
    if (epi != VL_GEMM_PLAIN)
        VL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                       &bias, sizeof bias));
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    VL_CUBLAS_CHECK(cublasLtMatmul(g->lt, p->desc, &alpha, W, p->a, X, p->b, &beta, Y, p->c, Y,
                                   p->c, &p->algo, g->workspace, g->workspace_bytes, s));
}
