/* GPU model parity test (make test-gpu): the CUDA backend over the committed tiny checkpoint
 * (tests/data/tiny-model) against the transformers goldens (tests/data/goldens), for every
 * item (text, instruction, image, several images, RGBA-composited image, video, video + image
 * + text, empty), each embedded alone, all in one batch, and in several batches under a small
 * token budget (exercising the two-set staging pipeline), plus an invalid item.
 *
 * Pass: cosine >= 0.999 to both the bf16 (sdpa, GPU) and float32 (eager, CPU) reference
 * embeddings for every item, and >= 0.9999 between the batched and the alone result (batching
 * may only change rounding). The goldens are converted from JSON + PNG by
 * tests/gpu/goldens_to_bin.py (python3 with numpy and Pillow) unless VL_GOLDENS_BIN names an
 * already converted file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/item.h"
#include "tests/test.h"
#include "worker/backend.h"
#include "worker/cuda/device.h"
#include "worker/model.h"

#define COS_REF 0.999
#define COS_BATCH 0.9999

struct gitem {
    char name[64];
    struct vl_item it;
    int dim;
    float *e16, *e32;
};

static struct gitem *items;
static int n_items;

static int rd(FILE *f, void *p, size_t n)
{
    return fread(p, 1, n, f) == n ? 0 : -1;
}

static int load_goldens(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char magic[4];
    uint32_t n;
    if (rd(f, magic, 4) || memcmp(magic, "VLGB", 4) || rd(f, &n, 4) || n > 1000)
        goto bad;
    items = calloc(n, sizeof *items);
    n_items = (int)n;
    for (uint32_t i = 0; i < n; i++) {
        struct gitem *g = &items[i];
        uint32_t len, nv;
        if (rd(f, &len, 4) || len >= sizeof g->name || rd(f, g->name, len))
            goto bad;
        if (rd(f, &len, 4) || len > 100000)
            goto bad;
        g->it.n_ids = (int32_t)len;
        g->it.ids = malloc(len * 4 + 4);
        if (rd(f, g->it.ids, len * 4) || rd(f, &nv, 4) || nv > 64)
            goto bad;
        g->it.n_visuals = (int32_t)nv;
        g->it.visuals = calloc(nv + 1, sizeof(struct vl_visual));
        for (uint32_t v = 0; v < nv; v++) {
            uint32_t h[7];
            if (rd(f, h, sizeof h))
                goto bad;
            struct vl_visual *vis = &g->it.visuals[v];
            vis->kind = h[0] ? VL_VISUAL_VIDEO : VL_VISUAL_IMAGE;
            vis->grid_t = (int32_t)h[1], vis->grid_h = (int32_t)h[2], vis->grid_w = (int32_t)h[3];
            vis->n_frames = (int32_t)h[4], vis->height = (int32_t)h[5], vis->width = (int32_t)h[6];
            size_t bytes = (size_t)h[4] * h[5] * h[6] * 3;
            if (bytes > (256u << 20))
                goto bad;
            vis->pixels = malloc(bytes);
            if (rd(f, vis->pixels, bytes))
                goto bad;
        }
        uint32_t dim;
        if (rd(f, &dim, 4) || dim > 65536)
            goto bad;
        g->dim = (int)dim;
        g->e16 = malloc(dim * 4);
        g->e32 = malloc(dim * 4);
        if (rd(f, g->e16, dim * 4) || rd(f, g->e32, dim * 4))
            goto bad;
    }
    fclose(f);
    return 0;
bad:
    fclose(f);
    return -1;
}

static double cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb + 1e-30);
}

static struct vl_model model;
static float *alone;

/* Embeds `order` (indexes into items) in one call and checks every result. */
static void check_call(struct vl_backend *b, const int *order, int n, const char *label,
                       int compare_alone)
{
    struct vl_item *its = calloc(n, sizeof *its);
    for (int i = 0; i < n; i++)
        its[i] = items[order[i]].it;
    int dim = items[0].dim;
    float *out = malloc((size_t)n * dim * 4);
    for (int i = 0; i < n * dim; i++)
        out[i] = NAN; /* poison */
    char err[256] = "";
    int rc = b->embed(b, its, n, out, err, sizeof err);
    CHECK_EQ_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  embed failed: %s\n", err);
    for (int i = 0; i < n && !rc; i++) {
        const struct gitem *g = &items[order[i]];
        const float *o = out + (size_t)i * dim;
        double n2 = 0;
        for (int k = 0; k < dim; k++)
            n2 += (double)o[k] * o[k];
        double c16 = cosine(o, g->e16, dim), c32 = cosine(o, g->e32, dim);
        double ca = compare_alone ? cosine(o, alone + (size_t)order[i] * dim, dim) : 1.0;
        int ok = isfinite(n2) && fabs(sqrt(n2) - 1) < 1e-3 && c16 >= COS_REF && c32 >= COS_REF &&
                 ca >= COS_BATCH;
        fprintf(stderr, "  %-10s %-18s cos_bf16=%.6f cos_f32=%.6f cos_alone=%.7f |v|=%.5f%s\n",
                label, g->name, c16, c32, ca, sqrt(n2), ok ? "" : "  <-- FAIL");
        if (!ok)
            test_failures++;
        if (!compare_alone)
            memcpy(alone + (size_t)order[i] * dim, o, (size_t)dim * 4);
    }
    free(out);
    free(its);
}

static void test_parity(void)
{
    char err[512];
    const char *root = getenv("VL_ROOT") ? getenv("VL_ROOT") : ".";
    char dir[1024], bin[1024];
    snprintf(dir, sizeof dir, "%s/tests/data/tiny-model", root);
    const char *gb = getenv("VL_GOLDENS_BIN");
    if (!gb) {
        snprintf(bin, sizeof bin, "/tmp/vl_goldens_%d.bin", (int)getpid());
        char cmd[2600];
        snprintf(cmd, sizeof cmd, "python3 %s/tests/gpu/goldens_to_bin.py %s", root, bin);
        if (system(cmd) != 0) {
            fprintf(stderr, "converting the goldens failed: %s\n", cmd);
            test_failures++;
            return;
        }
        gb = bin;
    }
    if (load_goldens(gb)) {
        fprintf(stderr, "cannot read goldens %s\n", gb);
        test_failures++;
        return;
    }
    if (!getenv("VL_GOLDENS_BIN"))
        unlink(bin);
    if (vl_model_load(&model, dir, err, sizeof err)) {
        fprintf(stderr, "loading %s: %s\n", dir, err);
        test_failures++;
        return;
    }
    struct vl_backend_opts o = {0};
    struct vl_backend b;
    if (vl_backend_cuda_create(&model, &o, &b, err, sizeof err)) {
        fprintf(stderr, "vl_backend_cuda_create: %s\n", err);
        test_failures++;
        return;
    }
    alone = calloc((size_t)n_items * items[0].dim, 4);
    int order[64], rev[64];
    for (int i = 0; i < n_items; i++)
        order[i] = i, rev[i] = n_items - 1 - i;
    for (int i = 0; i < n_items; i++)
        check_call(&b, &order[i], 1, "alone", 0);
    check_call(&b, order, n_items, "batched", 1);
    check_call(&b, rev, n_items, "reversed", 1);

    /* an invalid item (token id outside the vocabulary) is refused with nothing computed */
    struct vl_item bad = items[0].it;
    int32_t ids[4] = {1, 2, 1 << 30, 3};
    bad.ids = ids, bad.n_ids = 4, bad.n_visuals = 0;
    float v[64 * 1024];
    err[0] = 0;
    CHECK(b.embed(&b, &bad, 1, v, err, sizeof err) == -1);
    CHECK_CONTAINS(err, "vocabulary");
    b.destroy(&b);

    /* small budgets: several batches, both staging sets in flight */
    o.max_batch_tokens = 120;
    o.max_batch_patches = 600;
    if (vl_backend_cuda_create(&model, &o, &b, err, sizeof err)) {
        fprintf(stderr, "vl_backend_cuda_create (small budget): %s\n", err);
        test_failures++;
        return;
    }
    check_call(&b, order, n_items, "budget120", 1);
    b.destroy(&b);
    vl_model_free(&model);
}

static void test_all(void)
{
    if (vl_cuda_device_count() < 1) {
        fprintf(stderr, "no CUDA device: this test needs the GPU machine\n");
        test_failures++;
        return;
    }
    TEST_RUN_ONE(test_parity);
}

TEST_MAIN(test_all)
