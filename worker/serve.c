/* The worker's serving loop (see serve.h; the frames are specified in docs/wire.md).
 *
 * Threads: the libuv loop thread owns every socket, connection and timer; one inference
 * thread owns the backend. They share only the job queue and the done list, under one mutex;
 * the inference thread wakes the loop with a uv_async after each batch. A job keeps its
 * connection alive (a reference) until its answer is written or dropped, so a gateway that
 * disconnects mid-batch never leaves a dangling pointer. */
#include "worker/serve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/exitcode.h"
#include "common/frame.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/msgpack_util.h"

struct wconn {
    uv_pipe_t pipe;
    struct vl_frame_reader rd;
    int refs; /* 1 while open, +1 per job not yet answered */
    int dead;
    struct wconn *prev, *next;
};

struct job {
    struct job *next;
    struct wconn *conn;
    uint64_t id;
    uint64_t deadline_ns; /* 0: none */
    struct vl_item item;
    float *vec;
    const char *code; /* NULL: ok */
    char err[200];
};

struct wbuf {
    uv_write_t w;
    char *buf;
};

static struct {
    const struct serve_opts *o;
    struct vl_backend *be;
    uv_loop_t *loop;
    uv_pipe_t listener;
    int listening;
    ino_t sock_ino;
    uv_signal_t sigterm, sigint;
    uv_timer_t hb;
    uv_async_t async;
    uv_pipe_t ctl;
    int have_ctl;
    struct wconn *conns;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *q_head, *q_tail, *done_head, *done_tail;
    int n_queued, n_inflight, stop;
    int draining, pending_writes, finished;
    uint64_t n_items, n_batches;
} S;

/* ---- writing frames ------------------------------------------------------------------ */

static void check_drained(void);

static void on_written(uv_write_t *w, int status)
{
    struct wbuf *b = (struct wbuf *)w;
    free(b->buf);
    free(b);
    S.pending_writes--;
    check_drained();
}

static void write_frame(uv_stream_t *s, const msgpack_sbuffer *sb)
{
    struct wbuf *b = vl_malloc(sizeof *b);
    b->buf = vl_malloc(sb->size + 4);
    vl_frame_header((uint8_t *)b->buf, (uint32_t)sb->size);
    memcpy(b->buf + 4, sb->data, sb->size);
    uv_buf_t ub = uv_buf_init(b->buf, (unsigned)(sb->size + 4));
    if (uv_write(&b->w, s, &ub, 1, on_written) != 0) {
        free(b->buf);
        free(b);
        return;
    }
    S.pending_writes++;
}

static void ctl_send(const msgpack_sbuffer *sb)
{
    if (S.have_ctl)
        write_frame((uv_stream_t *)&S.ctl, sb);
}

/* ---- the inference thread ------------------------------------------------------------ */

static void embed_batch(struct job **jobs, int n)
{
    const struct serve_opts *o = S.o;
    struct vl_item *items = vl_calloc((size_t)n, sizeof *items);
    struct job **ok = vl_calloc((size_t)n, sizeof *ok);
    int m = 0;
    uint64_t now = uv_hrtime();
    for (int i = 0; i < n; i++) {
        struct job *j = jobs[i];
        if (j->deadline_ns && now > j->deadline_ns) {
            j->code = "deadline_exceeded";
            snprintf(j->err, sizeof j->err, "the item's deadline passed before it was embedded");
            continue;
        }
        if (vl_item_validate(&j->item, o->image_token_id, o->video_token_id, o->max_tokens, j->err,
                             sizeof j->err)) {
            j->code = "invalid_item";
            continue;
        }
        items[m] = j->item;
        ok[m++] = j;
    }
    if (m > 0) {
        float *out = vl_malloc((size_t)m * (size_t)o->hidden * sizeof(float));
        char err[256] = "";
        if (S.be->embed(S.be, items, m, out, err, sizeof err) == 0) {
            for (int i = 0; i < m; i++) {
                ok[i]->vec = vl_malloc((size_t)o->hidden * sizeof(float));
                memcpy(ok[i]->vec, out + (size_t)i * o->hidden, (size_t)o->hidden * sizeof(float));
            }
        } else {
            /* isolate the item the backend refused: embed one at a time */
            for (int i = 0; i < m; i++) {
                float *v = vl_malloc((size_t)o->hidden * sizeof(float));
                if (S.be->embed(S.be, &items[i], 1, v, ok[i]->err, sizeof ok[i]->err) == 0)
                    ok[i]->vec = v;
                else {
                    free(v);
                    ok[i]->code = "invalid_item";
                }
            }
        }
        free(out);
    }
    for (int i = 0; i < n; i++)
        vl_item_free(&jobs[i]->item);
    free(items);
    free(ok);
}

static void *infer_main(void *arg)
{
    (void)arg;
    const struct serve_opts *o = S.o;
    struct job **batch = vl_calloc((size_t)o->max_batch_items, sizeof *batch);
    for (;;) {
        pthread_mutex_lock(&S.mu);
        while (!S.q_head && !S.stop)
            pthread_cond_wait(&S.cv, &S.mu);
        if (!S.q_head && S.stop) {
            pthread_mutex_unlock(&S.mu);
            break;
        }
        int n = 0;
        int64_t tokens = 0;
        while (S.q_head && n < o->max_batch_items) {
            struct job *j = S.q_head;
            if (n > 0 && tokens + j->item.n_ids > o->max_batch_tokens)
                break;
            S.q_head = j->next;
            if (!S.q_head)
                S.q_tail = NULL;
            j->next = NULL;
            tokens += j->item.n_ids;
            batch[n++] = j;
        }
        S.n_queued -= n;
        S.n_inflight = n;
        pthread_mutex_unlock(&S.mu);

        embed_batch(batch, n);

        pthread_mutex_lock(&S.mu);
        for (int i = 0; i < n; i++) {
            if (S.done_tail)
                S.done_tail->next = batch[i];
            else
                S.done_head = batch[i];
            S.done_tail = batch[i];
        }
        S.n_inflight = 0;
        S.n_items += (uint64_t)n;
        S.n_batches++;
        pthread_mutex_unlock(&S.mu);
        uv_async_send(&S.async);
    }
    free(batch);
    return NULL;
}

/* ---- connections ----------------------------------------------------------------------- */

static void conn_closed(uv_handle_t *h)
{
    struct wconn *c = h->data;
    if (--c->refs == 0) {
        vl_frame_reader_free(&c->rd);
        free(c);
    }
}

static void conn_unref(struct wconn *c)
{
    if (--c->refs == 0) {
        vl_frame_reader_free(&c->rd);
        free(c);
    }
}

static void conn_close(struct wconn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        S.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

/* Answers jobs of one connection in one result frame. */
static void answer(struct wconn *c, struct job **jobs, int n)
{
    if (c->dead || n == 0)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    vl_mp_pack_kv_str(&pk, "type", "result");
    vl_mp_pack_cstr(&pk, "items");
    msgpack_pack_array(&pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        struct job *j = jobs[i];
        if (j->code) {
            msgpack_pack_map(&pk, 3);
            vl_mp_pack_cstr(&pk, "id");
            msgpack_pack_uint64(&pk, j->id);
            vl_mp_pack_kv_str(&pk, "code", j->code);
            vl_mp_pack_kv_str(&pk, "error", j->err);
        } else {
            msgpack_pack_map(&pk, 2);
            vl_mp_pack_cstr(&pk, "id");
            msgpack_pack_uint64(&pk, j->id);
            vl_mp_pack_cstr(&pk, "embedding");
            /* float32 little-endian (x86-64 and aarch64 hosts are little-endian) */
            msgpack_pack_bin_with_body(&pk, j->vec, (size_t)S.o->hidden * sizeof(float));
        }
    }
    write_frame((uv_stream_t *)&c->pipe, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static void job_free(struct job *j)
{
    vl_item_free(&j->item);
    free(j->vec);
    free(j);
}

/* Answers a list of finished jobs, grouped by connection. */
static void answer_list(struct job *list)
{
    while (list) {
        struct wconn *c = list->conn;
        int n = 0;
        for (struct job *j = list; j; j = j->next)
            n += j->conn == c;
        struct job **arr = vl_calloc((size_t)n, sizeof *arr);
        struct job *rest = NULL, *rest_tail = NULL;
        int k = 0;
        for (struct job *j = list, *nx; j; j = nx) {
            nx = j->next;
            j->next = NULL;
            if (j->conn == c)
                arr[k++] = j;
            else {
                if (rest_tail)
                    rest_tail->next = j;
                else
                    rest = j;
                rest_tail = j;
            }
        }
        answer(c, arr, n);
        for (int i = 0; i < n; i++) {
            job_free(arr[i]);
            conn_unref(c);
        }
        free(arr);
        list = rest;
    }
}

static void on_async(uv_async_t *a)
{
    pthread_mutex_lock(&S.mu);
    struct job *list = S.done_head;
    S.done_head = S.done_tail = NULL;
    pthread_mutex_unlock(&S.mu);
    answer_list(list);
    check_drained();
}

static struct job *job_error(struct wconn *c, uint64_t id, const char *code, const char *msg)
{
    struct job *j = vl_calloc(1, sizeof *j);
    j->conn = c;
    c->refs++;
    j->id = id;
    j->code = code;
    snprintf(j->err, sizeof j->err, "%s", msg);
    return j;
}

/* Decodes one item of an embed frame into a job. Returns NULL with err on a bad item. */
static int decode_item(const msgpack_object *it, struct job *j, char *err, size_t errlen)
{
    const msgpack_object *ids = vl_mp_get(it, "ids");
    if (!ids || ids->type != MSGPACK_OBJECT_BIN || ids->via.bin.size % 4 ||
        ids->via.bin.size == 0) {
        snprintf(err, errlen, "item.ids must be a non-empty bin of int32");
        return -1;
    }
    size_t n = ids->via.bin.size / 4;
    if (n > (size_t)S.o->max_tokens) {
        snprintf(err, errlen, "item has %zu tokens, over the limit of %d", n, S.o->max_tokens);
        return -1;
    }
    j->item.n_ids = (int32_t)n;
    j->item.ids = vl_malloc(n * 4);
    memcpy(j->item.ids, ids->via.bin.ptr, n * 4);
    const msgpack_object *vis = vl_mp_get(it, "visuals");
    if (!vis || vis->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (vis->type != MSGPACK_OBJECT_ARRAY || vis->via.array.size > 4096) {
        snprintf(err, errlen, "item.visuals must be an array");
        return -1;
    }
    uint32_t nv = vis->via.array.size;
    j->item.visuals = vl_calloc(nv ? nv : 1, sizeof *j->item.visuals);
    for (uint32_t v = 0; v < nv; v++) {
        const msgpack_object *vo = &vis->via.array.ptr[v];
        struct vl_visual *x = &j->item.visuals[v];
        j->item.n_visuals = (int32_t)v + 1;
        const msgpack_object *kind = vl_mp_get(vo, "kind");
        const msgpack_object *grid = vl_mp_get(vo, "grid");
        const msgpack_object *px = vl_mp_get(vo, "pixels");
        if (vl_mp_str_eq(kind, "image"))
            x->kind = VL_VISUAL_IMAGE;
        else if (vl_mp_str_eq(kind, "video"))
            x->kind = VL_VISUAL_VIDEO;
        else {
            snprintf(err, errlen, "visual %u: kind must be \"image\" or \"video\"", v);
            return -1;
        }
        int64_t g[3];
        if (!grid || grid->type != MSGPACK_OBJECT_ARRAY || grid->via.array.size != 3 ||
            vl_mp_int(&grid->via.array.ptr[0], &g[0]) ||
            vl_mp_int(&grid->via.array.ptr[1], &g[1]) ||
            vl_mp_int(&grid->via.array.ptr[2], &g[2]) || g[0] < 1 || g[1] < 2 || g[2] < 2 ||
            g[0] > 4096 || g[1] > 4096 || g[2] > 4096) {
            snprintf(err, errlen, "visual %u: grid must be [t, h, w] within 1..4096", v);
            return -1;
        }
        x->grid_t = (int32_t)g[0];
        x->grid_h = (int32_t)g[1];
        x->grid_w = (int32_t)g[2];
        x->n_frames = x->kind == VL_VISUAL_IMAGE ? 1 : 2 * x->grid_t;
        x->height = x->grid_h * 16;
        x->width = x->grid_w * 16;
        size_t want = (size_t)x->n_frames * (size_t)x->height * (size_t)x->width * 3;
        if (!px || px->type != MSGPACK_OBJECT_BIN || px->via.bin.size != want) {
            snprintf(err, errlen, "visual %u: pixels must be a bin of %zu bytes", v, want);
            return -1;
        }
        x->pixels = vl_malloc(want);
        memcpy(x->pixels, px->via.bin.ptr, want);
    }
    return 0;
}

static void handle_embed(struct wconn *c, const msgpack_object *root)
{
    const msgpack_object *items = vl_mp_get(root, "items");
    if (!items || items->type != MSGPACK_OBJECT_ARRAY) {
        vl_warn("embed frame without an items array; closing the connection");
        conn_close(c);
        return;
    }
    struct job *ok = NULL, *ok_tail = NULL, *bad = NULL;
    int n_ok = 0;
    uint64_t now = uv_hrtime();
    for (uint32_t i = 0; i < items->via.array.size; i++) {
        const msgpack_object *it = &items->via.array.ptr[i];
        uint64_t id;
        if (vl_mp_uint(vl_mp_get(it, "id"), &id)) {
            vl_warn("embed frame item %u without an id; closing the connection", i);
            conn_close(c);
            break;
        }
        struct job *j;
        if (S.draining) {
            j = job_error(c, id, "draining", "the worker is draining; retry on another worker");
            j->next = bad;
            bad = j;
            continue;
        }
        j = vl_calloc(1, sizeof *j);
        j->conn = c;
        c->refs++;
        j->id = id;
        uint64_t ms = 0;
        if (vl_mp_uint(vl_mp_get(it, "deadline_ms"), &ms) == 0 && ms > 0)
            j->deadline_ns = now + ms * 1000000ull;
        char err[200];
        if (decode_item(it, j, err, sizeof err)) {
            vl_item_free(&j->item);
            j->code = "invalid_item";
            snprintf(j->err, sizeof j->err, "%s", err);
            j->next = bad;
            bad = j;
            continue;
        }
        if (ok_tail)
            ok_tail->next = j;
        else
            ok = j;
        ok_tail = j;
        n_ok++;
    }
    if (ok) {
        pthread_mutex_lock(&S.mu);
        if (S.q_tail)
            S.q_tail->next = ok;
        else
            S.q_head = ok;
        S.q_tail = ok_tail;
        S.n_queued += n_ok;
        pthread_cond_signal(&S.cv);
        pthread_mutex_unlock(&S.mu);
    }
    answer_list(bad);
}

static void on_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *b)
{
    b->base = vl_malloc(256 * 1024);
    b->len = 256 * 1024;
}

static void on_conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct wconn *c = s->data;
    if (n < 0) {
        free(b->base);
        conn_close(c);
        return;
    }
    if (n > 0 && vl_frame_reader_feed(&c->rd, b->base, (size_t)n) != 0) {
        vl_warn("gateway frame over the %u-byte cap (declared %zu); closing", VL_FRAME_MAX_INTERNAL,
                c->rd.bad_len);
        free(b->base);
        conn_close(c);
        return;
    }
    free(b->base);
    const uint8_t *p;
    size_t len;
    int rc;
    while (!c->dead && (rc = vl_frame_reader_next(&c->rd, &p, &len)) == VL_FRAME_OK) {
        msgpack_unpacked up;
        char err[256];
        if (vl_mp_unpack_map(p, len, &up, err, sizeof err)) {
            vl_warn("bad frame from the gateway: %s; closing", err);
            conn_close(c);
            return;
        }
        const msgpack_object *type = vl_mp_get(&up.data, "type");
        if (vl_mp_str_eq(type, "embed"))
            handle_embed(c, &up.data);
        else
            vl_warn("ignoring a frame of unknown type from the gateway");
        msgpack_unpacked_destroy(&up);
    }
    if (!c->dead && rc < 0) {
        vl_warn("framing error from the gateway (%d); closing", rc);
        conn_close(c);
    }
}

static void send_hello(struct wconn *c)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8);
    vl_mp_pack_kv_str(&pk, "type", "hello");
    vl_mp_pack_kv_int(&pk, "pid", getpid());
    vl_mp_pack_kv_str(&pk, "device", S.o->device ? S.o->device : "");
    vl_mp_pack_kv_str(&pk, "backend", S.o->backend_name ? S.o->backend_name : "");
    vl_mp_pack_kv_str(&pk, "fingerprint", S.o->fingerprint ? S.o->fingerprint : "");
    vl_mp_pack_kv_int(&pk, "dim", S.o->hidden);
    vl_mp_pack_kv_int(&pk, "max_tokens", S.o->max_tokens);
    vl_mp_pack_kv_int(&pk, "max_batch_tokens", S.o->max_batch_tokens);
    write_frame((uv_stream_t *)&c->pipe, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static void on_connection(uv_stream_t *ls, int status)
{
    if (status < 0)
        return;
    struct wconn *c = vl_calloc(1, sizeof *c);
    uv_pipe_init(S.loop, &c->pipe, 0);
    c->pipe.data = c;
    c->refs = 1;
    vl_frame_reader_init(&c->rd, VL_FRAME_MAX_INTERNAL);
    if (uv_accept(ls, (uv_stream_t *)&c->pipe) != 0) {
        c->dead = 1;
        uv_close((uv_handle_t *)&c->pipe, conn_closed);
        return;
    }
    c->next = S.conns;
    if (S.conns)
        S.conns->prev = c;
    S.conns = c;
    send_hello(c);
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_conn_read);
}

/* ---- supervisor channel, signals, drain ---------------------------------------------- */

static void on_heartbeat(uv_timer_t *t)
{
    pthread_mutex_lock(&S.mu);
    int q = S.n_queued, f = S.n_inflight;
    pthread_mutex_unlock(&S.mu);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    vl_mp_pack_kv_str(&pk, "type", "heartbeat");
    vl_mp_pack_kv_int(&pk, "pid", getpid());
    vl_mp_pack_kv_int(&pk, "queue", q);
    vl_mp_pack_kv_int(&pk, "inflight", f);
    ctl_send(&sb);
    msgpack_sbuffer_destroy(&sb);
}

static void begin_drain(const char *why)
{
    if (S.draining)
        return;
    S.draining = 1;
    vl_info("draining (%s): answering the items already received, taking no new ones", why);
    if (S.listening) {
        S.listening = 0;
        struct stat st;
        if (stat(S.o->socket_path, &st) == 0 && st.st_ino == S.sock_ino)
            unlink(S.o->socket_path);
        uv_close((uv_handle_t *)&S.listener, NULL);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    vl_mp_pack_kv_str(&pk, "type", "draining");
    vl_mp_pack_kv_int(&pk, "pid", getpid());
    ctl_send(&sb);
    msgpack_sbuffer_destroy(&sb);
    check_drained();
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        if (h->type == UV_NAMED_PIPE && h != (uv_handle_t *)&S.listener &&
            h != (uv_handle_t *)&S.ctl) {
            conn_close(h->data);
            return;
        }
        uv_close(h, NULL);
    }
}

static void check_drained(void)
{
    if (!S.draining || S.finished)
        return;
    pthread_mutex_lock(&S.mu);
    int busy = S.n_queued || S.n_inflight || S.done_head;
    pthread_mutex_unlock(&S.mu);
    if (busy || S.pending_writes > 0)
        return;
    S.finished = 1;
    vl_info("drained: %llu items in %llu batches served; exiting", (unsigned long long)S.n_items,
            (unsigned long long)S.n_batches);
    uv_walk(S.loop, close_walk, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    begin_drain(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_ctl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    free(b->base);
    if (n < 0) {
        uv_read_stop(s);
        begin_drain("the supervisor's control channel closed");
    }
}

static void send_ready(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    vl_mp_pack_kv_str(&pk, "type", "ready");
    vl_mp_pack_kv_str(&pk, "socket", S.o->socket_path);
    vl_mp_pack_kv_int(&pk, "pid", getpid());
    vl_mp_pack_kv_str(&pk, "device", S.o->device ? S.o->device : "");
    vl_mp_pack_kv_str(&pk, "fingerprint", S.o->fingerprint ? S.o->fingerprint : "");
    ctl_send(&sb);
    msgpack_sbuffer_destroy(&sb);
}

int serve_run(const struct serve_opts *o, struct vl_backend *backend)
{
    memset(&S, 0, sizeof S);
    S.o = o;
    S.be = backend;
    S.loop = uv_default_loop();
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.cv, NULL);
    signal(SIGPIPE, SIG_IGN);

    uv_pipe_init(S.loop, &S.listener, 0);
    unlink(o->socket_path);
    mode_t old = umask(0177);
    int rc = uv_pipe_bind(&S.listener, o->socket_path);
    umask(old);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&S.listener, 128, on_connection);
    if (rc) {
        vl_error("listen on worker socket \"%s\" failed: %s", o->socket_path, uv_strerror(rc));
        return VL_EXIT_TRANSIENT;
    }
    chmod(o->socket_path, 0600);
    struct stat st;
    if (stat(o->socket_path, &st) == 0)
        S.sock_ino = st.st_ino;
    S.listening = 1;

    uv_async_init(S.loop, &S.async, on_async);
    uv_signal_init(S.loop, &S.sigterm);
    uv_signal_start(&S.sigterm, on_signal, SIGTERM);
    uv_signal_init(S.loop, &S.sigint);
    uv_signal_start(&S.sigint, on_signal, SIGINT);
    if (o->control_fd >= 0) {
        uv_pipe_init(S.loop, &S.ctl, 0);
        if (uv_pipe_open(&S.ctl, o->control_fd) == 0) {
            S.have_ctl = 1;
            uv_read_start((uv_stream_t *)&S.ctl, on_alloc, on_ctl_read);
        } else
            vl_warn("control fd %d is not usable; running without a supervisor", o->control_fd);
    }
    uv_timer_init(S.loop, &S.hb);
    uv_timer_start(&S.hb, on_heartbeat, 1000, 1000);
    if (pthread_create(&S.th, NULL, infer_main, NULL) != 0) {
        vl_error("pthread_create() failed for the inference thread");
        return VL_EXIT_TRANSIENT;
    }
    vl_info("serving on %s (backend %s, device %s, dim %d, batch %lld tokens / %d items)",
            o->socket_path, o->backend_name ? o->backend_name : "?", o->device ? o->device : "?",
            o->hidden, (long long)o->max_batch_tokens, o->max_batch_items);
    send_ready();

    uv_run(S.loop, UV_RUN_DEFAULT);

    pthread_mutex_lock(&S.mu);
    S.stop = 1;
    pthread_cond_signal(&S.cv);
    pthread_mutex_unlock(&S.mu);
    pthread_join(S.th, NULL);
    uv_loop_close(S.loop);
    return VL_EXIT_OK;
}

/* ---- fingerprint ------------------------------------------------------------------------- */

static void fnv(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 0x100000001b3ull;
    }
}

static int hash_file_head(uint64_t *h, const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t buf[65536];
    size_t total = 0, n;
    while (total < max && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (total + n > max)
            n = max - total;
        fnv(h, buf, n);
        total += n;
    }
    fclose(f);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int serve_fingerprint(const char *dir, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ull;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (hash_file_head(&h, path, 1 << 20))
        return -1;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char *names[256] = {0};
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 12 && strcmp(e->d_name + l - 12, ".safetensors") == 0)
            names[n++] = vl_strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        fnv(&h, names[i], strlen(names[i]));
        struct stat st;
        if (stat(path, &st) == 0)
            fnv(&h, &st.st_size, sizeof st.st_size);
        /* the safetensors header: 8-byte length, then JSON naming every tensor and offset */
        FILE *f = fopen(path, "rb");
        uint8_t lb[8];
        uint64_t hl = 0;
        if (f && fread(lb, 1, 8, f) == 8)
            for (int k = 7; k >= 0; k--)
                hl = (hl << 8) | lb[k];
        if (f)
            fclose(f);
        if (hl > 0 && hl < (64u << 20))
            hash_file_head(&h, path, 8 + (size_t)hl);
        free(names[i]);
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return 0;
}
