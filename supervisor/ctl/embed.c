/* vlembedctl embed --model DIR [--backend cpu|cuda]: embeds offline, in one process, with the
 * gateway's own preprocessing (gateway/preprocess.h, blocking) and the worker's backend.
 * stdin: JSON Lines, one item per line in the API's item form (a string, {"text"}, {"image"},
 * {"video"}, {"content": [...]}, with an optional "instruction"); stdout: one line per item,
 * {"embedding": [...], "prompt_tokens": N}. A bad line prints {"error": {...}} on its line and
 * the exit status is 1 at the end; a bad model or backend exits 100. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/config.h"
#include "common/exitcode.h"
#include "common/log.h"
#include "gateway/api.h"
#include "gateway/preprocess.h"
#include "supervisor/ctl/ctl.h"
#include "worker/backend.h"
#include "worker/model.h"

struct embed_opts {
    char *model, *backend, *tokenizer, *media_dir;
    int64_t threads, device, max_tokens;
};

#define O(name, type, field, def, lo, hi, choices, help)                                           \
    {                                                                                              \
        name, VL_OPT_##type, offsetof(struct embed_opts, field), def, lo, hi, choices, help        \
    }
static const struct vl_opt opts[] = {
    O("model", STR, model, NULL, 1, 0, NULL, "checkpoint directory (required)"),
    O("backend", STR, backend, "cpu", 1, 0, "cpu|cuda", "inference backend"),
    O("tokenizer", STR, tokenizer, NULL, 1, 0, NULL,
      "tokenizer.json [default: MODEL/tokenizer.json]"),
    O("media-dir", STR, media_dir, NULL, 1, 0, NULL,
      "local media files allowed under this directory"),
    O("threads", INT, threads, "0", 0, 1024, NULL, "CPU backend threads (0: all cores)"),
    O("device", INT, device, "0", 0, 64, NULL, "CUDA device ordinal"),
    O("max-tokens", INT, max_tokens, "8192", 16, 8192, NULL, "prompt tokens per item"),
};
#define N_OPTS (sizeof opts / sizeof opts[0])

static void print_err(const struct api_err *e)
{
    size_t n;
    char *s = api_err_json(e, &n);
    printf("%s\n", s);
    free(s);
}

int ctl_cmd_embed(int argc, char **argv)
{
    struct embed_opts o = {0};
    char err[512];
    int rc = vl_config_load(opts, N_OPTS, &o, argc, argv, NULL, NULL, err, sizeof err);
    if (rc == 1) {
        vl_config_usage(opts, N_OPTS, "vlembedctl embed",
                        "Embeds JSON Lines items from stdin offline with a model directory, one "
                        "{\"embedding\"} line per item (docs/api.md).");
        vl_config_free(opts, N_OPTS, &o);
        return 0;
    }
    if (rc < 0 || !o.model) {
        fprintf(stderr, "vlembedctl embed: %s\n", rc < 0 ? err : "--model: required");
        vl_config_free(opts, N_OPTS, &o);
        return VL_EXIT_PERMANENT;
    }
    struct vl_model m;
    if (vl_model_load(&m, o.model, err, sizeof err)) {
        fprintf(stderr, "vlembedctl embed: %s\n", err);
        vl_model_free(&m);
        vl_config_free(opts, N_OPTS, &o);
        return VL_EXIT_PERMANENT;
    }
    struct vl_backend_opts bo = {.threads = (int)o.threads,
                                 .device = (int)o.device,
                                 .max_batch_tokens = 16384,
                                 .max_batch_patches = 65536};
    struct vl_backend be = {0};
    if (vl_backend_create(o.backend, &m, &bo, &be, err, sizeof err)) {
        fprintf(stderr, "vlembedctl embed: backend %s: %s\n", o.backend, err);
        vl_model_free(&m);
        vl_config_free(opts, N_OPTS, &o);
        return VL_EXIT_PERMANENT;
    }
    char tokpath[4096];
    snprintf(tokpath, sizeof tokpath, "%s", o.tokenizer ? o.tokenizer : "");
    if (!o.tokenizer)
        snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", o.model);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pp_config pc = {.tokenizer_path = tokpath,
                           .max_tokens = (int32_t)o.max_tokens,
                           .fetch_timeout_s = 30,
                           .media_dir = o.media_dir};
    media_limits_default(&pc.media);
    struct pp_ctx pp;
    if (pp_ctx_init(&pp, &loop, &pc, err, sizeof err)) {
        fprintf(stderr, "vlembedctl embed: tokenizer %s: %s\n", tokpath, err);
        uv_loop_close(&loop);
        if (be.destroy)
            be.destroy(&be);
        vl_model_free(&m);
        vl_config_free(opts, N_OPTS, &o);
        return VL_EXIT_PERMANENT;
    }
    struct api_limits lim;
    api_limits_default(&lim);
    int hidden = m.cfg.text.hidden_size;
    float *vec = vl_malloc((size_t)hidden * sizeof(float));
    size_t cap = 0;
    char *line = NULL;
    ssize_t len;
    int bad = 0, lineno = 0;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            continue;
        struct api_err e;
        cJSON *item = cJSON_ParseWithLength(line, (size_t)len);
        if (!item) {
            api_err_set(&e, 400, "invalid_request_error", "invalid_json", NULL,
                        "line %d is not valid JSON", lineno);
            print_err(&e);
            bad = 1;
            continue;
        }
        /* the same validator as the API: the line is the one item of an `input` array */
        cJSON *req = cJSON_CreateObject();
        cJSON *in = cJSON_AddArrayToObject(req, "input");
        cJSON_AddItemToArray(in, item);
        struct api_req r;
        int prc = api_parse(req, &lim, NULL, 0, &r, &e);
        cJSON_Delete(req);
        struct pp_out out = {0};
        if (prc || pp_run_blocking(&pp, &r, 0, 0, &out, &e)) {
            print_err(&e);
            bad = 1;
            api_req_free(&r);
            continue;
        }
        if (be.embed(&be, &out.item, 1, vec, err, sizeof err)) {
            api_err_set(&e, 422, "invalid_request_error", "invalid_item", NULL, "line %d: %s",
                        lineno, err);
            print_err(&e);
            bad = 1;
        } else {
            fputs("{\"embedding\":[", stdout);
            for (int i = 0; i < hidden; i++)
                printf(i ? ",%.9g" : "%.9g", (double)vec[i]);
            printf("],\"prompt_tokens\":%d}\n", out.item.n_ids);
        }
        fflush(stdout);
        pp_out_free(&out);
        api_req_free(&r);
    }
    free(line);
    free(vec);
    pp_ctx_free(&pp);
    uv_run(&loop, UV_RUN_DEFAULT); /* the fetcher's close callbacks */
    uv_loop_close(&loop);
    if (be.destroy)
        be.destroy(&be);
    vl_model_free(&m);
    vl_config_free(opts, N_OPTS, &o);
    return bad ? 1 : 0;
}
