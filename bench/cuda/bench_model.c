/* End-to-end benchmark of the CUDA backend on the real 2B / 8B shapes with random bf16
 * weights generated on the device (make bench; the GPU machine). Each case calls
 * vl_cuda_embed on a list of items exactly as the worker would (host batching, pinned staging,
 * uploads, vision tower, language model, pooling), one warm-up call, then the median of timed
 * calls (host clock around the call, which ends synchronised). Prints a markdown table.
 *
 * usage: bench_model [2B|8B] [budget_tokens] [budget_patches]
 * Environment: VL_GEMM_TUNE=0 keeps cuBLASLt's heuristic GEMM algorithms (the path before
 * measured selection, for before/after in one run); VL_BENCH_DEBUG=1 logs at debug level (each
 * tuned GEMM shape with its times); VL_BENCH_CASES=comma list of text, long, mix, query, 512,
 * 1344 runs only those cases (unset: all; long = 4096-token documents). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/item.h"
#include "common/log.h"
#include "worker/cuda/device.h"
#include "worker/cuda/gemm.h"
#include "worker/cuda_backend.h"

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void text_item(struct vl_item *it, int n)
{
    memset(it, 0, sizeof *it);
    it->ids = malloc((size_t)n * 4);
    it->n_ids = n;
    for (int i = 0; i < n; i++)
        it->ids[i] = (int32_t)(rnd() % 150000);
}

/* An image item like the gateway makes: prompt text, <vision_start>, pads, <vision_end>, text. */
static void image_item(struct vl_item *it, const struct vl_cuda_config *c, int px_h, int px_w)
{
    int gh = px_h / 16, gw = px_w / 16, npad = gh * gw / 4, pre = 15, post = 6;
    memset(it, 0, sizeof *it);
    it->n_ids = pre + 1 + npad + 1 + post;
    it->ids = malloc((size_t)it->n_ids * 4);
    int k = 0;
    for (int i = 0; i < pre; i++)
        it->ids[k++] = (int32_t)(rnd() % 150000);
    it->ids[k++] = 151652;
    for (int i = 0; i < npad; i++)
        it->ids[k++] = c->image_token_id;
    it->ids[k++] = 151653;
    for (int i = 0; i < post; i++)
        it->ids[k++] = (int32_t)(rnd() % 150000);
    it->n_visuals = 1;
    it->visuals = calloc(1, sizeof *it->visuals);
    struct vl_visual *v = it->visuals;
    v->kind = VL_VISUAL_IMAGE;
    v->grid_t = 1, v->grid_h = gh, v->grid_w = gw, v->n_frames = 1;
    v->height = px_h, v->width = px_w;
    size_t n = (size_t)px_h * px_w * 3;
    v->pixels = malloc(n);
    for (size_t i = 0; i < n; i++)
        v->pixels[i] = (uint8_t)rnd();
}

static void free_items(struct vl_item *its, int n)
{
    for (int i = 0; i < n; i++)
        vl_item_free(&its[i]);
    free(its);
}

/* 1 if case `name` is to run: VL_BENCH_CASES unset, or it lists the name. */
static int want_case(const char *name)
{
    const char *e = getenv("VL_BENCH_CASES");
    if (!e || !*e)
        return 1;
    size_t n = strlen(name);
    for (const char *p = e; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && !strncmp(p, name, n))
            return 1;
        p += k;
        if (*p == ',')
            p++;
    }
    return 0;
}

static char profs[8][2048];
static int n_prof;

/* Median seconds of `reps` calls after one warm-up. */
static double time_embed(struct vl_cuda_ctx *ctx, struct vl_item *its, int n, int dim, int reps)
{
    float *out = malloc((size_t)n * dim * 4);
    char err[256];
    double t[32] = {0};
    if (vl_cuda_embed(ctx, its, n, out, err, sizeof err)) {
        fprintf(stderr, "embed failed: %s\n", err);
        exit(1);
    }
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        vl_cuda_embed(ctx, its, n, out, err, sizeof err);
        t[r] = now() - t0;
    }
    /* sanity: finite, unit norm */
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < dim; k++)
            s += (double)out[(size_t)i * dim + k] * out[(size_t)i * dim + k];
        if (!(s > 0.99 && s < 1.01)) {
            fprintf(stderr, "item %d: |v|^2 = %g (non-finite or not normalised)\n", i, s);
            exit(1);
        }
    }
    /* one more call with per-op profiling, reported after the table */
    vl_cuda_ctx_profile(ctx, 1);
    vl_cuda_embed(ctx, its, n, out, err, sizeof err);
    char rep[2048];
    vl_cuda_ctx_profile_report(ctx, rep, sizeof rep);
    vl_cuda_ctx_profile(ctx, 0);
    n_prof++;
    snprintf(profs[n_prof - 1], sizeof profs[0], "%s", rep);
    free(out);
    qsort(t, reps, sizeof(double), cmp_d);
    return t[reps / 2];
}

/* Times nd documents of ntok tokens each per call and prints the table row. */
static void bench_documents(struct vl_cuda_ctx *ctx, const char *which, int nd, int ntok, int H)
{
    struct vl_item *its = calloc(nd, sizeof *its);
    for (int i = 0; i < nd; i++)
        text_item(&its[i], ntok);
    double t = time_embed(ctx, its, nd, H, 5);
    printf("| %s text, %d x %d-token documents | %.2f ms | %.0f tokens/s |\n", which, nd, ntok,
           t * 1e3, (double)nd * ntok / t);
    fflush(stdout);
    free_items(its, nd);
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "2B";
    if (getenv("VL_BENCH_DEBUG"))
        vl_log_set_level(VL_LOG_DEBUG);
    int64_t bt = argc > 2 ? atoll(argv[2]) : 16384, bp = argc > 3 ? atoll(argv[3]) : 16384;
    struct vl_cuda_config cfg;
    struct vl_device_info dev;
    char err[256];
    if (vl_cuda_config_preset(which, &cfg) || vl_cuda_device_open(0, &dev, err, sizeof err)) {
        fprintf(stderr, "bench_model: bad model %s or no device\n", which);
        return 1;
    }
    struct vl_cuda_weights w;
    if (vl_cuda_weights_alloc(&cfg, &w, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    vl_cuda_weights_random(&cfg, &w, 1234);
    struct vl_cuda_ctx *ctx = vl_cuda_ctx_create(&cfg, &w, bt, bp, err, sizeof err);
    if (!ctx) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int H = cfg.hidden;
    printf("\n### vlembed CUDA backend, %s (random bf16 weights), %s, budgets %lld tokens / %lld "
           "patches, GEMM algorithms %s\n\n| case | time per call | throughput |\n|---|---|---|\n",
           which, dev.name, (long long)bt, (long long)bp,
           vl_gemm_tune_enabled() ? "measured (vl_gemm_tune)" : "cuBLASLt heuristic");
    fflush(stdout);

    /* 512-token documents */
    int nd;
    struct vl_item *its;
    double t;
    if (want_case("text"))
        bench_documents(ctx, which, !strcmp(which, "8B") ? 64 : 128, 512, H);

    /* long documents: 4096 tokens (the causal attention's long-sequence rule, attention.cu) */
    if (want_case("long"))
        bench_documents(ctx, which, !strcmp(which, "8B") ? 4 : 8, 4096, H);

    /* mix of 16..512-token documents */
    if (want_case("mix")) {
        nd = !strcmp(which, "8B") ? 64 : 256;
        its = calloc(nd, sizeof *its);
        long tot = 0;
        for (int i = 0; i < nd; i++) {
            int n = 16 + (int)(rnd() % 497);
            tot += n;
            text_item(&its[i], n);
        }
        t = time_embed(ctx, its, nd, H, 5);
        printf("| %s text, %d documents of 16-512 tokens (%ld tokens) | %.2f ms | %.0f real "
               "tokens/s |\n",
               which, nd, tot, t * 1e3, tot / t);
        fflush(stdout);
        free_items(its, nd);
    }

    /* single 32-token query (latency) */
    if (want_case("query")) {
        its = calloc(1, sizeof *its);
        text_item(&its[0], 32);
        t = time_embed(ctx, its, 1, H, 21);
        printf("| %s single 32-token query | %.2f ms | latency |\n", which, t * 1e3);
        fflush(stdout);
        free_items(its, 1);
    }

    /* images */
    int sizes[2] = {512, 1344}, counts[2] = {64, 8};
    for (int s = 0; s < 2; s++) {
        if (!want_case(s ? "1344" : "512"))
            continue;
        int n = counts[s];
        its = calloc(n, sizeof *its);
        for (int i = 0; i < n; i++)
            image_item(&its[i], &cfg, sizes[s], sizes[s]);
        t = time_embed(ctx, its, n, H, 5);
        printf("| %s images %dx%d (%d patches each), %d per call | %.2f ms | %.1f images/s |\n",
               which, sizes[s], sizes[s], (sizes[s] / 16) * (sizes[s] / 16), n, t * 1e3, n / t);
        fflush(stdout);
        free_items(its, n);
    }
    struct vl_cuda_stats st;
    vl_cuda_ctx_stats(ctx, &st);
    printf("| %s device memory: weights %.2f GiB, workspace %.2f GiB, peak in use %.2f GiB | | |\n",
           which, st.weights_bytes / 1073741824.0, st.workspace_bytes / 1073741824.0,
           st.peak_device_bytes / 1073741824.0);
    printf("\nPer-op device time of one profiled call per case (%s, in table order):\n\n", which);
    for (int i = 0; i < n_prof; i++)
        printf("%d. %s\n", i + 1, profs[i]);
    vl_cuda_ctx_free(ctx);
    vl_cuda_weights_free(&w);
    return 0;
}
