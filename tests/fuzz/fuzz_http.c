/* libFuzzer target for the gateway's HTTP/1.1 server (gateway/http.c over libhttp-parser), run
 * for real: one libuv loop holds the server (listening on 127.0.0.1) and a client; for each input
 * the client connects, writes the bytes, half-closes, and reads everything until the server
 * closes. The first input byte picks the limits (max_pipeline 1-4, a small or normal body cap,
 * a small or normal header cap, few or many header fields, a buffered-bytes budget of 100 bytes
 * or none), the rest is the byte stream.
 *
 * The handler answers every request at once; an on_head hook refuses paths starting with
 * /deny (401, as API keys do) and marks paths starting with /admit as admitted (as the
 * per-client limits do). Besides crashes, leaks and UB, it checks:
 *   - what the client reads is a sequence of well-formed HTTP/1.1 responses (parsed back with
 *     http_parser), and there is exactly one final response per request the handler or the
 *     hook answered, plus at most one refusal by the server itself (400/408/413/429/431, which
 *     then closes the connection);
 *   - every request handed to the handler has a NUL-terminated path without '?', a body within
 *     the cap and NUL-terminated;
 *   - every byte of body charged to the buffered-bytes budget is released once the input is
 *     done (gateway/membudget.h), whatever path the request took (paths starting with /drop
 *     have their body freed by the handler with half its charge kept, as the API does);
 *   - every admitted request is released exactly once, and every connection is closed at the end
 *     (a connection that stops reading and never closes is a hang: libFuzzer's -timeout).
 * Build and run: `make fuzz-bins`, `make fuzz` (docs/security.md, "Fuzzing"). */
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "gateway/http.h"
#include "gateway/membudget.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t *loop;
static struct mem_budget budget;
static struct http_server srv;
static struct sockaddr_in addr;

static struct {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    uv_shutdown_t sh;
    uv_buf_t out;
    char *in;
    size_t in_len, in_cap;
    int done, closed;
} cl;

static int n_answered; /* final responses the handler and the hook sent */
static int n_admitted, n_released;

static void handler(struct http_server *s, struct http_req *req)
{
    size_t pl = strlen(req->path);
    if (strchr(req->path, '?') || req->body_len > s->lim.max_body_bytes ||
        req->body[req->body_len] != 0 || pl > s->lim.max_header_bytes)
        abort();
    char body[64];
    int n = snprintf(body, sizeof body, "%zu %zu", pl, req->body_len);
    if (!strncmp(req->path, "/drop", 5)) /* as the API does once a body is parsed */
        http_req_drop_body(req, (int64_t)req->body_len / 2);
    n_answered++;
    http_respond(req, 200, "text/plain", NULL, body, (size_t)n);
}

static void on_head(struct http_server *s, struct http_req *req)
{
    if (!strncmp(req->path, "/deny", 5)) {
        n_answered++;
        http_respond(req, 401, "application/json", "WWW-Authenticate: Bearer\r\n", "{}", 2);
    } else if (!strncmp(req->path, "/admit", 6)) {
        n_admitted++;
        req->admission = &n_admitted;
    }
}

static void on_release(struct http_server *s, struct http_req *req)
{
    if (req->admission != &n_admitted)
        abort();
    n_released++;
}

static void on_cancel(struct http_server *s, struct http_req *req)
{
    abort(); /* every request is answered at once: none can be outstanding at EOF */
}

static void alloc_cb(uv_handle_t *h, size_t sugg, uv_buf_t *b)
{
    static char buf[65536];
    b->base = buf;
    b->len = sizeof buf;
}

static void on_client_closed(uv_handle_t *h)
{
    cl.closed = 1;
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        cl.done = 1;
        uv_close((uv_handle_t *)&cl.tcp, on_client_closed);
        return;
    }
    if (cl.in_len + (size_t)n > cl.in_cap) {
        cl.in_cap = (cl.in_len + (size_t)n) * 2;
        cl.in = realloc(cl.in, cl.in_cap);
        if (!cl.in)
            abort();
    }
    memcpy(cl.in + cl.in_len, b->base, (size_t)n);
    cl.in_len += (size_t)n;
}

static void on_shutdown(uv_shutdown_t *r, int status) {}

static void on_written(uv_write_t *w, int status)
{
    /* the server may close (after a refusal) before reading everything: the write then fails */
}

static void on_connect(uv_connect_t *c, int status)
{
    if (status < 0)
        abort();
    uv_read_start((uv_stream_t *)&cl.tcp, alloc_cb, on_client_read);
    if (cl.out.len)
        uv_write(&cl.wr, (uv_stream_t *)&cl.tcp, &cl.out, 1, on_written);
    uv_shutdown(&cl.sh, (uv_stream_t *)&cl.tcp, on_shutdown);
}

/* ---- reading the responses back ------------------------------------------------------- */

static int n_final, n_interim, last_closes, refusal_status;

static int r_headers_complete(http_parser *p)
{
    if (p->status_code == 100)
        n_interim++;
    return 0;
}

static int r_message_complete(http_parser *p)
{
    if (p->status_code == 100)
        return 0;
    n_final++;
    last_closes = !http_should_keep_alive(p);
    if (p->status_code >= 400 && p->status_code != 401 && p->status_code != 200)
        refusal_status = p->status_code;
    return 0;
}

static const http_parser_settings rsettings = {
    .on_headers_complete = r_headers_complete,
    .on_message_complete = r_message_complete,
};

static void check_responses(void)
{
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    n_final = n_interim = last_closes = refusal_status = 0;
    size_t k = http_parser_execute(&p, &rsettings, cl.in, cl.in_len);
    if (k != cl.in_len || HTTP_PARSER_ERRNO(&p) != HPE_OK) {
        fprintf(stderr, "malformed response stream at byte %zu: %s\n", k,
                http_errno_name(HTTP_PARSER_ERRNO(&p)));
        abort();
    }
    int server_refusals = n_final - n_answered;
    if (server_refusals < 0 || server_refusals > 1) {
        fprintf(stderr, "%d final responses for %d answered requests\n", n_final, n_answered);
        abort();
    }
    if (server_refusals == 1 && (!last_closes || !refusal_status)) {
        fprintf(stderr, "a refusal by the server that does not close (status %d)\n",
                refusal_status);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loop) {
        loop = uv_default_loop();
        struct http_limits lim;
        http_limits_default(&lim);
        http_server_init(&srv, loop, &lim, handler, NULL);
        srv.on_head = on_head;
        srv.on_release = on_release;
        srv.on_cancel = on_cancel;
        char err[256];
        if (http_server_listen(&srv, "127.0.0.1:0", err, sizeof err))
            abort();
        uv_ip4_addr("127.0.0.1", http_server_port(&srv), &addr);
    }
    if (size < 1)
        return 0;
    uint8_t cfg = data[0];
    http_limits_default(&srv.lim);
    srv.lim.max_pipeline = 1 + (cfg & 3);
    srv.lim.max_body_bytes = (cfg & 4) ? 64 : 1 << 20;
    srv.lim.max_header_bytes = (cfg & 8) ? 256 : 32 * 1024;
    srv.lim.max_headers = (cfg & 16) ? 4 : 100;
    mem_budget_init(&budget, (cfg & 32) ? 100 : 0); /* 0: no limit, still counted */
    srv.mem_budget = &budget;

    memset(&cl, 0, sizeof cl);
    n_answered = n_admitted = n_released = 0;
    cl.out = uv_buf_init((char *)data + 1, (unsigned)(size - 1));
    uv_tcp_init(loop, &cl.tcp);
    uv_tcp_connect(&cl.conn, &cl.tcp, (const struct sockaddr *)&addr, on_connect);
    while (!cl.closed || srv.n_conns > 0)
        uv_run(loop, UV_RUN_ONCE);
    /* let the server's closing handles finish (they free the connection) */
    uv_run(loop, UV_RUN_NOWAIT);
    check_responses();
    if (mem_budget_used(&budget) != 0) {
        fprintf(stderr, "%lld bytes of body still charged to the budget\n",
                (long long)mem_budget_used(&budget));
        abort();
    }
    if (n_admitted != n_released) {
        fprintf(stderr, "%d requests admitted, %d released\n", n_admitted, n_released);
        abort();
    }
    free(cl.in);
    return 0;
}
