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
#include "common/limits.h"
#include "common/log.h"
#include "common/msgpack_util.h"
#include "gateway/membudget.h"
#include "gateway/mp_intake.h"
#include "gateway/send_deadline.h"

struct mp_conn {
    uv_pipe_t pipe;
    uv_timer_t timer; /* the slow-sender and idle deadlines (conn_deadline) */
    struct mpapi *m;
    struct mp_intake in;
    int refs; /* 2 while open (the pipe and the timer) + 1 per request in flight and per answer
               * being written */
    int dead, reading, inflight;
    int broken;           /* a framing error or a refusal was answered: nothing more is read */
    int shut_down;        /* the write side is closed (after a broken connection's last answer) */
    int refused;          /* over the connection cap: not counted in n_conns */
    uint64_t t_first_ms;  /* the first byte of the frame being received (0: none) */
    uint64_t t_body_ms;   /* its length prefix complete (0: not yet) */
    uint64_t t_read_ms;   /* the last read */
    uint64_t t_active_ms; /* the last read or answer: the idle clock */
    struct vl_send_clock sendk; /* progress of the answers queued for the socket */
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
    struct mp_conn *c;
    int64_t charged; /* bytes of the budget held for buf until it is written */
};

/* Bytes of answers queued for c's socket that the kernel has not taken yet. */
static size_t conn_unsent(const struct mp_conn *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->pipe);
}

/* Too many answers queued: no more frames are taken (nor read) until they drain. */
static int conn_backlogged(const struct mp_conn *c)
{
    return vl_send_backlogged(conn_unsent(c), c->m->lim.max_unsent_bytes);
}

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
    if (!c->refused)
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
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void resume(struct mp_conn *c);
static void conn_track(struct mp_conn *c, int fresh);
static void conn_arm_timer(struct mp_conn *c);

/* Also called with UV_ECANCELED for the answers still queued when the connection is closed;
 * each holds a reference, so c is there either way. */
static void on_written(uv_write_t *w, int status)
{
    struct wbuf *b = (struct wbuf *)w;
    struct mp_conn *c = b->c;
    free(b->buf);
    mem_budget_release(c->m->mem_budget, b->charged);
    free(b);
    if (!c->dead) {
        /* the queue shrank: frames may be taken again if it was over max_unsent_bytes */
        vl_send_observe(&c->sendk, conn_unsent(c), uv_now(c->m->ctx->loop));
        if (status < 0)
            conn_close(c);
        else {
            resume(c);
            conn_track(c, 0);
        }
    }
    conn_unref(c);
}

static void send_frame(struct mp_conn *c, msgpack_sbuffer *sb)
{
    if (c->dead)
        return;
    struct wbuf *b = vl_malloc(sizeof *b);
    b->buf = vl_malloc(sb->size + 4);
    b->c = c;
    b->charged = (int64_t)sb->size + 4;
    vl_frame_header((uint8_t *)b->buf, (uint32_t)sb->size);
    memcpy(b->buf + 4, sb->data, sb->size);
    uv_buf_t ub = uv_buf_init(b->buf, (unsigned)(sb->size + 4));
    uint64_t now = uv_now(c->m->ctx->loop);
    vl_send_observe(&c->sendk, conn_unsent(c), now); /* a shrink since the last look counts */
    if (uv_write(&b->w, (uv_stream_t *)&c->pipe, &ub, 1, on_written)) {
        free(b->buf);
        free(b);
        conn_close(c);
        return;
    }
    /* held until written (what the kernel did not take at once): charged meanwhile */
    c->refs++;
    mem_budget_charge_always(c->m->mem_budget, b->charged);
    vl_send_observe(&c->sendk, conn_unsent(c), now);
    conn_arm_timer(c); /* the send deadline, if the kernel did not take it all */
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
        if (v > -9e15 && v < 9e15 && v == (double)(int64_t)v) /* range first: cast is UB past it */
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

/* A request's frame (and its bins, views into it) kept for its job after the request is done. */
struct mp_hold {
    struct mp_frame frame;
    struct api_bin *bins;
    struct mem_budget *budget;
};

static void hold_free(struct api_job *j)
{
    struct mp_hold *h = j->free_arg;
    mp_frame_free(&h->frame, h->budget);
    free(h->bins);
    free(h);
}

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
    /* The frame (its bins are the media the items are decoded from) and its charge stay until
     * the job is freed: one answered early (its client gone, its deadline passed, an item
     * failed) may still be decoding other items from it on the pool. */
    struct mp_hold *h = vl_malloc(sizeof *h);
    h->frame = r->frame;
    h->bins = r->bins;
    h->budget = m->mem_budget;
    r->frame = (struct mp_frame){0};
    r->bins = NULL;
    j->free_arg = h;
    j->on_free = hold_free;
    api_job_release(j);
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    req_free(r);
    c->inflight--;
    c->t_active_ms = uv_now(m->ctx->loop);
    resume(c);
    shut_down_if_done(c);
    conn_track(c, 0);
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
    /* The request holds its own copies of the frame's strings (texts, URLs, data: URIs), each no
     * longer than its place in the frame. Without bins nothing points into the frame any more:
     * it goes, and its charge shrinks to those copies (as an HTTP body's). With bins the frame
     * stays (they are views into it), and the copies are charged besides it. */
    int64_t strings = (int64_t)api_req_string_bytes(&j->req);
    if (d.n_bins == 0) {
        int64_t keep = strings < r->frame.charged ? strings : r->frame.charged;
        free(r->frame.payload);
        r->frame.payload = NULL;
        mem_budget_release(m->mem_budget, r->frame.charged - keep);
        r->frame.charged = keep;
    } else if (strings > 0) {
        if (mem_budget_charge(m->mem_budget, strings, MEMB_MSGPACK_FRAME)) {
            struct mem_budget *b = m->mem_budget;
            api_req_free(&j->req);
            free(j);
            api_err_set(&e, 503, "service_unavailable", "memory_busy", NULL,
                        "the gateway is holding too many request and media bytes (%lld of its "
                        "limit of %lld, --max-buffered-bytes) to take this request's %lld bytes of "
                        "texts and URLs besides its frame; retry",
                        (long long)mem_budget_used(b), (long long)(b ? b->limit : 0),
                        (long long)strings);
            metrics_error(m->ctx->metrics, e.status, e.code);
            answer_error(c, r, &e);
            req_free(r);
            return;
        }
        r->frame.charged += strings;
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
           !conn_backlogged(c) && (rc = mp_intake_next(&c->in, &f)) == MP_INTAKE_OK) {
        c->t_first_ms = c->t_body_ms = 0; /* the next frame's clock starts with its bytes */
        handle_frame(c, &f);
    }
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
    if (n > 0)
        c->t_read_ms = c->t_active_ms = uv_now(c->m->ctx->loop);
    if (c->broken) { /* reading only to throw a refused frame's body away */
        if (!mp_intake_discarding(&c->in) && c->reading) { /* all of it: nothing after it */
            uv_read_stop(s);
            c->reading = 0;
            mp_intake_free(&c->in);
        }
        shut_down_if_done(c);
        conn_track(c, 0);
        return;
    }
    take_frames(c);
    if (!c->dead && c->reading &&
        (c->inflight >= c->m->max_inflight_per_conn || conn_backlogged(c))) {
        if (c->inflight < c->m->max_inflight_per_conn)
            c->m->n_send_paused++;
        uv_read_stop(s);
        c->reading = 0;
    }
    conn_track(c, 0);
}

static void resume(struct mp_conn *c)
{
    if (c->dead || c->broken || c->reading || c->inflight >= c->m->max_inflight_per_conn ||
        conn_backlogged(c))
        return;
    take_frames(c); /* frames already buffered first */
    if (!c->dead && !c->broken && c->inflight < c->m->max_inflight_per_conn &&
        !conn_backlogged(c) && uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0) {
        c->reading = 1;
        /* a frame that waited while this connection was at its in-flight cap was not slow: its
         * clocks start again now */
        c->t_read_ms = c->t_active_ms = uv_now(c->m->ctx->loop);
        conn_track(c, 1);
    }
}

/* ---- deadlines ------------------------------------------------------------------------------ */

/* Bytes of a frame are arriving: a partial prefix, a frame's payload, or a refused frame's rest. */
static int conn_receiving(const struct mp_conn *c)
{
    return c->in.frame != NULL || mp_intake_discarding(&c->in) || mp_intake_pending(&c->in) > 0;
}

/* conn_deadline's kinds besides the receive deadlines (enum mpapi_timeout_kind, >= 0) */
#define CONN_DL_IDLE (-1) /* no frame arriving, nothing in flight or queued: idle_timeout_ms */
#define CONN_DL_SEND VL_SEND_DL_SEND /* queued answers made no progress: send_timeout_ms */
#define CONN_DL_TICK VL_SEND_DL_TICK /* sample the send queue (gateway/send_deadline.h) */

/* The earliest receive deadline of the frame being received (and which one it is, *kind), or of
 * the idle connection (*kind = CONN_DL_IDLE; q: bytes of answers queued). 0: none (not reading:
 * requests in flight or answers queued at the cap, or a broken connection waiting for its
 * answers; or reading with requests in flight or answers queued and no frame begun). */
static uint64_t recv_deadline(const struct mp_conn *c, size_t q, int *kind)
{
    const struct mpapi_limits *l = &c->m->lim;
    *kind = CONN_DL_IDLE;
    if (c->dead || c->shut_down || !c->reading)
        return 0;
    if (!conn_receiving(c)) {
        if (c->inflight > 0 || c->broken || q > 0)
            return 0;
        /* idle since the last read, answer, or the answers' queue emptying */
        uint64_t t =
            c->t_active_ms > c->sendk.t_progress_ms ? c->t_active_ms : c->sendk.t_progress_ms;
        return t + l->idle_timeout_ms;
    }
    /* the payload: a frame being read, or the rest of a refused one being discarded */
    int in_body = c->in.frame || mp_intake_discarding(&c->in);
    uint64_t got = !in_body ? 0 : c->in.frame ? c->in.frame_got : c->in.bad_len - c->in.skip;
    const struct vl_recv_limits rl = {l->prefix_timeout_ms, l->stall_timeout_ms, l->rate_grace_ms,
                                      l->frame_timeout_ms, l->min_rate};
    return vl_recv_deadline(&rl, c->t_first_ms, in_body, c->t_body_ms, c->t_read_ms, got, kind);
}

/* The connection's earliest deadline and its kind: recv_deadline's, the answers queued without
 * progress (CONN_DL_SEND, also on a broken or shut-down connection: its last answers are not
 * read either), or the next look at that queue (CONN_DL_TICK, always in the future). 0: none.
 * Samples the send queue first. */
static uint64_t conn_deadline(struct mp_conn *c, int *kind)
{
    if (c->dead) {
        *kind = CONN_DL_IDLE;
        return 0;
    }
    uint64_t now = uv_now(c->m->ctx->loop);
    size_t q = conn_unsent(c);
    vl_send_observe(&c->sendk, q, now);
    uint64_t d = recv_deadline(c, q, kind);
    return vl_send_fold(&c->sendk, q, c->m->lim.send_timeout_ms, now, d, kind);
}

static void on_timer(uv_timer_t *t)
{
    struct mp_conn *c = t->data;
    int kind;
    uint64_t d = conn_deadline(c, &kind);
    uint64_t now = uv_now(c->m->ctx->loop);
    if (!d)
        return;
    if (d > now) { /* bytes arrived or left meanwhile, or a look at the queue: not yet */
        uv_timer_start(&c->timer, on_timer, d - now, 0);
        return;
    }
    if (kind == CONN_DL_SEND) { /* the client does not read its answers: they are dropped */
        c->m->n_send_timeouts++;
        vl_info("msgpack API client took no byte of its %zu bytes of queued answers for %.1f s: "
                "connection closed (--send-timeout-s)",
                conn_unsent(c), (double)c->m->lim.send_timeout_ms / 1000);
        conn_close(c);
        return;
    }
    if (kind < 0) { /* idle: closed without an answer, as an idle HTTP keep-alive connection */
        conn_close(c);
        return;
    }
    static const char *why[MP_TO_N] = {
        "the frame's 4-byte length prefix did not arrive within the header timeout "
        "(--header-timeout-s)",
        "the frame stalled: nothing of it arrived within the header timeout (--header-timeout-s)",
        "the frame arrived slower than the minimum byte rate (--min-body-rate)",
        "the frame did not arrive within the request timeout (--request-timeout-s)",
    };
    c->m->n_timeouts[kind]++;
    struct api_err e;
    api_err_set(&e, 408, "invalid_request_error", "request_timeout", NULL,
                "%s; the connection is closed", why[kind]);
    mp_intake_free(&c->in); /* the frame's reservation goes now (a refused frame's rest too) */
    frame_error(c, &e, 0);
}

static void conn_arm_timer(struct mp_conn *c)
{
    if (c->dead)
        return;
    int kind;
    uint64_t d = conn_deadline(c, &kind);
    if (!d) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->m->ctx->loop);
    uv_timer_start(&c->timer, on_timer, d > now ? d - now : 0, 0);
}

/* Keeps the frame clocks in step with what the intake holds (a frame begun, its prefix done, or
 * nothing), then re-arms the timer. fresh: the frame's clocks start now. */
static void conn_track(struct mp_conn *c, int fresh)
{
    if (c->dead)
        return;
    uint64_t now = uv_now(c->m->ctx->loop);
    if (!conn_receiving(c))
        c->t_first_ms = c->t_body_ms = 0;
    else {
        if (!c->t_first_ms || fresh)
            c->t_first_ms = now;
        if (c->in.frame || mp_intake_discarding(&c->in)) {
            if (!c->t_body_ms || fresh)
                c->t_body_ms = now;
        } else
            c->t_body_ms = 0;
    }
    conn_arm_timer(c);
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct mpapi *m = ls->data;
    if (status < 0)
        return;
    struct mp_conn *c = vl_calloc(1, sizeof *c);
    c->m = m;
    c->refs = 2;
    uv_pipe_init(m->ctx->loop, &c->pipe, 0);
    uv_timer_init(m->ctx->loop, &c->timer);
    c->pipe.data = c;
    c->timer.data = c;
    mp_intake_init(&c->in, m->max_frame, m->mem_budget);
    if (uv_accept(ls, (uv_stream_t *)&c->pipe)) {
        c->dead = 1;
        uv_close((uv_handle_t *)&c->pipe, on_closed);
        uv_close((uv_handle_t *)&c->timer, on_closed);
        return;
    }
    c->next = m->conns;
    if (m->conns)
        m->conns->prev = c;
    m->conns = c;
    c->t_active_ms = uv_now(m->ctx->loop);
    if (m->n_conns >= m->lim.max_conns) {
        /* over the cap: one answer, nothing read, closed once it is written */
        c->refused = 1;
        m->n_rejected_conns++;
        struct api_err e;
        api_err_set(&e, 503, "service_unavailable", "too_many_connections", NULL,
                    "the gateway already has its limit of %d msgpack API connections open "
                    "(--max-msgpack-connections); retry, or reuse a connection",
                    m->lim.max_conns);
        frame_error(c, &e, 0);
        return;
    }
    m->n_conns++;
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0)
        c->reading = 1;
    conn_arm_timer(c);
}

void mpapi_init(struct mpapi *m, struct api_ctx *ctx, size_t max_frame)
{
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    m->max_frame = max_frame;
    m->max_inflight_per_conn = 256;
    m->lim = (struct mpapi_limits){.max_conns = 4096,
                                   .prefix_timeout_ms = 10000,
                                   .stall_timeout_ms = 10000,
                                   .idle_timeout_ms = 60000,
                                   .frame_timeout_ms = 120000,
                                   .min_rate = 1024,
                                   .rate_grace_ms = 10000,
                                   .send_timeout_ms = VL_SEND_TIMEOUT_MS_DEFAULT,
                                   .max_unsent_bytes = VL_MAX_UNSENT_BYTES_DEFAULT};
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

size_t mpapi_unsent(const struct mpapi *m)
{
    size_t n = 0;
    for (const struct mp_conn *c = m->conns; c; c = c->next)
        n += conn_unsent(c);
    return n;
}

char *mpapi_metrics(const struct mpapi *m, size_t *len)
{
    char *b = vl_malloc(2048);
    int n = snprintf(
        b, 2048,
        "# HELP vlembed_msgpack_connections Open msgpack API connections.\n"
        "# TYPE vlembed_msgpack_connections gauge\nvlembed_msgpack_connections %d\n"
        "# HELP vlembed_msgpack_connections_rejected_total msgpack API connections refused (503 "
        "too_many_connections) over --max-msgpack-connections.\n"
        "# TYPE vlembed_msgpack_connections_rejected_total counter\n"
        "vlembed_msgpack_connections_rejected_total %llu\n"
        "# HELP vlembed_msgpack_timeouts_total msgpack API frames answered 408, by the deadline "
        "missed.\n# TYPE vlembed_msgpack_timeouts_total counter\n"
        "vlembed_msgpack_timeouts_total{kind=\"header\"} %llu\n"
        "vlembed_msgpack_timeouts_total{kind=\"body_stall\"} %llu\n"
        "vlembed_msgpack_timeouts_total{kind=\"body_rate\"} %llu\n"
        "vlembed_msgpack_timeouts_total{kind=\"request\"} %llu\n",
        m->n_conns, (unsigned long long)m->n_rejected_conns,
        (unsigned long long)m->n_timeouts[MP_TO_HEADER],
        (unsigned long long)m->n_timeouts[MP_TO_BODY_STALL],
        (unsigned long long)m->n_timeouts[MP_TO_BODY_RATE],
        (unsigned long long)m->n_timeouts[MP_TO_REQUEST]);
    *len = n < 2048 ? (size_t)n : 2047;
    return b;
}
