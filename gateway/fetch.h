/* Fetching media URLs on the gateway's event loop: libcurl's multi interface driven by libuv
 * (CURLMOPT_SOCKETFUNCTION -> uv_poll, CURLMOPT_TIMERFUNCTION -> uv_timer), so there is no
 * thread per fetch and connections to the same host are reused across requests.
 *
 * Every fetch has one deadline (whole transfer), a byte cap counted as the body arrives (and
 * checked against Content-Length up front), a redirect cap, http/https only on every hop, no
 * proxy from the environment, no content decoding, and SSRF defences: every address libcurl is
 * about to connect to — the first hop and every redirect — is checked in
 * CURLOPT_OPENSOCKETFUNCTION against private, loopback, link-local, metadata and other
 * non-global ranges (notes/reliability.md §3.4), unless the operator's allow-list names it.
 *
 * All calls and callbacks happen on the loop's thread. */
#ifndef VL_GATEWAY_FETCH_H
#define VL_GATEWAY_FETCH_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct fetcher;
struct mem_budget;

struct fetch_config {
    /* Comma-separated CIDRs that may be fetched even though they are not global addresses,
     * e.g. "10.1.0.0/16,127.0.0.1/32" (tests use loopback). NULL or "" = none. */
    const char *allow_cidrs;
    const char *user_agent;       /* NULL = "vlembed" */
    int32_t max_connections;      /* total open connections; 0 = 64 */
    int32_t max_host_connections; /* per host; 0 = 8 */
};

struct fetch_opts {
    int64_t max_bytes;          /* body cap; 0 = 32 MiB */
    int64_t timeout_ms;         /* the whole fetch, redirects included; 0 = 10000 */
    int64_t connect_timeout_ms; /* each connection attempt; 0 = min(timeout, 3000) */
    int32_t max_redirects;      /* 0 = no redirects followed; < 0 = default 3 */
    /* Optional process-wide buffered-bytes budget (gateway/membudget.h): the body's buffer is
     * charged as it grows; a growth over the budget ends the fetch with FETCH_ERR_BUSY. The
     * charge is released when the body is freed, or handed over with fetch_body_charge_take. */
    struct mem_budget *mem_budget;
};

/* The status a fetch completes with: 0, or one of these (err says more, naming the URL). */
#define FETCH_ERR_BAD_URL (-EINVAL)     /* not an absolute http(s) URL */
#define FETCH_ERR_TIMEOUT (-ETIMEDOUT)  /* deadline passed */
#define FETCH_ERR_TOO_LARGE (-E2BIG)    /* body (or Content-Length) over max_bytes */
#define FETCH_ERR_REDIRECTS (-ELOOP)    /* more than max_redirects redirects */
#define FETCH_ERR_BLOCKED (-EACCES)     /* an address that is not allowed (SSRF defence) */
#define FETCH_ERR_HTTP (-EPROTO)        /* the server answered with status >= 400 */
#define FETCH_ERR_NETWORK (-EIO)        /* DNS, connect, TLS, reset, ... */
#define FETCH_ERR_CANCELED (-ECANCELED) /* the fetcher was closed first */
#define FETCH_ERR_BUSY (-EBUSY)         /* the body did not fit the buffered-bytes budget */

/* body is valid only during the callback (copy or steal it with fetch_body_steal). */
typedef void (*fetch_cb)(void *data, int status, const uint8_t *body, size_t n, const char *err);

/* Creates a fetcher on loop. Returns NULL with err set on a bad allow-list. */
struct fetcher *fetcher_new(uv_loop_t *loop, const struct fetch_config *cfg, char *err,
                            size_t errlen);

/* Cancels every fetch in flight (each gets FETCH_ERR_CANCELED), closes the loop handles and
 * frees the fetcher once they are closed; on_closed (may be NULL) runs after that. */
void fetcher_close(struct fetcher *f, void (*on_closed)(void *data), void *data);

/* Starts fetching url; cb runs exactly once, later, on the loop thread (never from inside
 * fetch_start). Returns 0, or a negative code if the fetch could not even start (cb not run). */
int fetch_start(struct fetcher *f, const char *url, const struct fetch_opts *opts, fetch_cb cb,
                void *data);

/* Inside a callback: takes ownership of the body buffer (malloc'd; NULL if empty). */
uint8_t *fetch_body_steal(void);

/* Inside a callback, with the body stolen: takes over the bytes its buffer holds charged to
 * opts->mem_budget (0 without one); the caller then releases them (mem_budget_release) when it
 * frees the body. Not taken, they are released when the callback returns. */
int64_t fetch_body_charge_take(void);

/* Fetches in flight and connections opened so far (for metrics and tests). */
int fetcher_active(const struct fetcher *f);
int64_t fetcher_connections_opened(const struct fetcher *f);

/* The SSRF rule alone: 1 if the address (struct sockaddr_in / sockaddr_in6) is not a global
 * unicast address that may be fetched (reliability.md §3.4), 0 if it may be. */
struct sockaddr;
int fetch_addr_is_blocked(const struct sockaddr *sa);

#endif
