/* Worker connections, routing, retry and admission (see router.h; frames in docs/wire.md). */
#include "gateway/router.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/frame.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/msgpack_util.h"

struct router_slot {
    uint64_t wire_id;
    struct router_req *q;
    int index;
    struct router_worker *w; /* where it is in flight, or NULL */
    int attempts;
    int done;
};

struct router_req {
    void *owner;
    router_done_fn cb;
    const struct vl_item *items;
    int n;
    uint64_t deadline_ns;
    struct router_slot *slots;
};

struct wbuf {
    uv_write_t w;
    char *buf;
};

static void worker_connect(struct router_worker *w);

/* ---- slot table ------------------------------------------------------------------------ */

static size_t h64(uint64_t x, size_t cap)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static void tab_put(struct router *r, struct router_slot *s);

static void tab_grow(struct router *r)
{
    struct router_slot **old = r->tab;
    size_t oc = r->tab_cap;
    r->tab_cap = oc ? oc * 2 : 1024;
    r->tab = vl_calloc(r->tab_cap, sizeof *r->tab);
    r->tab_n = 0;
    for (size_t i = 0; i < oc; i++)
        if (old[i])
            tab_put(r, old[i]);
    free(old);
}

static void tab_put(struct router *r, struct router_slot *s)
{
    if ((r->tab_n + 1) * 2 > r->tab_cap)
        tab_grow(r);
    size_t i = h64(s->wire_id, r->tab_cap);
    while (r->tab[i])
        i = (i + 1) & (r->tab_cap - 1);
    r->tab[i] = s;
    r->tab_n++;
}

static struct router_slot *tab_get(struct router *r, uint64_t id)
{
    if (!r->tab_cap)
        return NULL;
    size_t i = h64(id, r->tab_cap);
    while (r->tab[i]) {
        if (r->tab[i]->wire_id == id)
            return r->tab[i];
        i = (i + 1) & (r->tab_cap - 1);
    }
    return NULL;
}

static void tab_del(struct router *r, uint64_t id)
{
    if (!r->tab_cap)
        return;
    size_t i = h64(id, r->tab_cap);
    while (r->tab[i] && r->tab[i]->wire_id != id)
        i = (i + 1) & (r->tab_cap - 1);
    if (!r->tab[i])
        return;
    r->tab[i] = NULL;
    r->tab_n--;
    /* re-insert the rest of the cluster */
    size_t j = (i + 1) & (r->tab_cap - 1);
    while (r->tab[j]) {
        struct router_slot *s = r->tab[j];
        r->tab[j] = NULL;
        r->tab_n--;
        tab_put(r, s);
        j = (j + 1) & (r->tab_cap - 1);
    }
}

/* ---- states ------------------------------------------------------------------------------ */

enum router_wstate router_state_parse(const char *s)
{
    if (!s)
        return RW_DEAD;
    if (!strcmp(s, "starting"))
        return RW_STARTING;
    if (!strcmp(s, "ready"))
        return RW_READY;
    if (!strcmp(s, "draining"))
        return RW_DRAINING;
    if (!strcmp(s, "stopping"))
        return RW_STOPPING;
    return RW_DEAD;
}

const char *router_state_name(enum router_wstate s)
{
    static const char *n[] = {"starting", "ready", "draining", "stopping", "dead"};
    return (unsigned)s < 5 ? n[s] : "dead";
}

static int usable(const struct router_worker *w)
{
    return w->state == RW_READY && w->connected && w->hello && !w->removed;
}

int router_ready_count(const struct router *r)
{
    int n = 0;
    for (int i = 0; i < r->n_w; i++)
        n += usable(r->w[i]);
    return n;
}

int router_coming_count(const struct router *r)
{
    int n = 0;
    for (int i = 0; i < r->n_w; i++)
        n += r->w[i]->state == RW_READY && !r->w[i]->removed && !usable(r->w[i]);
    return n;
}

const struct router_worker *router_any_ready(const struct router *r)
{
    for (int i = 0; i < r->n_w; i++)
        if (usable(r->w[i]))
            return r->w[i];
    for (int i = 0; i < r->n_w; i++)
        if (r->w[i]->hello)
            return r->w[i];
    return NULL;
}

static struct router_worker *next_ready(struct router *r, const struct router_worker *avoid)
{
    for (int k = 0; k < r->n_w; k++) {
        struct router_worker *w = r->w[(r->rr + k) % r->n_w];
        if (w != avoid && usable(w)) {
            r->rr = (r->rr + k + 1) % r->n_w;
            return w;
        }
    }
    return NULL;
}

/* ---- sending ----------------------------------------------------------------------------- */

static void on_written(uv_write_t *w, int status)
{
    struct wbuf *b = (struct wbuf *)w;
    free(b->buf);
    free(b);
}

static int send_sbuf(struct router_worker *w, msgpack_sbuffer *sb)
{
    struct wbuf *b = vl_malloc(sizeof *b);
    b->buf = vl_malloc(sb->size + 4);
    vl_frame_header((uint8_t *)b->buf, (uint32_t)sb->size);
    memcpy(b->buf + 4, sb->data, sb->size);
    uv_buf_t ub = uv_buf_init(b->buf, (unsigned)(sb->size + 4));
    int rc = uv_write(&b->w, (uv_stream_t *)&w->pipe, &ub, 1, on_written);
    if (rc) {
        free(b->buf);
        free(b);
    }
    return rc;
}

static size_t item_bytes(const struct vl_item *it)
{
    size_t n = (size_t)it->n_ids * 4 + 64;
    for (int v = 0; v < it->n_visuals; v++)
        n +=
            (size_t)it->visuals[v].n_frames * it->visuals[v].height * it->visuals[v].width * 3 + 64;
    return n;
}

/* Packs slots[0..n) into embed frames (split under max_frame_bytes) to worker w. */
static void send_slots(struct router *r, struct router_worker *w, struct router_slot **slots, int n)
{
    int i = 0;
    uint64_t now = uv_hrtime();
    while (i < n) {
        int j = i;
        size_t bytes = 64;
        while (j < n) {
            size_t b = item_bytes(&slots[j]->q->items[slots[j]->index]);
            if (j > i && bytes + b > r->max_frame_bytes)
                break;
            bytes += b;
            j++;
        }
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        vl_mp_pack_kv_str(&pk, "type", "embed");
        vl_mp_pack_cstr(&pk, "items");
        msgpack_pack_array(&pk, (size_t)(j - i));
        for (int k = i; k < j; k++) {
            struct router_slot *s = slots[k];
            const struct vl_item *it = &s->q->items[s->index];
            uint64_t dl = s->q->deadline_ns;
            uint64_t ms = dl > now ? (dl - now) / 1000000ull + 1 : 1;
            msgpack_pack_map(&pk, 4);
            vl_mp_pack_cstr(&pk, "id");
            msgpack_pack_uint64(&pk, s->wire_id);
            vl_mp_pack_cstr(&pk, "deadline_ms");
            msgpack_pack_uint64(&pk, ms);
            vl_mp_pack_cstr(&pk, "ids");
            msgpack_pack_bin_with_body(&pk, it->ids, (size_t)it->n_ids * 4);
            vl_mp_pack_cstr(&pk, "visuals");
            msgpack_pack_array(&pk, (size_t)it->n_visuals);
            for (int v = 0; v < it->n_visuals; v++) {
                const struct vl_visual *x = &it->visuals[v];
                msgpack_pack_map(&pk, 3);
                vl_mp_pack_kv_str(&pk, "kind", x->kind == VL_VISUAL_IMAGE ? "image" : "video");
                vl_mp_pack_cstr(&pk, "grid");
                msgpack_pack_array(&pk, 3);
                msgpack_pack_int32(&pk, x->grid_t);
                msgpack_pack_int32(&pk, x->grid_h);
                msgpack_pack_int32(&pk, x->grid_w);
                vl_mp_pack_cstr(&pk, "pixels");
                msgpack_pack_bin_with_body(&pk, x->pixels,
                                           (size_t)x->n_frames * x->height * x->width * 3);
            }
            s->w = w;
            w->inflight++;
        }
        send_sbuf(w, &sb);
        r->n_frames++;
        msgpack_sbuffer_destroy(&sb);
        i = j;
    }
}

static void slot_finish(struct router *r, struct router_slot *s, const float *vec, int dim,
                        const char *code, const char *err)
{
    if (s->done)
        return;
    s->done = 1;
    if (s->w) {
        s->w->inflight--;
        s->w = NULL;
    }
    tab_del(r, s->wire_id);
    s->q->cb(s->q->owner, s->index, vec, dim, code, err);
}

/* Sends slots to ready workers round-robin, one frame per worker. `avoid` is skipped when
 * another worker is ready (retries). */
static void dispatch(struct router *r, struct router_slot **slots, int n,
                     struct router_worker *avoid)
{
    if (n == 0)
        return;
    int nw = r->n_w;
    struct router_slot ***per = vl_calloc((size_t)nw, sizeof *per);
    int *cnt = vl_calloc((size_t)nw, sizeof *cnt);
    for (int i = 0; i < n; i++) {
        struct router_worker *w = next_ready(r, avoid);
        if (!w)
            w = next_ready(r, NULL);
        if (!w) {
            slot_finish(r, slots[i], NULL, 0, "no_worker", "no worker is ready to embed this item");
            continue;
        }
        int wi = 0;
        while (r->w[wi] != w)
            wi++;
        if (!per[wi])
            per[wi] = vl_calloc((size_t)n, sizeof **per);
        per[wi][cnt[wi]++] = slots[i];
    }
    for (int wi = 0; wi < nw; wi++) {
        if (cnt[wi])
            send_slots(r, r->w[wi], per[wi], cnt[wi]);
        free(per[wi]);
    }
    free(per);
    free(cnt);
}

struct router_req *router_submit(struct router *r, void *owner, const struct vl_item *items, int n,
                                 uint64_t deadline_ns, router_done_fn cb)
{
    struct router_req *q = vl_calloc(1, sizeof *q);
    q->owner = owner;
    q->cb = cb;
    q->items = items;
    q->n = n;
    q->deadline_ns = deadline_ns;
    q->slots = vl_calloc((size_t)(n ? n : 1), sizeof *q->slots);
    struct router_slot **list = vl_calloc((size_t)(n ? n : 1), sizeof *list);
    for (int i = 0; i < n; i++) {
        struct router_slot *s = &q->slots[i];
        s->wire_id = ++r->next_id;
        s->q = q;
        s->index = i;
        s->attempts = 1;
        tab_put(r, s);
        list[i] = s;
    }
    dispatch(r, list, n, NULL);
    free(list);
    return q;
}

void router_release(struct router *r, struct router_req *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->n; i++) {
        struct router_slot *s = &q->slots[i];
        if (!s->done) {
            s->done = 1;
            if (s->w)
                s->w->inflight--;
            tab_del(r, s->wire_id);
        }
    }
    free(q->slots);
    free(q);
}

/* ---- admission ---------------------------------------------------------------------------- */

int router_admit(struct router *r, int n)
{
    if (router_ready_count(r) == 0)
        return -1;
    if (r->admitted > 0 && r->admitted + n > r->max_items_inflight)
        return -2;
    r->admitted += n;
    return 0;
}

void router_unadmit(struct router *r, int n)
{
    r->admitted -= n;
    if (r->admitted < 0)
        r->admitted = 0;
}

/* ---- worker connections ------------------------------------------------------------------ */

static void maybe_drained(struct router *r, struct router_worker *w)
{
    if (w->state == RW_DRAINING && w->inflight == 0 && !w->drained_sent && r->on_drained) {
        w->drained_sent = 1;
        r->on_drained(r->user, w->id);
    }
}

/* The worker's connection is gone: every item in flight on it goes to another worker once. */
static void worker_lost(struct router_worker *w, const char *why)
{
    struct router *r = w->r;
    int n = 0;
    struct router_slot **list = vl_calloc(r->tab_n + 1, sizeof *list);
    for (size_t i = 0; i < r->tab_cap; i++)
        if (r->tab[i] && r->tab[i]->w == w && !r->tab[i]->done)
            list[n++] = r->tab[i];
    if (n) {
        w->n_deaths++;
        r->n_worker_deaths++;
        vl_warn("worker %d (%s) lost with %d items in flight: %s", w->id, w->socket, n, why);
    }
    int m = 0;
    uint64_t now = uv_hrtime();
    for (int i = 0; i < n; i++) {
        struct router_slot *s = list[i];
        s->w = NULL;
        w->inflight--;
        if (s->attempts >= 2) {
            /* a possible poison pill: name it by a hash of what the worker was given, so an
             * operator can find the input that crashes workers (notes/reliability.md §1.5) */
            const struct vl_item *it = &s->q->items[s->index];
            uint64_t h = 0xcbf29ce484222325ull;
            for (int32_t k = 0; k < it->n_ids; k++)
                h = (h ^ (uint32_t)it->ids[k]) * 0x100000001b3ull;
            for (int v = 0; v < it->n_visuals; v++) {
                const struct vl_visual *x = &it->visuals[v];
                size_t nb = (size_t)x->n_frames * x->height * x->width * 3;
                for (size_t k = 0; k < nb; k += 97)
                    h = (h ^ x->pixels[k]) * 0x100000001b3ull;
            }
            vl_error("item %llu lost with two workers in a row; failing it (input hash %016llx, "
                     "%d tokens, %d visuals)",
                     (unsigned long long)s->wire_id, (unsigned long long)h, it->n_ids,
                     it->n_visuals);
            slot_finish(r, s, NULL, 0, "worker_died",
                        "the worker died twice while embedding this item");
        } else if (s->q->deadline_ns && now >= s->q->deadline_ns) {
            slot_finish(r, s, NULL, 0, "deadline_exceeded", "the request's deadline passed");
        } else {
            s->attempts++;
            r->n_retries++;
            list[m++] = s;
        }
    }
    w->inflight = 0;
    dispatch(r, list, m, w);
    free(list);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct router_worker *w = h->data;
    free(w->socket);
    if (w->rd) {
        vl_frame_reader_free(w->rd);
        free(w->rd);
    }
    free(w);
}

static void on_retry(uv_timer_t *t)
{
    worker_connect(t->data);
}

static void on_pipe_closed(uv_handle_t *h)
{
    struct router_worker *w = h->data;
    w->handle_open = 0;
    if (w->removed) {
        uv_close((uv_handle_t *)&w->retry, on_timer_closed);
        return;
    }
    if (w->state != RW_DEAD && w->state != RW_STOPPING) {
        uv_timer_start(&w->retry, on_retry, (uint64_t)w->backoff_ms, 0);
        w->backoff_ms = w->backoff_ms < 1000 ? w->backoff_ms * 2 : 1000;
    }
}

static void worker_disconnect(struct router_worker *w, const char *why)
{
    if (!w->handle_open || uv_is_closing((uv_handle_t *)&w->pipe))
        return;
    int was = w->connected;
    w->connected = 0;
    w->hello = 0;
    w->connecting = 0;
    if (was)
        worker_lost(w, why);
    uv_close((uv_handle_t *)&w->pipe, on_pipe_closed);
}

static void handle_result(struct router_worker *w, const msgpack_object *root)
{
    struct router *r = w->r;
    const msgpack_object *items = vl_mp_get(root, "items");
    if (!items || items->type != MSGPACK_OBJECT_ARRAY)
        return;
    struct router_slot **retry = vl_calloc(items->via.array.size + 1, sizeof *retry);
    int m = 0;
    for (uint32_t i = 0; i < items->via.array.size; i++) {
        const msgpack_object *it = &items->via.array.ptr[i];
        uint64_t id;
        if (vl_mp_uint(vl_mp_get(it, "id"), &id))
            continue;
        struct router_slot *s = tab_get(r, id);
        if (!s || s->w != w || s->done)
            continue; /* released meanwhile, or not ours: never matched to anything else */
        const msgpack_object *emb = vl_mp_get(it, "embedding");
        if (emb && emb->type == MSGPACK_OBJECT_BIN && emb->via.bin.size % 4 == 0 &&
            emb->via.bin.size > 0) {
            int dim = (int)(emb->via.bin.size / 4);
            float *v = vl_malloc(emb->via.bin.size);
            memcpy(v, emb->via.bin.ptr, emb->via.bin.size);
            w->n_items++;
            slot_finish(r, s, v, dim, NULL, NULL);
            free(v);
            continue;
        }
        char *code = vl_mp_strdup(vl_mp_get(it, "code"));
        char *err = vl_mp_strdup(vl_mp_get(it, "error"));
        if (code && strcmp(code, "draining") == 0) {
            /* the worker stopped taking items: send it elsewhere (not counted as an attempt) */
            s->w = NULL;
            w->inflight--;
            retry[m++] = s;
        } else {
            slot_finish(r, s, NULL, 0, code ? code : "internal", err ? err : "worker error");
        }
        free(code);
        free(err);
    }
    dispatch(r, retry, m, w);
    free(retry);
    maybe_drained(r, w);
}

static void handle_hello(struct router_worker *w, const msgpack_object *root)
{
    int64_t v;
    char *s;
    if (vl_mp_int(vl_mp_get(root, "dim"), &v) == 0)
        w->dim = (int)v;
    if (vl_mp_int(vl_mp_get(root, "pid"), &v) == 0)
        w->pid = (int)v;
    if ((s = vl_mp_strdup(vl_mp_get(root, "fingerprint")))) {
        snprintf(w->fingerprint, sizeof w->fingerprint, "%s", s);
        free(s);
    }
    if ((s = vl_mp_strdup(vl_mp_get(root, "device")))) {
        snprintf(w->device, sizeof w->device, "%s", s);
        free(s);
    }
    w->hello = w->dim > 0;
    w->backoff_ms = 50;
    vl_info("worker %d on %s: pid %d, %s, dim %d, checkpoint %s", w->id, w->socket, w->pid,
            w->device, w->dim, w->fingerprint);
}

static void on_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *b)
{
    b->base = vl_malloc(256 * 1024);
    b->len = 256 * 1024;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct router_worker *w = s->data;
    if (n < 0) {
        free(b->base);
        worker_disconnect(w, n == UV_EOF ? "connection closed" : uv_strerror((int)n));
        return;
    }
    int rc = n > 0 ? vl_frame_reader_feed(w->rd, b->base, (size_t)n) : 0;
    free(b->base);
    if (rc) {
        worker_disconnect(w, "frame over the cap");
        return;
    }
    const uint8_t *p;
    size_t len;
    while (w->connected && (rc = vl_frame_reader_next(w->rd, &p, &len)) == VL_FRAME_OK) {
        msgpack_unpacked up;
        char err[256];
        if (vl_mp_unpack_map(p, len, &up, err, sizeof err)) {
            worker_disconnect(w, err);
            return;
        }
        const msgpack_object *type = vl_mp_get(&up.data, "type");
        if (vl_mp_str_eq(type, "result"))
            handle_result(w, &up.data);
        else if (vl_mp_str_eq(type, "hello"))
            handle_hello(w, &up.data);
        msgpack_unpacked_destroy(&up);
    }
    if (w->connected && rc < 0)
        worker_disconnect(w, "framing error");
}

static void on_connect(uv_connect_t *req, int status)
{
    struct router_worker *w = req->data;
    w->connecting = 0;
    if (status < 0 || w->removed) {
        if (!uv_is_closing((uv_handle_t *)&w->pipe))
            uv_close((uv_handle_t *)&w->pipe, on_pipe_closed);
        return;
    }
    w->connected = 1;
    if (!w->rd) {
        w->rd = vl_malloc(sizeof(struct vl_frame_reader));
        vl_frame_reader_init(w->rd, VL_FRAME_MAX_INTERNAL);
    } else {
        vl_frame_reader_free(w->rd);
        vl_frame_reader_init(w->rd, VL_FRAME_MAX_INTERNAL);
    }
    uv_read_start((uv_stream_t *)&w->pipe, on_alloc, on_read);
}

static void worker_connect(struct router_worker *w)
{
    if (w->handle_open || w->removed || w->state == RW_DEAD || w->state == RW_STOPPING)
        return;
    uv_pipe_init(w->r->loop, &w->pipe, 0);
    w->pipe.data = w;
    w->handle_open = 1;
    w->connecting = 1;
    w->conn_req.data = w;
    uv_pipe_connect(&w->conn_req, &w->pipe, w->socket, on_connect);
}

static struct router_worker *worker_new(struct router *r, int id, const char *socket)
{
    struct router_worker *w = vl_calloc(1, sizeof *w);
    w->r = r;
    w->id = id;
    w->socket = vl_strdup(socket);
    w->backoff_ms = 50;
    uv_timer_init(r->loop, &w->retry);
    w->retry.data = w;
    r->w = vl_realloc(r->w, (size_t)(r->n_w + 1) * sizeof *r->w);
    r->w[r->n_w++] = w;
    return w;
}

static void worker_remove(struct router *r, int idx)
{
    struct router_worker *w = r->w[idx];
    memmove(&r->w[idx], &r->w[idx + 1], (size_t)(r->n_w - idx - 1) * sizeof *r->w);
    r->n_w--;
    if (r->n_w)
        r->rr %= r->n_w;
    else
        r->rr = 0;
    w->state = RW_DEAD;
    if (w->handle_open)
        worker_disconnect(w, "no longer listed by the supervisor");
    w->removed = 1;
    uv_timer_stop(&w->retry);
    if (!w->handle_open)
        uv_close((uv_handle_t *)&w->retry, on_timer_closed);
}

void router_init(struct router *r, uv_loop_t *loop, int64_t max_items_inflight)
{
    memset(r, 0, sizeof *r);
    r->loop = loop;
    r->max_items_inflight = max_items_inflight;
    r->max_frame_bytes = VL_FRAME_MAX_INTERNAL / 2;
}

void router_add_static(struct router *r, const char *csv)
{
    const char *p = csv;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) {
            char *s = vl_strndup(p, n);
            struct router_worker *w = worker_new(r, r->n_w, s);
            w->state = RW_READY;
            free(s);
            worker_connect(w);
        }
        p = e ? e + 1 : NULL;
    }
}

void router_set_workers(struct router *r, const struct router_winfo *ws, int n)
{
    /* drop the ones no longer listed */
    for (int i = 0; i < r->n_w;) {
        int found = 0;
        for (int k = 0; k < n; k++)
            found |= ws[k].id == r->w[i]->id && !strcmp(ws[k].socket, r->w[i]->socket);
        if (!found)
            worker_remove(r, i);
        else
            i++;
    }
    for (int k = 0; k < n; k++) {
        struct router_worker *w = NULL;
        for (int i = 0; i < r->n_w; i++)
            if (r->w[i]->id == ws[k].id)
                w = r->w[i];
        if (!w)
            w = worker_new(r, ws[k].id, ws[k].socket);
        enum router_wstate old = w->state;
        w->state = ws[k].state;
        w->pid = ws[k].pid;
        if (ws[k].device)
            snprintf(w->device, sizeof w->device, "%s", ws[k].device);
        if (w->state == RW_DEAD || w->state == RW_STOPPING) {
            if (w->handle_open)
                worker_disconnect(w, "the supervisor marked it stopped");
        } else if (!w->handle_open) {
            uv_timer_stop(&w->retry);
            worker_connect(w);
        }
        if (old != w->state)
            w->drained_sent = 0;
        if (old != w->state)
            vl_info("worker %d (%s): %s -> %s", w->id, w->socket, router_state_name(old),
                    router_state_name(w->state));
        maybe_drained(r, w);
    }
}

void router_close(struct router *r)
{
    while (r->n_w)
        worker_remove(r, r->n_w - 1);
    free(r->w);
    r->w = NULL;
    free(r->tab);
    r->tab = NULL;
    r->tab_cap = r->tab_n = 0;
}
