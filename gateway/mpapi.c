/* The msgpack API (see mpapi.h; frames and fields in docs/api.md): connections, frames, answers.
 * A frame is decoded into an api_req by mpapi_decode.c (kept alive with the job, as its bins
 * point into it), so both APIs share one validator and one pipeline. */
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
#include "gateway/membudget.h"
#include "gateway/mp_intake.h"

struct mp_conn {
    uv_pipe_t pipe;
    struct mpapi *m;
    struct mp_intake in;
    int refs; /* 1 while open + 1 per request in flight */
    int dead, reading, inflight;
    int broken;    /* a framing error or a refusal was answered: nothing more is read */
    int shut_down; /* the write side is closed (after a broken connection's last answer) */
    struct mp_conn *prev, *next;
    struct mp_req *reqs;
};

struct mp_req {
    struct mp_conn *c;
    struct mp_frame frame; /* the frame (bins point into it) and its budget charge */
    char *id;              /* the request id, packed msgpack bytes */
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
        mp_intake_free(&c->in);
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
    mp_intake_free(&c->in); /* a frame half read is released now */
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
    /* 429 and 503 say when to retry, as HTTP's Retry-After does (the gateway's default, 1 s) */
    int retry = e->status == 429 || e->status == 503;
    pack_head(&pk, &sb, r, "error", retry ? 5 : 4);
    vl_mp_pack_kv_int(&pk, "status", e->status);
    if (retry)
        vl_mp_pack_kv_int(&pk, "retry_after", 1);
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
    mp_frame_free(&r->frame, r->c->m->mem_budget);
    free(r->id);
    free(r->bins);
    free(r);
}

static void resume(struct mp_conn *c);
static void shut_down_if_done(struct mp_conn *c);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

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
    shut_down_if_done(c);
    conn_unref(c);
    if (m->on_idle && m->active_jobs == 0)
        m->on_idle(m);
}

/* ---- requests ------------------------------------------------------------------------------ */

/* Takes over the frame (its buffer and budget charge) as a request. */
static void handle_frame(struct mp_conn *c, struct mp_frame *f)
{
    struct mpapi *m = c->m;
    struct mp_req *r = vl_calloc(1, sizeof *r);
    r->c = c;
    r->frame = *f;
    struct api_err e;
    struct mpapi_decoded d;
    struct api_job *j = vl_calloc(1, sizeof *j);
    int rc = mpapi_decode(r->frame.payload, r->frame.len, &m->ctx->lim, &d, &j->req, &e);
    r->id = d.id; /* answers echo the id, errors too */
    r->id_len = d.id_len;
    r->bins = d.bins;
    if (rc) {
        api_req_free(&j->req);
        free(j);
        metrics_error(m->ctx->metrics, e.status, e.code);
        answer_error(c, r, &e);
        req_free(r);
        return;
    }
    int preview = d.preview;
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
}

/* Reads go straight into the intake: its staging buffer, or the rest of a frame's own buffer. */
static void on_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *b)
{
    struct mp_conn *c = h->data;
    uint8_t *p;
    size_t n;
    mp_intake_space(&c->in, &p, &n);
    b->base = (char *)p;
    b->len = n; /* 0 (never while reading, see take_frames): libuv reports UV_ENOBUFS */
}

/* The answers are out and the write side closed: the connection is closed too (a client still
 * sending then gets an error instead of waiting on a socket nobody reads). */
static void on_shutdown(uv_shutdown_t *sh, int status)
{
    struct mp_conn *c = sh->data;
    free(sh);
    conn_close(c);
    conn_unref(c);
}

/* Closes a broken connection once its last request in flight is answered (an answer written
 * after uv_shutdown would fail and cancel the others) and a refused frame's body is read off. */
static void shut_down_if_done(struct mp_conn *c)
{
    if (c->dead || !c->broken || c->shut_down || c->inflight > 0 || mp_intake_discarding(&c->in))
        return;
    c->shut_down = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = 0;
    }
    mp_intake_free(&c->in);
    uv_shutdown_t *sh = vl_calloc(1, sizeof *sh);
    sh->data = c;
    c->refs++;
    if (uv_shutdown(sh, (uv_stream_t *)&c->pipe, on_shutdown) != 0) {
        free(sh);
        conn_close(c);
        conn_unref(c);
    }
}

/* A framing error or a refused frame: answered (without an id: the frame was never read), then
 * no more frames are taken from this connection (what is buffered is dropped, a partial frame's
 * charge released) and it is closed once the requests in flight are answered. A frame refused
 * for the budget (discard) has the rest of its body read and thrown away first, so that a client
 * writing the whole frame before reading is not left blocked; after a framing error nothing more
 * is read (a frame over the cap may declare up to 4 GiB). */
static void frame_error(struct mp_conn *c, const struct api_err *e, int discard)
{
    struct mp_req r = {0};
    metrics_error(c->m->ctx->metrics, e->status, e->code);
    answer_error(c, &r, e);
    c->broken = 1;
    if (discard)
        mp_intake_discard(&c->in);
    if (!mp_intake_discarding(&c->in)) {
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->pipe);
            c->reading = 0;
        }
        mp_intake_free(&c->in);
    } else if (!c->reading && !c->dead &&
               uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0) {
        c->reading = 1;
    }
    shut_down_if_done(c);
}

/* Handles the whole frames read, up to the in-flight cap; answers a framing error or a frame that
 * does not fit the buffered-bytes budget. */
static void take_frames(struct mp_conn *c)
{
    struct mp_frame f;
    int rc = MP_INTAKE_NEED_MORE;
    while (!c->dead && !c->broken && c->inflight < c->m->max_inflight_per_conn &&
           (rc = mp_intake_next(&c->in, &f)) == MP_INTAKE_OK)
        handle_frame(c, &f);
    if (c->dead || c->broken || rc >= 0)
        return;
    struct api_err e;
    struct mem_budget *b = c->m->mem_budget;
    if (rc == MP_INTAKE_TOO_LARGE)
        api_err_set(&e, 413, "invalid_request_error", "request_too_large", NULL,
                    "a frame of %zu bytes exceeds the limit of %zu bytes", c->in.bad_len,
                    c->m->max_frame);
    else if (rc == MP_INTAKE_BUSY)
        api_err_set(&e, 503, "service_unavailable", "memory_busy", NULL,
                    "the gateway is holding too many request and media bytes (%lld of its limit "
                    "of %lld, --max-buffered-bytes) to take this frame of %zu bytes; retry on a "
                    "new connection",
                    (long long)mem_budget_used(b), (long long)(b ? b->limit : 0), c->in.bad_len);
    else /* a zero length is no frame, and nothing after it can be found */
        api_err_set(&e, 400, "invalid_request_error", "invalid_msgpack", NULL,
                    "a frame of length 0 (each frame is a 4-byte length, then one msgpack map)");
    frame_error(c, &e, rc == MP_INTAKE_BUSY);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct mp_conn *c = s->data;
    if (n < 0) {
        conn_close(c); /* EOF, an error, or UV_ENOBUFS (never expected: see on_alloc) */
        return;
    }
    mp_intake_wrote(&c->in, (size_t)n);
    if (c->broken) { /* reading only to throw a refused frame's body away */
        if (!mp_intake_discarding(&c->in) && c->reading) { /* all of it: nothing after it */
            uv_read_stop(s);
            c->reading = 0;
            mp_intake_free(&c->in);
        }
        shut_down_if_done(c);
        return;
    }
    take_frames(c);
    if (!c->dead && c->inflight >= c->m->max_inflight_per_conn && c->reading) {
        uv_read_stop(s);
        c->reading = 0;
    }
}

static void resume(struct mp_conn *c)
{
    if (c->dead || c->broken || c->reading || c->inflight >= c->m->max_inflight_per_conn)
        return;
    take_frames(c); /* frames already buffered first */
    if (!c->dead && !c->broken && c->inflight < c->m->max_inflight_per_conn &&
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
    mp_intake_init(&c->in, m->max_frame, m->mem_budget);
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
