/* The gateway's HTTP server over real sockets: keep-alive, pipelined requests answered in
 * order (a slow first request, a fast second one), chunked bodies, 413 before the body is
 * sent, 431 for oversize headers, 400 for garbage, Connection: close, Expect: 100-continue.
 * The server runs on a libuv loop in the main thread; the client is a plain blocking socket
 * in a second thread. */
#include <arpa/inet.h>
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
#include "tests/test.h"
#include "tests/unit/loopback.h"

static struct http_server srv;
static uv_async_t stop_async;
static int port;

struct delayed {
    uv_timer_t t;
    struct http_req *req;
};

static void delayed_cb(uv_timer_t *t)
{
    struct delayed *d = t->data;
    http_respond(d->req, 200, "text/plain", NULL, "slow", 4);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void handler(struct http_server *s, struct http_req *req)
{
    if (!strcmp(req->path, "/slow")) {
        struct delayed *d = calloc(1, sizeof *d);
        d->req = req;
        uv_timer_init(s->loop, &d->t);
        d->t.data = d;
        uv_timer_start(&d->t, delayed_cb, 200, 0);
        return;
    }
    char body[256];
    int n = snprintf(body, sizeof body, "path=%s len=%zu body=%.64s", req->path, req->body_len,
                     (const char *)req->body);
    http_respond(req, 200, "text/plain", NULL, body, (size_t)n);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void *client(void *arg)
{
    int got;
    /* keep-alive: two requests, one connection */
    int fd = lb_dial(port);
    CHECK(fd >= 0);
    lb_send_all(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
                strlen("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    char *r = lb_read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "path=/a");
    CHECK_CONTAINS(r, "Connection: keep-alive");
    lb_send_all(fd, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
                strlen("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
    r = lb_read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "path=/b");
    close(fd);

    /* pipelining: the slow one first must be answered first */
    fd = lb_dial(port);
    const char *pipe = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    lb_send_all(fd, pipe, strlen(pipe));
    r = lb_read_responses(fd, 3, &got);
    CHECK_EQ_INT(got, 3);
    char *s1 = strstr(r, "slow"), *s2 = strstr(r, "path=/fast"), *s3 = strstr(r, "body=hello");
    CHECK(s1 && s2 && s3 && s1 < s2 && s2 < s3);
    close(fd);

    /* chunked body */
    fd = lb_dial(port);
    const char *ch = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    lb_send_all(fd, ch, strlen(ch));
    r = lb_read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "len=11 body=hello world");
    close(fd);

    /* chunked body over the cap: 413 */
    fd = lb_dial(port);
    const char *ch2 = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "800\r\n";
    lb_send_all(fd, ch2, strlen(ch2));
    static char big[2048 + 8];
    memset(big, 'a', 2048);
    lb_send_all(fd, big, 2048);
    r = lb_read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "HTTP/1.1 413");
    close(fd);

    /* declared body over the cap: 413 before we send any of it */
    fd = lb_dial(port);
    lb_send_all(fd, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n",
                strlen("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"));
    r = lb_read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "HTTP/1.1 413");
    CHECK_CONTAINS(r, "Connection: close");
    CHECK_CONTAINS(r, "\"code\":\"request_too_large\"");
    close(fd);

    /* Expect: 100-continue gets the interim response, then the answer */
    fd = lb_dial(port);
    lb_send_all(
        fd, "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        strlen("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"));
    char cont[64] = {0};
    ssize_t k = read(fd, cont, 25);
    CHECK(k == 25 && strncmp(cont, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
    lb_send_all(fd, "abc", strlen("abc"));
    r = lb_read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "body=abc");
    close(fd);

    /* oversize headers: 431 */
    fd = lb_dial(port);
    lb_send_all(fd, "GET / HTTP/1.1\r\nX-Big: ", strlen("GET / HTTP/1.1\r\nX-Big: "));
    static char hb[5000];
    memset(hb, 'b', sizeof hb);
    lb_send_all(fd, hb, sizeof hb);
    lb_send_all(fd, "\r\n\r\n", strlen("\r\n\r\n"));
    r = lb_read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "HTTP/1.1 431");
    close(fd);

    /* garbage: 400 */
    fd = lb_dial(port);
    lb_send_all(fd, "NOT HTTP AT ALL\r\n\r\n", strlen("NOT HTTP AT ALL\r\n\r\n"));
    r = lb_read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "HTTP/1.1 400");
    close(fd);

    /* Connection: close is honoured (the server closes after answering) */
    fd = lb_dial(port);
    lb_send_all(
        fd, "GET /z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /y HTTP/1.1\r\n\r\n",
        strlen("GET /z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /y HTTP/1.1\r\n\r\n"));
    r = lb_read_responses(fd, 2, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "Connection: close");
    CHECK_EQ_INT(count(r, "HTTP/1.1 200"), 1);
    close(fd);

    /* HTTP/1.0 without keep-alive closes too */
    fd = lb_dial(port);
    lb_send_all(fd, "GET /old HTTP/1.0\r\n\r\n", strlen("GET /old HTTP/1.0\r\n\r\n"));
    r = lb_read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "path=/old");
    char tail[8];
    CHECK_EQ_INT(read(fd, tail, sizeof tail), 0); /* EOF */
    close(fd);

    uv_async_send(&stop_async);
    return NULL;
}

static void on_stop(uv_async_t *a)
{
    http_server_close(&srv);
    uv_close((uv_handle_t *)a, NULL);
}

TEST(test_http_server)
{
    uv_loop_t *loop = uv_default_loop();
    struct http_limits lim;
    http_limits_default(&lim);
    lim.max_body_bytes = 1024;
    lim.max_header_bytes = 4096;
    http_server_init(&srv, loop, &lim, handler, NULL);
    char err[256];
    CHECK_EQ_INT(http_server_listen(&srv, "127.0.0.1:0", err, sizeof err), 0);
    port = http_server_port(&srv);
    CHECK(port > 0);
    uv_async_init(loop, &stop_async, on_stop);
    pthread_t th;
    pthread_create(&th, NULL, client, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    CHECK_EQ_INT(srv.n_conns, 0);
}

TEST_MAIN(test_http_server)
