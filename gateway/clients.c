/* Per-client limits: the client table and its token buckets (see clients.h). */
#include "gateway/clients.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/alloc.h"
#include "common/limits.h"

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

void clients_init(struct client_table *t, const struct client_limits *lim)
{
    memset(t, 0, sizeof *t);
    t->lim = *lim;
    if (t->lim.rate > 0 && t->lim.burst < 1)
        t->lim.burst = 1;
    if (t->lim.pixel_rate > 0 && t->lim.pixel_burst < 1)
        t->lim.pixel_burst = 1;
    t->n_slots = 1024;
    t->slots = vl_calloc(t->n_slots, sizeof *t->slots);
    t->sweep_at = 1024;
}

void clients_free(struct client_table *t)
{
    for (size_t i = 0; i < t->n_slots; i++) {
        struct client *c = t->slots[i];
        while (c) {
            struct client *nx = c->next;
            free(c);
            c = nx;
        }
    }
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static void refill(const struct client_table *t, struct client *c, uint64_t now_ms)
{
    if (t->lim.rate <= 0)
        return;
    if (now_ms > c->t_ms) {
        c->tokens += (double)(now_ms - c->t_ms) * t->lim.rate / 1000.0;
        if (c->tokens > t->lim.burst)
            c->tokens = t->lim.burst;
    }
    c->t_ms = now_ms;
}

static void refill_pixels(const struct client_table *t, struct client *c, uint64_t now_ms)
{
    if (t->lim.pixel_rate <= 0)
        return;
    if (now_ms > c->px_t_ms) {
        c->px_tokens += (double)(now_ms - c->px_t_ms) * t->lim.pixel_rate / 1000.0;
        if (c->px_tokens > t->lim.pixel_burst)
            c->px_tokens = t->lim.pixel_burst;
    }
    c->px_t_ms = now_ms;
}

/* Nothing holds it and its buckets are full: forgetting it changes nothing. */
static int idle(const struct client_table *t, struct client *c, uint64_t now_ms)
{
    if (c->refs > 0)
        return 0;
    refill(t, c, now_ms);
    refill_pixels(t, c, now_ms);
    return (t->lim.rate <= 0 || c->tokens >= t->lim.burst) &&
           (t->lim.pixel_rate <= 0 || c->px_tokens >= t->lim.pixel_burst);
}

static void sweep(struct client_table *t, uint64_t now_ms)
{
    for (size_t i = 0; i < t->n_slots; i++) {
        struct client **pp = &t->slots[i];
        while (*pp) {
            struct client *c = *pp;
            if (idle(t, c, now_ms)) {
                *pp = c->next;
                free(c);
                t->n--;
            } else
                pp = &c->next;
        }
    }
    t->sweep_at = t->n * 2 > 1024 ? t->n * 2 : 1024;
}

static void grow(struct client_table *t)
{
    size_t ns = t->n_slots * 2;
    struct client **s = vl_calloc(ns, sizeof *s);
    for (size_t i = 0; i < t->n_slots; i++) {
        struct client *c = t->slots[i];
        while (c) {
            struct client *nx = c->next;
            size_t k = hash_name(c->name) & (ns - 1);
            c->next = s[k];
            s[k] = c;
            c = nx;
        }
    }
    free(t->slots);
    t->slots = s;
    t->n_slots = ns;
}

struct client *clients_get(struct client_table *t, const char *name, uint64_t now_ms)
{
    size_t k = hash_name(name) & (t->n_slots - 1);
    for (struct client *c = t->slots[k]; c; c = c->next) {
        if (!strcmp(c->name, name)) {
            c->refs++;
            return c;
        }
    }
    if (t->n >= t->sweep_at || t->n >= VL_CLIENTS_MAX)
        sweep(t, now_ms);
    if (t->n >= VL_CLIENTS_MAX)
        return NULL;
    if ((size_t)t->n >= t->n_slots)
        grow(t);
    struct client *c = vl_calloc(1, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->refs = 1;
    c->tokens = t->lim.burst;
    c->t_ms = now_ms;
    c->px_tokens = t->lim.pixel_burst;
    c->px_t_ms = now_ms;
    k = hash_name(c->name) & (t->n_slots - 1);
    c->next = t->slots[k];
    t->slots[k] = c;
    t->n++;
    return c;
}

void clients_put(struct client_table *t, struct client *c, uint64_t now_ms)
{
    if (--c->refs > 0 || !idle(t, c, now_ms))
        return; /* a partly empty bucket stays until a sweep finds it full */
    size_t k = hash_name(c->name) & (t->n_slots - 1);
    for (struct client **pp = &t->slots[k]; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            free(c);
            t->n--;
            return;
        }
    }
}

int clients_take(struct client_table *t, struct client *c, uint64_t now_ms, uint64_t *wait_ms)
{
    if (t->lim.rate <= 0)
        return 0;
    refill(t, c, now_ms);
    if (c->tokens >= 1) {
        c->tokens -= 1;
        return 0;
    }
    double w = (1 - c->tokens) * 1000.0 / t->lim.rate;
    *wait_ms = (uint64_t)w + 1;
    return -1;
}

int clients_take_pixels(struct client_table *t, struct client *c, uint64_t now_ms, int64_t pixels,
                        uint64_t *wait_ms)
{
    if (t->lim.pixel_rate <= 0)
        return 0;
    refill_pixels(t, c, now_ms);
    if (c->px_tokens >= 0) {
        c->px_tokens -= (double)pixels;
        return 0;
    }
    double w = -c->px_tokens * 1000.0 / t->lim.pixel_rate;
    *wait_ms = (uint64_t)w + 1;
    return -1;
}

void clients_addr_name(const void *sa, char *out, size_t outlen)
{
    const struct sockaddr *a = sa;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *in = sa;
        if (!inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)outlen))
            snprintf(out, outlen, "local");
        return;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = sa;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(b, v4mapped, 12)) {
            snprintf(out, outlen, "%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
            return;
        }
        struct in6_addr p = in6->sin6_addr;
        memset(p.s6_addr + 8, 0, 8);
        char buf[INET6_ADDRSTRLEN];
        if (!inet_ntop(AF_INET6, &p, buf, sizeof buf))
            snprintf(out, outlen, "local");
        else
            snprintf(out, outlen, "%s/64", buf);
        return;
    }
    snprintf(out, outlen, "local");
}
