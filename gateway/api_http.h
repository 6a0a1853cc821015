/* HTTP front end of the embeddings API (routes in docs/api.md). */
#ifndef VL_GATEWAY_API_HTTP_H
#define VL_GATEWAY_API_HTTP_H

#include "gateway/api_job.h"
#include "gateway/auth.h"
#include "gateway/clients.h"
#include "gateway/http.h"

/* Who may call what (docs/security.md). Every route needs a key when keys are on, except
 * /health and /ready (probes) and, if open_metrics, /metrics; the per-client limits apply to
 * the same routes (never to /health, /ready, /metrics). */
struct api_guard {
    struct auth_keys keys; /* n == 0: authentication off */
    int open_metrics;
    struct client_table clients;
    int limits_on; /* clients.lim has an in-flight cap, a rate or a pixel rate */
    uint64_t auth_missing, auth_malformed, auth_invalid;
    uint64_t rejected_inflight, rejected_rate, rejected_pixels, rejected_table_full;
};

struct api_http {
    struct api_ctx *ctx;
    struct http_server *srv;
    int active_jobs;
    int draining;                        /* /ready answers 503 while the gateway stops */
    int retry_after_s;                   /* Retry-After on 429 and 503 */
    void (*on_idle)(struct api_http *h); /* called when the last active job is answered */
    struct api_guard guard;
};

/* Sets up the routes on srv (not yet listening). `keys` (may be NULL or empty: no
 * authentication) is moved into h; `cl` (may be NULL: no per-client limits) is copied. */
int api_http_init(struct api_http *h, struct http_server *srv, struct api_ctx *ctx,
                  const struct http_limits *lim);
void api_http_set_guard(struct api_http *h, struct auth_keys *keys, int open_metrics,
                        const struct client_limits *cl);
/* Loads the keys file again; on success the new keys replace the old ones at once (requests in
 * flight are not affected). Returns 0, or -1 with err (the old keys stay). */
int api_http_reload_keys(struct api_http *h, const char *path, char *err, size_t errlen);

#endif
