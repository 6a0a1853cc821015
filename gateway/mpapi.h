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

struct mpapi {
    struct api_ctx *ctx;
    uv_pipe_t listener;
    int listening;
    size_t max_frame;
    int max_inflight_per_conn;
    int active_jobs;
    int n_conns;
    struct mp_conn *conns;
    void (*on_idle)(struct mpapi *m);
};

void mpapi_init(struct mpapi *m, struct api_ctx *ctx, size_t max_frame);
/* Binds PATH (mode 0600; a stale socket file is replaced) or serves an inherited fd. */
int mpapi_listen(struct mpapi *m, const char *path, char *err, size_t errlen);
int mpapi_listen_fd(struct mpapi *m, int fd, char *err, size_t errlen);
/* Stops accepting (connections stay open until their requests are answered). */
void mpapi_stop_accepting(struct mpapi *m);
void mpapi_close(struct mpapi *m);

#endif
