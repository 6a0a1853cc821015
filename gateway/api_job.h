/* One embeddings request on its way through the gateway, whatever the transport:
 * admission (429/503 before any work) -> preprocessing of every item on the pool -> routing of
 * all items to the workers -> collection of the vectors -> on_done. A deadline timer answers
 * 504 if the request is not done in time. The transport (api_http.c, mpapi.c) renders the
 * result in its own format and then calls api_job_release(). */
#ifndef VL_GATEWAY_API_JOB_H
#define VL_GATEWAY_API_JOB_H

#include <stdint.h>
#include <uv.h>

#include "gateway/api.h"
#include "gateway/metrics.h"
#include "gateway/preprocess.h"
#include "gateway/router.h"

struct api_http;
struct mpapi;

struct api_ctx {
    uv_loop_t *loop;
    struct router *router;
    struct pp_ctx *pp;
    struct api_limits lim;
    struct metrics *metrics;
    double default_timeout_s;
    const char *model_name;
    const char *pp_version;     /* preprocessing description, part of the fingerprint */
    struct api_http *user_http; /* the HTTP front end (api_http.c) */
    struct mpapi *user_mp;      /* the msgpack front end (mpapi.c) */
};

struct api_job {
    struct api_ctx *ctx;
    struct api_req req;
    enum metrics_api api;
    int preview;
    void (*on_done)(struct api_job *j);
    void *tp; /* the transport's */
    /* optional, the transport's: once the request's images and videos are within its pixel
     * budget and before they are decoded, charge `pixels` to the client (HTTP: the per-client
     * pixel rate); non-zero refuses the request with *e, and may set retry_after_s */
    int (*charge_pixels)(struct api_job *j, int64_t pixels, struct api_err *e);
    int retry_after_s; /* for a 429 the transport sends: seconds; 0: its default */
    /* optional, the transport's: called when the job is freed, after on_done and once all the
     * work it started is over (a job answered early, cancelled, timed out or failed on one item,
     * may still be preprocessing other items on the pool): frees what the request's sources
     * point into (mpapi.c: the frame its bin media are views of) */
    void (*on_free)(struct api_job *j);
    void *free_arg;

    /* results (valid in on_done) */
    int status; /* 200 or the error's */
    struct api_err err;
    int n;
    struct pp_out **pp; /* per item */
    float *vecs;        /* n * dim, unit vectors as the worker returned them */
    int dim;
    char checkpoint[64];
    uint64_t t0, t_pp, t_end;

    /* private */
    int pp_pending, vec_pending, admitted, refs, finished;
    struct router_req *rq;
    struct vl_item *items; /* shallow copies handed to the router */
    uv_timer_t timer;
};

/* Starts the job: j->ctx, j->req, j->api, j->preview, j->on_done, j->tp set by the caller;
 * everything else zero. on_done is called exactly once, possibly before this returns. */
void api_job_start(struct api_job *j);
/* The client went away: finishes the job now with 499 client_closed (on_done runs, as always
 * once); a job already finished is left alone. */
void api_job_cancel(struct api_job *j);
/* The transport is done with the job (after on_done). */
void api_job_release(struct api_job *j);

/* The output width after `dimensions` (0 = full). */
int api_job_out_dim(const struct api_job *j);
/* The embedding-space fingerprint: 16 hex digits over checkpoint, preprocessing, dimensions and
 * encoding (docs/api.md, "Fingerprint"). */
void api_job_fingerprint(const struct api_job *j, char out[17]);
/* model, usage (tokens by kind, images, videos), timings (ms) and fingerprint as an object. */
cJSON *api_job_meta(const struct api_job *j);
/* The success body as JSON (OpenAI-compatible list, usage, timings, fingerprint). */
char *api_job_json(const struct api_job *j, size_t *len);
/* The preview body as JSON. */
char *api_job_preview_json(const struct api_job *j, size_t *len);

#endif
