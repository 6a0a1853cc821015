/* GPU parity test (make test-gpu): the CUDA backend against the CPU reference backend, in one
 * process, over the same loaded checkpoint and the same items (worker/backend.h promises both
 * return the same vectors).
 *
 * Checkpoints (VL_PARITY_MODELS, default "tiny 2b-mini 8b-mini"): the committed tiny one
 * (tests/data/tiny-model: head dims 16 / 32) and random-weight checkpoints with the real
 * per-layer shapes but 4 decoder layers and 4 vision blocks, written at test time by
 * scripts/ref/make_random_checkpoint.py (python3 + numpy; VL_PYTHON names the interpreter):
 * 2b-mini has vision head dim 64 and LM head dim 128 with GQA 16/8, 8b-mini vision head dim 72
 * and GQA 32/8. They go to a fresh directory under $TMPDIR that is removed at the end, unless
 * VL_PARITY_DIR names a directory to keep them in (and reuse them from).
 *
 * Items are built as the gateway renders them (gateway/prompt.c: chat template, videos before
 * images before text, one <|vision_start|> pads <|vision_end|> block per image and per video
 * frame pair, each pair after its "<t seconds>" timestamp) from random token ids and random
 * pixels: a bare 1-token text, templated texts of 1, 50 and 400 user tokens, an instruction,
 * one image, three images of different non-square sizes, a 6-frame video, and video + image +
 * text with an instruction.
 *
 * Pass, for every checkpoint and item: the CPU vectors are finite, unit length, not constant,
 * and the items are told apart (cosine between different items' CPU vectors <= MAX_SIMILAR,
 * so the parity bound is far tighter than the spread between items); the CUDA vector of the
 * item embedded alone, in one batch of all items, in the reverse order, and under small
 * budgets (several batches) has cosine >= 0.999 to the CPU vector, and every batched one
 * cosine >= 0.9999 to the CUDA vector of the item alone. The last lines print the minimum
 * cosines per checkpoint and item.
 *
 * VL_PARITY_VERBOSE=1 prints every comparison; VL_PARITY_CPU_ONLY=1 on a machine without a GPU
 * runs the reference half (CPU vectors and their checks) and then fails: it cannot pass there. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/item.h"
#include "common/limits.h"
#include "tests/test.h"
#include "worker/backend.h"
#include "worker/cuda/device.h"
#include "worker/model.h"

#define COS_CPU 0.999    /* CUDA vs the CPU reference, every item, every call */
#define COS_BATCH 0.9999 /* CUDA batched vs CUDA alone */
#define MAX_SIMILAR 0.99 /* CPU vectors of two different items */
#define MAX_ITEMS 16
#define MAX_MODELS 4

/* Qwen3 special and template token ids (tests/data/goldens/model_goldens.json). */
enum {
    TOK_IM_START = 151644,
    TOK_IM_END = 151645,
    TOK_NL = 198,
    TOK_SYSTEM = 8948,
    TOK_USER = 872,
    TOK_ASSISTANT = 77091,
    TOK_VISION_START = 151652,
    TOK_VISION_END = 151653,
    TOK_PLAIN_LIMIT = 151643, /* ids below are ordinary text tokens */
};

/* "Represent the user's input." */
static const int32_t default_instruction[] = {65743, 279, 1196, 594, 1946, 13};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* ---- items, rendered as the gateway does --------------------------------------------------- */

struct builder {
    struct vl_item it;
    int cap;
    int32_t image_pad, video_pad;
};

static void put(struct builder *b, int32_t id)
{
    if (b->it.n_ids == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->it.ids = realloc(b->it.ids, (size_t)b->cap * sizeof *b->it.ids);
    }
    b->it.ids[b->it.n_ids++] = id;
}

static void put_random_text(struct builder *b, int n)
{
    for (int i = 0; i < n; i++)
        put(b, (int32_t)(next_u32() % TOK_PLAIN_LIMIT));
}

/* "<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n"; a random instruction of
 * n_instr tokens, or the default one when n_instr is 0. */
static void put_prefix(struct builder *b, int n_instr)
{
    put(b, TOK_IM_START), put(b, TOK_SYSTEM), put(b, TOK_NL);
    if (n_instr)
        put_random_text(b, n_instr);
    else
        for (size_t i = 0; i < sizeof default_instruction / sizeof *default_instruction; i++)
            put(b, default_instruction[i]);
    put(b, TOK_IM_END), put(b, TOK_NL), put(b, TOK_IM_START), put(b, TOK_USER), put(b, TOK_NL);
}

static void put_suffix(struct builder *b)
{
    put(b, TOK_IM_END), put(b, TOK_NL), put(b, TOK_IM_START), put(b, TOK_ASSISTANT), put(b, TOK_NL);
}

/* A visual of random pixels: an image (frames 1) or a video (frames even), height x width
 * pixels (multiples of 32), and its prompt tokens. */
static void put_visual(struct builder *b, int frames, int height, int width)
{
    b->it.visuals = realloc(b->it.visuals, (size_t)(b->it.n_visuals + 1) * sizeof *b->it.visuals);
    struct vl_visual *v = &b->it.visuals[b->it.n_visuals++];
    memset(v, 0, sizeof *v);
    v->kind = frames == 1 ? VL_VISUAL_IMAGE : VL_VISUAL_VIDEO;
    v->grid_t = frames == 1 ? 1 : frames / 2;
    v->grid_h = height / 16, v->grid_w = width / 16;
    v->n_frames = frames, v->height = height, v->width = width;
    size_t bytes = (size_t)frames * height * width * 3;
    v->pixels = malloc(bytes);
    for (size_t i = 0; i < bytes; i++)
        v->pixels[i] = (uint8_t)(next_u32() >> 7);
    int per_block = v->grid_h * v->grid_w / 4;
    for (int k = 0; k < v->grid_t; k++) {
        if (v->kind == VL_VISUAL_VIDEO) { /* "<k.5 seconds>" (k < 10) */
            put(b, 27), put(b, 15 + k), put(b, 13), put(b, 20), put(b, 6486), put(b, 29);
        }
        put(b, TOK_VISION_START);
        for (int i = 0; i < per_block; i++)
            put(b, v->kind == VL_VISUAL_IMAGE ? b->image_pad : b->video_pad);
        put(b, TOK_VISION_END);
    }
}

struct pitem {
    const char *name;
    struct vl_item it;
    float *cpu, *alone;
    double min_cpu, min_alone; /* over every CUDA call */
};

static struct pitem items[MAX_ITEMS];
static int n_items;

static struct builder *start(struct builder *b, const struct vl_model *m)
{
    memset(b, 0, sizeof *b);
    b->image_pad = m->cfg.image_token_id;
    b->video_pad = m->cfg.video_token_id;
    return b;
}

static void finish(struct builder *b, const char *name)
{
    struct pitem *p = &items[n_items++];
    memset(p, 0, sizeof *p);
    p->name = name;
    p->it = b->it;
    p->min_cpu = p->min_alone = 2;
}

static void build_items(const struct vl_model *m)
{
    struct builder b;
    n_items = 0;
    put_random_text(start(&b, m), 1); /* no template: the smallest item there is */
    finish(&b, "text_1tok");
    put_prefix(start(&b, m), 0);
    put_random_text(&b, 1);
    put_suffix(&b);
    finish(&b, "text_20");
    put_prefix(start(&b, m), 0);
    put_random_text(&b, 50);
    put_suffix(&b);
    finish(&b, "text_69");
    put_prefix(start(&b, m), 0);
    put_random_text(&b, 400);
    put_suffix(&b);
    finish(&b, "text_419");
    put_prefix(start(&b, m), 12);
    put_random_text(&b, 30);
    put_suffix(&b);
    finish(&b, "instruction");
    put_prefix(start(&b, m), 0);
    put_visual(&b, 1, 224, 160); /* 14 x 10 patches */
    put_suffix(&b);
    finish(&b, "image");
    put_prefix(start(&b, m), 0);
    put_visual(&b, 1, 32, 96);   /* 2 x 6 */
    put_visual(&b, 1, 160, 64);  /* 10 x 4 */
    put_visual(&b, 1, 288, 224); /* 18 x 14: 252 patches */
    put_random_text(&b, 10);
    put_suffix(&b);
    finish(&b, "images3_text");
    put_prefix(start(&b, m), 0);
    put_visual(&b, 6, 128, 96); /* 3 frame pairs of 8 x 6 */
    put_suffix(&b);
    finish(&b, "video");
    put_prefix(start(&b, m), 9);
    put_visual(&b, 4, 64, 160); /* 2 frame pairs of 4 x 10 */
    put_visual(&b, 1, 96, 64);
    put_random_text(&b, 25);
    put_suffix(&b);
    finish(&b, "video_image_text");
}

static void free_items(void)
{
    for (int i = 0; i < n_items; i++) {
        vl_item_free(&items[i].it);
        free(items[i].cpu);
        free(items[i].alone);
    }
    n_items = 0;
}

/* ---- checks -------------------------------------------------------------------------------- */

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

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Embeds items[order[0..n)] in one call; returns the vectors (n x dim) or NULL. */
static float *embed(struct vl_backend *b, const int *order, int n, int dim)
{
    struct vl_item its[MAX_ITEMS];
    for (int i = 0; i < n; i++)
        its[i] = items[order[i]].it;
    float *out = malloc((size_t)n * dim * sizeof *out);
    for (size_t i = 0; i < (size_t)n * dim; i++)
        out[i] = NAN; /* poison */
    char err[512] = "";
    if (b->embed(b, its, n, out, err, sizeof err)) {
        fprintf(stderr, "  %s embed of %d items failed: %s\n", b->name, n, err);
        test_failures++;
        free(out);
        return NULL;
    }
    return out;
}

static int unit_finite(const float *v, int dim)
{
    double n2 = 0;
    for (int k = 0; k < dim; k++)
        n2 += (double)v[k] * v[k];
    return isfinite(n2) && fabs(sqrt(n2) - 1) < 1e-3;
}

/* The CPU vectors: finite, unit, not constant, different items told apart. Returns the
 * largest cosine between two different items. */
static double check_reference(const char *model, int dim)
{
    double most = -2;
    const char *a = "", *b = "";
    for (int i = 0; i < n_items; i++) {
        const float *v = items[i].cpu;
        double spread = 0;
        for (int k = 1; k < dim; k++)
            spread = fmax(spread, fabs((double)v[k] - v[0]));
        if (!unit_finite(v, dim) || spread < 1e-3) {
            fprintf(stderr, "  %s cpu %-16s not a finite, unit, non-constant vector  <-- FAIL\n",
                    model, items[i].name);
            test_failures++;
        }
        for (int j = 0; j < i; j++) {
            double c = cosine(v, items[j].cpu, dim);
            if (c > most)
                most = c, a = items[i].name, b = items[j].name;
        }
    }
    int ok = most <= MAX_SIMILAR;
    fprintf(stderr, "  %s cpu: largest cosine between two different items %.6f (%s, %s)%s\n", model,
            most, a, b, ok ? "" : "  <-- FAIL: items not told apart");
    if (!ok)
        test_failures++;
    return most;
}

/* One CUDA call over items[order[0..n)]: each vector against the CPU one and (unless this is
 * the alone pass, which records them) the item's alone vector. */
static void check_cuda(struct vl_backend *b, const int *order, int n, int dim, const char *label,
                       int alone_pass)
{
    float *out = embed(b, order, n, dim);
    for (int i = 0; i < n && out; i++) {
        struct pitem *p = &items[order[i]];
        const float *v = out + (size_t)i * dim;
        double c = cosine(v, p->cpu, dim);
        double ca = alone_pass ? 1 : p->alone ? cosine(v, p->alone, dim) : -1;
        int ok = unit_finite(v, dim) && c >= COS_CPU && ca >= COS_BATCH;
        if (!ok || getenv("VL_PARITY_VERBOSE"))
            fprintf(stderr, "  %-10s %-16s cos_cpu=%.6f cos_alone=%.7f%s\n", label, p->name, c, ca,
                    ok ? "" : "  <-- FAIL");
        if (!ok)
            test_failures++;
        p->min_cpu = fmin(p->min_cpu, c);
        if (alone_pass) {
            p->alone = malloc((size_t)dim * sizeof *p->alone);
            memcpy(p->alone, v, (size_t)dim * sizeof *v);
        } else
            p->min_alone = fmin(p->min_alone, ca);
    }
    free(out);
}

/* ---- one checkpoint ------------------------------------------------------------------------ */

struct summary {
    char model[40];
    int vision_hd, text_hd, heads, kv_heads;
    double t_cpu, t_cuda;
    double similar; /* largest cosine between the CPU vectors of two different items */
    int n;
    const char *item[MAX_ITEMS];
    double min_cpu[MAX_ITEMS], min_alone[MAX_ITEMS];
};

static struct summary sums[MAX_MODELS];
static int n_sums;
static int cpu_only; /* VL_PARITY_CPU_ONLY on a machine without a GPU: the reference half only */

static void run_model(const char *name, const char *dir)
{
    char err[512];
    struct vl_model m;
    if (vl_model_load(&m, dir, err, sizeof err)) {
        fprintf(stderr, "loading %s: %s\n", dir, err);
        test_failures++;
        return;
    }
    const struct vl_model_config *c = &m.cfg;
    int dim = c->text.hidden_size;
    fprintf(stderr,
            "%s: vision %d blocks V=%d head dim %d; LM %d layers H=%d heads %d/%d head dim "
            "%d; deepstack %d\n",
            name, c->vision.depth, c->vision.hidden_size, c->vision.head_dim,
            c->text.num_hidden_layers, dim, c->text.num_attention_heads,
            c->text.num_key_value_heads, c->text.head_dim, c->vision.n_deepstack);
    build_items(&m);
    long tokens = 0, patches = 0;
    for (int i = 0; i < n_items; i++) {
        tokens += items[i].it.n_ids;
        for (int v = 0; v < items[i].it.n_visuals; v++) {
            const struct vl_visual *vis = &items[i].it.visuals[v];
            patches += (long)vis->grid_t * vis->grid_h * vis->grid_w;
        }
        if (vl_item_validate(&items[i].it, c->image_token_id, c->video_token_id, VL_MAX_SEQ_TOKENS,
                             err, sizeof err)) {
            fprintf(stderr, "  item %s is malformed: %s\n", items[i].name, err);
            test_failures++;
        }
    }
    struct summary *s = &sums[n_sums++];
    snprintf(s->model, sizeof s->model, "%.31s", name);
    s->vision_hd = c->vision.head_dim, s->text_hd = c->text.head_dim;
    s->heads = c->text.num_attention_heads, s->kv_heads = c->text.num_key_value_heads;
    int order[MAX_ITEMS], rev[MAX_ITEMS];
    for (int i = 0; i < n_items; i++)
        order[i] = i, rev[i] = n_items - 1 - i;

    /* the reference: all items in one CPU call (the CPU backend's batched = alone bit for bit
     * is test_model_goldens' business) */
    struct vl_backend_opts o = {0}; /* all cores */
    struct vl_backend b;
    double t0 = now();
    if (vl_backend_cpu_create(&m, &o, &b, err, sizeof err)) {
        fprintf(stderr, "vl_backend_cpu_create: %s\n", err);
        test_failures++;
        goto out;
    }
    float *ref = embed(&b, order, n_items, dim);
    b.destroy(&b);
    s->t_cpu = now() - t0;
    if (!ref)
        goto out;
    for (int i = 0; i < n_items; i++) {
        items[i].cpu = malloc((size_t)dim * sizeof(float));
        memcpy(items[i].cpu, ref + (size_t)i * dim, (size_t)dim * sizeof(float));
    }
    free(ref);
    fprintf(stderr, "  %d items, %ld tokens, %ld patches; cpu backend %.1f s\n", n_items, tokens,
            patches, s->t_cpu);
    s->similar = check_reference(name, dim);
    if (cpu_only)
        goto out;

    t0 = now();
    if (vl_backend_cuda_create(&m, &o, &b, err, sizeof err)) {
        fprintf(stderr, "vl_backend_cuda_create: %s\n", err);
        test_failures++;
        goto out;
    }
    for (int i = 0; i < n_items; i++)
        check_cuda(&b, &order[i], 1, dim, "alone", 1);
    check_cuda(&b, order, n_items, dim, "batched", 0);
    check_cuda(&b, rev, n_items, dim, "reversed", 0);
    b.destroy(&b);
    /* small budgets: several batches through both staging sets */
    o.max_batch_tokens = 160;
    o.max_batch_patches = 400;
    if (vl_backend_cuda_create(&m, &o, &b, err, sizeof err)) {
        fprintf(stderr, "vl_backend_cuda_create (small budgets): %s\n", err);
        test_failures++;
        goto out;
    }
    check_cuda(&b, order, n_items, dim, "budget160", 0);
    b.destroy(&b);
    s->t_cuda = now() - t0;
    s->n = n_items;
    for (int i = 0; i < n_items; i++)
        s->item[i] = items[i].name, s->min_cpu[i] = items[i].min_cpu,
        s->min_alone[i] = items[i].min_alone;
out:
    if (n_sums && s->t_cuda == 0 && !cpu_only)
        n_sums--; /* nothing measured */
    vl_model_free(&m);
}

/* Writes the random mini checkpoints that are not there yet, in parallel. */
static int make_checkpoints(const char *root, const char *dir, char names[][32], int n)
{
    char cmd[8192];
    const char *py = getenv("VL_PYTHON") ? getenv("VL_PYTHON") : "python3";
    int len = snprintf(cmd, sizeof cmd, "set -e; pids=;");
    int any = 0;
    for (int i = 0; i < n; i++) {
        char cfg[2048];
        snprintf(cfg, sizeof cfg, "%s/%s/config.json", dir, names[i]);
        if (!strcmp(names[i], "tiny") || access(cfg, R_OK) == 0)
            continue;
        len += snprintf(cmd + len, sizeof cmd - (size_t)len,
                        " %s %s/scripts/ref/make_random_checkpoint.py --preset %s --shards 1 "
                        "--out %s/%s > %s/%s.log 2>&1 & pids=\"$pids $!\";",
                        py, root, names[i], dir, names[i], dir, names[i]);
        any = 1;
    }
    if (!any)
        return 0;
    snprintf(cmd + len, sizeof cmd - (size_t)len, " for p in $pids; do wait $p; done");
    double t0 = now();
    int rc = system(cmd);
    fprintf(stderr, "random checkpoints written in %.1f s (%s)\n", now() - t0, dir);
    if (rc != 0)
        fprintf(stderr, "writing the checkpoints failed (logs in %s): %s\n", dir, cmd);
    return rc == 0 ? 0 : -1;
}

static void test_parity(void)
{
    const char *root = getenv("VL_ROOT") ? getenv("VL_ROOT") : ".";
    const char *models =
        getenv("VL_PARITY_MODELS") ? getenv("VL_PARITY_MODELS") : "tiny 2b-mini 8b-mini";
    char names[MAX_MODELS][32];
    int n = 0;
    for (const char *p = models; *p && n < MAX_MODELS;) {
        size_t l = strcspn(p, " ,");
        if (l > 0 && l < sizeof names[0]) {
            memcpy(names[n], p, l);
            names[n++][l] = 0;
        }
        p += l;
        p += strspn(p, " ,");
    }
    char dir[1024];
    const char *keep = getenv("VL_PARITY_DIR");
    if (keep) {
        snprintf(dir, sizeof dir, "%s", keep);
        mkdir(dir, 0755);
    } else {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(dir, sizeof dir, "%s/vl_parity_XXXXXX", tmp);
        if (!mkdtemp(dir)) {
            fprintf(stderr, "mkdtemp %s failed\n", dir);
            test_failures++;
            return;
        }
    }
    double t0 = now();
    if (make_checkpoints(root, dir, names, n) == 0)
        for (int i = 0; i < n; i++) {
            char path[2048];
            if (!strcmp(names[i], "tiny"))
                snprintf(path, sizeof path, "%s/tests/data/tiny-model", root);
            else
                snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            run_model(names[i], path);
            free_items();
        }
    else
        test_failures++;
    if (!keep) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }

    fprintf(stderr, "\nparity summary (minimum cosine over alone / batched / reversed / budget "
                    "calls; device 0):\n");
    fprintf(stderr, "%-8s %-16s %10s %12s\n", "model", "item", "cuda~cpu", "batch~alone");
    for (int s = 0; s < n_sums && !cpu_only; s++) {
        const struct summary *m = &sums[s];
        double lo = 2, lo_a = 2;
        for (int i = 0; i < m->n; i++) {
            fprintf(stderr, "%-8s %-16s %10.6f %12.7f\n", m->model, m->item[i], m->min_cpu[i],
                    m->min_alone[i]);
            lo = fmin(lo, m->min_cpu[i]), lo_a = fmin(lo_a, m->min_alone[i]);
        }
        fprintf(stderr,
                "%-8s %-16s %10.6f %12.7f   (vision hd %d, LM hd %d GQA %d/%d; items' cpu "
                "vectors: largest mutual cosine %.4f; cpu %.1f s, cuda %.1f s)\n",
                m->model, "ALL", lo, lo_a, m->vision_hd, m->text_hd, m->heads, m->kv_heads,
                m->similar, m->t_cpu, m->t_cuda);
    }
    fprintf(stderr, "total %.1f s\n", now() - t0);
}

static void test_all(void)
{
    if (vl_cuda_device_count() < 1 && getenv("VL_PARITY_CPU_ONLY")) {
        cpu_only = 1;
        TEST_RUN_ONE(test_parity);
        fprintf(stderr, "VL_PARITY_CPU_ONLY: the CUDA half was not run, so this is no pass\n");
        test_failures++;
        return;
    }
    if (vl_cuda_device_count() < 1) {
        fprintf(stderr, "no CUDA device: this test needs the GPU machine\n");
        test_failures++;
        return;
    }
    TEST_RUN_ONE(test_parity);
}

TEST_MAIN(test_all)
