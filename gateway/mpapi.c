/* The msgpack API (see mpapi.h; frames and fields in docs/api.md). A request frame is checked
 * (common/msgpack_util.h), unpacked, and converted to the same JSON tree the HTTP API parses,
 * with each bin replaced by a reference "\x01bin:N" into the frame (kept alive with the job),
 * so both APIs share one validator and one pipeline. */
#include "gateway/mpapi.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/msgpack_util.h"

struct mp_conn {
    uv_pipe_t pipe;
    struct mpapi *m;
    struct vl_frame_reader rd;
    int refs; /* 1 while open + 1 per request in flight */
    int dead, reading, inflight;
    struct mp_conn *prev, *next;
    struct mp_req *reqs;
};

struct mp_req {
    struct mp_conn *c;
    uint8_t *payload; /* the frame: bins point into it */
    char *id;         /* the request id, packed msgpack bytes */
    size_t id_len;
    struct api_bin *bins;
    struct api_job *j;
    struct mp_req *prev, *next; /* the connection's requests in flight */
};

struct wbuf {
    uv_write_t w;
    char *buf;
};

static void conn_unref(struct mp_conn *c)
{
    if (--c->refs == 0) {
        vl_frame_reader_free(&c->rd);
        free(c);
    }
}

static void on_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

static void conn_close(struct mp_conn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    struct mpapi *m = c->m;
    if (c->prev)
        c->prev->next = c->next;
    else
        m->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    m->n_conns--;
    /* the client is gone: cancel what it still waits for (each answer is then dropped) */
    int n = 0;
    for (struct mp_req *r = c->reqs; r; r = r->next)
        n++;
    if (n) {
        struct api_job **js = vl_calloc((size_t)n, sizeof *js);
        int k = 0;
        for (struct mp_req *r = c->reqs; r; r = r->next)
            js[k++] = r->j;
        for (k = 0; k < n; k++)
            api_job_cancel(js[k]);
        free(js);
    }
    uv_close((uv_handle_t *)&c->pipe, on_closed);
}

static void on_written(uv_write_t *w, int status)
{
    struct wbuf *b = (struct wbuf *)w;
    free(b->buf);
    free(b);
}

static void send_frame(struct mp_conn *c, msgpack_sbuffer *sb)
{
    if (c->dead)
        return;
    struct wbuf *b = vl_malloc(sizeof *b);
    b->buf = vl_malloc(sb->size + 4);
    vl_frame_header((uint8_t *)b->buf, (uint32_t)sb->size);
    memcpy(b->buf + 4, sb->data, sb->size);
    uv_buf_t ub = uv_buf_init(b->buf, (unsigned)(sb->size + 4));
    if (uv_write(&b->w, (uv_stream_t *)&c->pipe, &ub, 1, on_written)) {
        free(b->buf);
        free(b);
        conn_close(c);
    }
}

/* ---- cJSON -> msgpack (usage, timings, previews) ---------------------------------------- */

static void pack_json(msgpack_packer *pk, const cJSON *j)
{
    if (cJSON_IsObject(j)) {
        msgpack_pack_map(pk, (size_t)cJSON_GetArraySize(j));
        for (const cJSON *k = j->child; k; k = k->next) {
            vl_mp_pack_cstr(pk, k->string);
            pack_json(pk, k);
        }
    } else if (cJSON_IsArray(j)) {
        msgpack_pack_array(pk, (size_t)cJSON_GetArraySize(j));
        for (const cJSON *k = j->child; k; k = k->next)
            pack_json(pk, k);
    } else if (cJSON_IsString(j))
        vl_mp_pack_cstr(pk, j->valuestring);
    else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v == (double)(int64_t)v && v > -9e15 && v < 9e15)
            msgpack_pack_int64(pk, (int64_t)v);
        else
            msgpack_pack_double(pk, v);
    } else if (cJSON_IsBool(j)) {
        if (cJSON_IsTrue(j))
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    } else
        msgpack_pack_nil(pk);
}

/* ---- msgpack -> cJSON (requests) ---------------------------------------------------------- */

static cJSON *to_json(const msgpack_object *o, struct mp_req *r, int *n_bins, int cap_bins,
                      char *err, size_t errlen)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return cJSON_CreateNull();
    case MSGPACK_OBJECT_BOOLEAN:
        return cJSON_CreateBool(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return cJSON_CreateNumber((double)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return cJSON_CreateNumber((double)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return cJSON_CreateNumber(o->via.f64);
    case MSGPACK_OBJECT_STR: {
        if (memchr(o->via.str.ptr, 0, o->via.str.size) ||
            (o->via.str.size && o->via.str.ptr[0] == '\x01')) {
            snprintf(err, errlen, "strings must not contain NUL or start with \\x01");
            return NULL;
        }
        char *s = vl_strndup(o->via.str.ptr, o->via.str.size);
        cJSON *j = cJSON_CreateString(s);
        free(s);
        return j;
    }
    case MSGPACK_OBJECT_BIN: {
        if (*n_bins >= cap_bins) {
            snprintf(err, errlen, "too many bin values");
            return NULL;
        }
        r->bins[*n_bins].ptr = (const uint8_t *)o->via.bin.ptr;
        r->bins[*n_bins].len = o->via.bin.size;
        char ref[32];
        snprintf(ref, sizeof ref,
                 "\x01"
                 "bin:%d",
                 (*n_bins)++);
        return cJSON_CreateString(ref);
    }
    case MSGPACK_OBJECT_ARRAY: {
        cJSON *a = cJSON_CreateArray();
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            cJSON *x = to_json(&o->via.array.ptr[i], r, n_bins, cap_bins, err, errlen);
            if (!x) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, x);
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        cJSON *m = cJSON_CreateObject();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR || memchr(k->via.str.ptr, 0, k->via.str.size)) {
                snprintf(err, errlen, "map keys must be strings");
                cJSON_Delete(m);
                return NULL;
            }
            cJSON *x = to_json(&o->via.map.ptr[i].val, r, n_bins, cap_bins, err, errlen);
            if (!x) {
                cJSON_Delete(m);
                return NULL;
            }
            char *ks = vl_strndup(k->via.str.ptr, k->via.str.size);
            cJSON_AddItemToObject(m, ks, x);
            free(ks);
        }
        return m;
    }
    default:
        snprintf(err, errlen, "unsupported msgpack type (ext)");
        return NULL;
    }
}

static void count_bins(const msgpack_object *o, int *n)
{
    if (o->type == MSGPACK_OBJECT_BIN)
        (*n)++;
    else if (o->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < o->via.array.size; i++)
            count_bins(&o->via.array.ptr[i], n);
    else if (o->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < o->via.map.size; i++)
            count_bins(&o->via.map.ptr[i].val, n);
}

/* ---- answers ------------------------------------------------------------------------------ */

static void pack_head(msgpack_packer *pk, msgpack_sbuffer *sb, const struct mp_req *r,
                      const char *type, size_t n_fields)
{
    msgpack_pack_map(pk, n_fields);
    vl_mp_pack_kv_str(pk, "type", type);
    vl_mp_pack_cstr(pk, "id");
    if (r->id)
        msgpack_sbuffer_write(sb, r->id, r->id_len);
    else
        msgpack_pack_nil(pk);
}

static void answer_error(struct mp_conn *c, const struct mp_req *r, const struct api_err *e)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_head(&pk, &sb, r, "error", 4);
    vl_mp_pack_kv_int(&pk, "status", e->status);
    vl_mp_pack_cstr(&pk, "error");
    msgpack_pack_map(&pk, 4);
    vl_mp_pack_kv_str(&pk, "message", e->message);
    vl_mp_pack_kv_str(&pk, "type", e->type);
    vl_mp_pack_cstr(&pk, "param");
    if (e->param[0])
        vl_mp_pack_cstr(&pk, e->param);
    else
        msgpack_pack_nil(&pk);
    vl_mp_pack_cstr(&pk, "code");
    if (e->code[0])
        vl_mp_pack_cstr(&pk, e->code);
    else
        msgpack_pack_nil(&pk);
    send_frame(c, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static void req_free(struct mp_req *r)
{
    free(r->payload);
    free(r->id);
    free(r->bins);
    free(r);
}

static void resume(struct mp_conn *c);

static void job_done(struct api_job *j)
{
    struct mp_req *r = j->tp;
    struct mp_conn *c = r->c;
    struct mpapi *m = c->m;
    m->active_jobs--;
    if (j->status != 200)
        answer_error(c, r, &j->err);
    else {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        cJSON *meta = api_job_meta(j);
        pack_head(&pk, &sb, r, j->preview ? "preview_result" : "result",
                  3 + (size_t)cJSON_GetArraySize(meta));
        vl_mp_pack_cstr(&pk, "data");
        msgpack_pack_array(&pk, (size_t)j->n);
        if (j->preview) {
            for (int i = 0; i < j->n; i++)
                pack_json(&pk, j->pp[i]->preview);
        } else {
            int d = api_job_out_dim(j);
            float *tmp = vl_malloc((size_t)(d + 8) * sizeof(float));
            for (int i = 0; i < j->n; i++) {
                int k =
                    api_postprocess(j->vecs + (size_t)i * j->dim, j->dim, d, j->req.encoding, tmp);
                size_t bytes = j->req.encoding <= API_ENC_BASE64 ? (size_t)k * 4 : (size_t)k;
                msgpack_pack_map(&pk, 2);
                vl_mp_pack_kv_int(&pk, "index", i);
                vl_mp_pack_cstr(&pk, "embedding");
                msgpack_pack_bin_with_body(&pk, tmp, bytes);
            }
            free(tmp);
        }
        for (const cJSON *k = meta->child; k; k = k->next) {
            vl_mp_pack_cstr(&pk, k->string);
            pack_json(&pk, k);
        }
        cJSON_Delete(meta);
        send_frame(c, &sb);
        msgpack_sbuffer_destroy(&sb);
    }
    api_job_release(j);
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    req_free(r);
    c->inflight--;
    resume(c);
    conn_unref(c);
    if (m->on_idle && m->active_jobs == 0)
        m->on_idle(m);
}

/* ---- requests ------------------------------------------------------------------------------ */

static void handle_frame(struct mp_conn *c, const uint8_t *p, size_t len)
{
    struct mpapi *m = c->m;
    struct mp_req *r = vl_calloc(1, sizeof *r);
    r->c = c;
    r->payload = vl_malloc(len);
    memcpy(r->payload, p, len);
    struct api_err e;
    char err[256];
    msgpack_unpacked up;
    int unpacked = 0;
    cJSON *root = NULL;
    if (vl_mp_unpack_map(r->payload, len, &up, err, sizeof err)) {
        api_err_set(&e, 400, "invalid_request_error", "invalid_msgpack", NULL, "%s", err);
        goto bad;
    }
    unpacked = 1;
    const msgpack_object *id = vl_mp_get(&up.data, "id");
    if (id) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *id);
        r->id = sb.data;
        r->id_len = sb.size;
    }
    const msgpack_object *type = vl_mp_get(&up.data, "type");
    int preview = 0;
    if (type && !vl_mp_str_eq(type, "embed")) {
        if (vl_mp_str_eq(type, "preview"))
            preview = 1;
        else {
            api_err_set(&e, 400, "invalid_request_error", "unknown_type", "type",
                        "type: must be \"embed\" or \"preview\"");
            goto bad;
        }
    }
    int nb = 0;
    count_bins(&up.data, &nb);
    r->bins = vl_calloc((size_t)nb + 1, sizeof *r->bins);
    int used = 0;
    /* the request fields, without the envelope (type, id) */
    msgpack_object body = up.data;
    msgpack_object_kv *kv = vl_calloc(body.via.map.size + 1, sizeof *kv);
    uint32_t k = 0;
    for (uint32_t i = 0; i < body.via.map.size; i++) {
        const msgpack_object *key = &body.via.map.ptr[i].key;
        if (vl_mp_str_eq(key, "type") || vl_mp_str_eq(key, "id"))
            continue;
        kv[k++] = body.via.map.ptr[i];
    }
    body.via.map.ptr = kv;
    body.via.map.size = k;
    root = to_json(&body, r, &used, nb, err, sizeof err);
    free(kv);
    if (!root) {
        api_err_set(&e, 400, "invalid_request_error", "invalid_msgpack", NULL, "%s", err);
        goto bad;
    }
    struct api_job *j = vl_calloc(1, sizeof *j);
    if (api_parse(root, &m->ctx->lim, r->bins, used, &j->req, &e)) {
        api_req_free(&j->req);
        free(j);
        goto bad;
    }
    cJSON_Delete(root);
    msgpack_unpacked_destroy(&up);
    j->ctx = m->ctx;
    j->api = MA_MSGPACK;
    j->preview = preview;
    j->on_done = job_done;
    j->tp = r;
    r->j = j;
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    c->refs++;
    c->inflight++;
    m->active_jobs++;
    api_job_start(j);
    return;
bad:
    if (root)
        cJSON_Delete(root);
    if (unpacked)
        msgpack_unpacked_destroy(&up);
    metrics_error(m->ctx->metrics, e.status, e.code);
    answer_error(c, r, &e);
    req_free(r);
}

static void on_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *b)
{
    b->base = vl_malloc(256 * 1024);
    b->len = 256 * 1024;
}

static void on_shutdown(uv_shutdown_t *sh, int status)
{
    free(sh);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct mp_conn *c = s->data;
    if (n < 0) {
        free(b->base);
        conn_close(c);
        return;
    }
    int rc = n > 0 ? vl_frame_reader_feed(&c->rd, b->base, (size_t)n) : 0;
    free(b->base);
    if (rc) {
        struct api_err e;
        struct mp_req r = {0};
        api_err_set(&e, 413, "invalid_request_error", "request_too_large", NULL,
                    "a frame of %zu bytes exceeds the limit of %zu bytes", c->rd.bad_len,
                    c->m->max_frame);
        answer_error(c, &r, &e);
        uv_read_stop(s);
        c->reading = 0;
        uv_shutdown_t *sh = vl_calloc(1, sizeof *sh);
        if (uv_shutdown(sh, s, on_shutdown) != 0)
            free(sh);
        return;
    }
    const uint8_t *p;
    size_t len;
    while (!c->dead && c->inflight < c->m->max_inflight_per_conn &&
           (rc = vl_frame_reader_next(&c->rd, &p, &len)) == VL_FRAME_OK)
        handle_frame(c, p, len);
    if (!c->dead && c->inflight >= c->m->max_inflight_per_conn && c->reading) {
        uv_read_stop(s);
        c->reading = 0;
    }
}

static void resume(struct mp_conn *c)
{
    if (c->dead || c->reading || c->inflight >= c->m->max_inflight_per_conn)
        return;
    /* frames already buffered first */
    const uint8_t *p;
    size_t len;
    while (!c->dead && c->inflight < c->m->max_inflight_per_conn &&
           vl_frame_reader_next(&c->rd, &p, &len) == VL_FRAME_OK)
        handle_frame(c, p, len);
    if (!c->dead && c->inflight < c->m->max_inflight_per_conn &&
        uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0)
        c->reading = 1;
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct mpapi *m = ls->data;
    if (status < 0)
        return;
    struct mp_conn *c = vl_calloc(1, sizeof *c);
    c->m = m;
    c->refs = 1;
    uv_pipe_init(m->ctx->loop, &c->pipe, 0);
    c->pipe.data = c;
    vl_frame_reader_init(&c->rd, m->max_frame);
    if (uv_accept(ls, (uv_stream_t *)&c->pipe)) {
        c->dead = 1;
        uv_close((uv_handle_t *)&c->pipe, on_closed);
        return;
    }
    c->next = m->conns;
    if (m->conns)
        m->conns->prev = c;
    m->conns = c;
    m->n_conns++;
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0)
        c->reading = 1;
}

void mpapi_init(struct mpapi *m, struct api_ctx *ctx, size_t max_frame)
{
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    m->max_frame = max_frame;
    m->max_inflight_per_conn = 256;
    ctx->user_mp = m;
}

int mpapi_listen(struct mpapi *m, const char *path, char *err, size_t errlen)
{
    uv_pipe_init(m->ctx->loop, &m->listener, 0);
    m->listener.data = m;
    m->listening = 1;
    unlink(path);
    mode_t old = umask(0177);
    int rc = uv_pipe_bind(&m->listener, path);
    umask(old);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&m->listener, 128, on_connection);
    if (rc) {
        snprintf(err, errlen, "msgpack API socket \"%s\": %s", path, uv_strerror(rc));
        return rc;
    }
    chmod(path, 0600);
    return 0;
}

int mpapi_listen_fd(struct mpapi *m, int fd, char *err, size_t errlen)
{
    uv_pipe_init(m->ctx->loop, &m->listener, 0);
    m->listener.data = m;
    m->listening = 1;
    int rc = uv_pipe_open(&m->listener, fd);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&m->listener, 128, on_connection);
    if (rc) {
        snprintf(err, errlen, "inherited msgpack API fd %d: %s", fd, uv_strerror(rc));
        return rc;
    }
    return 0;
}

void mpapi_stop_accepting(struct mpapi *m)
{
    if (m->listening && !uv_is_closing((uv_handle_t *)&m->listener))
        uv_close((uv_handle_t *)&m->listener, NULL);
    m->listening = 0;
}

void mpapi_close(struct mpapi *m)
{
    mpapi_stop_accepting(m);
    while (m->conns)
        conn_close(m->conns);
}
