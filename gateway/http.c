/* HTTP/1.1 server on libuv + libhttp-parser (see http.h for what it promises).
 *
 * Each connection owns one parser and an ordered queue of outstanding requests. A request
 * enters the queue when its message completes (or at once, already answered, when it is
 * refused: 400/413/431); responses leave the queue only from its head, so pipelined
 * requests are answered in order whatever order the handler finishes them in. */
#include "gateway/http.h"

#include <ctype.h>
#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/limits.h"
#include "common/log.h"
#include "gateway/clients.h"
#include "gateway/membudget.h"
#include "gateway/send_deadline.h"

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct http_server *srv;
    http_parser parser;
    struct http_conn *prev, *next;
    struct http_req *head, *tail; /* outstanding, in arrival order */
    int n_outstanding;
    struct http_req *cur; /* being parsed */
    /* current header being accumulated */
    char hfield[64];
    size_t hfield_len;
    char *hvalue;
    size_t hvalue_len;
    int in_value;
    int expect_continue;
    size_t head_bytes;
    int n_headers;
    int in_body;
    char *url;
    size_t url_len;
    size_t body_cap;      /* bytes allocated for the body (with its NUL) */
    size_t body_declared; /* Content-Length, 0 if none */
    /* bytes read but not parsed while paused */
    char *pending;
    size_t pending_len;
    int paused, reading, closing, fatal, lingering;
    int open_handles;
    int refused_head; /* the request being parsed was answered by on_head */
    char peer[48];
    struct client *client; /* when per-client connection caps are on */
    /* uv_now() when the current request began, its head ended, and bytes last arrived */
    uint64_t t_req_ms, t_body_ms, t_read_ms;
    uint64_t t_active_ms;       /* the last read or answer queued: the idle clock */
    struct vl_send_clock sendk; /* progress of the answers queued for the socket */
};

struct write_req {
    uv_write_t w;
    char *buf;
    int close_after;
    int64_t charged; /* bytes of srv->mem_budget held for buf until it is written */
};

/* conn_deadline's kinds besides the receive deadlines (enum http_timeout_kind, >= 0) */
#define CONN_DL_IDLE (-1)            /* nothing outstanding or queued: idle_timeout_ms */
#define CONN_DL_SEND VL_SEND_DL_SEND /* queued answers made no progress: send_timeout_ms */
#define CONN_DL_TICK VL_SEND_DL_TICK /* sample the send queue (gateway/send_deadline.h) */

static void conn_close(struct http_conn *c);
static void conn_flush(struct http_conn *c);
static void conn_arm_timer(struct http_conn *c);
static void conn_resume(struct http_conn *c);
static void http_write_done(uv_write_t *w, int status);

void http_limits_default(struct http_limits *l)
{
    l->max_header_bytes = 32 * 1024;
    l->max_headers = 100;
    l->max_body_bytes = 32u * 1024 * 1024;
    l->max_pipeline = 32;
    l->max_conns = 4096;
    l->header_timeout_ms = 10000;
    l->body_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->request_timeout_ms = 120000;
    l->min_body_rate = 1024;
    l->body_rate_grace_ms = 10000;
    l->max_client_conns = 0;
    l->send_timeout_ms = VL_SEND_TIMEOUT_MS_DEFAULT;
    l->max_unsent_bytes = VL_MAX_UNSENT_BYTES_DEFAULT;
}

/* Bytes of answers queued for c's socket that the kernel has not taken yet. */
static size_t conn_unsent(const struct http_conn *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

static void conn_observe(struct http_conn *c)
{
    vl_send_observe(&c->sendk, conn_unsent(c), uv_now(c->srv->loop));
}

/* Whether another request may be handed to the handler: the pipeline has room and the answers
 * queued are not over max_unsent_bytes. */
static int conn_may_take(const struct http_conn *c)
{
    return c->n_outstanding < c->srv->lim.max_pipeline &&
           !vl_send_backlogged(conn_unsent(c), c->srv->lim.max_unsent_bytes);
}

/* After a request was queued: pauses the parser if no more may be taken (counted when it is for
 * the unsent answers). */
static void conn_pause_if_full(struct http_conn *c, http_parser *p)
{
    if (conn_may_take(c))
        return;
    if (c->n_outstanding < c->srv->lim.max_pipeline)
        c->srv->n_send_paused++;
    http_parser_pause(p, 1);
}

const char *http_status_text(int s)
{
    switch (s) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

static void free_secret(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

static void req_free(struct http_req *r)
{
    if (!r)
        return;
    if (r->admission && r->srv && r->srv->on_release)
        r->srv->on_release(r->srv, r);
    if (r->mem_charged && r->srv)
        mem_budget_release(r->srv->mem_budget, r->mem_charged);
    free_secret(r->authorization);
    free_secret(r->api_key);
    free(r->path);
    free(r->query);
    free(r->content_type);
    free(r->request_id);
    free(r->body);
    free(r->resp);
    free(r);
}

void http_req_drop_body(struct http_req *r, int64_t keep)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    if (keep < 0)
        keep = 0;
    if (r->mem_charged > keep && r->srv) {
        mem_budget_release(r->srv->mem_budget, r->mem_charged - keep);
        r->mem_charged = keep;
    }
}

static char *build_response(int status, const char *ctype, const char *extra, const void *body,
                            size_t len, int keep_alive, size_t *out_len)
{
    char head[1024];
    int n =
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%sConnection: %s\r\n%s\r\n", status,
                 http_status_text(status), len, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                 ctype ? "\r\n" : "", keep_alive ? "keep-alive" : "close", extra ? extra : "");
    size_t hl = (size_t)n < sizeof head ? (size_t)n : sizeof head - 1;
    char *out = vl_malloc(hl + len);
    memcpy(out, head, hl);
    if (len)
        memcpy(out + hl, body, len);
    *out_len = hl + len;
    return out;
}

void http_respond(struct http_req *req, int status, const char *content_type,
                  const char *extra_headers, const void *body, size_t len)
{
    struct http_conn *c = req->conn;
    if (!c) { /* the client went away: nobody to answer */
        req_free(req);
        return;
    }
    if (req->responded)
        return;
    int ka = req->keep_alive && !req->close_after && !c->closing;
    req->resp = build_response(status, content_type, extra_headers, body, len, ka, &req->resp_len);
    req->close_after = !ka;
    req->responded = 1;
    conn_flush(c);
}

static void enqueue(struct http_conn *c, struct http_req *r)
{
    r->next = NULL;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->n_outstanding++;
}

/* Appends an already-answered request (a refusal) and stops parsing this connection. msg must
 * need no JSON escaping. */
static void conn_refuse(struct http_conn *c, int status, const char *msg)
{
    struct http_req *r = c->cur ? c->cur : vl_calloc(1, sizeof *r);
    c->cur = NULL;
    r->conn = c;
    r->srv = c->srv;
    r->next = NULL;
    char body[640];
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"message\":\"%s\",\"type\":\"%s\","
                     "\"param\":null,\"code\":\"%s\"}}",
                     msg,
                     status == 429   ? "rate_limit_error"
                     : status == 503 ? "service_unavailable"
                                     : "invalid_request_error",
                     status == 413   ? "request_too_large"
                     : status == 431 ? "headers_too_large"
                     : status == 408 ? "request_timeout"
                     : status == 429 ? "too_many_connections"
                     : status == 503 ? "memory_busy"
                                     : "bad_request");
    r->keep_alive = 0;
    r->close_after = 1;
    r->resp = build_response(status, "application/json",
                             status == 429 || status == 503 ? "Retry-After: 1\r\n" : NULL, body,
                             (size_t)n, 0, &r->resp_len);
    r->responded = 1;
    enqueue(c, r);
    c->fatal = 1;
    conn_flush(c);
}

/* ---- parser callbacks ---------------------------------------------------------------- */

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;
    if (c->fatal || c->closing)
        return -1;
    c->cur = vl_calloc(1, sizeof *c->cur);
    c->cur->conn = c;
    c->cur->srv = c->srv;
    memcpy(c->cur->peer, c->peer, sizeof c->peer);
    c->cur->t_start_ns = uv_hrtime();
    c->t_req_ms = uv_now(c->srv->loop);
    c->refused_head = 0;
    c->hfield_len = 0;
    c->hvalue_len = 0;
    c->in_value = 0;
    c->head_bytes = 0;
    c->n_headers = 0;
    c->in_body = 0;
    c->expect_continue = 0;
    c->url_len = 0;
    c->body_cap = 0;
    c->body_declared = 0;
    conn_arm_timer(c);
    return 0;
}

static int count_head(struct http_conn *c, size_t n)
{
    c->head_bytes += n;
    if (c->head_bytes > c->srv->lim.max_header_bytes) {
        conn_refuse(c, 431, "request line and headers exceed the limit");
        return -1;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    if (count_head(c, n))
        return -1;
    c->url = vl_realloc(c->url, c->url_len + n + 1);
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    c->url[c->url_len] = 0;
    return 0;
}

static void header_done(struct http_conn *c)
{
    if (!c->in_value)
        return;
    c->in_value = 0;
    char *v = c->hvalue ? c->hvalue : "";
    if (c->hvalue)
        c->hvalue[c->hvalue_len] = 0;
    /* trim */
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vl = strlen(v);
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        v[--vl] = 0;
    c->hfield[c->hfield_len < sizeof c->hfield ? c->hfield_len : sizeof c->hfield - 1] = 0;
    if (strcasecmp(c->hfield, "content-type") == 0) {
        free(c->cur->content_type);
        c->cur->content_type = vl_strdup(v);
        for (char *q = c->cur->content_type; *q; q++)
            *q = (char)tolower((unsigned char)*q);
    } else if (strcasecmp(c->hfield, "x-request-id") == 0) {
        free(c->cur->request_id);
        /* at most 128 bytes, and never past the value's end (vl_strndup copies n bytes: with n
         * = 128 a short value read past its buffer, and the bytes were echoed in the answer;
         * found by tests/fuzz/fuzz_http.c) */
        c->cur->request_id = vl_strndup(v, strnlen(v, 128));
    } else if (strcasecmp(c->hfield, "expect") == 0) {
        c->expect_continue = strcasecmp(v, "100-continue") == 0;
    } else if (strcasecmp(c->hfield, "authorization") == 0) {
        free_secret(c->cur->authorization);
        c->cur->authorization = vl_strdup(v);
    } else if (strcasecmp(c->hfield, "x-api-key") == 0 || strcasecmp(c->hfield, "api-key") == 0) {
        free_secret(c->cur->api_key);
        c->cur->api_key = vl_strdup(v);
    }
    if (c->hvalue) /* the value may have been a credential */
        explicit_bzero(c->hvalue, c->hvalue_len);
    c->hfield_len = 0;
    c->hvalue_len = 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    if (count_head(c, n))
        return -1;
    if (c->in_value) {
        header_done(c);
    }
    if (c->hfield_len == 0 && ++c->n_headers > c->srv->lim.max_headers) {
        conn_refuse(c, 431, "too many header fields");
        return -1;
    }
    for (size_t i = 0; i < n && c->hfield_len < sizeof c->hfield - 1; i++)
        c->hfield[c->hfield_len++] = at[i];
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    if (count_head(c, n))
        return -1;
    c->in_value = 1;
    c->hvalue = vl_realloc(c->hvalue, c->hvalue_len + n + 1);
    memcpy(c->hvalue + c->hvalue_len, at, n);
    c->hvalue_len += n;
    return 0;
}

/* Charges the request's body up to `total` bytes held (its buffer's size) to the buffered-bytes
 * budget. Returns 0, or -1 after answering 503 memory_busy (the connection is then closed). */
static int body_charge(struct http_conn *c, struct http_req *r, int64_t total)
{
    struct mem_budget *b = c->srv->mem_budget;
    if (!b || total <= r->mem_charged)
        return 0;
    if (mem_budget_charge(b, total - r->mem_charged, MEMB_HTTP_BODY) == 0) {
        r->mem_charged = total;
        return 0;
    }
    char msg[256];
    snprintf(msg, sizeof msg,
             "the gateway is holding too many request and media bytes (%lld of its limit of %lld, "
             "--max-buffered-bytes) to take this body of %lld bytes; retry",
             (long long)mem_budget_used(b), (long long)b->limit, (long long)total - 1);
    conn_refuse(c, 503, msg);
    return -1;
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    header_done(c);
    struct http_req *r = c->cur;
    r->method = p->method;
    char *u = c->url ? c->url : "/";
    char *q = strchr(u, '?');
    r->path = q ? vl_strndup(u, (size_t)(q - u)) : vl_strdup(u);
    r->query = vl_strdup(q ? q + 1 : "");
    c->url_len = 0;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->srv->lim.max_body_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "request body of %llu bytes exceeds the limit of %zu bytes",
                 (unsigned long long)p->content_length, c->srv->lim.max_body_bytes);
        conn_refuse(c, 413, msg);
        return -1;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > 0)
        c->body_declared = (size_t)p->content_length;
    int has_body =
        (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    if (c->srv->on_head) {
        /* a refusal here keeps the connection only if there is no body to skip */
        r->keep_alive = http_should_keep_alive(p) && !has_body;
        c->srv->on_head(c->srv, r);
        if (r->responded) {
            c->cur = NULL;
            c->refused_head = 1;
            enqueue(c, r);
            if (r->close_after) {
                c->fatal = 1;
                conn_flush(c);
                return -1; /* stop parsing: the body is never read */
            }
            conn_flush(c);
            return 0; /* on_message_complete follows at once */
        }
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > 0 &&
        body_charge(c, r, (int64_t)p->content_length + 1))
        return -1; /* answered 503 before any of the body is read */
    c->in_body = 1;
    c->t_body_ms = uv_now(c->srv->loop);
    if (c->expect_continue && c->n_outstanding == 0) {
        struct write_req *w = vl_calloc(1, sizeof *w);
        w->buf = vl_strdup("HTTP/1.1 100 Continue\r\n\r\n");
        uv_buf_t b = uv_buf_init(w->buf, (unsigned)strlen(w->buf));
        if (uv_write(&w->w, (uv_stream_t *)&c->tcp, &b, 1, http_write_done) != 0) {
            free(w->buf);
            free(w);
        }
    }
    conn_arm_timer(c);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    struct http_req *r = c->cur;
    if (r->body_len + n > c->srv->lim.max_body_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "request body exceeds the limit of %zu bytes",
                 c->srv->lim.max_body_bytes);
        conn_refuse(c, 413, msg);
        return -1;
    }
    if (r->body_len + n + 1 > c->body_cap || !r->body) {
        size_t want = r->body_len + n + 1;
        /* a declared body is allocated once, at its size (the parser never passes it); a
         * chunked one doubles */
        size_t cap = c->body_declared + 1 >= want ? c->body_declared + 1 : want * 2;
        if (cap > c->srv->lim.max_body_bytes + 1)
            cap = c->srv->lim.max_body_bytes + 1;
        if (body_charge(c, r, (int64_t)cap))
            return -1; /* a chunked body outgrew the budget: 503, the rest is not read */
        r->body = vl_realloc(r->body, cap);
        c->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, n);
    r->body_len += n;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    if (c->refused_head) { /* already answered and queued by on_headers_complete */
        c->refused_head = 0;
        c->in_body = 0;
        conn_pause_if_full(c, p);
        conn_arm_timer(c);
        return 0;
    }
    struct http_req *r = c->cur;
    c->cur = NULL;
    c->in_body = 0;
    if (!r->body)
        r->body = vl_calloc(1, 1);
    r->body[r->body_len] = 0;
    r->keep_alive = http_should_keep_alive(p);
    enqueue(c, r);
    c->srv->n_requests++;
    conn_pause_if_full(c, p);
    conn_arm_timer(c);
    c->srv->handler(c->srv, r);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- I/O --------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = vl_malloc(65536);
    buf->len = 65536;
}

/* Parses data; on a pause keeps the rest for later. */
static void conn_parse(struct http_conn *c, const char *data, size_t len)
{
    if (c->fatal || c->closing)
        return;
    size_t n = http_parser_execute(&c->parser, &settings, data, len);
    if (c->closing)
        return;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    while (e == HPE_PAUSED && !c->fatal && conn_may_take(c)) {
        /* the request that filled the pipeline was answered at once (inside the parser's
         * callback, so conn_flush could not resume): go on with the rest now, or nobody would
         * (found by tests/fuzz/fuzz_http.c with max_pipeline 1) */
        http_parser_pause(&c->parser, 0);
        data += n;
        len -= n;
        n = len ? http_parser_execute(&c->parser, &settings, data, len) : 0;
        if (c->closing)
            return;
        e = HTTP_PARSER_ERRNO(&c->parser);
    }
    if (e == HPE_PAUSED) {
        size_t rest = len - n;
        char *p = vl_malloc(rest ? rest : 1);
        memcpy(p, data + n, rest);
        free(c->pending);
        c->pending = p;
        c->pending_len = rest;
        c->paused = 1;
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        return;
    }
    if (c->fatal)
        goto stop;
    if (e != HPE_OK) {
        if (e == HPE_HEADER_OVERFLOW)
            conn_refuse(c, 431, "request line and headers exceed the limit");
        else {
            char msg[200];
            snprintf(msg, sizeof msg, "malformed HTTP request: %s", http_errno_description(e));
            conn_refuse(c, 400, msg);
        }
        goto stop;
    }
    if (c->parser.upgrade) {
        conn_refuse(c, 400, "protocol upgrade is not supported");
        goto stop;
    }
    return;
stop:
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = s->data;
    if (nread < 0) {
        free(buf->base);
        /* EOF with requests outstanding: the client is gone (as nginx treats a client abort);
         * their jobs are cancelled through on_cancel */
        conn_close(c);
        return;
    }
    if (nread > 0) {
        c->t_read_ms = c->t_active_ms = uv_now(c->srv->loop);
        conn_parse(c, buf->base, (size_t)nread);
        if (!c->closing && c->cur)
            conn_arm_timer(c); /* body: the stall and rate deadlines move */
    }
    free(buf->base);
}

static void on_discard(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    free(buf->base);
    if (nread < 0)
        conn_close(s->data);
}

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *sh, int status)
{
    free(sh);
}

/* After a refusal (413, 431, ...) the client may still be sending: close the write side and
 * read and discard for a moment, so that it sees the answer instead of a reset (nginx's
 * lingering close). */
static void conn_linger(struct http_conn *c)
{
    uv_shutdown_t *sh = vl_calloc(1, sizeof *sh);
    if (uv_shutdown(sh, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(sh);
        conn_close(c);
        return;
    }
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_discard) != 0) {
        conn_close(c);
        return;
    }
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp),
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_discard);
    c->reading = 1;
    c->lingering = 1;
    uv_timer_start(&c->timer, on_linger_timeout, 2000, 0);
}

/* Also called with UV_ECANCELED for the writes still queued when the connection is closed
 * (libuv runs them before the handle's close callback, so c is still there). */
static void http_write_done(uv_write_t *w, int status)
{
    struct write_req *wr = (struct write_req *)w;
    struct http_conn *c = w->handle->data;
    free(wr->buf);
    mem_budget_release(c->srv->mem_budget, wr->charged);
    int close_after = wr->close_after;
    free(wr);
    if (c->closing || c->lingering)
        return;
    if (status < 0)
        conn_close(c);
    else if (close_after)
        conn_linger(c);
    else {
        /* the queue shrank: reading may go on if it paused for the unsent answers */
        conn_observe(c);
        if (c->paused && !c->fatal && conn_may_take(c))
            conn_resume(c);
        conn_arm_timer(c);
    }
}

static void conn_flush(struct http_conn *c)
{
    if (c->closing)
        return;
    int popped = 0;
    while (c->head && c->head->responded) {
        struct http_req *r = c->head;
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        c->n_outstanding--;
        popped = 1;
        struct write_req *w = vl_calloc(1, sizeof *w);
        w->buf = r->resp;
        r->resp = NULL;
        w->close_after = r->close_after;
        uv_buf_t b = uv_buf_init(w->buf, (unsigned)r->resp_len);
        int close_after = r->close_after;
        req_free(r);
        conn_observe(c); /* a shrink since the last look is progress, before this grows it */
        int rc = uv_write(&w->w, (uv_stream_t *)&c->tcp, &b, 1, http_write_done);
        if (rc != 0) {
            free(w->buf);
            free(w);
            conn_close(c);
            return;
        }
        /* what the kernel did not take at once is held until written: charged meanwhile */
        w->charged = (int64_t)b.len;
        mem_budget_charge_always(c->srv->mem_budget, w->charged);
        c->t_active_ms = uv_now(c->srv->loop);
        conn_observe(c);
        if (close_after) {
            /* nothing after a closing response is answered; the send deadline still runs */
            c->fatal = 1;
            if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = 0;
            }
            conn_arm_timer(c);
            return;
        }
    }
    if (popped) {
        if (c->paused && conn_may_take(c))
            conn_resume(c);
        if (!c->closing)
            conn_arm_timer(c);
    }
}

static void conn_resume(struct http_conn *c)
{
    c->paused = 0;
    http_parser_pause(&c->parser, 0);
    char *p = c->pending;
    size_t n = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    if (n)
        conn_parse(c, p, n);
    free(p);
    if (!c->closing && !c->paused && !c->fatal && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}

/* The connection's earliest deadline and its kind (*kind): the request being received (an enum
 * http_timeout_kind), the idle connection (CONN_DL_IDLE: nothing outstanding, nothing queued),
 * the answers queued without progress (CONN_DL_SEND), or the next look at that queue
 * (CONN_DL_TICK, always in the future). 0: none. Samples the send queue first. */
static uint64_t conn_deadline(struct http_conn *c, int *kind)
{
    const struct http_limits *l = &c->srv->lim;
    uint64_t now = uv_now(c->srv->loop);
    size_t q = conn_unsent(c);
    vl_send_observe(&c->sendk, q, now);
    uint64_t d = 0;
    *kind = CONN_DL_IDLE;
    if (c->cur) {
        const struct vl_recv_limits rl = {l->header_timeout_ms, l->body_timeout_ms,
                                          l->body_rate_grace_ms, l->request_timeout_ms,
                                          l->min_body_rate};
        d = vl_recv_deadline(&rl, c->t_req_ms, c->in_body, c->t_body_ms, c->t_read_ms,
                             (uint64_t)c->cur->body_len, kind);
    } else if (c->n_outstanding == 0 && q == 0) {
        /* idle since the last read, answer queued, or the queue emptying */
        uint64_t t =
            c->t_active_ms > c->sendk.t_progress_ms ? c->t_active_ms : c->sendk.t_progress_ms;
        d = t + l->idle_timeout_ms;
    }
    return vl_send_fold(&c->sendk, q, l->send_timeout_ms, now, d, kind);
}

static void on_timer(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    int kind;
    uint64_t d = conn_deadline(c, &kind);
    uint64_t now = uv_now(c->srv->loop);
    if (!d) /* requests outstanding, nothing being received or queued: no deadline */
        return;
    if (d > now) { /* bytes arrived or left meanwhile, or a look at the queue: not yet */
        uv_timer_start(&c->timer, on_timer, d - now, 0);
        return;
    }
    if (kind == CONN_DL_SEND) { /* the client does not read its answers: they are dropped */
        c->srv->n_send_timeouts++;
        vl_info("HTTP client %s took no byte of its %zu bytes of queued answers for %.1f s: "
                "connection closed (--send-timeout-s)",
                c->peer, conn_unsent(c), (double)c->srv->lim.send_timeout_ms / 1000);
        conn_close(c);
        return;
    }
    if (c->cur && !c->fatal && kind >= 0) {
        static const char *why[HTTP_TO_N] = {
            "the request head did not arrive within the header timeout",
            "the request body stalled",
            "the request body arrived slower than the minimum byte rate",
            "the request did not arrive within the request timeout",
        };
        c->srv->n_timeouts[kind]++;
        conn_refuse(c, 408, why[kind]);
        return;
    }
    conn_close(c);
}

static void conn_arm_timer(struct http_conn *c)
{
    if (c->closing || c->lingering)
        return;
    int kind;
    uint64_t d = conn_deadline(c, &kind);
    if (!d) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->srv->loop);
    uv_timer_start(&c->timer, on_timer, d > now ? d - now : 0, 0);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    free(c->hvalue);
    free(c->url);
    free(c->pending);
    free(c);
}

static void conn_close(struct http_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    struct http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    if (c->client) {
        c->client->conns--;
        clients_put(s->clients, c->client, uv_now(s->loop));
        c->client = NULL;
    }
    /* orphan outstanding requests: their handlers still finish and then free them; the
     * on_cancel hook lets them stop early */
    struct http_req *r = c->head;
    c->head = c->tail = NULL;
    while (r) {
        struct http_req *nx = r->next;
        if (r->responded)
            req_free(r);
        else {
            r->conn = NULL;
            r->next = NULL;
            if (s->on_cancel)
                s->on_cancel(s, r);
        }
        r = nx;
    }
    req_free(c->cur);
    c->cur = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct http_server *s = ls->data;
    if (status < 0) {
        vl_warn("accept() failed on the HTTP listener: %s", uv_strerror(status));
        return;
    }
    struct http_conn *c = vl_calloc(1, sizeof *c);
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->open_handles = 2;
    c->tcp.data = c;
    c->timer.data = c;
    c->t_active_ms = uv_now(s->loop);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        return;
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (s->n_conns > s->lim.max_conns) {
        s->n_rejected_conns++;
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0)
        clients_addr_name(&ss, c->peer, sizeof c->peer);
    else
        snprintf(c->peer, sizeof c->peer, "local");
    if (s->clients && s->lim.max_client_conns > 0) {
        struct client *cl = clients_get(s->clients, c->peer, uv_now(s->loop));
        if (!cl || cl->conns >= s->lim.max_client_conns) {
            if (cl)
                clients_put(s->clients, cl, uv_now(s->loop));
            s->n_rejected_client_conns++;
            char msg[128];
            snprintf(msg, sizeof msg, "too many connections from this client (limit %d)",
                     s->lim.max_client_conns);
            conn_refuse(c, 429, msg);
            return;
        }
        cl->conns++;
        c->client = cl;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
    conn_arm_timer(c);
}

int http_server_init(struct http_server *s, uv_loop_t *loop, const struct http_limits *lim,
                     http_handler_fn handler, void *user)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->lim = *lim;
    s->handler = handler;
    s->user = user;
    return 0;
}

int http_server_listen(struct http_server *s, const char *hostport, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon) {
        snprintf(err, errlen, "--http \"%s\": expected HOST:PORT", hostport);
        return UV_EINVAL;
    }
    size_t hl = (size_t)(colon - hostport);
    if (hl >= sizeof host)
        hl = sizeof host - 1;
    memcpy(host, hostport, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    if (!host[0])
        strcpy(host, "0.0.0.0");
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) {
        snprintf(err, errlen, "--http \"%s\": bad port", hostport);
        return UV_EINVAL;
    }
    struct sockaddr_storage ss;
    int rc;
    if (strchr(host, ':'))
        rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss);
    if (rc) {
        snprintf(err, errlen, "--http \"%s\": bad address: %s", hostport, uv_strerror(rc));
        return rc;
    }
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->listening = 1;
    if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0)) ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection))) {
        snprintf(err, errlen, "listen on %s failed: %s", hostport, uv_strerror(rc));
        return rc;
    }
    return 0;
}

int http_server_listen_fd(struct http_server *s, int fd, char *err, size_t errlen)
{
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->listening = 1;
    int rc;
    if ((rc = uv_tcp_open(&s->listener, fd)) ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection))) {
        snprintf(err, errlen, "serving inherited HTTP fd %d failed: %s", fd, uv_strerror(rc));
        return rc;
    }
    return 0;
}

int http_server_port(struct http_server *s)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (!s->listening || uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len))
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

size_t http_server_unsent(const struct http_server *s)
{
    size_t n = 0;
    for (const struct http_conn *c = s->conns; c; c = c->next)
        n += conn_unsent(c);
    return n;
}

void http_server_close(struct http_server *s)
{
    if (s->listening && !uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, NULL);
    while (s->conns)
        conn_close(s->conns);
}
