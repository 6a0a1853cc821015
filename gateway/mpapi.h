/* The public msgpack API on a Unix socket (docs/api.md, "msgpack API"): length-prefixed
 * frames (common/frame.h) each holding one request map with a client-chosen `id`; many
 * requests may be in flight per connection and are answered as they finish (by id, not in
 * order). Requests carry the same fields as the JSON API; image/video bytes may be msgpack
 * bin instead of URLs, and vectors come back as bin (little-endian float32, or int8/uint8/
 * packed bits for the quantised encodings). */
#ifndef VL_GATEWAY_MPAPI_H
#define VL_GATEWAY_MPAPI_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gateway/api_job.h"
#include "gateway/recv_deadline.h"

struct mem_budget;

/* Slow senders and connections on the socket, mirroring the HTTP server's limits (docs/security.md,
 * "Slow senders" and "msgpack socket"): the same options set both. A frame's 4-byte length prefix
 * plays the HTTP head, its payload the body. */
struct mpapi_limits {
    int max_conns;              /* open connections; more get 503 too_many_connections, closed */
    uint64_t prefix_timeout_ms; /* a frame's length prefix within this of its first byte */
    uint64_t stall_timeout_ms;  /* at most this between two reads of a frame's payload */
    uint64_t idle_timeout_ms;   /* no frame arriving and nothing in flight: closed */
    uint64_t frame_timeout_ms;  /* the whole frame within this of its first byte; 0: off */
    uint64_t min_rate;          /* bytes/s a payload must average after the grace; 0: off */
    uint64_t rate_grace_ms;     /* from the end of the prefix */
    uint64_t send_timeout_ms;   /* queued answers without progress: closed; 0: off */
    size_t max_unsent_bytes;    /* queued answers above this: no frame taken; 0: no cap */
};

/* Why a frame was answered 408 (mpapi.n_timeouts[]); labels as HTTP's. */
enum mpapi_timeout_kind {
    MP_TO_HEADER = VL_RECV_TO_HEADER, /* the length prefix not complete within prefix_timeout_ms */
    MP_TO_BODY_STALL = VL_RECV_TO_BODY_STALL, /* nothing of the payload for stall_timeout_ms */
    MP_TO_BODY_RATE = VL_RECV_TO_BODY_RATE,   /* payload slower than min_rate */
    MP_TO_REQUEST = VL_RECV_TO_REQUEST,       /* whole frame not complete within frame_timeout_ms */
    MP_TO_N = VL_RECV_TO_N
};

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
    /* Deadlines and the connection cap; mpapi_init sets the gateway's defaults (those of the
     * HTTP options), change before mpapi_listen. A frame that misses a deadline is answered 408
     * request_timeout (no id), its reservation released, and its connection closed once its
     * requests in flight are answered; an idle connection (no frame arriving, nothing in flight)
     * is closed without an answer after idle_timeout_ms, as HTTP's keep-alive ones are.
     * Answers a client does not read (gateway/send_deadline.h): while more than
     * max_unsent_bytes are queued for its socket no frame is taken or read, and a connection
     * whose queued answers make no progress for send_timeout_ms is closed (its requests in
     * flight cancelled, their answers dropped); queued answers are charged to mem_budget until
     * written. */
    struct mpapi_limits lim;
    uint64_t n_timeouts[MP_TO_N];
    uint64_t n_send_timeouts;  /* connections closed by send_timeout_ms */
    uint64_t n_send_paused;    /* times reading paused for max_unsent_bytes */
    uint64_t n_rejected_conns; /* refused over lim.max_conns */
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
/* Bytes of answers queued for the open connections' sockets, not yet taken by the kernel. */
size_t mpapi_unsent(const struct mpapi *m);
/* The socket's metrics in Prometheus text (malloc'd, *len bytes): vlembed_msgpack_connections,
 * vlembed_msgpack_connections_rejected_total, vlembed_msgpack_timeouts_total{kind}. */
char *mpapi_metrics(const struct mpapi *m, size_t *len);

#endif
