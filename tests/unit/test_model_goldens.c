/* Parity of the CPU backend with transformers (tests/data/goldens/README.md): for every
 * golden item, the positions equal transformers' exactly, the normalised pixels sum as
 * transformers' pixel_values do, and the embedding has cosine >= 0.99999 to transformers'
 * float32 one; a batch of all items gives bit-identical vectors to one item at a time. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
/* stb_image as static functions of this test only (no clash with the gateway's copy); the
 * unused ones would warn at the end of the file, hence the file-wide pragma. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image.h>

#include "tests/test.h"
#include "worker/backend.h"
#include "worker/model.h"
#include "worker/positions.h"

#define MIN_COSINE 0.99999

static char root[512];
static cJSON *gold;
static struct vl_model model;
static struct vl_item *items;
static int n_items;
static int loaded;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

static double cosine(const float *a, const cJSON *b, int n)
{
    double d = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        double y = cJSON_GetArrayItem(b, i)->valuedouble;
        d += a[i] * y;
        na += (double)a[i] * a[i];
        nb += y * y;
    }
    return d / sqrt(na * nb);
}

/* Builds vl_items from the goldens (ids + frames decoded from the PNGs). */
static int load_all(void)
{
    if (loaded)
        return loaded > 0;
    loaded = -1;
    /* VL_GOLDENS_DIR / VL_MODEL_DIR point the test at another goldens set and checkpoint
     * (e.g. the 2B-shape run on the GPU machine, docs/model.md); default: the committed ones. */
    const char *r = getenv("VL_ROOT"), *gd = getenv("VL_GOLDENS_DIR"), *md = getenv("VL_MODEL_DIR");
    if (gd)
        snprintf(root, sizeof root, "%s", gd);
    else
        snprintf(root, sizeof root, "%s/tests/data/goldens", r ? r : ".");
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/model_goldens.json", root);
    size_t len;
    char *txt = slurp(path, &len);
    if (!txt) {
        fprintf(stderr, "cannot read %s\n", path);
        return 0;
    }
    gold = cJSON_ParseWithLength(txt, len);
    free(txt);
    if (md)
        snprintf(path, sizeof path, "%s", md);
    else
        snprintf(path, sizeof path, "%s/tests/data/tiny-model", r ? r : ".");
    if (vl_model_load(&model, path, err, sizeof err) != 0) {
        fprintf(stderr, "load: %s\n", err);
        return 0;
    }
    const cJSON *arr = cJSON_GetObjectItem(gold, "items");
    n_items = cJSON_GetArraySize(arr);
    items = calloc((size_t)n_items, sizeof *items);
    for (int i = 0; i < n_items; i++) {
        const cJSON *gi = cJSON_GetArrayItem(arr, i);
        const cJSON *ids = cJSON_GetObjectItem(gi, "ids");
        struct vl_item *it = &items[i];
        it->n_ids = cJSON_GetArraySize(ids);
        it->ids = malloc(sizeof(int32_t) * (size_t)it->n_ids);
        for (int j = 0; j < it->n_ids; j++)
            it->ids[j] = cJSON_GetArrayItem(ids, j)->valueint;
        const cJSON *vis = cJSON_GetObjectItem(gi, "visuals");
        it->n_visuals = cJSON_GetArraySize(vis);
        it->visuals = calloc((size_t)it->n_visuals + 1, sizeof *it->visuals);
        for (int v = 0; v < it->n_visuals; v++) {
            const cJSON *gv = cJSON_GetArrayItem(vis, v);
            struct vl_visual *x = &it->visuals[v];
            const cJSON *grid = cJSON_GetObjectItem(gv, "grid");
            x->kind = strcmp(cJSON_GetObjectItem(gv, "kind")->valuestring, "video") == 0
                          ? VL_VISUAL_VIDEO
                          : VL_VISUAL_IMAGE;
            x->grid_t = cJSON_GetArrayItem(grid, 0)->valueint;
            x->grid_h = cJSON_GetArrayItem(grid, 1)->valueint;
            x->grid_w = cJSON_GetArrayItem(grid, 2)->valueint;
            x->height = x->grid_h * 16;
            x->width = x->grid_w * 16;
            const cJSON *frames = cJSON_GetObjectItem(gv, "frames");
            x->n_frames = cJSON_GetArraySize(frames);
            size_t fb = (size_t)x->height * (size_t)x->width * 3;
            x->pixels = malloc(fb * (size_t)x->n_frames);
            for (int f = 0; f < x->n_frames; f++) {
                snprintf(path, sizeof path, "%s/%s", root,
                         cJSON_GetArrayItem(frames, f)->valuestring);
                int w, h, ch;
                unsigned char *px = stbi_load(path, &w, &h, &ch, 3);
                if (!px || w != x->width || h != x->height) {
                    fprintf(stderr, "%s: cannot decode or wrong size\n", path);
                    return 0;
                }
                memcpy(x->pixels + (size_t)f * fb, px, fb);
                stbi_image_free(px);
            }
        }
    }
    loaded = 1;
    return 1;
}

TEST(test_positions_exact)
{
    CHECK(load_all());
    if (loaded < 0)
        return;
    const cJSON *arr = cJSON_GetObjectItem(gold, "items");
    for (int i = 0; i < n_items; i++) {
        const cJSON *gi = cJSON_GetArrayItem(arr, i);
        const char *name = cJSON_GetObjectItem(gi, "name")->valuestring;
        const cJSON *gp = cJSON_GetObjectItem(gi, "positions");
        int n = items[i].n_ids;
        int32_t *pos = malloc(sizeof(int32_t) * 3 * (size_t)n);
        char err[256] = "";
        CHECK_EQ_INT(vl_positions_compute(&items[i], 151655, 151656, 2, pos, err, sizeof err), 0);
        int bad = 0;
        for (int a = 0; a < 3 && !bad; a++)
            for (int j = 0; j < n && !bad; j++) {
                int want = cJSON_GetArrayItem(cJSON_GetArrayItem(gp, a), j)->valueint;
                if (pos[a * n + j] != want) {
                    TEST_FAIL_AT("%s: position[%d][%d] = %d, transformers has %d", name, a, j,
                                 pos[a * n + j], want);
                    bad = 1;
                }
            }
        free(pos);
    }
}

TEST(test_pixel_sums)
{
    if (loaded < 0)
        return;
    const cJSON *arr = cJSON_GetObjectItem(gold, "items");
    for (int i = 0; i < n_items; i++) {
        const cJSON *vis = cJSON_GetObjectItem(cJSON_GetArrayItem(arr, i), "visuals");
        for (int v = 0; v < items[i].n_visuals; v++) {
            const struct vl_visual *x = &items[i].visuals[v];
            /* every pixel of every frame appears once in pixel_values; an image twice */
            double sum = 0;
            size_t n = (size_t)x->n_frames * (size_t)x->height * (size_t)x->width * 3;
            for (size_t k = 0; k < n; k++)
                sum += ((float)x->pixels[k] - 127.5f) / 127.5f;
            if (x->kind == VL_VISUAL_IMAGE)
                sum *= 2;
            double want =
                cJSON_GetObjectItem(cJSON_GetArrayItem(vis, v), "pixel_values_sum")->valuedouble;
            CHECK_NEAR(sum, want, 1e-3 + 1e-6 * fabs(want));
        }
    }
}

static void embed_or_fail(struct vl_backend *b, const struct vl_item *it, int n, float *out)
{
    char err[512] = "";
    int rc = b->embed(b, it, n, out, err, sizeof err);
    CHECK_EQ_STR(err, "");
    CHECK_EQ_INT(rc, 0);
}

TEST(test_embeddings_match_transformers)
{
    if (loaded < 0)
        return;
    struct vl_backend b;
    const char *th = getenv("VL_THREADS");
    struct vl_backend_opts o = {.threads = th ? atoi(th) : 2};
    char err[512] = "";
    CHECK_EQ_INT(vl_backend_create("cpu", &model, &o, &b, err, sizeof err), 0);
    int H = model.cfg.text.hidden_size;
    const cJSON *arr = cJSON_GetObjectItem(gold, "items");
    float *one = calloc((size_t)n_items * (size_t)H, sizeof(float));
    for (int i = 0; i < n_items; i++) {
        const cJSON *gi = cJSON_GetArrayItem(arr, i);
        const char *name = cJSON_GetObjectItem(gi, "name")->valuestring;
        embed_or_fail(&b, &items[i], 1, one + (size_t)i * (size_t)H);
        double c32 =
            cosine(one + (size_t)i * (size_t)H, cJSON_GetObjectItem(gi, "embedding_f32"), H);
        double c16 =
            cosine(one + (size_t)i * (size_t)H, cJSON_GetObjectItem(gi, "embedding_bf16"), H);
        fprintf(stderr, "  %-18s %4d tokens  1 - cos(f32) = %.2e  cos(bf16 sdpa) = %.6f\n", name,
                items[i].n_ids, 1 - c32, c16);
        if (!(c32 >= MIN_COSINE))
            TEST_FAIL_AT("%s: cosine %.9f to transformers float32 < %g", name, c32, MIN_COSINE);
    }
    /* all items in one batch, then in batches cut by small budgets: bit-identical */
    float *all = calloc((size_t)n_items * (size_t)H, sizeof(float));
    embed_or_fail(&b, items, n_items, all);
    CHECK(memcmp(all, one, sizeof(float) * (size_t)n_items * (size_t)H) == 0);
    b.destroy(&b);
    struct vl_backend_opts small = {
        .threads = 3, .max_batch_tokens = 200, .max_batch_patches = 600};
    CHECK_EQ_INT(vl_backend_create("cpu", &model, &small, &b, err, sizeof err), 0);
    memset(all, 0, sizeof(float) * (size_t)n_items * (size_t)H);
    embed_or_fail(&b, items, n_items, all);
    CHECK(memcmp(all, one, sizeof(float) * (size_t)n_items * (size_t)H) == 0);
    /* reversed order */
    struct vl_item *rev = calloc((size_t)n_items, sizeof *rev);
    for (int i = 0; i < n_items; i++)
        rev[i] = items[n_items - 1 - i];
    embed_or_fail(&b, rev, n_items, all);
    for (int i = 0; i < n_items; i++)
        CHECK(memcmp(all + (size_t)i * (size_t)H, one + (size_t)(n_items - 1 - i) * (size_t)H,
                     sizeof(float) * (size_t)H) == 0);
    free(rev);
    b.destroy(&b);
    /* the last layer on every row (VL_LM_LAST_LAYER=all) gives the same vectors as on the
     * pooled rows only (the default): the rows it drops are never read */
    int L = model.cfg.text.num_hidden_layers, ds = model.cfg.vision.n_deepstack;
    CHECK_EQ_INT(vl_model_prune_last_layer(L, ds), 1);
    CHECK_EQ_INT(vl_model_prune_last_layer(ds, ds), 0); /* DeepStack after the last layer */
    setenv("VL_LM_LAST_LAYER", "all", 1);
    CHECK_EQ_INT(vl_model_prune_last_layer(L, ds), 0);
    CHECK_EQ_INT(vl_backend_create("cpu", &model, &o, &b, err, sizeof err), 0);
    memset(all, 0, sizeof(float) * (size_t)n_items * (size_t)H);
    embed_or_fail(&b, items, n_items, all);
    double worst = 0;
    for (size_t e = 0; e < (size_t)n_items * (size_t)H; e++)
        worst = fmax(worst, fabs((double)all[e] - one[e]));
    fprintf(stderr, "  last layer on every row vs pooled rows only: max |diff| %.3g\n", worst);
    CHECK(worst <= 1e-6);
    unsetenv("VL_LM_LAST_LAYER");
    b.destroy(&b);
    free(all);
    free(one);
}

TEST(test_bad_items_refused)
{
    if (loaded < 0)
        return;
    struct vl_backend b;
    char err[512] = "";
    struct vl_backend_opts o = {.threads = 1};
    CHECK_EQ_INT(vl_backend_create("cpu", &model, &o, &b, err, sizeof err), 0);
    float *out = calloc((size_t)model.cfg.text.hidden_size, sizeof(float));
    /* an image item with one pad token removed */
    struct vl_item it = items[2];
    it.n_ids--;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)items[2].n_ids);
    int k = 0, dropped = 0;
    for (int j = 0; j < items[2].n_ids; j++) {
        if (!dropped && items[2].ids[j] == 151655) {
            dropped = 1;
            continue;
        }
        ids[k++] = items[2].ids[j];
    }
    it.ids = ids;
    CHECK_EQ_INT(b.embed(&b, &it, 1, out, err, sizeof err), -1);
    CHECK_CONTAINS(err, "pad tokens");
    /* a token id outside the vocabulary */
    struct vl_item t2 = items[0];
    int32_t bad[3] = {1, 151936, 2};
    t2.ids = bad;
    t2.n_ids = 3;
    CHECK_EQ_INT(b.embed(&b, &t2, 1, out, err, sizeof err), -1);
    CHECK_CONTAINS(err, "outside the vocabulary");
    free(ids);
    free(out);
    b.destroy(&b);
    CHECK_EQ_INT(vl_backend_create("tpu", &model, &o, &b, err, sizeof err), -1);
    CHECK_CONTAINS(err, "unknown backend");
}

TEST_MAIN(test_positions_exact, test_pixel_sums, test_embeddings_match_transformers,
          test_bad_items_refused)
