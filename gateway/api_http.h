/* HTTP front end of the embeddings API (routes in docs/api.md). */
#ifndef VL_GATEWAY_API_HTTP_H
#define VL_GATEWAY_API_HTTP_H

#include "gateway/api_job.h"
#include "gateway/http.h"

struct api_http {
    struct api_ctx *ctx;
    struct http_server *srv;
    int active_jobs;
    int draining;                        /* /ready answers 503 while the gateway stops */
    int retry_after_s;                   /* Retry-After on 429 and 503 */
    void (*on_idle)(struct api_http *h); /* called when the last active job is answered */
};

/* Sets up the routes on srv (not yet listening). */
int api_http_init(struct api_http *h, struct http_server *srv, struct api_ctx *ctx,
                  const struct http_limits *lim);

#endif
