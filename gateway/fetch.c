/* URL fetching on a libuv loop with libcurl's multi interface (fetch.h). The pattern is
 * curl's socket-action API: curl tells us which sockets to watch (socket callback -> uv_poll)
 * and when to wake it (timer callback -> uv_timer); we hand events back with
 * curl_multi_socket_action and collect finished transfers with curl_multi_info_read. */
#include "gateway/fetch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "common/alloc.h"
#include "common/log.h"
#include "gateway/membudget.h"

#define FETCH_DEFAULT_MAX_BYTES (32ll << 20)
#define FETCH_DEFAULT_TIMEOUT_MS 10000
#define FETCH_DEFAULT_REDIRECTS 3
#define FETCH_MAX_ALLOW 64

struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int bits;
};

struct fetch;

struct fetcher {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct cidr allow[FETCH_MAX_ALLOW];
    int n_allow;
    char *user_agent;
    struct fetch *head; /* transfers in flight, doubly linked */
    struct sock_ctx *socks;
    int active;
    int64_t connections;
    int closing, open_handles;
    void (*on_closed)(void *);
    void *closed_data;
};

struct fetch {
    struct fetcher *f;
    struct fetch *prev, *next;
    CURL *easy;
    char *url;
    uint8_t *body;
    size_t len, cap;
    int64_t max_bytes;
    struct mem_budget *mem; /* optional; `charged` bytes of it are held for body */
    int64_t charged;
    int too_large, blocked, over_budget;
    char blocked_addr[INET6_ADDRSTRLEN];
    fetch_cb cb;
    void *data;
    char curl_err[CURL_ERROR_SIZE];
};

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct fetcher *f;
    struct sock_ctx *prev, *next; /* open poll handles, so that close can find them all */
};

/* ---- address policy ---------------------------------------------------------------------- */

static int prefix_match(const uint8_t *a, const uint8_t *net, int bits)
{
    int bytes = bits / 8, rem = bits % 8;
    if (memcmp(a, net, (size_t)bytes) != 0)
        return 0;
    if (rem == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xFF << (8 - rem));
    return (a[bytes] & mask) == (net[bytes] & mask);
}

static int v4_blocked(const uint8_t *a)
{
    static const struct {
        uint8_t net[4];
        int bits;
    } deny[] = {
        {{0, 0, 0, 0}, 8},     {{10, 0, 0, 0}, 8},      {{100, 64, 0, 0}, 10},
        {{127, 0, 0, 0}, 8},   {{169, 254, 0, 0}, 16},  {{172, 16, 0, 0}, 12},
        {{192, 0, 0, 0}, 24},  {{192, 0, 2, 0}, 24},    {{192, 168, 0, 0}, 16},
        {{198, 18, 0, 0}, 15}, {{198, 51, 100, 0}, 24}, {{203, 0, 113, 0}, 24},
        {{224, 0, 0, 0}, 4},   {{240, 0, 0, 0}, 4},
    };
    for (size_t i = 0; i < sizeof deny / sizeof deny[0]; i++)
        if (prefix_match(a, deny[i].net, deny[i].bits))
            return 1;
    return 0;
}

static int v6_blocked(const uint8_t *a)
{
    static const uint8_t zero[16] = {0};
    static const struct {
        uint8_t net[16];
        int bits;
    } deny[] = {
        {{0}, 128},                                              /* :: */
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128}, /* ::1 */
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 96},              /* ::a.b.c.d (IPv4-compatible) */
        {{0, 0x64, 0xff, 0x9b}, 96},                             /* NAT64 */
        {{0x20, 0x02}, 16},                                      /* 6to4 */
        {{0x20, 0x01, 0, 0}, 32},                                /* Teredo */
        {{0x20, 0x01, 0x0d, 0xb8}, 32},                          /* documentation */
        {{0xfc}, 7},                                             /* ULA (incl. fd00:ec2::254) */
        {{0xfe, 0x80}, 10},                                      /* link-local */
        {{0xff}, 8},                                             /* multicast */
    };
    (void)zero;
    /* IPv4-mapped ::ffff:a.b.c.d: judge the embedded IPv4 address. */
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0)
        return v4_blocked(a + 12);
    for (size_t i = 0; i < sizeof deny / sizeof deny[0]; i++)
        if (prefix_match(a, deny[i].net, deny[i].bits))
            return 1;
    return 0;
}

int fetch_addr_is_blocked(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_blocked((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return v6_blocked((const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return 1; /* anything else (AF_UNIX via a proxy setting, ...) is never fetched */
}

static int allowed_by_operator(const struct fetcher *f, const struct sockaddr *sa)
{
    const uint8_t *a;
    int fam = sa->sa_family;
    if (fam == AF_INET)
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    else if (fam == AF_INET6)
        a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    else
        return 0;
    for (int i = 0; i < f->n_allow; i++)
        if (f->allow[i].family == fam && prefix_match(a, f->allow[i].addr, f->allow[i].bits))
            return 1;
    return 0;
}

static int parse_allow(struct fetcher *f, const char *list, char *err, size_t errlen)
{
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        if (!*p)
            break;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        char item[80];
        size_t len = (size_t)(e - p);
        if (len >= sizeof item || f->n_allow == FETCH_MAX_ALLOW) {
            snprintf(err, errlen, "fetch allow-list: entry too long or more than %d entries",
                     FETCH_MAX_ALLOW);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = 0;
        struct cidr *c = &f->allow[f->n_allow];
        char *slash = strchr(item, '/');
        if (slash)
            *slash = 0;
        memset(c, 0, sizeof *c);
        if (inet_pton(AF_INET, item, c->addr) == 1) {
            c->family = AF_INET;
            c->bits = 32;
        } else if (inet_pton(AF_INET6, item, c->addr) == 1) {
            c->family = AF_INET6;
            c->bits = 128;
        } else {
            snprintf(err, errlen, "fetch allow-list: '%.*s' is not an address or CIDR", (int)len,
                     p);
            return -1;
        }
        if (slash) {
            char *end;
            long b = strtol(slash + 1, &end, 10);
            if (*end || end == slash + 1 || b < 0 || b > c->bits) {
                snprintf(err, errlen, "fetch allow-list: bad prefix length in '%.*s'", (int)len, p);
                return -1;
            }
            c->bits = (int)b;
        }
        f->n_allow++;
        p = e;
    }
    return 0;
}

/* ---- curl callbacks -------------------------------------------------------------------- */

static curl_socket_t on_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct fetch *t = clientp;
    if (purpose == CURLSOCKTYPE_IPCXN && fetch_addr_is_blocked(&addr->addr) &&
        !allowed_by_operator(t->f, &addr->addr)) {
        const void *a = addr->family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)&addr->addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)&addr->addr)->sin6_addr;
        inet_ntop(addr->family, a, t->blocked_addr, sizeof t->blocked_addr);
        t->blocked = 1;
        return CURL_SOCKET_BAD;
    }
    curl_socket_t s = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (s != CURL_SOCKET_BAD)
        t->f->connections++;
    return s;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct fetch *t = userdata;
    size_t n = size * nmemb;
    if ((int64_t)(t->len + n) > t->max_bytes) {
        t->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16384;
        while (cap < t->len + n)
            cap *= 2;
        if ((int64_t)cap > t->max_bytes)
            cap = (size_t)t->max_bytes;
        if (t->mem && (int64_t)cap > t->charged) {
            if (mem_budget_charge(t->mem, (int64_t)cap - t->charged, MEMB_FETCH)) {
                t->over_budget = 1;
                return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
            }
            t->charged = (int64_t)cap;
        }
        t->body = vl_realloc(t->body, cap);
        t->cap = cap;
    }
    memcpy(t->body + t->len, ptr, n);
    t->len += n;
    return n;
}

/* ---- completion ------------------------------------------------------------------------- */

static _Thread_local struct fetch *cb_current;

uint8_t *fetch_body_steal(void)
{
    if (!cb_current)
        return NULL;
    uint8_t *b = cb_current->body;
    cb_current->body = NULL;
    return b;
}

int64_t fetch_body_charge_take(void)
{
    if (!cb_current)
        return 0;
    int64_t n = cb_current->charged;
    cb_current->charged = 0;
    return n;
}

static void unlink_fetch(struct fetch *t)
{
    struct fetcher *f = t->f;
    if (t->prev)
        t->prev->next = t->next;
    else
        f->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    f->active--;
}

static void finish(struct fetch *t, int status, const char *err)
{
    unlink_fetch(t);
    curl_multi_remove_handle(t->f->multi, t->easy);
    curl_easy_cleanup(t->easy);
    cb_current = t;
    t->cb(t->data, status, status == 0 ? t->body : NULL, status == 0 ? t->len : 0, err);
    cb_current = NULL;
    free(t->body);
    mem_budget_release(t->mem, t->charged);
    free(t->url);
    free(t);
}

static void complete(struct fetch *t, CURLcode rc)
{
    char err[512];
    int status = 0;
    long code = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    if (t->blocked) {
        snprintf(err, sizeof err,
                 "fetching %s: address %s is not allowed (private, loopback, "
                 "link-local or otherwise not global)",
                 t->url, t->blocked_addr);
        status = FETCH_ERR_BLOCKED;
    } else if (t->over_budget) {
        snprintf(err, sizeof err,
                 "fetching %s: the gateway is holding too many media bytes (--max-buffered-bytes "
                 "%lld) to take this body",
                 t->url, (long long)t->mem->limit);
        status = FETCH_ERR_BUSY;
    } else if (t->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(err, sizeof err, "fetching %s: body is larger than the limit of %lld bytes",
                 t->url, (long long)t->max_bytes);
        status = FETCH_ERR_TOO_LARGE;
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(err, sizeof err, "fetching %s: timed out (%s)", t->url, t->curl_err);
        status = FETCH_ERR_TIMEOUT;
    } else if (rc == CURLE_TOO_MANY_REDIRECTS) {
        snprintf(err, sizeof err, "fetching %s: too many redirects", t->url);
        status = FETCH_ERR_REDIRECTS;
    } else if (rc == CURLE_HTTP_RETURNED_ERROR || (rc == CURLE_OK && code >= 400)) {
        snprintf(err, sizeof err, "fetching %s: the server answered HTTP %ld", t->url, code);
        status = FETCH_ERR_HTTP;
    } else if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
        snprintf(err, sizeof err, "fetching %s: only http and https are allowed (also on redirect)",
                 t->url);
        status = FETCH_ERR_BAD_URL;
    } else if (rc == CURLE_OK && code >= 300) {
        /* a redirect we were told not to follow */
        snprintf(err, sizeof err, "fetching %s: too many redirects (HTTP %ld)", t->url, code);
        status = FETCH_ERR_REDIRECTS;
    } else if (rc != CURLE_OK) {
        snprintf(err, sizeof err, "fetching %s: %s", t->url,
                 t->curl_err[0] ? t->curl_err : curl_easy_strerror(rc));
        status = FETCH_ERR_NETWORK;
    } else {
        err[0] = 0;
    }
    finish(t, status, err);
}

static void drain_done(struct fetcher *f)
{
    CURLMsg *m;
    int left;
    while (!f->closing && (m = curl_multi_info_read(f->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct fetch *t = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        complete(t, m->data.result);
    }
}

/* ---- libuv glue ------------------------------------------------------------------------- */

/* Every uv handle we close ends here; the fetcher goes when the last one is closed. */
static void handle_closed(struct fetcher *f)
{
    if (--f->open_handles == 0 && f->closing) {
        void (*cb)(void *) = f->on_closed;
        void *d = f->closed_data;
        free(f->user_agent);
        free(f);
        if (cb)
            cb(d);
    }
}

static void sock_unlink(struct sock_ctx *c)
{
    struct fetcher *f = c->f;
    if (c->prev)
        c->prev->next = c->next;
    else
        f->socks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void on_sock_closed(uv_handle_t *h)
{
    struct sock_ctx *c = h->data;
    struct fetcher *f = c->f;
    free(c);
    handle_closed(f);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock_ctx *c = h->data;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    struct fetcher *f = c->f;
    curl_multi_socket_action(f->multi, c->fd, flags, &running);
    drain_done(f);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct fetcher *f = userp;
    struct sock_ctx *c = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (c) {
            uv_poll_stop(&c->poll);
            curl_multi_assign(f->multi, s, NULL);
            sock_unlink(c);
            uv_close((uv_handle_t *)&c->poll, on_sock_closed);
        }
        return 0;
    }
    if (!c) {
        c = vl_calloc(1, sizeof *c);
        c->fd = s;
        c->f = f;
        if (uv_poll_init_socket(f->loop, &c->poll, s) != 0) {
            free(c);
            return -1;
        }
        c->poll.data = c;
        f->open_handles++;
        c->next = f->socks;
        if (f->socks)
            f->socks->prev = c;
        f->socks = c;
        curl_multi_assign(f->multi, s, c);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&c->poll, ev, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *h)
{
    struct fetcher *f = h->data;
    int running;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain_done(f);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct fetcher *f = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&f->timer);
    else
        uv_timer_start(&f->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- public ----------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct fetcher *fetcher_new(uv_loop_t *loop, const struct fetch_config *cfg, char *err,
                            size_t errlen)
{
    pthread_once(&curl_once, curl_init_once);
    struct fetcher *f = vl_calloc(1, sizeof *f);
    if (cfg && parse_allow(f, cfg->allow_cidrs, err, errlen) != 0) {
        free(f);
        return NULL;
    }
    f->loop = loop;
    f->user_agent = vl_strdup(cfg && cfg->user_agent ? cfg->user_agent : "vlembed");
    f->multi = curl_multi_init();
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    long maxc = cfg && cfg->max_connections > 0 ? cfg->max_connections : 64;
    long maxh = cfg && cfg->max_host_connections > 0 ? cfg->max_host_connections : 8;
    curl_multi_setopt(f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, maxc);
    curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxh);
    curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, maxc);
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    f->open_handles = 1; /* the timer */
    return f;
}

int fetch_start(struct fetcher *f, const char *url, const struct fetch_opts *o, fetch_cb cb,
                void *data)
{
    if (f->closing)
        return FETCH_ERR_CANCELED;
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return FETCH_ERR_BAD_URL;
    /* Parse with curl's own parser, as the fetch will (no parser differential). */
    CURLU *u = curl_url();
    int bad = curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK;
    curl_url_cleanup(u);
    if (bad)
        return FETCH_ERR_BAD_URL;

    struct fetch *t = vl_calloc(1, sizeof *t);
    t->f = f;
    t->url = vl_strdup(url);
    t->cb = cb;
    t->data = data;
    int64_t timeout = o && o->timeout_ms > 0 ? o->timeout_ms : FETCH_DEFAULT_TIMEOUT_MS;
    int64_t ctimeout =
        o && o->connect_timeout_ms > 0 ? o->connect_timeout_ms : (timeout < 3000 ? timeout : 3000);
    long redirs = o && o->max_redirects >= 0 ? o->max_redirects : FETCH_DEFAULT_REDIRECTS;
    t->max_bytes = o && o->max_bytes > 0 ? o->max_bytes : FETCH_DEFAULT_MAX_BYTES;
    t->mem = o ? o->mem_budget : NULL;

    CURL *e = curl_easy_init();
    t->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->curl_err);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, redirs > 0 ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, redirs);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ctimeout);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->max_bytes);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
    curl_easy_setopt(e, CURLOPT_USERAGENT, f->user_agent);
    /* No CURLOPT_ACCEPT_ENCODING: compressed bodies would bypass the byte cap. */

    t->next = f->head;
    if (f->head)
        f->head->prev = t;
    f->head = t;
    f->active++;
    CURLMcode mc = curl_multi_add_handle(f->multi, e);
    if (mc != CURLM_OK) {
        unlink_fetch(t);
        curl_easy_cleanup(e);
        free(t->url);
        free(t);
        vl_error("curl_multi_add_handle() failed: %s", curl_multi_strerror(mc));
        return FETCH_ERR_NETWORK;
    }
    return 0;
}

int fetcher_active(const struct fetcher *f)
{
    return f->active;
}

int64_t fetcher_connections_opened(const struct fetcher *f)
{
    return f->connections;
}

static void on_timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

void fetcher_close(struct fetcher *f, void (*on_closed)(void *data), void *data)
{
    f->closing = 1;
    f->on_closed = on_closed;
    f->closed_data = data;
    while (f->head)
        finish(f->head, FETCH_ERR_CANCELED, "fetch canceled: the gateway is shutting down");
    /* Removing every easy handle made curl report CURL_POLL_REMOVE for its sockets; cleaning
     * up the multi handle closes the connections it kept for reuse. */
    curl_multi_cleanup(f->multi);
    f->multi = NULL;
    while (f->socks) { /* sockets curl did not report as removed */
        struct sock_ctx *c = f->socks;
        sock_unlink(c);
        uv_poll_stop(&c->poll);
        uv_close((uv_handle_t *)&c->poll, on_sock_closed);
    }
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}
