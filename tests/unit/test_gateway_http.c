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

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    struct timeval tv = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t k = write(fd, s, n);
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

/* Reads until `n_resp` complete responses (by Content-Length) arrived, or EOF/timeout. */
static char *read_responses(int fd, int n_resp, int *got)
{
    static char buf[1 << 16];
    size_t len = 0;
    *got = 0;
    for (;;) {
        /* count complete responses in buf */
        int cnt = 0;
        char *p = buf;
        buf[len] = 0;
        for (;;) {
            char *h = strstr(p, "\r\n\r\n");
            if (!h)
                break;
            char *cl = strstr(p, "Content-Length: ");
            if (!cl || cl > h)
                break;
            size_t blen = strtoul(cl + 16, NULL, 10);
            if ((size_t)(h + 4 - buf) + blen > len)
                break;
            cnt++;
            p = h + 4 + blen;
        }
        *got = cnt;
        if (cnt >= n_resp)
            return buf;
        ssize_t k = read(fd, buf + len, sizeof buf - 1 - len);
        if (k <= 0)
            return buf;
        len += (size_t)k;
    }
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
    int fd = dial();
    CHECK(fd >= 0);
    send_all(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
             strlen("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    char *r = read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "path=/a");
    CHECK_CONTAINS(r, "Connection: keep-alive");
    send_all(fd, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
             strlen("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
    r = read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "path=/b");
    close(fd);

    /* pipelining: the slow one first must be answered first */
    fd = dial();
    const char *pipe = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    send_all(fd, pipe, strlen(pipe));
    r = read_responses(fd, 3, &got);
    CHECK_EQ_INT(got, 3);
    char *s1 = strstr(r, "slow"), *s2 = strstr(r, "path=/fast"), *s3 = strstr(r, "body=hello");
    CHECK(s1 && s2 && s3 && s1 < s2 && s2 < s3);
    close(fd);

    /* chunked body */
    fd = dial();
    const char *ch = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    send_all(fd, ch, strlen(ch));
    r = read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "len=11 body=hello world");
    close(fd);

    /* chunked body over the cap: 413 */
    fd = dial();
    const char *ch2 = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "800\r\n";
    send_all(fd, ch2, strlen(ch2));
    static char big[2048 + 8];
    memset(big, 'a', 2048);
    send_all(fd, big, 2048);
    r = read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "HTTP/1.1 413");
    close(fd);

    /* declared body over the cap: 413 before we send any of it */
    fd = dial();
    send_all(fd, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n",
             strlen("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"));
    r = read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "HTTP/1.1 413");
    CHECK_CONTAINS(r, "Connection: close");
    CHECK_CONTAINS(r, "\"code\":\"request_too_large\"");
    close(fd);

    /* Expect: 100-continue gets the interim response, then the answer */
    fd = dial();
    send_all(
        fd, "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        strlen("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"));
    char cont[64] = {0};
    ssize_t k = read(fd, cont, 25);
    CHECK(k == 25 && strncmp(cont, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
    send_all(fd, "abc", strlen("abc"));
    r = read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "body=abc");
    close(fd);

    /* oversize headers: 431 */
    fd = dial();
    send_all(fd, "GET / HTTP/1.1\r\nX-Big: ", strlen("GET / HTTP/1.1\r\nX-Big: "));
    static char hb[5000];
    memset(hb, 'b', sizeof hb);
    send_all(fd, hb, sizeof hb);
    send_all(fd, "\r\n\r\n", strlen("\r\n\r\n"));
    r = read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "HTTP/1.1 431");
    close(fd);

    /* garbage: 400 */
    fd = dial();
    send_all(fd, "NOT HTTP AT ALL\r\n\r\n", strlen("NOT HTTP AT ALL\r\n\r\n"));
    r = read_responses(fd, 1, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "HTTP/1.1 400");
    close(fd);

    /* Connection: close is honoured (the server closes after answering) */
    fd = dial();
    send_all(
        fd, "GET /z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /y HTTP/1.1\r\n\r\n",
        strlen("GET /z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /y HTTP/1.1\r\n\r\n"));
    r = read_responses(fd, 2, &got);
    CHECK_EQ_INT(got, 1);
    CHECK_CONTAINS(r, "Connection: close");
    CHECK_EQ_INT(count(r, "HTTP/1.1 200"), 1);
    close(fd);

    /* HTTP/1.0 without keep-alive closes too */
    fd = dial();
    send_all(fd, "GET /old HTTP/1.0\r\n\r\n", strlen("GET /old HTTP/1.0\r\n\r\n"));
    r = read_responses(fd, 1, &got);
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
