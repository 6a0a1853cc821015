/* The HTTP routes of the gateway (docs/api.md): the embeddings API and its preview, health,
 * readiness, metrics, models and the OpenAPI document; and, before any body is read, the guard
 * (docs/security.md): API keys and per-client admission. Translation only: validation is
 * api_parse.c, the pipeline api_job.c. */
#include "gateway/api_http.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "gateway/api_job.h"
#include "gateway/mpapi.h"
#include "gateway/openapi.h"

static void respond_json(struct http_req *req, int status, const char *extra, const char *body,
                         size_t len)
{
    http_respond(req, status, "application/json", extra, body, len);
}

/* retry_after_s: the Retry-After of a 429 or 503; 0: the gateway's default */
static void respond_err(struct api_http *h, struct http_req *req, const struct api_err *e,
                        int retry_after_s)
{
    size_t len;
    char *body = api_err_json(e, &len);
    char extra[256] = "";
    int n = 0;
    if (e->status == 429 || e->status == 503)
        n += snprintf(extra + n, sizeof extra - (size_t)n, "Retry-After: %d\r\n",
                      retry_after_s > 0 ? retry_after_s : h->retry_after_s);
    if (req->request_id)
        snprintf(extra + n, sizeof extra - (size_t)n, "X-Request-Id: %s\r\n", req->request_id);
    respond_json(req, e->status, extra, body, len);
    free(body);
}

/* The success body is rendered on the thread pool: for float output at thousands of vectors
 * per second, formatting numbers would otherwise keep the loop thread busy. */
struct render {
    uv_work_t w;
    struct api_job *j;
    char *body;
    size_t len;
};

static void render_work(uv_work_t *w)
{
    struct render *r = w->data;
    r->body = r->j->preview ? api_job_preview_json(r->j, &r->len) : api_job_json(r->j, &r->len);
}

static void answered(struct api_http *h, struct api_job *j)
{
    api_job_release(j);
    h->active_jobs--;
    if (h->on_idle && h->active_jobs == 0)
        h->on_idle(h);
}

static void render_done(uv_work_t *w, int status)
{
    struct render *r = w->data;
    struct api_job *j = r->j;
    struct http_req *req = j->tp;
    struct api_http *h = j->ctx->user_http;
    if (!r->body) { /* the pool refused the work (shutting down): render here */
        render_work(w);
    }
    char fp[17], extra[256];
    api_job_fingerprint(j, fp);
    int n = snprintf(extra, sizeof extra, "X-Embedding-Fingerprint: %s\r\n", fp);
    if (req->request_id)
        snprintf(extra + n, sizeof extra - (size_t)n, "X-Request-Id: %s\r\n", req->request_id);
    respond_json(req, 200, extra, r->body, r->len);
    free(r->body);
    free(r);
    answered(h, j);
}

static void job_done(struct api_job *j)
{
    struct http_req *req = j->tp;
    struct api_http *h = j->ctx->user_http;
    if (j->status != 200) {
        respond_err(h, req, &j->err, j->retry_after_s);
        answered(h, j);
        return;
    }
    struct render *r = vl_calloc(1, sizeof *r);
    r->j = j;
    r->w.data = r;
    if (uv_queue_work(j->ctx->loop, &r->w, render_work, render_done) != 0)
        render_done(&r->w, 0);
}

/* The per-client pixel rate (docs/security.md): the request's decode work, known once its
 * headers are read, is charged to its client before anything is decoded. */
static int charge_pixels(struct api_job *j, int64_t pixels, struct api_err *e)
{
    struct http_req *req = j->tp;
    struct api_http *h = j->ctx->user_http;
    struct client *c = req->admission;
    uint64_t wait_ms = 0;
    if (!c ||
        clients_take_pixels(&h->guard.clients, c, uv_now(j->ctx->loop), pixels, &wait_ms) == 0)
        return 0;
    h->guard.rejected_pixels++;
    j->retry_after_s = (int)((wait_ms + 999) / 1000);
    api_err_set(e, 429, "rate_limit_error", "client_pixel_rate", NULL,
                "this client is over its rate of %g decoded pixels per second; this request's "
                "images and videos need %lld (nothing was decoded; retry in %d s)",
                h->guard.clients.lim.pixel_rate, (long long)pixels, j->retry_after_s);
    return -1;
}

static void embeddings(struct api_http *h, struct http_req *req, int preview)
{
    struct api_err e;
    if (req->content_type && strncmp(req->content_type, "application/json", 16) != 0 &&
        strncmp(req->content_type, "application/x-www-form-urlencoded", 33) != 0) {
        api_err_set(&e, 415, "invalid_request_error", "unsupported_media_type", NULL,
                    "the body must be application/json");
        metrics_error(h->ctx->metrics, 415, e.code);
        respond_err(h, req, &e, 0);
        return;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)req->body, req->body_len, &end, 0);
    if (root) {
        while (end && end < (const char *)req->body + req->body_len &&
               (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
            end++;
        if (end != (const char *)req->body + req->body_len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at ? (long)(at - (const char *)req->body) : -1;
        if (off < 0 || (size_t)off > req->body_len)
            off = end ? (long)(end - (const char *)req->body) : 0;
        api_err_set(&e, 400, "invalid_request_error", "invalid_json", NULL,
                    "the body is not valid JSON (error near byte %ld)", off);
        metrics_error(h->ctx->metrics, 400, e.code);
        respond_err(h, req, &e, 0);
        return;
    }
    struct api_job *j = vl_calloc(1, sizeof *j);
    int rc = api_parse(root, &h->ctx->lim, NULL, 0, &j->req, &e);
    cJSON_Delete(root);
    /* the request now holds its own copies of the body's strings: the body goes, and its budget
     * charge shrinks to those copies (a data: URI is held once, not twice, while it waits) */
    if (!rc)
        http_req_drop_body(req, (int64_t)api_req_string_bytes(&j->req));
    if (rc) {
        api_req_free(&j->req);
        free(j);
        metrics_error(h->ctx->metrics, e.status, e.code);
        respond_err(h, req, &e, 0);
        return;
    }
    j->ctx = h->ctx;
    j->api = MA_HTTP;
    j->preview = preview;
    j->on_done = job_done;
    j->tp = req;
    if (h->guard.clients.lim.pixel_rate > 0)
        j->charge_pixels = charge_pixels;
    req->user = j;
    h->active_jobs++;
    api_job_start(j);
}

/* ---- the guard: API keys and per-client admission (docs/security.md) ---------------------- */

static void refuse(struct api_http *h, struct http_req *req, const struct api_err *e,
                   const char *extra_in)
{
    size_t len;
    char *body = api_err_json(e, &len);
    char extra[512];
    int n = snprintf(extra, sizeof extra, "%s", extra_in ? extra_in : "");
    if (req->request_id && n >= 0 && (size_t)n < sizeof extra)
        snprintf(extra + n, sizeof extra - (size_t)n, "X-Request-Id: %s\r\n", req->request_id);
    metrics_error(h->ctx->metrics, e->status, e->code);
    respond_json(req, e->status, extra, body, len);
    free(body);
}

static void on_head(struct http_server *s, struct http_req *req)
{
    struct api_http *h = s->user;
    struct api_guard *g = &h->guard;
    const char *p = req->path;
    int is_metrics = !strcmp(p, "/metrics");
    if (!strcmp(p, "/health") || !strcmp(p, "/ready") || (is_metrics && g->open_metrics))
        return;
    char name[64];
    struct api_err e;
    if (g->keys.n) {
        int idx = -1;
        enum auth_result r = auth_check(&g->keys, req->authorization, req->api_key, &idx);
        if (r != AUTH_OK) {
            if (r == AUTH_MISSING) {
                g->auth_missing++;
                api_err_set(&e, 401, "invalid_request_error", "missing_api_key", NULL,
                            "no API key: send the header \"Authorization: Bearer <key>\"");
                vl_debug("401 missing API key from %s for %.200s", req->peer, p);
                return refuse(h, req, &e, "WWW-Authenticate: Bearer realm=\"vlembed\"\r\n");
            }
            if (r == AUTH_MALFORMED) {
                g->auth_malformed++;
                api_err_set(&e, 401, "invalid_request_error", "invalid_api_key", NULL,
                            "the credential is not of the form \"Authorization: Bearer <key>\"");
            } else {
                g->auth_invalid++;
                api_err_set(&e, 401, "invalid_request_error", "invalid_api_key", NULL,
                            "the API key is not valid");
            }
            vl_debug("401 invalid API key from %s for %.200s", req->peer, p);
            return refuse(
                h, req, &e,
                "WWW-Authenticate: Bearer realm=\"vlembed\", error=\"invalid_token\"\r\n");
        }
        snprintf(name, sizeof name, "key:%016llx", (unsigned long long)g->keys.keys[idx].id);
    } else
        snprintf(name, sizeof name, "%s", req->peer);
    if (!g->limits_on || is_metrics)
        return;
    uint64_t now = uv_now(s->loop);
    struct client *c = clients_get(&g->clients, name, now);
    if (!c) {
        g->rejected_table_full++;
        api_err_set(&e, 429, "rate_limit_error", "too_many_clients", NULL,
                    "the gateway tracks too many clients at once; retry later");
        return refuse(h, req, &e, "Retry-After: 1\r\n");
    }
    const struct client_limits *cl = &g->clients.lim;
    if (cl->max_inflight > 0 && c->inflight >= cl->max_inflight) {
        clients_put(&g->clients, c, now);
        g->rejected_inflight++;
        api_err_set(&e, 429, "rate_limit_error", "client_concurrency", NULL,
                    "this client already has %d requests in flight (the limit)", cl->max_inflight);
        char extra[64];
        snprintf(extra, sizeof extra, "Retry-After: %d\r\n", h->retry_after_s);
        return refuse(h, req, &e, extra);
    }
    uint64_t wait_ms = 0;
    if (clients_take(&g->clients, c, now, &wait_ms)) {
        clients_put(&g->clients, c, now);
        g->rejected_rate++;
        api_err_set(&e, 429, "rate_limit_error", "client_rate", NULL,
                    "this client is over its rate of %g requests per second", cl->rate);
        char extra[64];
        snprintf(extra, sizeof extra, "Retry-After: %llu\r\n",
                 (unsigned long long)((wait_ms + 999) / 1000));
        return refuse(h, req, &e, extra);
    }
    c->inflight++;
    req->admission = c;
}

/* The request is answered (or dropped with its connection): its admission ends. */
static void on_release(struct http_server *s, struct http_req *req)
{
    struct api_http *h = s->user;
    struct client *c = req->admission;
    req->admission = NULL;
    c->inflight--;
    clients_put(&h->guard.clients, c, uv_now(s->loop));
}

static char *guard_metrics(struct api_http *h, size_t *len)
{
    const struct api_guard *g = &h->guard;
    const struct http_server *s = h->srv;
    char *b = vl_malloc(4096);
    int n = snprintf(
        b, 4096,
        "# HELP vlembed_auth_failures_total HTTP requests refused 401 for want of a valid API "
        "key.\n# TYPE vlembed_auth_failures_total counter\n"
        "vlembed_auth_failures_total{reason=\"missing\"} %llu\n"
        "vlembed_auth_failures_total{reason=\"malformed\"} %llu\n"
        "vlembed_auth_failures_total{reason=\"invalid\"} %llu\n"
        "# HELP vlembed_client_rejected_total HTTP requests and connections refused 429 by the "
        "per-client limits.\n# TYPE vlembed_client_rejected_total counter\n"
        "vlembed_client_rejected_total{reason=\"connections\"} %llu\n"
        "vlembed_client_rejected_total{reason=\"inflight\"} %llu\n"
        "vlembed_client_rejected_total{reason=\"rate\"} %llu\n"
        "vlembed_client_rejected_total{reason=\"pixel_rate\"} %llu\n"
        "vlembed_client_rejected_total{reason=\"too_many_clients\"} %llu\n"
        "# HELP vlembed_clients Clients tracked by the per-client limits.\n"
        "# TYPE vlembed_clients gauge\nvlembed_clients %d\n"
        "# HELP vlembed_http_timeouts_total HTTP requests answered 408, by the deadline missed.\n"
        "# TYPE vlembed_http_timeouts_total counter\n"
        "vlembed_http_timeouts_total{kind=\"header\"} %llu\n"
        "vlembed_http_timeouts_total{kind=\"body_stall\"} %llu\n"
        "vlembed_http_timeouts_total{kind=\"body_rate\"} %llu\n"
        "vlembed_http_timeouts_total{kind=\"request\"} %llu\n"
        "# HELP vlembed_http_connections_rejected_total HTTP connections closed at accept over "
        "--max-connections.\n# TYPE vlembed_http_connections_rejected_total counter\n"
        "vlembed_http_connections_rejected_total %llu\n",
        (unsigned long long)g->auth_missing, (unsigned long long)g->auth_malformed,
        (unsigned long long)g->auth_invalid, (unsigned long long)s->n_rejected_client_conns,
        (unsigned long long)g->rejected_inflight, (unsigned long long)g->rejected_rate,
        (unsigned long long)g->rejected_pixels, (unsigned long long)g->rejected_table_full,
        g->clients.n, (unsigned long long)s->n_timeouts[HTTP_TO_HEADER],
        (unsigned long long)s->n_timeouts[HTTP_TO_BODY_STALL],
        (unsigned long long)s->n_timeouts[HTTP_TO_BODY_RATE],
        (unsigned long long)s->n_timeouts[HTTP_TO_REQUEST],
        (unsigned long long)s->n_rejected_conns);
    *len = n < 4096 ? (size_t)n : 4095;
    return b;
}

/* The send deadline and the unsent-answer cap of both transports (gateway/send_deadline.h), one
 * metric family each with a transport label. */
static char *send_metrics(struct api_http *h, size_t *len)
{
    const struct http_server *s = h->srv;
    const struct mpapi *m = h->ctx->user_mp;
    char *b = vl_malloc(2048);
    int n = snprintf(
        b, 2048,
        "# HELP vlembed_send_timeouts_total Connections closed because the answers queued for "
        "them made no progress for send-timeout-s (a client not reading), by transport.\n"
        "# TYPE vlembed_send_timeouts_total counter\n"
        "vlembed_send_timeouts_total{transport=\"http\"} %llu\n"
        "vlembed_send_timeouts_total{transport=\"msgpack\"} %llu\n"
        "# HELP vlembed_send_paused_total Times reading a connection paused because more than "
        "max-unsent-bytes of its answers were queued, by transport.\n"
        "# TYPE vlembed_send_paused_total counter\n"
        "vlembed_send_paused_total{transport=\"http\"} %llu\n"
        "vlembed_send_paused_total{transport=\"msgpack\"} %llu\n"
        "# HELP vlembed_unsent_bytes Bytes of answers queued for clients' sockets that the kernel "
        "has not taken yet, by transport.\n"
        "# TYPE vlembed_unsent_bytes gauge\n"
        "vlembed_unsent_bytes{transport=\"http\"} %zu\n"
        "vlembed_unsent_bytes{transport=\"msgpack\"} %zu\n",
        (unsigned long long)s->n_send_timeouts, (unsigned long long)(m ? m->n_send_timeouts : 0),
        (unsigned long long)s->n_send_paused, (unsigned long long)(m ? m->n_send_paused : 0),
        http_server_unsent(s), m ? mpapi_unsent(m) : (size_t)0);
    *len = n < 2048 ? (size_t)n : 2047;
    return b;
}

static void handler(struct http_server *s, struct http_req *req)
{
    struct api_http *h = s->user;
    const char *p = req->path;
    int get = req->method == HTTP_GET;
    int post = req->method == HTTP_POST;
    struct api_err e;
    if (!strcmp(p, "/v1/embeddings") || !strcmp(p, "/embeddings")) {
        if (post)
            return embeddings(h, req, 0);
    } else if (!strcmp(p, "/v1/embeddings/preview")) {
        if (post)
            return embeddings(h, req, 1);
    } else if (!strcmp(p, "/health")) {
        if (get)
            return respond_json(req, 200, NULL, "{\"status\":\"ok\"}", 15);
    } else if (!strcmp(p, "/ready")) {
        if (get) {
            int n = router_ready_count(h->ctx->router);
            char body[128];
            int len = snprintf(body, sizeof body, "{\"status\":\"%s\",\"workers_ready\":%d}",
                               n > 0 && !h->draining ? "ready" : "not_ready", n);
            if (n > 0 && !h->draining)
                return respond_json(req, 200, NULL, body, (size_t)len);
            char extra[64];
            snprintf(extra, sizeof extra, "Retry-After: %d\r\n", h->retry_after_s);
            return respond_json(req, 503, extra, body, (size_t)len);
        }
    } else if (!strcmp(p, "/metrics")) {
        if (get) {
            size_t len;
            char *body = metrics_render(h->ctx->metrics, h->ctx->router, h->srv->n_conns, &len);
            size_t len2;
            char *more = guard_metrics(h, &len2);
            body = vl_realloc(body, len + len2 + 1);
            memcpy(body + len, more, len2 + 1);
            free(more);
            len += len2;
            len2 = 0;
            if (h->ctx->user_mp) { /* the msgpack socket's connections and deadlines */
                more = mpapi_metrics(h->ctx->user_mp, &len2);
                body = vl_realloc(body, len + len2 + 1);
                memcpy(body + len, more, len2 + 1);
                free(more);
                len += len2;
            }
            more = send_metrics(h, &len2);
            body = vl_realloc(body, len + len2 + 1);
            memcpy(body + len, more, len2 + 1);
            free(more);
            http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, body,
                         len + len2);
            free(body);
            return;
        }
    } else if (!strcmp(p, "/v1/models") || !strcmp(p, "/models")) {
        if (get) {
            const struct router_worker *w = router_any_ready(h->ctx->router);
            cJSON *root = cJSON_CreateObject();
            cJSON_AddStringToObject(root, "object", "list");
            cJSON *data = cJSON_AddArrayToObject(root, "data");
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "id", h->ctx->model_name);
            cJSON_AddStringToObject(m, "object", "model");
            cJSON_AddNumberToObject(m, "created", 0);
            cJSON_AddStringToObject(m, "owned_by", "vlembed");
            if (w) {
                cJSON_AddNumberToObject(m, "dimensions", w->dim);
                cJSON_AddStringToObject(m, "checkpoint", w->fingerprint);
            }
            cJSON_AddNumberToObject(m, "max_input_tokens", h->ctx->pp->cfg.max_tokens);
            cJSON_AddItemToArray(data, m);
            char *body = cJSON_PrintUnformatted(root);
            cJSON_Delete(root);
            respond_json(req, 200, NULL, body, strlen(body));
            free(body);
            return;
        }
    } else if (!strcmp(p, "/openapi.json")) {
        if (get)
            return respond_json(req, 200, NULL, openapi_json, strlen(openapi_json));
    } else {
        api_err_set(&e, 404, "invalid_request_error", "not_found", NULL, "no route %s",
                    strlen(p) > 200 ? "(long path)" : p);
        return respond_err(h, req, &e, 0);
    }
    api_err_set(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                "method not allowed on %s", p);
    respond_err(h, req, &e, 0);
}

/* The client went away: stop the job (its admission is released, its items still queued on the
 * router are forgotten); the answer is then dropped by http_respond. */
static void on_cancel(struct http_server *s, struct http_req *req)
{
    if (req->user)
        api_job_cancel(req->user);
}

int api_http_init(struct api_http *h, struct http_server *srv, struct api_ctx *ctx,
                  const struct http_limits *lim)
{
    memset(h, 0, sizeof *h);
    h->ctx = ctx;
    h->srv = srv;
    h->retry_after_s = 1;
    ctx->user_http = h;
    int rc = http_server_init(srv, ctx->loop, lim, handler, h);
    srv->on_cancel = on_cancel;
    srv->on_head = on_head;
    srv->on_release = on_release;
    struct client_limits none = {0};
    clients_init(&h->guard.clients, &none);
    return rc;
}

void api_http_set_guard(struct api_http *h, struct auth_keys *keys, int open_metrics,
                        const struct client_limits *cl)
{
    struct api_guard *g = &h->guard;
    auth_keys_free(&g->keys);
    if (keys) {
        g->keys = *keys;
        memset(keys, 0, sizeof *keys);
    }
    g->open_metrics = open_metrics;
    if (cl) {
        clients_free(&g->clients);
        clients_init(&g->clients, cl);
        g->limits_on = cl->max_inflight > 0 || cl->rate > 0 || cl->pixel_rate > 0;
        /* connection caps are counted by the HTTP server, per address */
        h->srv->clients = cl->max_conns > 0 ? &g->clients : NULL;
        h->srv->lim.max_client_conns = cl->max_conns;
    }
}

int api_http_reload_keys(struct api_http *h, const char *path, char *err, size_t errlen)
{
    struct auth_keys k;
    if (auth_keys_load(&k, path, err, errlen))
        return -1;
    auth_keys_free(&h->guard.keys);
    h->guard.keys = k;
    return 0;
}
