/* gateway/fetch.c against a real HTTP server this test starts on loopback (a thread per
 * connection, keep-alive): success and connection reuse, byte cap (by Content-Length and by
 * counting a chunked body), deadline, redirect cap, error status, SSRF refusals (loopback
 * without the allow-list; a redirect to the metadata address), bad schemes, close with fetches
 * in flight, the buffered-bytes budget (charged as bodies grow, refused over it, released or
 * handed over with the body). Plus the address policy alone and the data:/file sources. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/fetch.h"
#include "gateway/membudget.h"
#include "gateway/media_source.h"
#include "tests/test.h"
#include "tests/unit/loopback.h"

/* ---- the loopback server ----------------------------------------------------------------- */

static int srv_fd, srv_port;
static volatile int srv_accepted;

static void respond(int fd, const char *path)
{
    char hdr[512];
    if (strncmp(path, "/ok/", 4) == 0) {
        size_t n = (size_t)atol(path + 4);
        char *body = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            body[i] = (char)('a' + i % 26);
        int h = snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
        lb_send_all(fd, hdr, (size_t)h);
        lb_send_all(fd, body, n);
        free(body);
    } else if (strcmp(path, "/big-declared") == 0) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n";
        lb_send_all(fd, h, strlen(h));
        char buf[4096] = {0};
        for (int i = 0; i < 10; i++)
            lb_send_all(fd, buf, sizeof buf);
    } else if (strcmp(path, "/big-chunked") == 0) {
        const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        lb_send_all(fd, h, strlen(h));
        char chunk[4096 + 16];
        int hl = snprintf(chunk, sizeof chunk, "1000\r\n");
        memset(chunk + hl, 'x', 4096);
        memcpy(chunk + hl + 4096, "\r\n", 2);
        for (int i = 0; i < 200; i++) /* 800 KiB, never announced */
            lb_send_all(fd, chunk, (size_t)hl + 4096 + 2);
        lb_send_all(fd, "0\r\n\r\n", 5);
    } else if (strcmp(path, "/slow") == 0) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        lb_send_all(fd, h, strlen(h));
        sleep(3);
    } else if (strncmp(path, "/redirect/", 10) == 0) {
        int k = atoi(path + 10);
        int h = k > 0
                    ? snprintf(hdr, sizeof hdr,
                               "HTTP/1.1 302 Found\r\nLocation: /redirect/%d\r\n"
                               "Content-Length: 0\r\n\r\n",
                               k - 1)
                    : snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone");
        lb_send_all(fd, hdr, (size_t)h);
    } else if (strcmp(path, "/to-metadata") == 0) {
        const char *h = "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/"
                        "\r\nContent-Length: 0\r\n\r\n";
        lb_send_all(fd, h, strlen(h));
    } else if (strcmp(path, "/to-ftp") == 0) {
        const char *h = "HTTP/1.1 302 Found\r\nLocation: ftp://127.0.0.1/x\r\nContent-Length: 0"
                        "\r\n\r\n";
        lb_send_all(fd, h, strlen(h));
    } else {
        const char *h = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
        lb_send_all(fd, h, strlen(h));
    }
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (r <= 0)
            break;
        have += (size_t)r;
        buf[have] = 0;
        char *end;
        while ((end = strstr(buf, "\r\n\r\n"))) {
            char path[256] = "";
            sscanf(buf, "GET %255s", path);
            respond(fd, path);
            size_t used = (size_t)(end + 4 - buf);
            memmove(buf, buf + used, have - used + 1);
            have -= used;
        }
        if (have == sizeof buf - 1)
            break;
    }
    close(fd);
    return NULL;
}

static void *srv_main(void *arg)
{
    for (;;) {
        int c = accept(srv_fd, NULL, NULL);
        if (c < 0)
            return NULL;
        __atomic_add_fetch(&srv_accepted, 1, __ATOMIC_SEQ_CST);
        pthread_t t;
        pthread_create(&t, NULL, conn_main, (void *)(intptr_t)c);
        pthread_detach(t);
    }
}

static void srv_start(void)
{
    srv_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(srv_fd, (struct sockaddr *)&a, sizeof a);
    listen(srv_fd, 64);
    socklen_t l = sizeof a;
    getsockname(srv_fd, (struct sockaddr *)&a, &l);
    srv_port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, srv_main, NULL);
    pthread_detach(t);
}

/* ---- fetch helpers ----------------------------------------------------------------------- */

struct result {
    int done, status;
    size_t n;
    char body[64];
    char err[512];
};

static void on_done(void *data, int status, const uint8_t *body, size_t n, const char *err)
{
    struct result *r = data;
    r->done++;
    r->status = status;
    r->n = n;
    memcpy(r->body, body ? (const char *)body : "", n < 63 ? n : 63);
    snprintf(r->err, sizeof r->err, "%s", err ? err : "");
}

static struct result fetch_one(struct fetcher *f, uv_loop_t *loop, const char *path,
                               const struct fetch_opts *o)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv_port, path);
    struct result r = {0};
    int rc = fetch_start(f, url, o, on_done, &r);
    if (rc != 0) {
        r.done = 1;
        r.status = rc;
        return r;
    }
    while (!r.done)
        uv_run(loop, UV_RUN_ONCE);
    return r;
}

static uv_loop_t loop;

static void on_closed(void *d)
{
    *(int *)d = 1;
}
static struct fetcher *fet;

TEST(test_success_and_reuse)
{
    srv_start();
    uv_loop_init(&loop);
    char err[200];
    struct fetch_config cfg = {.allow_cidrs = "127.0.0.1/32"};
    fet = fetcher_new(&loop, &cfg, err, sizeof err);
    CHECK(fet != NULL);
    int before = srv_accepted;
    for (int i = 0; i < 5; i++) {
        struct result r = fetch_one(fet, &loop, "/ok/1000", NULL);
        CHECK_EQ_INT(r.status, 0);
        CHECK_EQ_INT(r.n, 1000);
        CHECK(memcmp(r.body, "abcdef", 6) == 0);
    }
    CHECK_EQ_INT(srv_accepted - before, 1); /* one connection, reused */
    CHECK_EQ_INT(fetcher_active(fet), 0);
}

TEST(test_parallel)
{
    struct result r[8] = {{0}};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok/300000", srv_port);
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(fetch_start(fet, url, NULL, on_done, &r[i]), 0);
    CHECK_EQ_INT(fetcher_active(fet), 8);
    int done = 0;
    while (done < 8) {
        uv_run(&loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < 8; i++)
            done += r[i].done;
    }
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(r[i].status, 0);
        CHECK_EQ_INT(r[i].n, 300000);
    }
}

TEST(test_too_large)
{
    struct fetch_opts o = {.max_bytes = 100000};
    struct result r = fetch_one(fet, &loop, "/big-declared", &o);
    CHECK_EQ_INT(r.status, FETCH_ERR_TOO_LARGE);
    CHECK_CONTAINS(r.err, "larger than the limit of 100000 bytes");
    r = fetch_one(fet, &loop, "/big-chunked", &o);
    CHECK_EQ_INT(r.status, FETCH_ERR_TOO_LARGE);
    CHECK_CONTAINS(r.err, "/big-chunked");
    r = fetch_one(fet, &loop, "/ok/100000", &o); /* exactly at the cap is fine */
    CHECK_EQ_INT(r.status, 0);
}

TEST(test_timeout)
{
    struct fetch_opts o = {.timeout_ms = 300};
    uint64_t t0 = uv_hrtime();
    struct result r = fetch_one(fet, &loop, "/slow", &o);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    CHECK_EQ_INT(r.status, FETCH_ERR_TIMEOUT);
    CHECK_CONTAINS(r.err, "timed out");
    CHECK(ms >= 250 && ms < 2000);
}

TEST(test_redirects)
{
    struct fetch_opts o = {.max_redirects = 3};
    struct result r = fetch_one(fet, &loop, "/redirect/3", &o);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_STR(r.body, "done");
    r = fetch_one(fet, &loop, "/redirect/4", &o);
    CHECK_EQ_INT(r.status, FETCH_ERR_REDIRECTS);
    CHECK_CONTAINS(r.err, "too many redirects");
    o.max_redirects = 0;
    r = fetch_one(fet, &loop, "/redirect/1", &o);
    CHECK_EQ_INT(r.status, FETCH_ERR_REDIRECTS);
    r = fetch_one(fet, &loop, "/to-ftp", NULL);
    CHECK_EQ_INT(r.status, FETCH_ERR_BAD_URL);
}

TEST(test_error_status)
{
    struct result r = fetch_one(fet, &loop, "/missing", NULL);
    CHECK_EQ_INT(r.status, FETCH_ERR_HTTP);
    CHECK_CONTAINS(r.err, "HTTP 404");
}

TEST(test_ssrf)
{
    /* A redirect to the metadata address is refused even with loopback allowed. */
    struct result r = fetch_one(fet, &loop, "/to-metadata", NULL);
    CHECK_EQ_INT(r.status, FETCH_ERR_BLOCKED);
    CHECK_CONTAINS(r.err, "169.254.169.254");
    /* Without the allow-list, loopback itself is refused, in every spelling. */
    char err[200];
    struct fetcher *strict = fetcher_new(&loop, NULL, err, sizeof err);
    const char *urls[] = {"http://127.0.0.1:%d/ok/10", "http://localhost:%d/ok/10",
                          "http://[::ffff:127.0.0.1]:%d/ok/10", "http://2130706433:%d/ok/10",
                          "http://0x7f.1:%d/ok/10"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char url[128];
        snprintf(url, sizeof url, urls[i], srv_port);
        struct result s = {0};
        CHECK_EQ_INT(fetch_start(strict, url, NULL, on_done, &s), 0);
        while (!s.done)
            uv_run(&loop, UV_RUN_ONCE);
        if (s.status != FETCH_ERR_BLOCKED)
            TEST_FAIL_AT("%s: status %d (%s), expected blocked", url, s.status, s.err);
    }
    int closed = 0;
    fetcher_close(strict, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(fetcher_new(&loop, &(struct fetch_config){.allow_cidrs = "10.0.0.0/33"}, err,
                      sizeof err) == NULL);
    CHECK_CONTAINS(err, "bad prefix length");
}

TEST(test_bad_urls)
{
    struct result r = {0};
    CHECK_EQ_INT(fetch_start(fet, "ftp://example.com/x", NULL, on_done, &r), FETCH_ERR_BAD_URL);
    CHECK_EQ_INT(fetch_start(fet, "file:///etc/passwd", NULL, on_done, &r), FETCH_ERR_BAD_URL);
    CHECK_EQ_INT(fetch_start(fet, "http://exa mple.com/", NULL, on_done, &r), FETCH_ERR_BAD_URL);
    CHECK_EQ_INT(r.done, 0);
}

/* Keeps the body and its charge, as gateway/preprocess.c does. */
struct kept {
    int done, status;
    uint8_t *body;
    int64_t charged;
};

static void on_keep(void *data, int status, const uint8_t *body, size_t n, const char *err)
{
    struct kept *k = data;
    k->done = 1;
    k->status = status;
    k->body = fetch_body_steal();
    k->charged = fetch_body_charge_take();
}

TEST(test_mem_budget)
{
    struct mem_budget mb;
    mem_budget_init(&mb, 100000);
    struct fetch_opts o = {.mem_budget = &mb};
    /* a body that outgrows the budget fails the fetch, and nothing stays charged */
    struct result r = fetch_one(fet, &loop, "/ok/300000", &o);
    CHECK_EQ_INT(r.status, FETCH_ERR_BUSY);
    CHECK_CONTAINS(r.err, "too many media bytes");
    CHECK_CONTAINS(r.err, "--max-buffered-bytes 100000");
    CHECK_EQ_INT(mem_budget_used(&mb), 0);
    r = fetch_one(fet, &loop, "/big-chunked", &o);
    CHECK_EQ_INT(r.status, FETCH_ERR_BUSY);
    CHECK_EQ_INT(mem_budget_used(&mb), 0);
    CHECK_EQ_INT(mem_budget_refused(&mb, MEMB_FETCH), 2);
    /* one that fits is charged while it grows and released with the body */
    r = fetch_one(fet, &loop, "/ok/50000", &o);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(r.n, 50000);
    CHECK_EQ_INT(mem_budget_used(&mb), 0);
    CHECK(atomic_load(&mb.peak) >= 50000);
    /* an error status releases what was charged */
    r = fetch_one(fet, &loop, "/missing", &o);
    CHECK_EQ_INT(r.status, FETCH_ERR_HTTP);
    CHECK_EQ_INT(mem_budget_used(&mb), 0);
    /* a stolen body takes its charge along: held until the taker releases it */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok/50000", srv_port);
    struct kept k = {0};
    CHECK_EQ_INT(fetch_start(fet, url, &o, on_keep, &k), 0);
    while (!k.done)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ_INT(k.status, 0);
    CHECK(k.body != NULL);
    CHECK(k.charged >= 50000);
    CHECK_EQ_INT(mem_budget_used(&mb), k.charged);
    /* ... and counts against the next fetch: 100000 - 65536 left, 50000 does not fit */
    r = fetch_one(fet, &loop, "/ok/50000", &o);
    CHECK_EQ_INT(r.status, FETCH_ERR_BUSY);
    CHECK_EQ_INT(mem_budget_used(&mb), k.charged);
    free(k.body);
    mem_budget_release(&mb, k.charged);
    CHECK_EQ_INT(mem_budget_used(&mb), 0);
    r = fetch_one(fet, &loop, "/ok/50000", &o);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(mem_budget_used(&mb), 0);
}

TEST(test_close_in_flight)
{
    struct result r = {0};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow", srv_port);
    CHECK_EQ_INT(fetch_start(fet, url, NULL, on_done, &r), 0);
    for (int i = 0; i < 3; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    int closed = 0;
    fetcher_close(fet, on_closed, &closed);
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.status, FETCH_ERR_CANCELED);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns only once every handle is closed */
    CHECK_EQ_INT(closed, 1);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static int blocked4(const char *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, s, &a.sin_addr);
    return fetch_addr_is_blocked((struct sockaddr *)&a);
}

static int blocked6(const char *s)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, s, &a.sin6_addr);
    return fetch_addr_is_blocked((struct sockaddr *)&a);
}

TEST(test_address_policy)
{
    const char *bad4[] = {"0.0.0.0",         "10.1.2.3",   "100.100.100.200", "127.0.0.1",
                          "169.254.169.254", "172.16.0.1", "172.31.255.255",  "192.168.1.1",
                          "192.0.0.1",       "198.18.0.1", "224.0.0.1",       "255.255.255.255",
                          "203.0.113.9"};
    for (size_t i = 0; i < sizeof bad4 / sizeof bad4[0]; i++)
        if (!blocked4(bad4[i]))
            TEST_FAIL_AT("%s should be blocked", bad4[i]);
    const char *good4[] = {"8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "93.184.216.34"};
    for (size_t i = 0; i < sizeof good4 / sizeof good4[0]; i++)
        if (blocked4(good4[i]))
            TEST_FAIL_AT("%s should be allowed", good4[i]);
    const char *bad6[] = {"::",
                          "::1",
                          "::ffff:127.0.0.1",
                          "::ffff:169.254.169.254",
                          "64:ff9b::a00:1",
                          "2002:a00:1::",
                          "2001::1",
                          "fd00:ec2::254",
                          "fe80::1",
                          "ff02::1",
                          "2001:db8::1",
                          "::127.0.0.1"};
    for (size_t i = 0; i < sizeof bad6 / sizeof bad6[0]; i++)
        if (!blocked6(bad6[i]))
            TEST_FAIL_AT("%s should be blocked", bad6[i]);
    CHECK(!blocked6("2606:4700:4700::1111"));
    CHECK(!blocked6("::ffff:8.8.8.8"));
}

TEST(test_data_uri)
{
    uint8_t *b;
    size_t n;
    char err[200];
    const char *u = "data:image/png;base64,aGVs bG8=\n";
    CHECK_EQ_INT(media_source_data_uri(u, strlen(u), 100, &b, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 5);
    CHECK(memcmp(b, "hello", 5) == 0);
    free(b);
    u = "DATA:;BASE64,aGk";
    CHECK_EQ_INT(media_source_data_uri(u, strlen(u), 100, &b, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 2);
    free(b);
    u = "data:image/png,hello";
    CHECK_EQ_INT(media_source_data_uri(u, strlen(u), 100, &b, &n, err, sizeof err), -EINVAL);
    CHECK_CONTAINS(err, "only base64");
    u = "data:image/png;base64,aGV*bG8=";
    CHECK_EQ_INT(media_source_data_uri(u, strlen(u), 100, &b, &n, err, sizeof err), -EINVAL);
    CHECK_CONTAINS(err, "non-base64");
    u = "data:image/png;base64,aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=";
    CHECK_EQ_INT(media_source_data_uri(u, strlen(u), 8, &b, &n, err, sizeof err), -E2BIG);
    CHECK_EQ_INT(media_source_classify("HTTPS://x"), MEDIA_SRC_URL);
    CHECK_EQ_INT(media_source_classify("data:x"), MEDIA_SRC_DATA);
    CHECK_EQ_INT(media_source_classify("file:///x"), MEDIA_SRC_FILE);
    CHECK_EQ_INT(media_source_classify("/etc/passwd"), MEDIA_SRC_INVALID);
}

TEST(test_local_files)
{
    char root[] = "/tmp/media-root-XXXXXX", path[256], outside[] = "/tmp/media-out-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    CHECK(mkdtemp(outside) != NULL);
    snprintf(path, sizeof path, "%s/a.png", root);
    FILE *f = fopen(path, "w");
    fputs("pngbytes", f);
    fclose(f);
    char secret[300], link[300];
    snprintf(secret, sizeof secret, "%s/secret", outside);
    f = fopen(secret, "w");
    fputs("secret", f);
    fclose(f);
    snprintf(link, sizeof link, "%s/link", root);
    CHECK_EQ_INT(symlink(secret, link), 0);
    uint8_t *b;
    size_t n;
    char err[300], url[400];
    snprintf(url, sizeof url, "file://%s", path);
    CHECK_EQ_INT(media_source_local_file(root, url, 100, &b, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 8);
    free(b);
    CHECK_EQ_INT(media_source_local_file(NULL, url, 100, &b, &n, err, sizeof err), -EPERM);
    CHECK_CONTAINS(err, "disabled");
    CHECK_EQ_INT(media_source_local_file(root, url, 4, &b, &n, err, sizeof err), -E2BIG);
    CHECK_EQ_INT(media_source_local_file(root, secret, 100, &b, &n, err, sizeof err), -EPERM);
    CHECK_EQ_INT(media_source_local_file(root, link, 100, &b, &n, err, sizeof err), -EPERM);
    snprintf(url, sizeof url, "%s/../%s/secret", root, strrchr(outside, '/') + 1);
    CHECK_EQ_INT(media_source_local_file(root, url, 100, &b, &n, err, sizeof err), -EPERM);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", root, outside);
    CHECK_EQ_INT(system(cmd), 0);
}

TEST_MAIN(test_success_and_reuse, test_parallel, test_too_large, test_timeout, test_redirects,
          test_error_status, test_ssrf, test_bad_urls, test_mem_budget, test_close_in_flight,
          test_address_policy, test_data_uri, test_local_files)
