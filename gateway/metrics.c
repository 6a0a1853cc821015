/* Prometheus text rendering of the gateway's metrics (see metrics.h, docs/metrics.md). */
#include "gateway/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "gateway/membudget.h"
#include "gateway/router.h"

static const double bounds[METRICS_N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                 0.25,  0.5,    1,     2.5,  5,     10,   30};

void metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof *m);
}

void metrics_observe(struct metrics *m, enum metrics_stage s, double sec)
{
    struct metrics_hist *h = &m->stage[s];
    for (int i = 0; i < METRICS_N_BUCKETS; i++)
        if (sec <= bounds[i]) {
            h->buckets[i]++;
            break;
        }
    h->count++;
    h->sum += sec;
}

void metrics_error(struct metrics *m, int status, const char *code)
{
    for (int i = 0; i < m->n_errors; i++)
        if (m->errors[i].status == status && !strcmp(m->errors[i].code, code)) {
            m->errors[i].n++;
            return;
        }
    if (m->n_errors == METRICS_MAX_CODES)
        return;
    snprintf(m->errors[m->n_errors].code, sizeof m->errors[0].code, "%s", code);
    m->errors[m->n_errors].status = status;
    m->errors[m->n_errors++].n = 1;
}

struct sb {
    char *p;
    size_t n, cap;
};

static void put(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = b->cap * 2 + (size_t)k + 256;
        b->p = vl_realloc(b->p, b->cap);
    }
}

char *metrics_render(const struct metrics *m, const struct router *r, int http_conns, size_t *len)
{
    struct sb b = {vl_malloc(8192), 0, 8192};
    b.p[0] = 0;
    put(&b, "# HELP vlembed_requests_total Embedding requests received, by API.\n"
            "# TYPE vlembed_requests_total counter\n");
    put(&b, "vlembed_requests_total{api=\"http\"} %llu\n",
        (unsigned long long)m->requests[MA_HTTP]);
    put(&b, "vlembed_requests_total{api=\"msgpack\"} %llu\n",
        (unsigned long long)m->requests[MA_MSGPACK]);
    put(&b, "# HELP vlembed_errors_total Requests answered with an error, by status and code.\n"
            "# TYPE vlembed_errors_total counter\n");
    for (int i = 0; i < m->n_errors; i++)
        put(&b, "vlembed_errors_total{status=\"%d\",code=\"%s\"} %llu\n", m->errors[i].status,
            m->errors[i].code, (unsigned long long)m->errors[i].n);
    put(&b, "# HELP vlembed_items_total Items embedded, by what they contain.\n"
            "# TYPE vlembed_items_total counter\n");
    static const char *ik[3] = {"text", "image", "video"};
    for (int i = 0; i < 3; i++)
        put(&b, "vlembed_items_total{modality=\"%s\"} %llu\n", ik[i],
            (unsigned long long)m->items[i]);
    put(&b, "# HELP vlembed_tokens_total Prompt tokens embedded, by kind.\n"
            "# TYPE vlembed_tokens_total counter\n");
    for (int i = 0; i < 3; i++)
        put(&b, "vlembed_tokens_total{kind=\"%s\"} %llu\n", ik[i],
            (unsigned long long)m->tokens[i]);
    put(&b,
        "# HELP vlembed_visuals_total Images and videos embedded.\n"
        "# TYPE vlembed_visuals_total counter\n"
        "vlembed_visuals_total{kind=\"image\"} %llu\nvlembed_visuals_total{kind=\"video\"} %llu\n",
        (unsigned long long)m->images, (unsigned long long)m->videos);
    put(&b,
        "# HELP vlembed_rejected_total Requests refused at admission, before any work.\n"
        "# TYPE vlembed_rejected_total counter\n"
        "vlembed_rejected_total{reason=\"overloaded\"} %llu\n"
        "vlembed_rejected_total{reason=\"no_ready_worker\"} %llu\n",
        (unsigned long long)m->rejected_overloaded, (unsigned long long)m->rejected_no_worker);
    put(&b,
        "# HELP vlembed_pixel_budget_rejected_total Requests refused (413 too_many_pixels) "
        "because their images and video frames declare more pixels than "
        "max-request-decoded-pixels; nothing of them was decoded.\n"
        "# TYPE vlembed_pixel_budget_rejected_total counter\n"
        "vlembed_pixel_budget_rejected_total %llu\n",
        (unsigned long long)m->rejected_pixels);
    put(&b,
        "# HELP vlembed_decoded_pixels_total Pixels decoded for embedded requests (width x "
        "height x frames, as their headers declare).\n"
        "# TYPE vlembed_decoded_pixels_total counter\n"
        "vlembed_decoded_pixels_total %llu\n",
        (unsigned long long)m->decoded_pixels);
    const struct mem_budget *mb = m->mem_budget;
    put(&b,
        "# HELP vlembed_buffered_bytes Bytes of HTTP request bodies, msgpack API frames, fetched "
        "media bodies, decoded data: URIs / local files and answers queued for clients the "
        "gateway holds now (charged to max-buffered-bytes).\n"
        "# TYPE vlembed_buffered_bytes gauge\nvlembed_buffered_bytes %lld\n",
        (long long)mem_budget_used(mb));
    put(&b,
        "# HELP vlembed_buffered_bytes_limit max-buffered-bytes (0: no limit).\n"
        "# TYPE vlembed_buffered_bytes_limit gauge\nvlembed_buffered_bytes_limit %lld\n",
        (long long)(mb ? mb->limit : 0));
    put(&b,
        "# HELP vlembed_buffered_bytes_peak Highest vlembed_buffered_bytes since the start.\n"
        "# TYPE vlembed_buffered_bytes_peak gauge\nvlembed_buffered_bytes_peak %lld\n",
        mb ? (long long)atomic_load(&((struct mem_budget *)mb)->peak) : 0LL);
    put(&b, "# HELP vlembed_buffered_bytes_rejected_total Bodies, frames and media sources refused "
            "(503 memory_busy) because they did not fit max-buffered-bytes, by what.\n"
            "# TYPE vlembed_buffered_bytes_rejected_total counter\n");
    for (int w = 0; w < MEMB_N; w++)
        put(&b, "vlembed_buffered_bytes_rejected_total{what=\"%s\"} %llu\n",
            mem_budget_what_name((enum mem_budget_what)w),
            (unsigned long long)mem_budget_refused(mb, (enum mem_budget_what)w));
    static const char *sn[MS_N] = {"preprocess", "inference", "total"};
    put(&b, "# HELP vlembed_stage_seconds Time per request spent in each stage.\n"
            "# TYPE vlembed_stage_seconds histogram\n");
    for (int s = 0; s < MS_N; s++) {
        uint64_t cum = 0;
        for (int i = 0; i < METRICS_N_BUCKETS; i++) {
            cum += m->stage[s].buckets[i];
            put(&b, "vlembed_stage_seconds_bucket{stage=\"%s\",le=\"%g\"} %llu\n", sn[s], bounds[i],
                (unsigned long long)cum);
        }
        put(&b, "vlembed_stage_seconds_bucket{stage=\"%s\",le=\"+Inf\"} %llu\n", sn[s],
            (unsigned long long)m->stage[s].count);
        put(&b, "vlembed_stage_seconds_sum{stage=\"%s\"} %.6f\n", sn[s], m->stage[s].sum);
        put(&b, "vlembed_stage_seconds_count{stage=\"%s\"} %llu\n", sn[s],
            (unsigned long long)m->stage[s].count);
    }
    put(&b,
        "# HELP vlembed_queue_items Items admitted and not yet answered (preprocessing, "
        "queued or on a worker).\n# TYPE vlembed_queue_items gauge\nvlembed_queue_items %lld\n",
        (long long)r->admitted);
    put(&b,
        "# HELP vlembed_queue_capacity_items Admission limit on vlembed_queue_items.\n"
        "# TYPE vlembed_queue_capacity_items gauge\nvlembed_queue_capacity_items %lld\n",
        (long long)r->max_items_inflight);
    int per_state[5] = {0};
    for (int i = 0; i < r->n_w; i++)
        per_state[r->w[i]->state]++;
    put(&b, "# HELP vlembed_workers Workers known to the gateway, by state.\n"
            "# TYPE vlembed_workers gauge\n");
    for (int s = 0; s < 5; s++)
        put(&b, "vlembed_workers{state=\"%s\"} %d\n", router_state_name((enum router_wstate)s),
            per_state[s]);
    put(&b,
        "# HELP vlembed_workers_connected Workers with an open connection that said hello.\n"
        "# TYPE vlembed_workers_connected gauge\nvlembed_workers_connected %d\n",
        router_ready_count(r));
    put(&b, "# HELP vlembed_worker_inflight_items Items sent to a worker and not yet answered.\n"
            "# TYPE vlembed_worker_inflight_items gauge\n");
    for (int i = 0; i < r->n_w; i++)
        put(&b, "vlembed_worker_inflight_items{worker=\"%d\"} %d\n", r->w[i]->id,
            r->w[i]->inflight);
    put(&b,
        "# HELP vlembed_worker_retries_total Items re-sent after their worker died.\n"
        "# TYPE vlembed_worker_retries_total counter\nvlembed_worker_retries_total %llu\n",
        (unsigned long long)r->n_retries);
    put(&b,
        "# HELP vlembed_worker_losses_total Worker connections lost with items in flight.\n"
        "# TYPE vlembed_worker_losses_total counter\nvlembed_worker_losses_total %llu\n",
        (unsigned long long)r->n_worker_deaths);
    put(&b,
        "# HELP vlembed_worker_frames_total Embed frames sent to workers.\n"
        "# TYPE vlembed_worker_frames_total counter\nvlembed_worker_frames_total %llu\n",
        (unsigned long long)r->n_frames);
    put(&b,
        "# HELP vlembed_http_connections Open HTTP connections.\n"
        "# TYPE vlembed_http_connections gauge\nvlembed_http_connections %d\n",
        http_conns);
    *len = b.n;
    return b.p;
}
