/* The gateway's Prometheus metrics (text exposition format 0.0.4), every one listed in
 * docs/metrics.md. Counters and histograms are plain fields updated on the loop thread; the
 * gauges (queues, workers) are read from the router when /metrics is scraped. */
#ifndef VL_GATEWAY_METRICS_H
#define VL_GATEWAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct router;
struct mem_budget;

#define METRICS_N_BUCKETS 14
#define METRICS_MAX_CODES 48

enum metrics_stage { MS_PREPROCESS = 0, MS_INFERENCE, MS_TOTAL, MS_N };
enum metrics_api { MA_HTTP = 0, MA_MSGPACK, MA_N };

struct metrics_hist {
    uint64_t buckets[METRICS_N_BUCKETS]; /* cumulative at render time; stored per bucket */
    uint64_t count;
    double sum;
};

struct metrics {
    uint64_t requests[MA_N];
    struct {
        char code[48];
        int status;
        uint64_t n;
    } errors[METRICS_MAX_CODES];
    int n_errors;
    uint64_t items[3];  /* text-only, with images, with videos */
    uint64_t tokens[3]; /* text, image, video */
    uint64_t images, videos;
    uint64_t rejected_overloaded, rejected_no_worker;
    uint64_t rejected_pixels; /* 413 too_many_pixels: over max-request-decoded-pixels */
    uint64_t decoded_pixels;  /* declared pixels of the images and frames of embedded requests */
    struct metrics_hist stage[MS_N];
    uint64_t http_connections_rejected;
    const struct mem_budget *mem_budget; /* the buffered-bytes budget (gauges), or NULL */
};

void metrics_init(struct metrics *m);
void metrics_observe(struct metrics *m, enum metrics_stage s, double seconds);
void metrics_error(struct metrics *m, int status, const char *code);
/* Renders the exposition text (malloc'd). */
char *metrics_render(const struct metrics *m, const struct router *r, int http_conns, size_t *len);

#endif
