/* vlembed-gateway: the HTTP and msgpack front ends, preprocessing and routing to the workers
 * (DESIGN.md, "The life of a request"). Started by the supervisor with inherited sockets and a
 * control fd (docs/internal-protocol.md), or standalone with --http / --api-socket and
 * --worker-sockets. On SIGTERM it stops accepting, answers what it has, and exits 0.
 * Every flag is listed in docs/api.md ("Gateway options"). */
#include <arpa/inet.h>
#include <libgen.h>
#include <malloc.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/config.h"
#include "common/exitcode.h"
#include "common/frame.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/msgpack_util.h"
#include "gateway/api_http.h"
#include "gateway/api_job.h"
#include "gateway/http.h"
#include "gateway/membudget.h"
#include "gateway/metrics.h"
#include "gateway/mpapi.h"
#include "gateway/preprocess.h"
#include "gateway/router.h"

struct gw_opts {
    char *model, *tokenizer, *model_name;
    char *http, *api_socket, *worker_sockets, *media_dir, *fetch_allow_cidrs, *log_level;
    char *api_keys_file;
    int open_metrics;
    double request_timeout_s, body_rate_grace_s, client_rate, client_pixel_rate;
    int64_t min_body_rate, max_client_connections, client_max_inflight, client_burst;
    int64_t http_fd, api_fd, control_fd;
    int64_t max_body, max_header, max_pipeline, max_connections, api_max_frame;
    int64_t max_msgpack_connections, max_msgpack_inflight;
    double header_timeout_s, idle_timeout_s, timeout_s, drain_timeout_s, send_timeout_s;
    int64_t max_unsent_bytes;
    int64_t max_items, max_visuals, max_text_bytes, max_inflight_items, max_tokens;
    int64_t preprocess_threads;
    int64_t max_request_decoded_pixels;
    int64_t max_buffered_bytes;
};

#define O(name, type, field, def, lo, hi, choices, help)                                           \
    {                                                                                              \
        name, VL_OPT_##type, offsetof(struct gw_opts, field), def, lo, hi, choices, help           \
    }
static const struct vl_opt opts[] = {
    O("model", STR, model, NULL, 1, 0, NULL, "checkpoint directory (its tokenizer.json is used)"),
    O("tokenizer", STR, tokenizer, NULL, 1, 0, NULL,
      "tokenizer.json [default: MODEL/tokenizer.json]"),
    O("model-name", STR, model_name, NULL, 1, 0, NULL,
      "model id reported in responses and /v1/models [default: the model directory's name]"),
    O("http", STR, http, NULL, 1, 0, NULL, "HTTP listen address HOST:PORT (standalone use)"),
    O("http-fd", INT, http_fd, "-1", -1, 65535, NULL, "inherited listening TCP socket"),
    O("api-socket", STR, api_socket, NULL, 1, 0, NULL, "msgpack API Unix socket path"),
    O("api-fd", INT, api_fd, "-1", -1, 65535, NULL, "inherited listening msgpack API socket"),
    O("worker-sockets", STR, worker_sockets, NULL, 1, 0, NULL,
      "comma-separated worker sockets, all assumed ready (standalone use)"),
    O("control-fd", INT, control_fd, "-1", -1, 65535, NULL, "supervisor control channel"),
    O("max-body", SIZE, max_body, "32M", 1024, 1LL << 32, NULL,
      "largest HTTP request body; a larger Content-Length is answered 413 before reading"),
    O("max-header", SIZE, max_header, "32k", 1024, 1 << 20, NULL,
      "request line + headers (431 above)"),
    O("max-pipeline", INT, max_pipeline, "32", 1, 1024, NULL,
      "outstanding requests per HTTP connection (reading pauses beyond)"),
    O("max-connections", INT, max_connections, "4096", 1, 1 << 20, NULL, "open HTTP connections"),
    O("max-msgpack-connections", INT, max_msgpack_connections, "4096", 1, 1 << 20, NULL,
      "open msgpack API connections; more get 503 too_many_connections and are closed"),
    O("max-msgpack-inflight", INT, max_msgpack_inflight, "256", 1, 4096, NULL,
      "requests in flight per msgpack API connection (reading pauses beyond)"),
    O("api-max-frame", SIZE, api_max_frame, "64M", 1024, 1LL << 31, NULL,
      "largest msgpack API request frame"),
    O("header-timeout-s", DOUBLE, header_timeout_s, "10", 0.1, 3600, NULL,
      "a request head (msgpack: a frame's length prefix) must arrive within this, and a body "
      "(a frame) must not stall longer"),
    O("idle-timeout-s", DOUBLE, idle_timeout_s, "60", 0.1, 86400, NULL,
      "idle keep-alive connections (HTTP and msgpack) are closed after this"),
    O("send-timeout-s", DOUBLE, send_timeout_s, VL_SEND_TIMEOUT_DEFAULT_S, 0, 86400, NULL,
      "a connection (HTTP and msgpack) whose queued answers the client takes none of for this "
      "long is closed, its answers dropped (0: off)"),
    O("max-unsent-bytes", SIZE, max_unsent_bytes, VL_MAX_UNSENT_BYTES_DEFAULT_S, 0, 1LL << 40, NULL,
      "answer bytes queued for one connection above which its requests are not read until they "
      "drain (0: no cap)"),
    O("timeout-s", DOUBLE, timeout_s, "60", 0.01, 3600, NULL,
      "default request deadline (a request's `timeout` may change it)"),
    O("drain-timeout-s", DOUBLE, drain_timeout_s, "30", 0, 3600, NULL,
      "longest wait for outstanding requests after SIGTERM"),
    O("max-items", INT, max_items, "256", 1, 65536, NULL, "items per request"),
    O("max-visuals", INT, max_visuals, "64", 0, 65536, NULL,
      "images + videos + video frames per request"),
    O("max-text-bytes", SIZE, max_text_bytes, "256k", 1, 1 << 30, NULL, "bytes per text part"),
    O("max-inflight-items", INT, max_inflight_items, "1024", 1, 1 << 24, NULL,
      "items admitted at once (preprocessing + queued + on workers); beyond: 429"),
    O("max-tokens", INT, max_tokens, "8192", 16, 8192, NULL, "prompt tokens per item"),
    O("max-request-decoded-pixels", INT, max_request_decoded_pixels, VL_REQUEST_PIXELS_DEFAULT_S, 0,
      1LL << 50, NULL,
      "pixels one request may decode: its images and video frames, summed from their headers "
      "before anything is decoded (413 too_many_pixels above; 0: no limit)"),
    O("max-buffered-bytes", SIZE, max_buffered_bytes, VL_MAX_BUFFERED_BYTES_DEFAULT_S, 0, 1LL << 50,
      NULL,
      "bytes of HTTP request bodies, msgpack frames and fetched or decoded media the gateway "
      "may hold at once, "
      "over all requests (503 memory_busy beyond; 0: no limit)"),
    O("preprocess-threads", INT, preprocess_threads, "4", 1, 128, NULL,
      "thread pool for decoding, resizing and tokenizing (UV_THREADPOOL_SIZE)"),
    O("media-dir", STR, media_dir, NULL, 1, 0, NULL,
      "local media files allowed under this directory (off by default)"),
    O("fetch-allow-cidrs", STR, fetch_allow_cidrs, NULL, 1, 0, NULL,
      "non-global addresses media URLs may point to, e.g. 10.0.0.0/8 (SSRF defence otherwise)"),
    O("log-level", STR, log_level, "info", 1, 0, "debug|info|warn|error", "log threshold"),
    O("api-keys-file", STR, api_keys_file, NULL, 1, 0, NULL,
      "API keys, one per line (mode 600/640): every HTTP route but /health and /ready then "
      "needs one (reloaded on SIGHUP)"),
    O("open-metrics", BOOL, open_metrics, "false", 1, 0, NULL,
      "with api-keys-file: serve /metrics without a key"),
    O("request-timeout-s", DOUBLE, request_timeout_s, "120", 0, 86400, NULL,
      "a whole request (head and body; msgpack: a frame) must arrive within this from its first "
      "byte (0: off)"),
    O("min-body-rate", SIZE, min_body_rate, "1k", 0, 1LL << 30, NULL,
      "bytes per second a request body (msgpack: a frame) must average after body-rate-grace-s "
      "(0: off)"),
    O("body-rate-grace-s", DOUBLE, body_rate_grace_s, "10", 0, 3600, NULL,
      "time after the head before min-body-rate applies"),
    O("max-client-connections", INT, max_client_connections, "0", 0, 1 << 20, NULL,
      "open HTTP connections per client address (0: no limit)"),
    O("client-max-inflight", INT, client_max_inflight, "0", 0, 1 << 20, NULL,
      "HTTP requests in flight per client: per API key, else per address (0: no limit)"),
    O("client-rate", DOUBLE, client_rate, "0", 0, 1e6, NULL,
      "HTTP requests per second per client, a token bucket (0: no limit)"),
    O("client-pixel-rate", DOUBLE, client_pixel_rate, "0", 0, 1e12, NULL,
      "decoded pixels per second per client (HTTP), a token bucket the size of "
      "max-request-decoded-pixels, charged when a request's headers are read (0: no limit)"),
    O("client-burst", INT, client_burst, "20", 1, 1 << 20, NULL,
      "token bucket size of client-rate (requests sent at once after a quiet spell)"),
};
#define N_OPTS (sizeof opts / sizeof opts[0])

static struct {
    uv_loop_t *loop;
    struct gw_opts o;
    struct router router;
    struct pp_ctx pp;
    struct metrics metrics;
    struct mem_budget mem;
    struct api_ctx ctx;
    struct http_server http;
    struct api_http ah;
    struct mpapi mp;
    int have_http, have_mp;
    uv_pipe_t ctl;
    int have_ctl;
    int got_workers; /* a `workers` message from the supervisor was handled */
    uv_timer_t gate; /* bounds the wait for those workers before accepting */
    struct vl_frame_reader ctl_rd;
    uv_timer_t hb, drain_timer;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t trim_timer;
    uv_check_t trim_check;
    uint64_t trim_released; /* mem_budget_released at the last heap trim */
    int trim_again;         /* bytes were released since the last tick: trim once more */
    int stopping;
    char pp_version[256];
    char model_name[256];
} G;

/* ---- supervisor channel ------------------------------------------------------------------- */

struct wbuf {
    uv_write_t w;
    char *buf;
};

static void on_written(uv_write_t *w, int status)
{
    free(((struct wbuf *)w)->buf);
    free(w);
}

static void ctl_send_simple(const char *type, const char *k, int64_t v)
{
    if (!G.have_ctl)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    vl_mp_pack_kv_str(&pk, "type", type);
    vl_mp_pack_kv_int(&pk, k, v);
    struct wbuf *b = vl_malloc(sizeof *b);
    b->buf = vl_malloc(sb.size + 4);
    vl_frame_header((uint8_t *)b->buf, (uint32_t)sb.size);
    memcpy(b->buf + 4, sb.data, sb.size);
    uv_buf_t ub = uv_buf_init(b->buf, (unsigned)(sb.size + 4));
    if (uv_write(&b->w, (uv_stream_t *)&G.ctl, &ub, 1, on_written)) {
        free(b->buf);
        free(b);
    }
    msgpack_sbuffer_destroy(&sb);
}

static void on_drained(void *user, int id)
{
    ctl_send_simple("drained", "id", id);
}

static void handle_workers(const msgpack_object *root)
{
    const msgpack_object *ws = vl_mp_get(root, "workers");
    if (!ws || ws->type != MSGPACK_OBJECT_ARRAY || ws->via.array.size > 1024)
        return;
    uint32_t n = ws->via.array.size;
    struct router_winfo *wi = vl_calloc(n + 1, sizeof *wi);
    char **strs = vl_calloc(2 * (size_t)n + 1, sizeof *strs);
    int k = 0;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *w = &ws->via.array.ptr[i];
        int64_t id = -1, pid = 0;
        char *sock = vl_mp_strdup(vl_mp_get(w, "socket"));
        char *state = vl_mp_strdup(vl_mp_get(w, "state"));
        char *dev = vl_mp_strdup(vl_mp_get(w, "device"));
        vl_mp_int(vl_mp_get(w, "id"), &id);
        vl_mp_int(vl_mp_get(w, "pid"), &pid);
        if (id < 0 || !sock) {
            free(sock);
            free(state);
            free(dev);
            continue;
        }
        wi[k].id = (int)id;
        wi[k].socket = sock;
        wi[k].state = router_state_parse(state);
        wi[k].device = dev;
        wi[k].pid = (int)pid;
        strs[2 * k] = sock;
        strs[2 * k + 1] = dev;
        free(state);
        k++;
    }
    router_set_workers(&G.router, wi, k);
    G.got_workers = 1;
    for (int i = 0; i < 2 * k; i++)
        free(strs[i]);
    free(strs);
    free(wi);
}

static void begin_stop(const char *why);

static void on_gate(uv_timer_t *t) {}

static void on_ctl_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    b->base = vl_malloc(65536);
    b->len = 65536;
}

static void on_ctl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        free(b->base);
        uv_read_stop(s);
        begin_stop("the supervisor's control channel closed");
        return;
    }
    int rc = n > 0 ? vl_frame_reader_feed(&G.ctl_rd, b->base, (size_t)n) : 0;
    free(b->base);
    if (rc) {
        vl_error("control channel frame over the cap; ignoring the channel");
        uv_read_stop(s);
        return;
    }
    const uint8_t *p;
    size_t len;
    while (vl_frame_reader_next(&G.ctl_rd, &p, &len) == VL_FRAME_OK) {
        msgpack_unpacked up;
        char err[256];
        if (vl_mp_unpack_map(p, len, &up, err, sizeof err)) {
            vl_warn("bad control frame: %s", err);
            continue;
        }
        if (vl_mp_str_eq(vl_mp_get(&up.data, "type"), "workers"))
            handle_workers(&up.data);
        msgpack_unpacked_destroy(&up);
    }
}

static void on_heartbeat(uv_timer_t *t)
{
    ctl_send_simple("heartbeat", "pid", getpid());
}

/* ---- stop ---------------------------------------------------------------------------------- */

/* Gives freed heap memory back to the kernel after large buffers were released (see
 * VL_GATEWAY_TRIM_INTERVAL_MS). */
static void trim_if(uint64_t min_bytes)
{
    uint64_t r = mem_budget_released(&G.mem);
    if (r - G.trim_released >= min_bytes) {
        G.trim_released = r;
        malloc_trim(0);
    }
}

static void on_trim(uv_timer_t *t)
{
    /* one more trim a period after the releases stop, for what was freed after the last one
     * (decoded pixels, JSON trees, answers: memory the budget does not count) */
    uint64_t r = mem_budget_released(&G.mem);
    if (r == G.trim_released && G.trim_again) {
        G.trim_again = 0;
        malloc_trim(0);
        return;
    }
    if (r != G.trim_released)
        G.trim_again = 1;
    trim_if(VL_GATEWAY_TRIM_MIN_BYTES);
}

/* After each loop iteration: trims at once when much was released (a burst of large requests). */
static void on_trim_check(uv_check_t *h)
{
    trim_if(VL_GATEWAY_TRIM_BURST_BYTES);
}

static void close_all(void)
{
    uv_timer_stop(&G.drain_timer);
    if (G.have_http)
        http_server_close(&G.http);
    if (G.have_mp)
        mpapi_close(&G.mp);
    router_close(&G.router);
    uv_stop(G.loop);
}

static void maybe_done(void)
{
    if (G.stopping && G.ah.active_jobs == 0 && G.mp.active_jobs == 0) {
        vl_info("all requests answered; exiting");
        close_all();
    }
}

static void on_http_idle(struct api_http *h)
{
    maybe_done();
}

static void on_mp_idle(struct mpapi *m)
{
    maybe_done();
}

static void on_drain_timeout(uv_timer_t *t)
{
    vl_warn("drain timeout: %d HTTP and %d msgpack requests still outstanding; exiting",
            G.ah.active_jobs, G.mp.active_jobs);
    close_all();
}

static void begin_stop(const char *why)
{
    if (G.stopping)
        return;
    G.stopping = 1;
    G.ah.draining = 1;
    vl_info("stopping (%s): no new connections; answering outstanding requests", why);
    if (G.have_http && G.http.listening && !uv_is_closing((uv_handle_t *)&G.http.listener))
        uv_close((uv_handle_t *)&G.http.listener, NULL);
    if (G.have_mp)
        mpapi_stop_accepting(&G.mp);
    uv_timer_start(&G.drain_timer, on_drain_timeout, (uint64_t)(G.o.drain_timeout_s * 1000), 0);
    maybe_done();
}

static void on_signal(uv_signal_t *s, int sig)
{
    begin_stop(sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* HTTP on an address other hosts can reach, without API keys: allowed (a trusted network, a
 * proxy doing auth), but said once at start (docs/security.md). */
static void warn_if_exposed(struct http_server *h)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len) != 0)
        return;
    int loopback = 0;
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
        uv_ip4_name(a, host, sizeof host);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
                   (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127);
        uv_ip6_name(a, host, sizeof host);
    }
    if (!loopback)
        vl_warn("HTTP listens on %s without API keys: anyone who can reach it can use the "
                "service; set --api-keys-file or keep it behind an authenticating proxy "
                "(docs/security.md)",
                host);
}

/* SIGHUP: reload the API keys (nothing else is reloaded by the gateway itself). */
static void on_sighup(uv_signal_t *s, int sig)
{
    if (!G.o.api_keys_file) {
        vl_info("SIGHUP: no api-keys-file; nothing to reload");
        return;
    }
    char err[512];
    if (api_http_reload_keys(&G.ah, G.o.api_keys_file, err, sizeof err))
        vl_error("SIGHUP: %s; the %d keys loaded before stay in force", err, G.ah.guard.keys.n);
    else
        vl_info("SIGHUP: %d API keys loaded from %s", G.ah.guard.keys.n, G.o.api_keys_file);
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    /* Request bodies, msgpack frames, fetched media and decoded pixels are large, short-lived
     * buffers. glibc raises its mmap threshold to the size of each large block freed (up to
     * 32 MiB), after which such buffers come from the heap arenas and what they held stays in
     * the process after a burst (tests/e2e/test_gateway_rss.py measured the idle RSS staying at
     * its peak). A fixed threshold keeps every block of 256 KiB or more mmap()ed, returned to
     * the kernel when freed. */
    mallopt(M_MMAP_THRESHOLD, VL_GATEWAY_MMAP_THRESHOLD);
    vl_log_init("gateway", VL_LOG_INFO);
    char err[512];
    struct gw_opts *o = &G.o;
    int rc = vl_config_load(opts, N_OPTS, o, argc, argv, NULL, NULL, err, sizeof err);
    if (rc == 1) {
        vl_config_usage(opts, N_OPTS, "vlembed-gateway",
                        "Accepts HTTP and msgpack requests, prepares items and routes them to the "
                        "workers (docs/api.md, docs/configuration.md).");
        return VL_EXIT_OK;
    }
    if (rc < 0) {
        vl_error("%s", err);
        return VL_EXIT_PERMANENT;
    }
    int ok;
    vl_log_set_level(vl_log_level_parse(o->log_level, &ok));
    if (!o->model && !o->tokenizer) {
        vl_error("--model (or --tokenizer): required");
        return VL_EXIT_PERMANENT;
    }
    char tokpath[4096];
    if (o->tokenizer)
        snprintf(tokpath, sizeof tokpath, "%s", o->tokenizer);
    else
        snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", o->model);
    if (o->model_name)
        snprintf(G.model_name, sizeof G.model_name, "%s", o->model_name);
    else {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", o->model ? o->model : "vlembed");
        size_t l = strlen(tmp);
        while (l > 1 && tmp[l - 1] == '/')
            tmp[--l] = 0;
        snprintf(G.model_name, sizeof G.model_name, "%s", basename(tmp));
    }
    char threads[16];
    snprintf(threads, sizeof threads, "%lld", (long long)o->preprocess_threads);
    setenv("UV_THREADPOOL_SIZE", threads, 1);
    signal(SIGPIPE, SIG_IGN);

    G.loop = uv_default_loop();
    metrics_init(&G.metrics);
    mem_budget_init(&G.mem, o->max_buffered_bytes);
    G.metrics.mem_budget = &G.mem;
    router_init(&G.router, G.loop, o->max_inflight_items);
    G.router.on_drained = on_drained;

    struct pp_config pc = {.tokenizer_path = tokpath,
                           .max_tokens = (int32_t)o->max_tokens,
                           .fetch_timeout_s = o->timeout_s,
                           .media_dir = o->media_dir,
                           .fetch_allow_cidrs = o->fetch_allow_cidrs,
                           .mem_budget = &G.mem};
    media_limits_default(&pc.media);
    pc.media.max_request_decoded_pixels = o->max_request_decoded_pixels;
    if (pp_ctx_init(&G.pp, G.loop, &pc, err, sizeof err)) {
        vl_error("tokenizer \"%s\": %s", tokpath, err);
        return VL_EXIT_PERMANENT;
    }
    /* Loading tokenizer.json (an 11 MB JSON tree, parsed and freed) leaves tens of MB of free
     * heap resident; give it back, so the idle RSS is what the gateway holds. */
    malloc_trim(0);
    const struct media_limits *ml = &pc.media;
    snprintf(G.pp_version, sizeof G.pp_version,
             "vlembed-pp1;img=%lld-%lldpx;vid=%.2gfps,%d-%dfr,%lld-%lldpx,total%lld;tok=%lld",
             (long long)ml->image_min_pixels, (long long)ml->image_max_pixels, ml->video_fps,
             ml->video_min_frames, ml->video_max_frames, (long long)ml->video_min_pixels,
             (long long)ml->video_max_pixels, (long long)ml->video_total_pixels,
             (long long)o->max_tokens);

    G.ctx = (struct api_ctx){.loop = G.loop,
                             .router = &G.router,
                             .pp = &G.pp,
                             .metrics = &G.metrics,
                             .default_timeout_s = o->timeout_s,
                             .model_name = G.model_name,
                             .pp_version = G.pp_version};
    api_limits_default(&G.ctx.lim);
    G.ctx.lim.max_items = (int)o->max_items;
    G.ctx.lim.max_visuals = (int)o->max_visuals;
    G.ctx.lim.max_text_bytes = (size_t)o->max_text_bytes;
    G.ctx.lim.max_token_ids = (int)o->max_tokens;

    struct http_limits hl;
    http_limits_default(&hl);
    hl.max_body_bytes = (size_t)o->max_body;
    hl.max_header_bytes = (size_t)o->max_header;
    hl.max_pipeline = (int)o->max_pipeline;
    hl.max_conns = (int)o->max_connections;
    hl.header_timeout_ms = hl.body_timeout_ms = (uint64_t)(o->header_timeout_s * 1000);
    hl.idle_timeout_ms = (uint64_t)(o->idle_timeout_s * 1000);
    hl.request_timeout_ms = (uint64_t)(o->request_timeout_s * 1000);
    hl.min_body_rate = (uint64_t)o->min_body_rate;
    hl.body_rate_grace_ms = (uint64_t)(o->body_rate_grace_s * 1000);
    hl.send_timeout_ms = (uint64_t)(o->send_timeout_s * 1000);
    hl.max_unsent_bytes = (size_t)o->max_unsent_bytes;
    api_http_init(&G.ah, &G.http, &G.ctx, &hl);
    G.http.mem_budget = &G.mem;
    G.ah.on_idle = on_http_idle;
    struct auth_keys keys = {0};
    if (o->api_keys_file) {
        if (auth_keys_load(&keys, o->api_keys_file, err, sizeof err)) {
            vl_error("%s", err);
            return VL_EXIT_PERMANENT;
        }
        vl_info("%d API keys loaded from %s: every HTTP route but /health, /ready%s needs one",
                keys.n, o->api_keys_file, o->open_metrics ? " and /metrics" : "");
    }
    struct client_limits cl = {.max_conns = (int)o->max_client_connections,
                               .max_inflight = (int)o->client_max_inflight,
                               .rate = o->client_rate,
                               .burst = (double)o->client_burst,
                               .pixel_rate = o->client_pixel_rate,
                               .pixel_burst = (double)(o->max_request_decoded_pixels > 0
                                                           ? o->max_request_decoded_pixels
                                                           : VL_REQUEST_PIXELS_DEFAULT)};
    api_http_set_guard(&G.ah, &keys, o->open_metrics, &cl);
    mpapi_init(&G.mp, &G.ctx, (size_t)o->api_max_frame);
    G.mp.mem_budget = &G.mem;
    G.mp.max_inflight_per_conn = (int)o->max_msgpack_inflight;
    G.mp.lim = (struct mpapi_limits){.max_conns = (int)o->max_msgpack_connections,
                                     .prefix_timeout_ms = hl.header_timeout_ms,
                                     .stall_timeout_ms = hl.body_timeout_ms,
                                     .idle_timeout_ms = hl.idle_timeout_ms,
                                     .frame_timeout_ms = hl.request_timeout_ms,
                                     .min_rate = hl.min_body_rate,
                                     .rate_grace_ms = hl.body_rate_grace_ms,
                                     .send_timeout_ms = hl.send_timeout_ms,
                                     .max_unsent_bytes = hl.max_unsent_bytes};
    G.mp.on_idle = on_mp_idle;

    uv_timer_init(G.loop, &G.trim_timer);
    uv_timer_start(&G.trim_timer, on_trim, VL_GATEWAY_TRIM_INTERVAL_MS,
                   VL_GATEWAY_TRIM_INTERVAL_MS);
    uv_unref((uv_handle_t *)&G.trim_timer);
    uv_check_init(G.loop, &G.trim_check);
    uv_check_start(&G.trim_check, on_trim_check);
    uv_unref((uv_handle_t *)&G.trim_check);
    uv_signal_init(G.loop, &G.sigterm);
    uv_signal_start(&G.sigterm, on_signal, SIGTERM);
    uv_signal_init(G.loop, &G.sigint);
    uv_signal_start(&G.sigint, on_signal, SIGINT);
    uv_signal_init(G.loop, &G.sighup);
    uv_signal_start(&G.sighup, on_sighup, SIGHUP);
    uv_timer_init(G.loop, &G.drain_timer);
    uv_timer_init(G.loop, &G.hb);
    if (o->control_fd >= 0) {
        uv_pipe_init(G.loop, &G.ctl, 0);
        if (uv_pipe_open(&G.ctl, (int)o->control_fd) == 0) {
            G.have_ctl = 1;
            vl_frame_reader_init(&G.ctl_rd, 1u << 20);
            uv_read_start((uv_stream_t *)&G.ctl, on_ctl_alloc, on_ctl_read);
        } else
            vl_warn("control fd %lld is not usable", (long long)o->control_fd);
    }
    /* Under the supervisor, a restarted gateway first connects to the workers already listed as
     * ready, then accepts: the listening sockets are the supervisor's, so clients wait in the
     * kernel's backlog for these few milliseconds instead of getting 503 no_ready_worker. */
    if (G.have_ctl) {
        uv_timer_init(G.loop, &G.gate);
        uv_timer_start(&G.gate, on_gate, 2000, 0);
        uint64_t until = uv_now(G.loop) + 2000;
        while (!G.stopping && uv_now(G.loop) < until &&
               (!G.got_workers || router_coming_count(&G.router) > 0))
            uv_run(G.loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&G.gate, NULL);
        if (G.stopping) /* the control channel closed meanwhile: nothing to serve */
            return VL_EXIT_OK;
        if (G.got_workers)
            vl_info("%d worker%s ready before accepting", router_ready_count(&G.router),
                    router_ready_count(&G.router) == 1 ? "" : "s");
    }
    if (o->http_fd >= 0)
        rc = http_server_listen_fd(&G.http, (int)o->http_fd, err, sizeof err);
    else if (o->http && strcmp(o->http, "none") != 0)
        rc = http_server_listen(&G.http, o->http, err, sizeof err);
    else
        rc = 1;
    if (rc < 0) {
        vl_error("%s", err);
        return VL_EXIT_PERMANENT;
    }
    G.have_http = rc == 0;
    if (G.have_http && !o->api_keys_file)
        warn_if_exposed(&G.http);
    if (o->api_fd >= 0)
        rc = mpapi_listen_fd(&G.mp, (int)o->api_fd, err, sizeof err);
    else if (o->api_socket && strcmp(o->api_socket, "none") != 0)
        rc = mpapi_listen(&G.mp, o->api_socket, err, sizeof err);
    else
        rc = 1;
    if (rc < 0) {
        vl_error("%s", err);
        return VL_EXIT_PERMANENT;
    }
    G.have_mp = rc == 0;
    if (!G.have_http && !G.have_mp) {
        vl_error("nothing to serve: give --http/--http-fd and/or --api-socket/--api-fd");
        return VL_EXIT_PERMANENT;
    }
    if (o->worker_sockets)
        router_add_static(&G.router, o->worker_sockets);

    if (G.have_http)
        vl_info("HTTP on %s (port %d)", o->http_fd >= 0 ? "inherited fd" : o->http,
                http_server_port(&G.http));
    if (G.have_mp)
        vl_info("msgpack API on %s", o->api_fd >= 0 ? "inherited fd" : o->api_socket);
    ctl_send_simple("gateway_ready", "pid", getpid());
    if (G.have_ctl)
        uv_timer_start(&G.hb, on_heartbeat, 1000, 1000);

    uv_run(G.loop, UV_RUN_DEFAULT);
    /* The tokenizer is not freed: thread-pool work of cancelled or timed-out requests may still
     * be using it, and the process is about to exit anyway. */
    vl_config_free(opts, N_OPTS, o);
    return VL_EXIT_OK;
}
