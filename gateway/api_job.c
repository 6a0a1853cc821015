/* The request pipeline shared by both APIs (see api_job.h). */
#include "gateway/api_job.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"

static void job_unref(struct api_job *j);

/* The gate's last check before decoding: a finished request (timed out, its client gone, an
 * item failed) decodes nothing more; then the transport's per-client charge. */
static int gate_check(void *arg, int64_t pixels, struct api_err *e)
{
    struct api_job *j = arg;
    if (j->finished) {
        api_err_set(e, 503, "server_error", "cancelled", NULL,
                    "the request ended before its media were decoded");
        return -1;
    }
    return j->charge_pixels ? j->charge_pixels(j, pixels, e) : 0;
}

static void finish(struct api_job *j)
{
    if (j->finished)
        return;
    j->finished = 1;
    j->t_end = uv_hrtime();
    uv_timer_stop(&j->timer);
    /* the router's request is released when the job is freed, never from inside a router
     * callback (router.h) */
    if (j->admitted) {
        router_unadmit(j->ctx->router, j->admitted);
        j->admitted = 0;
    }
    struct metrics *m = j->ctx->metrics;
    if (j->status == 200) {
        metrics_observe(m, MS_TOTAL, (double)(j->t_end - j->t0) / 1e9);
        if (!j->preview) {
            metrics_observe(m, MS_PREPROCESS, (double)(j->t_pp - j->t0) / 1e9);
            metrics_observe(m, MS_INFERENCE, (double)(j->t_end - j->t_pp) / 1e9);
            for (int i = 0; i < j->n; i++) {
                struct pp_out *o = j->pp[i];
                m->items[o->n_videos ? 2 : o->n_images ? 1 : 0]++;
                m->tokens[0] += (uint64_t)o->text_tokens;
                m->tokens[1] += (uint64_t)o->image_tokens;
                m->tokens[2] += (uint64_t)o->video_tokens;
                m->images += (uint64_t)o->n_images;
                m->videos += (uint64_t)o->n_videos;
                m->decoded_pixels += (uint64_t)o->decoded_pixels;
            }
        }
    } else {
        metrics_error(m, j->status, j->err.code);
        if (!strcmp(j->err.code, "too_many_pixels"))
            m->rejected_pixels++;
    }
    j->on_done(j);
}

static void fail(struct api_job *j, const struct api_err *e)
{
    if (j->finished)
        return;
    j->status = e->status;
    j->err = *e;
    finish(j);
}

static void on_timeout(uv_timer_t *t)
{
    struct api_job *j = t->data;
    struct api_err e;
    api_err_set(&e, 504, "timeout_error", "deadline_exceeded", NULL,
                "the request did not complete within its deadline");
    fail(j, &e);
}

static void on_vector(void *owner, int index, const float *vec, int dim, const char *code,
                      const char *err)
{
    struct api_job *j = owner;
    if (j->finished)
        return;
    if (!vec) {
        struct api_err e;
        int status = 500;
        const char *type = "server_error";
        if (!strcmp(code, "deadline_exceeded"))
            status = 504, type = "timeout_error";
        else if (!strcmp(code, "no_worker"))
            status = 503, type = "service_unavailable";
        else if (!strcmp(code, "worker_died"))
            status = 502;
        else if (!strcmp(code, "invalid_item"))
            status = 422, type = "invalid_request_error";
        api_err_set(&e, status, type, code, j->req.items[index].path, "%s: %s",
                    j->req.items[index].path, err ? err : code);
        fail(j, &e);
        return;
    }
    if (!j->vecs) {
        j->dim = dim;
        j->vecs = vl_calloc((size_t)j->n * (size_t)dim, sizeof(float));
    }
    if (dim != j->dim) {
        struct api_err e;
        api_err_set(&e, 500, "server_error", "inconsistent_workers", NULL,
                    "workers returned vectors of different widths (%d and %d)", j->dim, dim);
        fail(j, &e);
        return;
    }
    memcpy(j->vecs + (size_t)index * dim, vec, (size_t)dim * sizeof(float));
    if (--j->vec_pending == 0) {
        j->status = 200;
        finish(j);
    }
}

static void route(struct api_job *j)
{
    const struct router_worker *w = router_any_ready(j->ctx->router);
    if (w)
        snprintf(j->checkpoint, sizeof j->checkpoint, "%s", w->fingerprint);
    if (w && j->req.dimensions > w->dim) {
        struct api_err e;
        api_err_set(&e, 400, "invalid_request_error", "invalid_value", "dimensions",
                    "dimensions: %d is more than the model's width of %d", j->req.dimensions,
                    w->dim);
        fail(j, &e);
        return;
    }
    struct vl_item *items = vl_calloc((size_t)j->n, sizeof *items);
    for (int i = 0; i < j->n; i++)
        items[i] = j->pp[i]->item; /* shallow: the pp_out keeps ownership */
    j->vec_pending = j->n;
    uint64_t deadline =
        j->t0 +
        (uint64_t)((j->req.timeout_s > 0 ? j->req.timeout_s : j->ctx->default_timeout_s) * 1e9);
    /* the router keeps a pointer to items until release: both are freed with the job */
    j->items = items;
    j->rq = router_submit(j->ctx->router, j, items, j->n, deadline, on_vector);
}

static void on_pp(void *arg, int index, struct pp_out *out, const struct api_err *err)
{
    struct api_job *j = arg;
    if (j->finished) {
        if (out) {
            pp_out_free(out);
            free(out);
        }
        job_unref(j);
        return;
    }
    if (err) {
        fail(j, err);
        job_unref(j);
        return;
    }
    j->pp[index] = out;
    if (--j->pp_pending == 0) {
        j->t_pp = uv_hrtime();
        if (j->preview) {
            j->status = 200;
            finish(j);
        } else
            route(j);
    }
    job_unref(j);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct api_job *j = h->data;
    if (j->rq)
        router_release(j->ctx->router, j->rq);
    for (int i = 0; i < j->n && j->pp; i++)
        if (j->pp[i]) {
            pp_out_free(j->pp[i]);
            free(j->pp[i]);
        }
    free(j->pp);
    free(j->vecs);
    free(j->items);
    api_req_free(&j->req);
    if (j->on_free)
        j->on_free(j);
    free(j);
}

static void job_unref(struct api_job *j)
{
    if (--j->refs == 0)
        uv_close((uv_handle_t *)&j->timer, on_timer_closed);
}

void api_job_cancel(struct api_job *j)
{
    struct api_err e;
    api_err_set(&e, 499, "invalid_request_error", "client_closed", NULL,
                "the client closed the connection before the answer");
    fail(j, &e);
}

void api_job_release(struct api_job *j)
{
    job_unref(j);
}

void api_job_start(struct api_job *j)
{
    struct api_ctx *c = j->ctx;
    j->t0 = uv_hrtime();
    j->refs = 1;
    j->n = j->req.n_items;
    uv_timer_init(c->loop, &j->timer);
    j->timer.data = j;
    c->metrics->requests[j->api]++;
    j->pp = vl_calloc((size_t)(j->n ? j->n : 1), sizeof *j->pp);
    /* admission, before any work */
    struct api_err e;
    int rc = router_admit(c->router, j->n);
    if (rc == -1 && j->preview) /* a preview needs no worker */
        rc = 0, c->router->admitted += j->n;
    if (rc == -1) {
        c->metrics->rejected_no_worker++;
        api_err_set(&e, 503, "service_unavailable", "no_ready_worker", NULL,
                    "no worker is ready; retry shortly");
        fail(j, &e);
        return;
    }
    if (rc == -2) {
        c->metrics->rejected_overloaded++;
        api_err_set(&e, 429, "rate_limit_error", "overloaded", NULL,
                    "the server is at its limit of %lld items in flight; retry shortly",
                    (long long)c->router->max_items_inflight);
        fail(j, &e);
        return;
    }
    j->admitted = j->n;
    const struct router_worker *w = router_any_ready(c->router);
    if (w)
        snprintf(j->checkpoint, sizeof j->checkpoint, "%s", w->fingerprint);
    if (w && j->req.dimensions > w->dim) {
        api_err_set(&e, 400, "invalid_request_error", "invalid_value", "dimensions",
                    "dimensions: %d is more than the model's width of %d", j->req.dimensions,
                    w->dim);
        fail(j, &e);
        return;
    }
    double to = j->req.timeout_s > 0 ? j->req.timeout_s : c->default_timeout_s;
    uv_timer_start(&j->timer, on_timeout, (uint64_t)(to * 1000), 0);
    j->pp_pending = j->n;
    /* every item's headers are charged to the request's pixel budget before any is decoded */
    struct pp_gate *gate = pp_gate_new(c->pp);
    pp_gate_set_check(gate, gate_check, j);
    for (int i = 0; i < j->n && !j->finished; i++) {
        j->refs++;
        pp_start(c->pp, &j->req, i, gate, j->preview, on_pp, j);
    }
    pp_gate_seal(gate);
}

int api_job_out_dim(const struct api_job *j)
{
    return j->req.dimensions > 0 && j->req.dimensions < j->dim ? j->req.dimensions : j->dim;
}

void api_job_fingerprint(const struct api_job *j, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ull;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s|%s|%d|%s", j->checkpoint, j->ctx->pp_version,
                     api_job_out_dim(j), api_encoding_name(j->req.encoding));
    for (int i = 0; i < n && i < (int)sizeof buf; i++) {
        h ^= (uint8_t)buf[i];
        h *= 0x100000001b3ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* ---- JSON rendering (hand-written: float arrays are most of the bytes) ---------------------- */

struct sb {
    char *p;
    size_t n, cap;
};

static void sb_reserve(struct sb *b, size_t more)
{
    if (b->n + more + 1 > b->cap) {
        b->cap = (b->n + more + 1) * 2;
        b->p = vl_realloc(b->p, b->cap);
    }
}

static void put(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if ((size_t)k >= b->cap - b->n) {
        sb_reserve(b, (size_t)k);
        va_start(ap, fmt);
        vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
    }
    b->n += (size_t)k;
}

cJSON *api_job_meta(const struct api_job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", j->ctx->model_name);
    int64_t tt = 0, it = 0, vt = 0, ni = 0, nv = 0;
    uint64_t fetch = 0, media = 0, tokn = 0;
    for (int i = 0; i < j->n; i++) {
        const struct pp_out *p = j->pp[i];
        tt += p->text_tokens;
        it += p->image_tokens;
        vt += p->video_tokens;
        ni += p->n_images;
        nv += p->n_videos;
        if (p->fetch_ns > fetch)
            fetch = p->fetch_ns;
        media += p->media_ns;
        tokn += p->tokenize_ns;
    }
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)(tt + it + vt));
    cJSON_AddNumberToObject(u, "total_tokens", (double)(tt + it + vt));
    cJSON_AddNumberToObject(u, "text_tokens", (double)tt);
    cJSON_AddNumberToObject(u, "image_tokens", (double)it);
    cJSON_AddNumberToObject(u, "video_tokens", (double)vt);
    cJSON_AddNumberToObject(u, "images", (double)ni);
    cJSON_AddNumberToObject(u, "videos", (double)nv);
    uint64_t end = j->t_end ? j->t_end : uv_hrtime();
    cJSON *t = cJSON_AddObjectToObject(o, "timings");
    /* rounded to microseconds so that the JSON stays short */
#define MS(x) (nearbyint((double)(x) / 1e3) / 1e3)
    cJSON_AddNumberToObject(t, "preprocess_ms", MS(j->t_pp - j->t0));
    cJSON_AddNumberToObject(t, "fetch_ms", MS(fetch));
    cJSON_AddNumberToObject(t, "decode_resize_ms", MS(media));
    cJSON_AddNumberToObject(t, "tokenize_ms", MS(tokn));
    cJSON_AddNumberToObject(t, "inference_ms", j->preview ? 0.0 : MS(end - j->t_pp));
    cJSON_AddNumberToObject(t, "total_ms", MS(end - j->t0));
#undef MS
    char fp[17];
    api_job_fingerprint(j, fp);
    cJSON *f = cJSON_AddObjectToObject(o, "fingerprint");
    cJSON_AddStringToObject(f, "id", fp);
    cJSON_AddStringToObject(f, "checkpoint", j->checkpoint);
    cJSON_AddStringToObject(f, "preprocessing", j->ctx->pp_version);
    cJSON_AddNumberToObject(f, "dimensions", api_job_out_dim(j));
    cJSON_AddStringToObject(f, "encoding", api_encoding_name(j->req.encoding));
    return o;
}

/* Appends the meta object's members (without its braces) to b. */
static void put_meta(struct sb *b, const struct api_job *j)
{
    cJSON *m = api_job_meta(j);
    char *s = cJSON_PrintUnformatted(m);
    size_t n = strlen(s);
    put(b, "%.*s", (int)(n - 2), s + 1);
    free(s);
    cJSON_Delete(m);
}

char *api_job_json(const struct api_job *j, size_t *len)
{
    int d = api_job_out_dim(j);
    struct sb b = {NULL, 0, 0};
    sb_reserve(&b, (size_t)j->n * ((size_t)d * 16 + 96) + 1024);
    put(&b, "{\"object\":\"list\",\"data\":[");
    float *tmp = vl_malloc((size_t)(d + 8) * sizeof(float));
    for (int i = 0; i < j->n; i++) {
        put(&b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
        int k = api_postprocess(j->vecs + (size_t)i * j->dim, j->dim, d, j->req.encoding, tmp);
        switch (j->req.encoding) {
        case API_ENC_FLOAT:
            sb_reserve(&b, (size_t)k * 25 + 2);
            b.p[b.n++] = '[';
            for (int x = 0; x < k; x++) {
                if (x)
                    b.p[b.n++] = ',';
                b.n += (size_t)api_format_float(tmp[x], b.p + b.n);
            }
            b.p[b.n++] = ']';
            break;
        case API_ENC_BASE64: {
            char *s = api_base64(tmp, (size_t)k * sizeof(float));
            put(&b, "\"%s\"", s);
            free(s);
            break;
        }
        case API_ENC_INT8:
        case API_ENC_UINT8:
        case API_ENC_BINARY: {
            sb_reserve(&b, (size_t)k * 5 + 2);
            b.p[b.n++] = '[';
            for (int x = 0; x < k; x++) {
                int v = j->req.encoding == API_ENC_INT8 ? ((int8_t *)tmp)[x] : ((uint8_t *)tmp)[x];
                b.n += (size_t)snprintf(b.p + b.n, 6, x ? ",%d" : "%d", v);
            }
            b.p[b.n++] = ']';
            break;
        }
        }
        put(&b, "}");
    }
    free(tmp);
    put(&b, "],");
    put_meta(&b, j);
    put(&b, "}");
    *len = b.n;
    return b.p;
}

char *api_job_preview_json(const struct api_job *j, size_t *len)
{
    struct sb b = {NULL, 0, 0};
    sb_reserve(&b, 4096);
    put(&b, "{\"object\":\"preview\",\"data\":[");
    for (int i = 0; i < j->n; i++) {
        char *s = cJSON_PrintUnformatted(j->pp[i]->preview);
        put(&b, "%s%s", i ? "," : "", s);
        free(s);
    }
    put(&b, "],");
    put_meta(&b, j);
    put(&b, "}");
    *len = b.n;
    return b.p;
}
