/* Per-client limits (docs/security.md, "Per-client limits"): a table of clients, each known by a
 * short name: its API key's identity when keys are on ("key:…"), else its remote address (an
 * IPv4 address, or the /64 prefix of an IPv6 one: one host usually holds a whole /64). For each:
 * open HTTP connections, requests in flight, a token bucket of requests per second, and one of
 * decoded pixels per second (the decode work its requests' images and videos declare).
 *
 * Promises: at most VL_CLIENTS_MAX clients are tracked; an entry is freed as soon as nothing
 * holds it and its buckets are full again (idle ones are swept as the table grows); no limit
 * that is 0 costs anything. Loop thread only. */
#ifndef VL_GATEWAY_CLIENTS_H
#define VL_GATEWAY_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

struct client {
    char name[64];
    int refs;     /* connections and requests holding this entry */
    int conns;    /* open HTTP connections (address entries) */
    int inflight; /* requests admitted and not yet answered */
    double tokens;
    uint64_t t_ms;    /* when tokens was last brought up to date */
    double px_tokens; /* decoded pixels; may be negative (a request's debt) */
    uint64_t px_t_ms; /* when px_tokens was last brought up to date */
    struct client *next;
};

struct client_limits {
    int max_conns;      /* per client address; 0: off */
    int max_inflight;   /* per client; 0: off */
    double rate;        /* requests per second; 0: off */
    double burst;       /* bucket size (requests); at least 1 when rate > 0 */
    double pixel_rate;  /* decoded pixels per second; 0: off */
    double pixel_burst; /* the pixel bucket's size; at least 1 when pixel_rate > 0 */
};

struct client_table {
    struct client_limits lim;
    struct client **slots;
    size_t n_slots;
    int n;
    int sweep_at;
};

void clients_init(struct client_table *t, const struct client_limits *lim);
void clients_free(struct client_table *t);

/* Takes a reference on the entry named `name` (created if new). NULL when VL_CLIENTS_MAX
 * entries are held and none is idle. */
struct client *clients_get(struct client_table *t, const char *name, uint64_t now_ms);
/* Drops a reference taken by clients_get. */
void clients_put(struct client_table *t, struct client *c, uint64_t now_ms);

/* Takes one token from c's bucket. Returns 0, or -1 with *wait_ms = when the next token comes. */
int clients_take(struct client_table *t, struct client *c, uint64_t now_ms, uint64_t *wait_ms);

/* Charges `pixels` of decoding to c's pixel bucket. A request is admitted whenever the bucket is
 * not in debt (so one request of any size may pass from a full bucket) and is charged in full,
 * possibly leaving a debt that later requests wait out. Returns 0, or -1 with *wait_ms = when
 * the debt is repaid. */
int clients_take_pixels(struct client_table *t, struct client *c, uint64_t now_ms, int64_t pixels,
                        uint64_t *wait_ms);

/* The name of a socket address for clients_get: "1.2.3.4", "2001:db8:1:2::/64" (v4-mapped IPv6
 * addresses as IPv4), "local" for anything else. */
void clients_addr_name(const void *sockaddr, char *out, size_t outlen);

#endif
