/* The gateway's process-wide budget of buffered bytes (docs/security.md, "Buffered-bytes
 * budget"; --max-buffered-bytes).
 *
 * Every request is bounded alone (--max-body, max_input_bytes, max_video_bytes), but many of
 * them at once are not: 4096 connections x 32 MiB bodies, or 64 URLs per request to a hostile
 * server answering 32 MiB each, would hold tens of GiB and get the gateway OOM-killed with every
 * other client's requests. So the bytes the gateway buffers — HTTP request bodies (reserved in
 * full at the head when Content-Length is known, else charged as a chunked body grows), fetched
 * media bodies (as they grow), decoded data: URIs / local files and msgpack API frames (their
 * declared length at the header, gateway/mp_intake.h) — are charged here when they are taken
 * and released where they are freed. A charge that would pass the limit is refused (and
 * counted), never queued: the caller answers 503 memory_busy with Retry-After. Answers queued
 * for a client's socket and not yet taken by the kernel are charged too, but unconditionally
 * (mem_budget_charge_always): they are held already, and a client that does not read them is
 * cut off by the send deadline (gateway/send_deadline.h).
 *
 * Thread-safe (C11 atomics): the loop thread charges bodies and fetches, the preprocessing pool
 * charges and releases decoded sources. Every function accepts NULL (no budget: nothing is
 * counted and every charge succeeds). */
#ifndef VL_GATEWAY_MEMBUDGET_H
#define VL_GATEWAY_MEMBUDGET_H

#include <stdatomic.h>
#include <stdint.h>

/* What a charge was for (the refusal counter's label). */
enum mem_budget_what {
    MEMB_HTTP_BODY = 0, /* an HTTP request body */
    MEMB_FETCH,         /* a fetched media URL body */
    MEMB_SOURCE,        /* a decoded data: URI or a local media file */
    MEMB_MSGPACK_FRAME, /* a msgpack API frame (its declared length, reserved at its header) */
    MEMB_N
};

struct mem_budget {
    int64_t limit;                    /* bytes; 0: off (bytes are still counted) */
    _Atomic int64_t used;             /* bytes charged and not yet released */
    _Atomic int64_t peak;             /* highest `used` seen */
    _Atomic uint64_t refused[MEMB_N]; /* charges refused, by what */
    _Atomic uint64_t released;        /* bytes released in all (the gateway trims its heap by it) */
};

void mem_budget_init(struct mem_budget *b, int64_t limit);

/* Charges n >= 0 bytes. Returns 0, or -EBUSY if used + n would pass the limit: then nothing is
 * charged and refused[what] is counted. */
int mem_budget_charge(struct mem_budget *b, int64_t n, enum mem_budget_what what);

/* Charges n >= 0 bytes that the gateway holds already and cannot refuse (answers queued for a
 * client, gateway/send_deadline.h): never fails, may take `used` past the limit (so new requests
 * are refused 503 meanwhile); released with mem_budget_release. */
void mem_budget_charge_always(struct mem_budget *b, int64_t n);

/* Releases n bytes charged earlier (exactly what was charged; 0 is a no-op). */
void mem_budget_release(struct mem_budget *b, int64_t n);

/* Bytes released since the start; 0 for NULL. */
uint64_t mem_budget_released(const struct mem_budget *b);

/* Bytes charged now; 0 for NULL. */
int64_t mem_budget_used(const struct mem_budget *b);

/* Refusals so far for what; 0 for NULL. */
uint64_t mem_budget_refused(const struct mem_budget *b, enum mem_budget_what what);

/* The label of what in metrics ("http_body", "fetch", "source", "msgpack_frame"). */
const char *mem_budget_what_name(enum mem_budget_what what);

#endif
