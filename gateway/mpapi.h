/* The public msgpack API on a Unix socket (docs/api.md, "msgpack API"): length-prefixed
 * frames (common/frame.h) each holding one request map with a client-chosen `id`; many
 * requests may be in flight per connection and are answered as they finish (by id, not in
 * order). Requests carry the same fields as the JSON API; image/video bytes may be msgpack
 * bin instead of URLs, and vectors come back as bin (little-endian float32, or int8/uint8/
 * packed bits for the quantised encodings). */
#ifndef VL_GATEWAY_MPAPI_H
#define VL_GATEWAY_MPAPI_H

#include <stddef.h>
#include <uv.h>

#include "gateway/api_job.h"

struct mem_budget;

struct mpapi {
    struct api_ctx *ctx;
    uv_pipe_t listener;
    int listening;
    size_t max_frame;
    int max_inflight_per_conn;
    int active_jobs;
    int n_conns;
    /* Optional: the process-wide buffered-bytes budget (gateway/membudget.h). Each frame's
     * declared length is charged at its header, before its body is read, and released when its
     * request is answered or its connection dies (gateway/mp_intake.h); a frame that does not fit
     * is answered 503 memory_busy (no id, retry_after) and the connection is read no further and
     * closed once its requests in flight are answered. Set before mpapi_listen. */
    struct mem_budget *mem_budget;
    struct mp_conn *conns;
    void (*on_idle)(struct mpapi *m);
};

void mpapi_init(struct mpapi *m, struct api_ctx *ctx, size_t max_frame);

/* A decoded request frame: the envelope (type, id) and the bins that api_src.bytes point to. */
struct mpapi_decoded {
    int preview; /* type "preview" */
    char *id;    /* the request's id, packed msgpack (echoed in the answer), or NULL */
    size_t id_len;
    struct api_bin *bins; /* views into the frame */
    int n_bins;
};

/* Decodes one frame's payload (without its length prefix) into req, which then points into p
 * (p must outlive req). Returns 0, or -1 with e filled (400: invalid_msgpack, unknown_type, or
 * api_parse's errors); d is filled as far as decoding got (the id on most errors) either way,
 * and is freed with mpapi_decoded_free; req with api_req_free. */
int mpapi_decode(const uint8_t *p, size_t len, const struct api_limits *lim,
                 struct mpapi_decoded *d, struct api_req *req, struct api_err *e);
void mpapi_decoded_free(struct mpapi_decoded *d);
/* Binds PATH (mode 0600; a stale socket file is replaced) or serves an inherited fd. */
int mpapi_listen(struct mpapi *m, const char *path, char *err, size_t errlen);
int mpapi_listen_fd(struct mpapi *m, int fd, char *err, size_t errlen);
/* Stops accepting (connections stay open until their requests are answered). */
void mpapi_stop_accepting(struct mpapi *m);
void mpapi_close(struct mpapi *m);

#endif
