/* The gateway's router: connections to the workers, round-robin over the ready ones, items of
 * a request grouped into one embed frame per worker (docs/wire.md), answers matched back by
 * item id, and recovery when a worker dies: every item that was in flight on it is sent once
 * more to another ready worker within the item's deadline, then failed.
 *
 * Workers come either from a fixed list of sockets (standalone use and tests: all assumed
 * ready, reconnected when they go away) or from the supervisor's `workers` messages
 * (router_set_workers; docs/internal-protocol.md). Admission (router_admit) is what lets the
 * API answer 429/503 before doing any expensive work. Single-threaded: the loop thread only. */
#ifndef VL_GATEWAY_ROUTER_H
#define VL_GATEWAY_ROUTER_H

#include <stdint.h>
#include <uv.h>

#include "common/item.h"

enum router_wstate { RW_STARTING = 0, RW_READY, RW_DRAINING, RW_STOPPING, RW_DEAD };

struct router_worker {
    int id;
    char *socket;
    enum router_wstate state;
    int pid;
    char device[128];
    char fingerprint[64];
    int dim;
    /* connection */
    uv_pipe_t pipe;
    uv_connect_t conn_req;
    uv_timer_t retry;
    int handle_open, connecting, connected, hello;
    int backoff_ms;
    void *rd;     /* struct vl_frame_reader */
    int inflight; /* items sent, not answered */
    int removed;  /* no longer listed: close when idle */
    int drained_sent;
    struct router *r;
    uint64_t n_items, n_deaths;
};

struct router_req; /* one request's items in flight (opaque) */

/* Called once per item: vec (dim floats) or code + err ("worker_died", "deadline_exceeded",
 * "invalid_item", "no_worker"). */
typedef void (*router_done_fn)(void *owner, int index, const float *vec, int dim, const char *code,
                               const char *err);
typedef void (*router_drained_fn)(void *user, int worker_id);

struct router {
    uv_loop_t *loop;
    struct router_worker **w;
    int n_w;
    int rr;
    uint64_t next_id;
    /* open-addressing table of in-flight slots by wire id */
    struct router_slot **tab;
    size_t tab_cap, tab_n;
    /* admission */
    int64_t max_items_inflight; /* admitted items (preprocessing + queued + on workers) */
    int64_t admitted;
    size_t max_frame_bytes;
    router_drained_fn on_drained;
    void *user;
    /* counters for /metrics */
    uint64_t n_retries, n_worker_deaths, n_frames;
};

void router_init(struct router *r, uv_loop_t *loop, int64_t max_items_inflight);
/* Fixed list "P1,P2,..." (all assumed ready). */
void router_add_static(struct router *r, const char *sockets_csv);
/* Applies the supervisor's complete worker set (a `workers` message). Arrays of n entries. */
struct router_winfo {
    int id;
    const char *socket;
    enum router_wstate state;
    const char *device;
    int pid;
};
void router_set_workers(struct router *r, const struct router_winfo *ws, int n);
enum router_wstate router_state_parse(const char *s);
const char *router_state_name(enum router_wstate s);

/* Workers that are ready, connected and have said hello. */
int router_ready_count(const struct router *r);
/* Workers the supervisor lists as ready that this gateway has not connected to yet. */
int router_coming_count(const struct router *r);
/* The first usable worker (for dim / fingerprint), or NULL. */
const struct router_worker *router_any_ready(const struct router *r);

/* Admission before expensive work: returns 0 and reserves n items, -1 if no worker is ready
 * (503), -2 if the gateway already holds its maximum of items (429). router_unadmit releases. */
int router_admit(struct router *r, int n);
void router_unadmit(struct router *r, int n);

/* Sends items[0..n) (owned by the caller, kept alive until router_release) for embedding.
 * deadline_ns is absolute uv_hrtime(). cb fires once per item, possibly synchronously. */
struct router_req *router_submit(struct router *r, void *owner, const struct vl_item *items, int n,
                                 uint64_t deadline_ns, router_done_fn cb);
/* Forgets a request: answers still to come for it are dropped. Always call once; from inside
 * a router_done_fn only once every item of that request has been answered. */
void router_release(struct router *r, struct router_req *q);

void router_close(struct router *r);

#endif
