/* Item preprocessing (see preprocess.h): sources on the loop, CPU work on the thread pool. */
#include "gateway/preprocess.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/limits.h"
#include "common/log.h"
#include "gateway/fetch.h"
#include "gateway/membudget.h"
#include "gateway/media_source.h"
#include "gateway/pixel_budget.h"
#include "gateway/prompt.h"

/* Field paths and error sentences are bounded buffers; longer ones are cut on purpose. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

/* One media source of the item, in part order (a frame list contributes one per frame). */
struct pp_src {
    const struct api_part *part;
    const struct api_src *src;
    const char *path; /* for errors */
    char fpath[112];  /* path of a frame: "input[0].video[3]" */
    int is_video_file;
    const uint8_t *ptr;
    size_t len;
    uint8_t *owned;  /* decoded data: URI or fetched body */
    int64_t charged; /* bytes of owned charged to cfg.mem_budget */
    struct pp_job *job;
};

struct pp_job {
    uv_work_t work;
    struct pp_ctx *c;
    const struct api_req *req;
    const struct api_item *it;
    int index, preview;
    pp_done_fn cb;
    void *arg;
    struct pp_src *srcs;
    int n_srcs;
    int pending;
    int failed;
    struct api_err err;
    struct pp_out out;
    uint64_t t_fetch0;
    struct pp_gate *gate;
    struct pp_job *next_waiting;  /* in gate->waiting */
    struct pixel_charge *charges; /* declared decode work, one per image / kept frame / file */
    int n_charges;
};

/* The items of one request meet here after their sources are loaded and their headers read,
 * and before anything is decoded (see preprocess.h). Loop thread only; freed by the last of
 * pp_gate_seal and the items' reports. */
struct pp_gate {
    struct pp_ctx *c;
    struct pixel_budget budget;
    int n_items, n_reported, sealed;
    int failed;
    struct api_err err; /* the first failure, given to every item still waiting */
    struct pp_job *waiting;
    pp_gate_check_fn check;
    void *check_arg;
};

void pp_out_free(struct pp_out *o)
{
    vl_item_free(&o->item);
    if (o->preview)
        cJSON_Delete(o->preview);
    memset(o, 0, sizeof *o);
}

int pp_ctx_init(struct pp_ctx *c, uv_loop_t *loop, const struct pp_config *cfg, char *err,
                size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->loop = loop;
    c->cfg = *cfg;
    if (c->cfg.max_tokens <= 0 || c->cfg.max_tokens > VL_MAX_SEQ_TOKENS)
        c->cfg.max_tokens = VL_MAX_SEQ_TOKENS;
    c->tok = tok_load(cfg->tokenizer_path, err, errlen);
    if (!c->tok)
        return -1;
    c->image_pad = tok_token_id(c->tok, "<|image_pad|>");
    c->video_pad = tok_token_id(c->tok, "<|video_pad|>");
    c->vision_start = tok_token_id(c->tok, "<|vision_start|>");
    c->vision_end = tok_token_id(c->tok, "<|vision_end|>");
    c->im_start = tok_token_id(c->tok, "<|im_start|>");
    c->im_end = tok_token_id(c->tok, "<|im_end|>");
    if (c->image_pad < 0 || c->video_pad < 0 || c->vision_start < 0 || c->vision_end < 0 ||
        c->im_start < 0 || c->im_end < 0) {
        snprintf(err, errlen, "%s lacks the Qwen3-VL special tokens (<|image_pad|>, ...)",
                 cfg->tokenizer_path);
        tok_free(c->tok);
        c->tok = NULL;
        return -1;
    }
    return 0;
}

void pp_ctx_free(struct pp_ctx *c)
{
    tok_free(c->tok);
    c->tok = NULL;
}

/* ---- sources -------------------------------------------------------------------------------- */

/* The item error when a source does not fit the buffered-bytes budget. */
static void memory_busy(struct api_err *e, const char *path, const struct mem_budget *b)
{
    api_err_set(e, 503, "service_unavailable", "memory_busy", path,
                "%s: the gateway is holding too many media bytes (%lld of its limit of %lld, "
                "--max-buffered-bytes); retry",
                path, (long long)mem_budget_used(b), (long long)(b ? b->limit : 0));
}

/* Loads a data: URI or a local file on the pool (URLs were fetched on the loop already). */
static int load_source(struct pp_ctx *c, struct pp_src *s, struct api_err *e)
{
    const struct media_limits *ml = &c->cfg.media;
    int64_t max = s->is_video_file ? ml->max_video_bytes : ml->max_input_bytes;
    char err[256];
    int rc;
    enum media_source_kind k = media_source_classify(s->src->url);
    if (k == MEDIA_SRC_DATA)
        rc = media_source_data_uri(s->src->url, strlen(s->src->url), max, &s->owned, &s->len, err,
                                   sizeof err);
    else
        rc = media_source_local_file(c->cfg.media_dir, s->src->url, max, &s->owned, &s->len, err,
                                     sizeof err);
    if (rc) {
        api_err_set(e, rc == -E2BIG ? 413 : 400, "invalid_request_error",
                    rc == -E2BIG ? "media_too_large" : "invalid_media", s->path, "%s: %s", s->path,
                    err);
        return -1;
    }
    if (mem_budget_charge(c->cfg.mem_budget, (int64_t)s->len, MEMB_SOURCE)) {
        free(s->owned);
        s->owned = NULL;
        memory_busy(e, s->path, c->cfg.mem_budget);
        return -1;
    }
    s->charged = (int64_t)s->len;
    s->ptr = s->owned;
    return 0;
}

/* Frees a source's buffer and releases its charge (loop or pool thread). */
static void src_free(struct pp_ctx *c, struct pp_src *s)
{
    free(s->owned);
    s->owned = NULL;
    mem_budget_release(c->cfg.mem_budget, s->charged);
    s->charged = 0;
}

/* ---- the pool work -------------------------------------------------------------------------- */

static void fail(struct pp_job *j, int status, const char *code, const char *path, const char *msg)
{
    if (j->failed)
        return;
    j->failed = 1;
    api_err_set(&j->err, status, "invalid_request_error", code, path, "%s: %s", path, msg);
}

static int media_status(int rc)
{
    return rc == -E2BIG || rc == -ENOMEM ? 413 : 400;
}

static cJSON *ints_json(const int32_t *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* The OpenAI token-array form: the ids are the user text, spliced into the native prompt. */
static int render_tokens(struct pp_job *j, const char *instruction, int32_t **ids, int32_t *n_ids,
                         char **text)
{
    struct pp_ctx *c = j->c;
    const struct api_item *it = j->it;
    char err[256];
    int32_t vocab = tok_vocab_size(c->tok);
    for (int i = 0; i < it->n_tokens; i++) {
        int32_t t = it->tokens[i];
        if (t >= vocab || t == c->image_pad || t == c->video_pad || t == c->vision_start ||
            t == c->vision_end) {
            char p[96];
            snprintf(p, sizeof p, "%s[%d]", it->path, i);
            snprintf(err, sizeof err, "token id %d is out of the vocabulary or a vision token", t);
            fail(j, 400, "invalid_value", p, err);
            return -1;
        }
    }
    char *ins =
        prompt_instruction(instruction, instruction ? strlen(instruction) : 0, err, sizeof err);
    if (!ins) {
        fail(j, 400, "invalid_value", it->path, err);
        return -1;
    }
    size_t pl = strlen(ins) + 64;
    char *pre = vl_malloc(pl);
    snprintf(pre, pl, "<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n", ins);
    const char *post = "<|im_end|>\n<|im_start|>assistant\n";
    int32_t *a = NULL, *b = NULL, na = 0, nb = 0;
    int rc = -1;
    if (tok_encode(c->tok, pre, strlen(pre), &a, &na, err, sizeof err) ||
        tok_encode(c->tok, post, strlen(post), &b, &nb, err, sizeof err)) {
        fail(j, 400, "invalid_value", it->path, err);
        goto out;
    }
    int32_t n = na + it->n_tokens + nb;
    if (n > c->cfg.max_tokens) {
        snprintf(err, sizeof err, "the prompt has %d tokens, over the limit of %d", n,
                 c->cfg.max_tokens);
        fail(j, 400, "too_many_tokens", it->path, err);
        goto out;
    }
    *ids = vl_malloc((size_t)n * sizeof **ids);
    memcpy(*ids, a, (size_t)na * 4);
    memcpy(*ids + na, it->tokens, (size_t)it->n_tokens * 4);
    memcpy(*ids + na + it->n_tokens, b, (size_t)nb * 4);
    *n_ids = n;
    tok_post_process(c->tok, ids, n_ids);
    if (text) {
        char *mid = tok_decode(c->tok, it->tokens, it->n_tokens);
        size_t tl = strlen(pre) + strlen(mid) + strlen(post) + 1;
        *text = vl_malloc(tl);
        snprintf(*text, tl, "%s%s%s", pre, mid, post);
        free(mid);
    }
    rc = 0;
out:
    free(a);
    free(b);
    free(pre);
    free(ins);
    return rc;
}

static void work_cb(uv_work_t *w)
{
    struct pp_job *j = w->data;
    struct pp_ctx *c = j->c;
    const struct api_item *it = j->it;
    const struct api_req *req = j->req;
    const struct media_limits *ml = &c->cfg.media;
    char err[512];
    uint64_t t0 = uv_hrtime();

    /* collect parts: visuals (in part order) and texts; messages carry their own parts */
    int n_parts_total = 0;
    if (it->n_msgs)
        for (int m = 0; m < it->n_msgs; m++)
            n_parts_total += it->msgs[m].n_parts;
    else
        n_parts_total = it->n_parts;
    struct vl_visual *vis = vl_calloc((size_t)n_parts_total + 1, sizeof *vis);
    struct prompt_visual *pv = vl_calloc((size_t)n_parts_total + 1, sizeof *pv);
    double **ts = vl_calloc((size_t)n_parts_total + 1, sizeof *ts);
    int32_t **fidx = vl_calloc((size_t)n_parts_total + 1, sizeof *fidx);
    int32_t *n_fidx = vl_calloc((size_t)n_parts_total + 1, sizeof *n_fidx);
    const struct api_part **vpart = vl_calloc((size_t)n_parts_total + 1, sizeof *vpart);
    const char **texts = vl_calloc((size_t)n_parts_total + 1, sizeof *texts);
    size_t *text_lens = vl_calloc((size_t)n_parts_total + 1, sizeof *text_lens);
    int nv = 0, nt = 0, si = 0;
    int32_t *ids = NULL, n_ids = 0;
    char *prompt_text = NULL;
    struct prompt_message *pm = NULL;
    struct prompt_part *pparts = NULL;

    for (int m = 0; m < (it->n_msgs ? it->n_msgs : 1) && !j->failed; m++) {
        const struct api_part *parts = it->n_msgs ? it->msgs[m].parts : it->parts;
        int np = it->n_msgs ? it->msgs[m].n_parts : it->n_parts;
        for (int p = 0; p < np && !j->failed; p++) {
            const struct api_part *part = &parts[p];
            if (part->kind == API_PART_TEXT) {
                texts[nt] = part->text;
                text_lens[nt++] = strlen(part->text);
                continue;
            }
            if (it->n_msgs && strcmp(it->msgs[m].role, "user") != 0) {
                fail(j, 400, "invalid_value", part->path,
                     "images and videos are accepted only in user messages");
                break;
            }
            struct vl_visual *v = &vis[nv];
            int rc;
            if (part->kind == API_PART_IMAGE) {
                struct pp_src *s = &j->srcs[si++];
                rc = media_image_prepare(s->ptr, s->len, ml, v, err, sizeof err);
                if (rc) {
                    fail(j, media_status(rc), "invalid_media", part->path, err);
                    break;
                }
            } else if (part->n_frames > 0) {
                const uint8_t **fp = vl_calloc((size_t)part->n_frames, sizeof *fp);
                size_t *fs = vl_calloc((size_t)part->n_frames, sizeof *fs);
                for (int f = 0; f < part->n_frames; f++) {
                    fp[f] = j->srcs[si].ptr;
                    fs[f] = j->srcs[si++].len;
                }
                rc = media_video_prepare_frames(fp, fs, part->n_frames, ml, v, &ts[nv], err,
                                                sizeof err);
                free(fp);
                free(fs);
                if (rc) {
                    fail(j, media_status(rc), "invalid_media", part->path, err);
                    break;
                }
                n_fidx[nv] = part->n_frames;
                fidx[nv] = vl_malloc((size_t)part->n_frames * sizeof(int32_t));
                for (int f = 0; f < part->n_frames; f++)
                    fidx[nv][f] = f;
            } else {
                struct pp_src *s = &j->srcs[si++];
                struct media_video_opts vo = {.fps = req->video.fps,
                                              .max_frames = req->video.max_frames,
                                              .max_pixels = req->video.max_pixels};
                rc = media_video_prepare_file(s->ptr, s->len, ml, &vo, v, &ts[nv], &fidx[nv],
                                              &n_fidx[nv], err, sizeof err);
                if (rc) {
                    fail(j, media_status(rc), "invalid_media", part->path, err);
                    break;
                }
            }
            pv[nv].kind = v->kind;
            pv[nv].grid_t = v->grid_t;
            pv[nv].grid_h = v->grid_h;
            pv[nv].grid_w = v->grid_w;
            pv[nv].timestamps = ts[nv];
            vpart[nv] = part;
            nv++;
        }
    }
    uint64_t t1 = uv_hrtime();
    j->out.media_ns += t1 - t0;
    if (j->failed)
        goto done;

    const char *instruction = it->instruction ? it->instruction : req->instruction;
    int order[1024];
    int *ord = nv <= 1024 ? order : vl_malloc((size_t)nv * sizeof *ord);
    for (int i = 0; i < nv; i++)
        ord[i] = i;
    if (it->is_tokens) {
        if (render_tokens(j, instruction, &ids, &n_ids, j->preview ? &prompt_text : NULL))
            goto done_ord;
    } else if (it->n_msgs) {
        pm = vl_calloc((size_t)it->n_msgs, sizeof *pm);
        pparts = vl_calloc((size_t)n_parts_total + 1, sizeof *pparts);
        int k = 0, vi = 0;
        for (int m = 0; m < it->n_msgs; m++) {
            const struct api_msg *am = &it->msgs[m];
            pm[m].role = !strcmp(am->role, "system") ? PROMPT_ROLE_SYSTEM
                         : !strcmp(am->role, "user") ? PROMPT_ROLE_USER
                                                     : PROMPT_ROLE_ASSISTANT;
            pm[m].parts = &pparts[k];
            pm[m].n_parts = am->n_parts;
            for (int p = 0; p < am->n_parts; p++, k++) {
                const struct api_part *ap = &am->parts[p];
                if (ap->kind == API_PART_TEXT) {
                    pparts[k].kind = PROMPT_PART_TEXT;
                    pparts[k].text = ap->text;
                    pparts[k].text_len = strlen(ap->text);
                } else {
                    pparts[k].kind =
                        ap->kind == API_PART_IMAGE ? PROMPT_PART_IMAGE : PROMPT_PART_VIDEO;
                    pparts[k].visual = &pv[vi++];
                }
            }
        }
        struct prompt_chat pc = {.messages = pm,
                                 .n_messages = it->n_msgs,
                                 .add_generation_prompt = it->add_generation_prompt,
                                 .continue_final_message = it->continue_final_message,
                                 .add_special_tokens = it->add_special_tokens,
                                 .max_tokens = c->cfg.max_tokens};
        if (prompt_render_chat(c->tok, &pc, &ids, &n_ids, j->preview ? &prompt_text : NULL, err,
                               sizeof err)) {
            fail(j, 400, "invalid_value", it->path, err);
            goto done_ord;
        }
    } else {
        struct prompt_input in = {.instruction = instruction,
                                  .instruction_len = instruction ? strlen(instruction) : 0,
                                  .texts = texts,
                                  .text_lens = text_lens,
                                  .n_texts = nt,
                                  .visuals = pv,
                                  .n_visuals = nv,
                                  .max_tokens = c->cfg.max_tokens};
        if (prompt_render(c->tok, &in, &ids, &n_ids, j->preview ? &prompt_text : NULL, err,
                          sizeof err)) {
            fail(j, 400, "invalid_value", it->path, err);
            goto done_ord;
        }
        prompt_visual_order(pv, nv, ord);
    }
    j->out.tokenize_ns = uv_hrtime() - t1;

    /* the worker item: visuals in prompt order; ownership of pixels moves to the item */
    struct vl_item *item = &j->out.item;
    item->ids = ids;
    item->n_ids = n_ids;
    ids = NULL;
    item->visuals = vl_calloc((size_t)nv + 1, sizeof *item->visuals);
    item->n_visuals = nv;
    for (int i = 0; i < nv; i++) {
        item->visuals[i] = vis[ord[i]];
        vis[ord[i]].pixels = NULL;
    }
    for (int i = 0; i < n_ids; i++) {
        j->out.image_tokens += item->ids[i] == c->image_pad;
        j->out.video_tokens += item->ids[i] == c->video_pad;
    }
    j->out.text_tokens = n_ids - j->out.image_tokens - j->out.video_tokens;
    for (int i = 0; i < nv; i++) {
        j->out.n_images += vis[i].kind == VL_VISUAL_IMAGE;
        j->out.n_videos += vis[i].kind == VL_VISUAL_VIDEO;
    }

    if (j->preview) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", j->index);
        cJSON_AddStringToObject(o, "prompt", prompt_text ? prompt_text : "");
        cJSON_AddNumberToObject(o, "prompt_tokens", n_ids);
        cJSON_AddNumberToObject(o, "text_tokens", j->out.text_tokens);
        cJSON_AddNumberToObject(o, "image_tokens", j->out.image_tokens);
        cJSON_AddNumberToObject(o, "video_tokens", j->out.video_tokens);
        cJSON *va = cJSON_AddArrayToObject(o, "visuals");
        for (int k = 0; k < nv; k++) {
            int i = ord[k];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "source", vpart[i]->path);
            cJSON_AddStringToObject(x, "kind", vis[i].kind == VL_VISUAL_IMAGE ? "image" : "video");
            cJSON_AddNumberToObject(x, "width", vis[i].width);
            cJSON_AddNumberToObject(x, "height", vis[i].height);
            int32_t g[3] = {vis[i].grid_t, vis[i].grid_h, vis[i].grid_w};
            cJSON_AddItemToObject(x, "grid_thw", ints_json(g, 3));
            cJSON_AddNumberToObject(x, "tokens",
                                    (double)vis[i].grid_t * vis[i].grid_h * vis[i].grid_w / 4);
            cJSON_AddNumberToObject(x, "frames", vis[i].n_frames);
            if (vis[i].kind == VL_VISUAL_VIDEO) {
                if (fidx[i])
                    cJSON_AddItemToObject(x, "frame_indices", ints_json(fidx[i], n_fidx[i]));
                cJSON *ta = cJSON_AddArrayToObject(x, "timestamps");
                for (int t = 0; t < vis[i].grid_t && ts[i]; t++)
                    cJSON_AddItemToArray(ta, cJSON_CreateNumber(ts[i][t]));
            }
            cJSON_AddItemToArray(va, x);
        }
        j->out.preview = o;
    }
done_ord:
    if (ord != order)
        free(ord);
done:
    free(ids);
    free(prompt_text);
    for (int i = 0; i < nv; i++) {
        free(vis[i].pixels);
        free(ts[i]);
        free(fidx[i]);
    }
    free(vis);
    free(pv);
    free(ts);
    free(fidx);
    free(n_fidx);
    free(vpart);
    free(texts);
    free(text_lens);
    free(pm);
    free(pparts);
    for (int s = 0; s < j->n_srcs; s++)
        src_free(j->c, &j->srcs[s]);
}

static void job_free(struct pp_job *j)
{
    for (int s = 0; s < j->n_srcs; s++)
        src_free(j->c, &j->srcs[s]);
    free(j->srcs);
    free(j->charges);
    free(j);
}

/* Hands the item's result (or error) to its caller and frees the job. */
static void job_finish(struct pp_job *j)
{
    if (j->failed) {
        pp_out_free(&j->out);
        j->cb(j->arg, j->index, NULL, &j->err);
    } else {
        struct pp_out *o = vl_malloc(sizeof *o);
        *o = j->out;
        j->cb(j->arg, j->index, o, NULL);
    }
    job_free(j);
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct pp_job *j = w->data;
    if (status == UV_ECANCELED && !j->failed)
        api_err_set(&j->err, 503, "server_error", "cancelled", j->it->path, "cancelled"),
            j->failed = 1;
    job_finish(j);
}

/* ---- the gate: every item's headers are charged before any item is decoded ----------------- */

struct pp_gate *pp_gate_new(struct pp_ctx *c)
{
    struct pp_gate *g = vl_calloc(1, sizeof *g);
    g->c = c;
    pixel_budget_init(&g->budget, c->cfg.media.max_request_decoded_pixels);
    return g;
}

void pp_gate_set_check(struct pp_gate *g, pp_gate_check_fn fn, void *arg)
{
    g->check = fn;
    g->check_arg = arg;
}

static void gate_flush_failed(struct pp_gate *g);

/* Once every item has reported and no more will come: decode the waiting ones (or nothing,
 * if the request failed or its check refuses it) and free the gate. */
static void gate_maybe_done(struct pp_gate *g)
{
    if (!g->sealed || g->n_reported < g->n_items)
        return;
    if (g->waiting && !g->failed && g->check && g->check(g->check_arg, g->budget.used, &g->err)) {
        g->failed = 1;
        gate_flush_failed(g);
    }
    struct pp_job *j = g->waiting;
    g->waiting = NULL;
    while (j) {
        struct pp_job *next = j->next_waiting;
        j->gate = NULL;
        j->work.data = j;
        uv_queue_work(j->c->loop, &j->work, work_cb, after_work_cb);
        j = next;
    }
    free(g);
}

/* Gives every waiting item the request's failure instead of decoding it. */
static void gate_flush_failed(struct pp_gate *g)
{
    while (g->waiting) {
        struct pp_job *j = g->waiting;
        g->waiting = j->next_waiting;
        j->failed = 1;
        j->err = g->err;
        job_finish(j);
    }
}

/* An item's sources are loaded and its headers read (or it failed): charge it, then wait for
 * the others, or fail it and every other item of the request. */
static void gate_report(struct pp_job *j)
{
    struct pp_gate *g = j->gate;
    g->n_reported++;
    if (!j->failed && !g->failed) {
        if (pixel_budget_charge(&g->budget, j->charges, j->n_charges) == 0) {
            for (int i = 0; i < j->n_charges; i++)
                j->out.decoded_pixels += pixel_charge_pixels(&j->charges[i]);
            j->next_waiting = g->waiting;
            g->waiting = j;
            gate_maybe_done(g);
            return;
        }
        api_err_set(&j->err, 413, "invalid_request_error", "too_many_pixels", g->budget.param, "%s",
                    g->budget.message);
        j->failed = 1;
    }
    if (!g->failed) {
        g->failed = 1;
        g->err = j->err;
    }
    if (!j->failed) {
        j->failed = 1;
        j->err = g->err;
    }
    job_finish(j); /* the first failure reaches the caller first */
    gate_flush_failed(g);
    gate_maybe_done(g);
}

void pp_gate_seal(struct pp_gate *g)
{
    g->sealed = 1;
    gate_maybe_done(g);
}

/* ---- loading and probing on the pool -------------------------------------------------------- */

static void add_charge(struct pp_job *j, const char *path, int is_video, int32_t w, int32_t h,
                       int64_t frames)
{
    struct pixel_charge *c = &j->charges[j->n_charges++];
    c->path = path;
    c->is_video = is_video;
    c->width = w;
    c->height = h;
    c->frames = frames;
}

/* Loads data: URIs and local files, then reads every source's header (nothing is decoded). A
 * header that cannot be read is charged nothing here: decoding it reports the error. A video
 * file that cannot be probed fails the item now (decoding would fail the same way). */
static void probe_work_cb(uv_work_t *w)
{
    struct pp_job *j = w->data;
    struct pp_ctx *c = j->c;
    const struct media_limits *ml = &c->cfg.media;
    uint64_t t0 = uv_hrtime();
    for (int s = 0; s < j->n_srcs && !j->failed; s++) {
        struct pp_src *src = &j->srcs[s];
        if (!src->ptr && load_source(c, src, &j->err))
            j->failed = 1;
    }
    j->charges = vl_calloc((size_t)j->n_srcs + 1, sizeof *j->charges);
    for (int s = 0; s < j->n_srcs && !j->failed;) {
        const struct api_part *part = j->srcs[s].part;
        char err[512];
        enum media_format f;
        int32_t iw, ih;
        if (part->kind == API_PART_VIDEO && part->n_frames > 0) {
            /* a frame list: only the frames the list keeps are decoded */
            int32_t *pick = vl_malloc((size_t)part->n_frames * sizeof *pick);
            int32_t keep = media_video_list_pick(part->n_frames, ml->video_max_frames, pick);
            for (int32_t k = 0; k < keep; k++) {
                struct pp_src *x = &j->srcs[s + pick[k]];
                if (media_image_info(x->ptr, x->len, &f, &iw, &ih, err, sizeof err) == 0)
                    add_charge(j, x->path, 0, iw, ih, 1);
            }
            free(pick);
            s += part->n_frames;
        } else if (part->kind == API_PART_VIDEO) {
            struct pp_src *x = &j->srcs[s++];
            int64_t frames;
            int rc = media_video_probe_file(x->ptr, x->len, ml, &iw, &ih, &frames, err, sizeof err);
            if (rc) {
                fail(j, media_status(rc), "invalid_media", part->path, err);
                break;
            }
            add_charge(j, x->path, 1, iw, ih, frames);
        } else {
            struct pp_src *x = &j->srcs[s++];
            if (media_image_info(x->ptr, x->len, &f, &iw, &ih, err, sizeof err) == 0)
                add_charge(j, x->path, 0, iw, ih, 1);
        }
    }
    j->out.media_ns += uv_hrtime() - t0;
}

static void after_probe_cb(uv_work_t *w, int status)
{
    struct pp_job *j = w->data;
    if (status == UV_ECANCELED && !j->failed)
        api_err_set(&j->err, 503, "server_error", "cancelled", j->it->path, "cancelled"),
            j->failed = 1;
    gate_report(j);
}

static void sources_ready(struct pp_job *j)
{
    j->work.data = j;
    if (j->failed) {
        gate_report(j);
        return;
    }
    uv_queue_work(j->c->loop, &j->work, probe_work_cb, after_probe_cb);
}

static void on_fetched(void *data, int status, const uint8_t *body, size_t n, const char *err)
{
    struct pp_src *x = data;
    struct pp_job *j = x->job;
    if (status == 0) {
        x->owned = fetch_body_steal();
        x->charged = fetch_body_charge_take();
        x->ptr = x->owned ? x->owned : (const uint8_t *)"";
        x->len = n;
    } else if (!j->failed && status == FETCH_ERR_BUSY) {
        memory_busy(&j->err, x->path, j->c->cfg.mem_budget);
        j->failed = 1;
    } else if (!j->failed) {
        int st = status == FETCH_ERR_TOO_LARGE  ? 413
                 : status == FETCH_ERR_TIMEOUT  ? 504
                 : status == FETCH_ERR_NETWORK  ? 502
                 : status == FETCH_ERR_CANCELED ? 503
                                                : 400;
        const char *code = status == FETCH_ERR_TOO_LARGE ? "media_too_large"
                           : status == FETCH_ERR_TIMEOUT ? "fetch_timeout"
                           : status == FETCH_ERR_BLOCKED ? "url_blocked"
                                                         : "fetch_failed";
        api_err_set(&j->err, st, "invalid_request_error", code, x->path, "%s: %s", x->path,
                    err ? err : "fetch failed");
        j->failed = 1;
    }
    uint64_t dt = uv_hrtime() - j->t_fetch0;
    if (dt > j->out.fetch_ns)
        j->out.fetch_ns = dt;
    if (--j->pending == 0)
        sources_ready(j);
}

/* ---- start ---------------------------------------------------------------------------------- */

static void add_src(struct pp_job *j, const struct api_part *part, const struct api_src *s,
                    const char *path, int video_file, int frame)
{
    struct pp_src *x = &j->srcs[j->n_srcs++];
    x->part = part;
    x->src = s;
    x->is_video_file = video_file;
    if (frame >= 0) {
        snprintf(x->fpath, sizeof x->fpath, "%s[%d]", path, frame);
        x->path = x->fpath;
    } else
        x->path = path;
    if (s->bytes) {
        x->ptr = s->bytes;
        x->len = s->len;
    }
}

static void collect_parts(struct pp_job *j, const struct api_part *parts, int n)
{
    for (int p = 0; p < n; p++) {
        const struct api_part *a = &parts[p];
        if (a->kind == API_PART_IMAGE)
            add_src(j, a, &a->src, a->path, 0, -1);
        else if (a->kind == API_PART_VIDEO && a->n_frames)
            for (int f = 0; f < a->n_frames; f++)
                add_src(j, a, &a->frames[f], a->path, 0, f);
        else if (a->kind == API_PART_VIDEO)
            add_src(j, a, &a->src, a->path, 1, -1);
    }
}

void pp_start(struct pp_ctx *c, const struct api_req *req, int index, struct pp_gate *gate,
              int want_preview, pp_done_fn cb, void *arg)
{
    struct pp_gate *own = gate ? NULL : pp_gate_new(c);
    struct pp_job *j = vl_calloc(1, sizeof *j);
    j->gate = gate ? gate : own;
    j->gate->n_items++;
    j->c = c;
    j->req = req;
    j->it = &req->items[index];
    j->index = index;
    j->preview = want_preview;
    j->cb = cb;
    j->arg = arg;
    const struct api_item *it = j->it;
    int n = 0;
    for (int m = 0; m < (it->n_msgs ? it->n_msgs : 1); m++) {
        const struct api_part *parts = it->n_msgs ? it->msgs[m].parts : it->parts;
        int np = it->n_msgs ? it->msgs[m].n_parts : it->n_parts;
        for (int p = 0; p < np; p++)
            n += parts[p].n_frames ? parts[p].n_frames : parts[p].kind != API_PART_TEXT;
    }
    j->srcs = vl_calloc((size_t)n + 1, sizeof *j->srcs);
    if (it->n_msgs)
        for (int m = 0; m < it->n_msgs; m++)
            collect_parts(j, it->msgs[m].parts, it->msgs[m].n_parts);
    else
        collect_parts(j, it->parts, it->n_parts);
    j->t_fetch0 = uv_hrtime();
    j->pending = 1; /* held until every fetch has started */
    for (int s = 0; s < j->n_srcs && !j->failed; s++) {
        struct pp_src *x = &j->srcs[s];
        if (x->ptr)
            continue;
        enum media_source_kind k = media_source_classify(x->src->url);
        if (k == MEDIA_SRC_DATA || k == MEDIA_SRC_FILE ||
            (k == MEDIA_SRC_INVALID && x->src->url[0] == '/'))
            continue; /* read on the pool */
        if (k != MEDIA_SRC_URL) {
            api_err_set(&j->err, 400, "invalid_request_error", "invalid_media", x->path,
                        "%s: not an http(s) URL, a data: URI or a file", x->path);
            j->failed = 1;
            break;
        }
        if (!c->fetcher) {
            char err[256];
            struct fetch_config fc = {.allow_cidrs = c->cfg.fetch_allow_cidrs};
            c->fetcher = fetcher_new(c->loop, &fc, err, sizeof err);
            if (!c->fetcher) {
                api_err_set(&j->err, 500, "server_error", "fetch_failed", x->path, "%s: %s",
                            x->path, err);
                j->failed = 1;
                break;
            }
        }
        struct fetch_opts fo = {.max_bytes = x->is_video_file ? c->cfg.media.max_video_bytes
                                                              : c->cfg.media.max_input_bytes,
                                .timeout_ms = (int64_t)(c->cfg.fetch_timeout_s * 1000),
                                .max_redirects = -1,
                                .mem_budget = c->cfg.mem_budget};
        x->job = j;
        j->pending++;
        int rc = fetch_start(c->fetcher, x->src->url, &fo, on_fetched, x);
        if (rc) {
            j->pending--;
            api_err_set(&j->err, 400, "invalid_request_error", "invalid_media", x->path,
                        "%s: cannot fetch this URL", x->path);
            j->failed = 1;
        }
    }
    if (--j->pending == 0)
        sources_ready(j);
    if (own)
        pp_gate_seal(own);
}

/* ---- blocking ------------------------------------------------------------------------------- */

struct blocking_res {
    int done;
    struct pp_out *out;
    struct api_err err;
    int failed;
};

static void blocking_cb(void *arg, int index, struct pp_out *out, const struct api_err *err)
{
    struct blocking_res *r = arg;
    r->done = 1;
    if (err) {
        r->failed = 1;
        r->err = *err;
    } else
        r->out = out;
}

int pp_run_blocking(struct pp_ctx *c, const struct api_req *req, int index, int want_preview,
                    struct pp_out *out, struct api_err *e)
{
    struct blocking_res r = {0};
    pp_start(c, req, index, NULL, want_preview, blocking_cb, &r);
    while (!r.done)
        uv_run(c->loop, UV_RUN_ONCE);
    if (r.failed) {
        *e = r.err;
        return -1;
    }
    *out = *r.out;
    free(r.out);
    return 0;
}
