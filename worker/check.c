/* `vlembed-worker --check DIR [--backend cpu|cuda] [--threads N] [--device N]`: loads and
 * validates a checkpoint, creates the backend, embeds two canary items built here (a text
 * item of fixed ids and a 64x64 generated image) and prints, per canary, the token count,
 * the embedding's checksum and first values, and the time taken. Exit 0, or 100 for a bad
 * checkpoint, option or backend (the message names the file, tensor or key). */
#include "worker/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/config.h"
#include "common/exitcode.h"
#include "common/log.h"
#include "worker/backend.h"
#include "worker/model.h"

struct check_opts {
    char *backend;
    int64_t threads;
    int64_t device;
};

static const struct vl_opt check_table[] = {
    {"backend", VL_OPT_STR, offsetof(struct check_opts, backend), "cpu", 0, 0, "cpu|cuda",
     "inference backend to check"},
    {"threads", VL_OPT_INT, offsetof(struct check_opts, threads), "0", 0, 1024, NULL,
     "CPU backend threads (0 = all cores)"},
    {"device", VL_OPT_INT, offsetof(struct check_opts, device), "0", 0, 1024, NULL,
     "CUDA device ordinal"},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The prompt skeleton of spec §6 with the default instruction elided to a few tokens:
 * <|im_start|>system\n ... <|im_end|>\n<|im_start|>user\n BODY <|im_end|>\n<|im_start|>assistant\n
 * Ids are the Qwen3 tokenizer's; a checkpoint with a smaller vocabulary gets them mod vocab. */
static const int32_t canary_head[] = {151644, 8948, 198,    82597, 279,    1196, 594,
                                      1946,   13,   151645, 198,   151644, 872,  198};
static const int32_t canary_text[] = {9707, 11, 1879, 0, 1096, 374, 264, 1779, 1467, 13};
static const int32_t canary_tail[] = {151645, 198, 151644, 77091, 198};

static int append(int32_t *dst, int n, const int32_t *src, int k, int32_t vocab)
{
    for (int i = 0; i < k; i++)
        dst[n + i] = src[i] < vocab ? src[i] : src[i] % vocab;
    return n + k;
}

/* Fills the two canaries; the caller frees them with vl_item_free. */
static void make_canaries(const struct vl_model *m, struct vl_item it[2])
{
    int32_t vocab = m->cfg.text.vocab_size;
    memset(it, 0, 2 * sizeof *it);
    int32_t *ids = vl_malloc(sizeof(int32_t) * 64);
    int n = append(ids, 0, canary_head, 14, vocab);
    n = append(ids, n, canary_text, 10, vocab);
    n = append(ids, n, canary_tail, 5, vocab);
    it[0].ids = ids;
    it[0].n_ids = n;

    /* 64x64 image: grid (1, 4, 4) -> 4 image tokens */
    ids = vl_malloc(sizeof(int32_t) * 64);
    n = append(ids, 0, canary_head, 14, vocab);
    ids[n++] = m->cfg.vision_start_token_id;
    for (int i = 0; i < 4; i++)
        ids[n++] = m->cfg.image_token_id;
    ids[n++] = m->cfg.vision_end_token_id;
    n = append(ids, n, canary_tail, 5, vocab);
    it[1].ids = ids;
    it[1].n_ids = n;
    struct vl_visual *v = vl_calloc(1, sizeof *v);
    *v = (struct vl_visual){.kind = VL_VISUAL_IMAGE,
                            .grid_t = 1,
                            .grid_h = 4,
                            .grid_w = 4,
                            .n_frames = 1,
                            .height = 64,
                            .width = 64};
    v->pixels = vl_malloc(64 * 64 * 3);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) {
            uint8_t *p = v->pixels + (y * 64 + x) * 3;
            p[0] = (uint8_t)(x * 4);
            p[1] = (uint8_t)(y * 4);
            p[2] = (uint8_t)((x * y + 7 * x + 13 * y) & 255);
        }
    it[1].visuals = v;
    it[1].n_visuals = 1;
}

int worker_check_main(int argc, char **argv)
{
    struct check_opts o = {0};
    char err[1024] = "";
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep report lines and log lines in order */
    char **rest = vl_calloc((size_t)argc + 1, sizeof *rest);
    int n_rest = 0;
    int rc = vl_config_load(check_table, sizeof check_table / sizeof check_table[0], &o, argc, argv,
                            rest, &n_rest, err, sizeof err);
    if (rc == 1 || (rc == 0 && n_rest != 1)) {
        vl_config_usage(check_table, sizeof check_table / sizeof check_table[0],
                        "vlembed-worker --check MODEL_DIR",
                        "Loads the checkpoint in MODEL_DIR, embeds two canary items and prints "
                        "their checksums.");
        vl_config_free(check_table, sizeof check_table / sizeof check_table[0], &o);
        free(rest);
        return rc == 1 ? VL_EXIT_OK : VL_EXIT_PERMANENT;
    }
    if (rc < 0) {
        vl_error("--check: %s", err);
        vl_config_free(check_table, sizeof check_table / sizeof check_table[0], &o);
        free(rest);
        return VL_EXIT_PERMANENT;
    }
    const char *dir = rest[0];
    free(rest);
    int code = VL_EXIT_PERMANENT;
    struct vl_model m;
    struct vl_backend b = {0};
    struct vl_item it[2] = {{0}};
    double t0 = now_s();
    if (vl_model_load(&m, dir, err, sizeof err) != 0) {
        vl_error("checkpoint %s refused: %s", dir, err);
        goto out_model;
    }
    const struct vl_model_config *c = &m.cfg;
    printf("checkpoint %s: %d files, %d tensors, %.1f MB, dtype %s\n", dir, m.st.n_files,
           m.st.n_tensors, vl_model_weight_bytes(&m) / 1e6, vl_dtype_name(m.embed_tokens.dtype));
    printf("  text: hidden %d, layers %d, heads %d/%d kv, head_dim %d, mlp %d, vocab %d, "
           "rope_theta %g, mrope_section [%d, %d, %d]\n",
           c->text.hidden_size, c->text.num_hidden_layers, c->text.num_attention_heads,
           c->text.num_key_value_heads, c->text.head_dim, c->text.intermediate_size,
           c->text.vocab_size, c->text.rope_theta, c->text.mrope_section[0],
           c->text.mrope_section[1], c->text.mrope_section[2]);
    printf("  vision: hidden %d, depth %d, heads %d, mlp %d, pos grid %dx%d, deepstack",
           c->vision.hidden_size, c->vision.depth, c->vision.num_heads, c->vision.intermediate_size,
           c->vision.num_grid_per_side, c->vision.num_grid_per_side);
    for (int i = 0; i < c->vision.n_deepstack; i++)
        printf(" %d", c->vision.deepstack_visual_indexes[i]);
    printf("\n");
    struct vl_backend_opts bo = {.threads = (int)o.threads, .device = (int)o.device};
    if (vl_backend_create(o.backend, &m, &bo, &b, err, sizeof err) != 0) {
        vl_error("backend %s: %s", o.backend, err);
        goto out;
    }
    printf("loaded in %.2f s (backend %s)\n", now_s() - t0, b.name);
    make_canaries(&m, it);
    int H = c->text.hidden_size;
    float *e = vl_malloc(sizeof(float) * 2 * (size_t)H);
    const char *names[2] = {"text", "image"};
    for (int i = 0; i < 2; i++) {
        double t1 = now_s();
        if (b.embed(&b, &it[i], 1, e + (size_t)i * (size_t)H, err, sizeof err) != 0) {
            vl_error("canary %s: %s", names[i], err);
            free(e);
            goto out;
        }
        const float *v = e + (size_t)i * (size_t)H;
        double sum = 0, wsum = 0, nrm = 0;
        for (int k = 0; k < H; k++) {
            sum += v[k];
            wsum += v[k] * (double)(k % 97 + 1);
            nrm += (double)v[k] * v[k];
        }
        printf("canary %-5s %3d tokens  norm %.6f  sum %+.6f  wsum %+.6f  first [%+.5f %+.5f "
               "%+.5f %+.5f]  %.3f s\n",
               names[i], it[i].n_ids, sqrt(nrm), sum, wsum, v[0], H > 1 ? v[1] : 0,
               H > 2 ? v[2] : 0, H > 3 ? v[3] : 0, now_s() - t1);
        if (!isfinite(sum) || fabs(sqrt(nrm) - 1) > 1e-3) {
            vl_error("canary %s: embedding is not a unit vector", names[i]);
            free(e);
            goto out;
        }
    }
    double dot = 0;
    for (int k = 0; k < H; k++)
        dot += (double)e[k] * e[H + k];
    printf("cosine(text, image) %.6f\n", dot);
    free(e);
    code = VL_EXIT_OK;
out:
    if (b.destroy)
        b.destroy(&b);
    vl_item_free(&it[0]);
    vl_item_free(&it[1]);
out_model:
    vl_model_free(&m);
    vl_config_free(check_table, sizeof check_table / sizeof check_table[0], &o);
    return code;
}
