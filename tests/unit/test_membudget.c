/* The gateway's buffered-bytes budget (gateway/membudget.h): the accounting alone (charge,
 * refuse, release, threads), then the HTTP server charging request bodies over real sockets:
 * a declared body over the budget is answered 503 memory_busy before it is sent, a chunked body
 * is refused when it outgrows the budget, and on every path (answered, refused, 413, client gone
 * mid-body, client gone with its request outstanding) the budget returns to 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "gateway/http.h"
#include "gateway/membudget.h"
#include "tests/test.h"
#include "tests/unit/loopback.h"

TEST(test_accounting)
{
    struct mem_budget b;
    mem_budget_init(&b, 1000);
    CHECK_EQ_INT(mem_budget_charge(&b, 600, MEMB_HTTP_BODY), 0);
    CHECK_EQ_INT(mem_budget_used(&b), 600);
    CHECK_EQ_INT(mem_budget_charge(&b, 401, MEMB_FETCH), -EBUSY); /* 1001 > 1000 */
    CHECK_EQ_INT(mem_budget_used(&b), 600);                       /* nothing charged */
    CHECK_EQ_INT(mem_budget_refused(&b, MEMB_FETCH), 1);
    CHECK_EQ_INT(mem_budget_refused(&b, MEMB_HTTP_BODY), 0);
    CHECK_EQ_INT(mem_budget_charge(&b, 400, MEMB_SOURCE), 0); /* exactly the limit fits */
    CHECK_EQ_INT(mem_budget_used(&b), 1000);
    CHECK_EQ_INT(mem_budget_charge(&b, 1, MEMB_SOURCE), -EBUSY);
    CHECK_EQ_INT(mem_budget_refused(&b, MEMB_SOURCE), 1);
    mem_budget_release(&b, 600);
    mem_budget_release(&b, 400);
    CHECK_EQ_INT(mem_budget_used(&b), 0);
    CHECK_EQ_INT(atomic_load(&b.peak), 1000);
    CHECK_EQ_INT(mem_budget_charge(&b, 1001, MEMB_HTTP_BODY), -EBUSY); /* alone over it */
    CHECK_EQ_INT(mem_budget_charge(&b, INT64_MAX, MEMB_HTTP_BODY), -EBUSY);
    CHECK_EQ_INT(mem_budget_used(&b), 0);
    CHECK_EQ_INT(mem_budget_charge(&b, 0, MEMB_HTTP_BODY), 0);
    CHECK_EQ_STR(mem_budget_what_name(MEMB_FETCH), "fetch");
    /* 0: no limit, but bytes are still counted (the gauge) */
    mem_budget_init(&b, 0);
    CHECK_EQ_INT(mem_budget_charge(&b, (int64_t)1 << 40, MEMB_FETCH), 0);
    CHECK_EQ_INT(mem_budget_used(&b), (int64_t)1 << 40);
    mem_budget_release(&b, (int64_t)1 << 40);
    CHECK_EQ_INT(mem_budget_used(&b), 0);
    /* NULL: no budget at all */
    CHECK_EQ_INT(mem_budget_charge(NULL, 5, MEMB_FETCH), 0);
    mem_budget_release(NULL, 5);
    CHECK_EQ_INT(mem_budget_used(NULL), 0);
}

static struct mem_budget tb;
static void *charger(void *arg)
{
    int64_t n = (int64_t)(intptr_t)arg;
    for (int i = 0; i < 200000; i++)
        if (mem_budget_charge(&tb, n, MEMB_SOURCE) == 0)
            mem_budget_release(&tb, n);
    return NULL;
}

TEST(test_threads)
{
    /* 4 threads charging 300 at once against 1000: at most 3 fit, never more */
    mem_budget_init(&tb, 1000);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, charger, (void *)(intptr_t)300);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(mem_budget_used(&tb), 0);
    CHECK(atomic_load(&tb.peak) <= 1000);
    CHECK(atomic_load(&tb.peak) >= 300);
}

/* ---- the HTTP server with a budget ----------------------------------------------------------- */

#define LIMIT 10000

static struct http_server srv;
static struct mem_budget mb;
static uv_async_t stop_async;
static int port;
static struct http_req *held; /* /hold requests wait here until /release */

static void handler(struct http_server *s, struct http_req *req)
{
    if (!strcmp(req->path, "/hold")) {
        held = req;
        return;
    }
    if (!strcmp(req->path, "/release") && held) {
        http_respond(held, 200, "text/plain", NULL, "held", 4);
        held = NULL;
    }
    char body[128];
    int n = snprintf(body, sizeof body, "path=%s len=%zu used=%lld", req->path, req->body_len,
                     (long long)mem_budget_used(&mb));
    http_respond(req, 200, "text/plain", NULL, body, (size_t)n);
}

static void send_str(int fd, const char *s)
{
    lb_send_all(fd, s, strlen(s));
}

/* One response (head + Content-Length body), or what came before EOF/timeout. */
static char *read_response(int fd)
{
    int got;
    return lb_read_responses(fd, 1, &got);
}

/* Sends a POST with a body of n bytes and Content-Length; returns the response. */
static char *post(int fd, const char *path, size_t n)
{
    char head[256];
    snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", path,
             n);
    send_str(fd, head);
    char *body = malloc(n + 1);
    memset(body, 'b', n);
    lb_send_all(fd, body, n);
    free(body);
    return read_response(fd);
}

/* Waits up to 2 s for the budget to return to `want` (the server frees on its own thread). */
static int64_t settle(int64_t want)
{
    for (int i = 0; i < 200 && mem_budget_used(&mb) != want; i++)
        usleep(10000);
    return mem_budget_used(&mb);
}

static void *client(void *arg)
{
    /* a small body fits; while it is handled its bytes are charged, after it nothing is */
    int fd = lb_dial(port);
    char *r = post(fd, "/a", 100);
    CHECK_CONTAINS(r, "HTTP/1.1 200");
    CHECK_CONTAINS(r, "len=100 used=101"); /* the body's buffer: 100 bytes + its NUL */
    close(fd);
    CHECK_EQ_INT(settle(0), 0);

    /* a declared body over the budget: 503 before any of it is sent, connection closed */
    fd = lb_dial(port);
    send_str(fd, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n");
    r = read_response(fd);
    CHECK_CONTAINS(r, "HTTP/1.1 503");
    CHECK_CONTAINS(r, "Retry-After: 1");
    CHECK_CONTAINS(r, "Connection: close");
    CHECK_CONTAINS(r, "\"code\":\"memory_busy\"");
    CHECK_CONTAINS(r, "--max-buffered-bytes");
    close(fd);
    CHECK_EQ_INT(settle(0), 0);
    CHECK_EQ_INT(mem_budget_refused(&mb, MEMB_HTTP_BODY), 1);

    /* one held request of 6000 bytes: a second one of 6000 does not fit, a small one does */
    int hold = lb_dial(port);
    char head[128];
    snprintf(head, sizeof head, "POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 6000\r\n\r\n");
    send_str(hold, head);
    char *six = malloc(6000);
    memset(six, 'h', 6000);
    lb_send_all(hold, six, 6000);
    CHECK_EQ_INT(settle(6001), 6001);
    fd = lb_dial(port);
    r = post(fd, "/second", 6000);
    CHECK_CONTAINS(r, "HTTP/1.1 503");
    CHECK_CONTAINS(r, "memory_busy");
    close(fd);
    fd = lb_dial(port);
    r = post(fd, "/small", 50);
    CHECK_CONTAINS(r, "HTTP/1.1 200");
    CHECK_CONTAINS(r, "used=6052");
    r = post(fd, "/release", 0); /* answers /hold too */
    CHECK_CONTAINS(r, "HTTP/1.1 200");
    close(fd);
    r = read_response(hold);
    CHECK_CONTAINS(r, "HTTP/1.1 200");
    CHECK_CONTAINS(r, "held");
    close(hold);
    CHECK_EQ_INT(settle(0), 0);
    CHECK_EQ_INT(mem_budget_refused(&mb, MEMB_HTTP_BODY), 2);

    /* a chunked body is charged as it grows and refused when it outgrows the budget */
    fd = lb_dial(port);
    send_str(fd, "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[1100];
    int hl = snprintf(chunk, sizeof chunk, "400\r\n");
    memset(chunk + hl, 'c', 1024);
    memcpy(chunk + hl + 1024, "\r\n", 2);
    for (int i = 0; i < 12; i++) /* 12 KiB > LIMIT */
        lb_send_all(fd, chunk, (size_t)hl + 1026);
    r = read_response(fd);
    CHECK_CONTAINS(r, "HTTP/1.1 503");
    CHECK_CONTAINS(r, "memory_busy");
    close(fd);
    CHECK_EQ_INT(settle(0), 0);
    CHECK_EQ_INT(mem_budget_refused(&mb, MEMB_HTTP_BODY), 3);
    /* a chunked body that fits is answered, and its charge released */
    fd = lb_dial(port);
    send_str(fd, "POST /chunked-ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    lb_send_all(fd, chunk, (size_t)hl + 1026);
    send_str(fd, "0\r\n\r\n");
    r = read_response(fd);
    CHECK_CONTAINS(r, "HTTP/1.1 200");
    CHECK_CONTAINS(r, "len=1024");
    close(fd);
    CHECK_EQ_INT(settle(0), 0);

    /* over --max-body: 413, nothing charged */
    fd = lb_dial(port);
    send_str(fd, "POST /huge HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    r = read_response(fd);
    CHECK_CONTAINS(r, "HTTP/1.1 413");
    close(fd);
    CHECK_EQ_INT(settle(0), 0);

    /* the client goes away mid-body: the reservation is released */
    fd = lb_dial(port);
    send_str(fd, "POST /gone HTTP/1.1\r\nHost: x\r\nContent-Length: 8000\r\n\r\n");
    lb_send_all(fd, six, 100);
    CHECK_EQ_INT(settle(8001), 8001);
    close(fd);
    CHECK_EQ_INT(settle(0), 0);

    /* the client goes away with its request outstanding: released when it is answered */
    fd = lb_dial(port);
    send_str(fd, head);
    lb_send_all(fd, six, 6000);
    CHECK_EQ_INT(settle(6001), 6001);
    close(fd);
    usleep(100000);
    CHECK_EQ_INT(mem_budget_used(&mb), 6001); /* still held by the handler */
    fd = lb_dial(port);
    r = post(fd, "/release", 0);
    CHECK_CONTAINS(r, "HTTP/1.1 200");
    close(fd);
    CHECK_EQ_INT(settle(0), 0);
    free(six);

    /* pipelined requests each hold their body until answered */
    fd = lb_dial(port);
    send_str(fd, "POST /p1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                 "POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd");
    r = read_response(fd);
    CHECK_CONTAINS(r, "path=/p1");
    close(fd);
    CHECK_EQ_INT(settle(0), 0);
    CHECK_EQ_INT(mem_budget_refused(&mb, MEMB_HTTP_BODY), 3);

    uv_async_send(&stop_async);
    return NULL;
}

static void on_stop(uv_async_t *a)
{
    http_server_close(&srv);
    uv_close((uv_handle_t *)a, NULL);
}

TEST(test_http_bodies)
{
    uv_loop_t *loop = uv_default_loop();
    struct http_limits lim;
    http_limits_default(&lim);
    lim.max_body_bytes = 65536;
    http_server_init(&srv, loop, &lim, handler, NULL);
    mem_budget_init(&mb, LIMIT);
    srv.mem_budget = &mb;
    char err[256];
    CHECK_EQ_INT(http_server_listen(&srv, "127.0.0.1:0", err, sizeof err), 0);
    port = http_server_port(&srv);
    uv_async_init(loop, &stop_async, on_stop);
    pthread_t th;
    pthread_create(&th, NULL, client, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    CHECK_EQ_INT(srv.n_conns, 0);
    CHECK_EQ_INT(mem_budget_used(&mb), 0);
}

TEST_MAIN(test_accounting, test_threads, test_http_bodies)
