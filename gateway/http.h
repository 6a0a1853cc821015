/* The gateway's HTTP/1.1 server: libuv TCP (or an inherited listening fd) + libhttp-parser.
 *
 * Promises: keep-alive; pipelined requests are handed to the handler as they complete and
 * answered strictly in order; chunked request bodies are de-chunked; the request line and
 * headers are capped (431), the body is capped (413) and a declared Content-Length over the
 * cap is answered 413 before any of the body is read; `Expect: 100-continue` is honoured;
 * idle keep-alive connections and slow senders are answered 408 and closed (a deadline for the
 * head, a stall timeout and a minimum average byte rate for the body, a deadline for the whole
 * request); with a buffered-bytes budget, bodies that do not fit are answered 503 before they
 * are read (see mem_budget below); at most max_pipeline requests per connection are outstanding
 * (reading pauses meanwhile); with a client table, at most max_client_conns connections per client
 * address. Answers a client does not read (gateway/send_deadline.h): reading pauses while more
 * than max_unsent_bytes of them are queued for the socket, and a connection whose queued answers
 * make no progress for send_timeout_ms is closed (its requests still running are cancelled and
 * dropped when they finish); queued answers are charged to mem_budget until written.
 *
 * An optional on_head hook sees each request once its head is complete, before any of its body
 * is read, and may answer it there (authentication, per-client admission): the body is then
 * never read, and the connection is closed after the answer unless the request had no body.
 *
 * The handler receives a complete request and must eventually call http_respond() exactly
 * once, possibly from a later loop iteration. If the client went away meanwhile,
 * http_respond() just frees the request: handlers never check the connection. */
#ifndef VL_GATEWAY_HTTP_H
#define VL_GATEWAY_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gateway/recv_deadline.h"

struct client_table;
struct mem_budget;
struct http_server;
struct http_conn;

struct http_req {
    int method;          /* enum http_method from http_parser.h */
    char *path;          /* NUL-terminated, without the query string */
    char *query;         /* NUL-terminated, "" when absent */
    char *content_type;  /* lower-cased value or NULL */
    char *request_id;    /* X-Request-Id value or NULL */
    char *authorization; /* Authorization value or NULL (wiped when freed) */
    char *api_key;       /* X-API-Key or api-key value or NULL (wiped when freed) */
    char peer[48];       /* the client's address name (clients_addr_name) */
    uint8_t *body;       /* NUL-terminated for convenience; body_len excludes the NUL */
    size_t body_len;
    int keep_alive;
    uint64_t t_start_ns; /* uv_hrtime() when the first byte of the request arrived */
    void *user;          /* free for the handler */
    void *admission;     /* free for on_head; on_release is called when the request is freed */

    /* private */
    struct http_conn *conn;
    struct http_server *srv;
    struct http_req *next;
    int responded;
    int close_after;
    char *resp;
    size_t resp_len;
    int64_t mem_charged; /* bytes of body charged to srv->mem_budget (released when freed) */
};

struct http_limits {
    size_t max_header_bytes;     /* request line + all headers */
    int max_headers;             /* header fields */
    size_t max_body_bytes;       /* 413 above this */
    int max_pipeline;            /* outstanding requests per connection */
    int max_conns;               /* open connections; more are accepted and closed at once */
    uint64_t header_timeout_ms;  /* whole request head must arrive within this */
    uint64_t body_timeout_ms;    /* at most this between two reads of a body */
    uint64_t idle_timeout_ms;    /* keep-alive connection with nothing outstanding */
    uint64_t request_timeout_ms; /* head + body from the first byte; 0: off */
    uint64_t min_body_rate;      /* bytes/s a body must average after the grace; 0: off */
    uint64_t body_rate_grace_ms; /* from the end of the head */
    int max_client_conns;        /* per client address (needs a client table); 0: off */
    uint64_t send_timeout_ms;    /* queued answers without progress: closed; 0: off */
    size_t max_unsent_bytes;     /* queued answers above this: reading pauses; 0: no cap */
};

/* Why a request was answered 408 (http_server.n_timeouts[]). */
enum http_timeout_kind {
    HTTP_TO_HEADER = VL_RECV_TO_HEADER,         /* head not complete within header_timeout_ms */
    HTTP_TO_BODY_STALL = VL_RECV_TO_BODY_STALL, /* nothing of the body for body_timeout_ms */
    HTTP_TO_BODY_RATE = VL_RECV_TO_BODY_RATE,   /* body slower than min_body_rate */
    HTTP_TO_REQUEST = VL_RECV_TO_REQUEST,       /* whole request not within request_timeout_ms */
    HTTP_TO_N = VL_RECV_TO_N
};

typedef void (*http_handler_fn)(struct http_server *s, struct http_req *req);

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listening;
    struct http_limits lim;
    http_handler_fn handler;
    /* Optional: called when the client of an unanswered request went away (the request must
     * still be answered with http_respond, which then only frees it). */
    void (*on_cancel)(struct http_server *s, struct http_req *req);
    /* Optional: called when a request's head is complete, before its body is read; it may call
     * http_respond(req, ...) to refuse it (the handler is then not called). */
    void (*on_head)(struct http_server *s, struct http_req *req);
    /* Optional: called when a request whose `admission` is set is freed (answered and sent, or
     * dropped with its connection). */
    void (*on_release)(struct http_server *s, struct http_req *req);
    /* Optional: per-client connection counts (max_client_conns) are kept here. */
    struct client_table *clients;
    /* Optional: the process-wide buffered-bytes budget (gateway/membudget.h). A body's bytes
     * are charged before they are read (all of a declared Content-Length at the head, a chunked
     * body as it grows) and released when the request is freed; a body over the budget is
     * answered 503 memory_busy with Retry-After before (more of) it is read, and the
     * connection closed. */
    struct mem_budget *mem_budget;
    void *user;
    int n_conns;
    struct http_conn *conns; /* all open connections (for shutdown) */
    uint64_t n_requests, n_rejected_conns, n_rejected_client_conns;
    uint64_t n_timeouts[HTTP_TO_N];
    uint64_t n_send_timeouts; /* connections closed by send_timeout_ms */
    uint64_t n_send_paused;   /* times reading paused for max_unsent_bytes */
};

/* Defaults documented in docs/api.md ("Limits"). */
void http_limits_default(struct http_limits *l);

int http_server_init(struct http_server *s, uv_loop_t *loop, const struct http_limits *lim,
                     http_handler_fn handler, void *user);
/* Binds HOST:PORT ("127.0.0.1:8080", "[::1]:8080", ":8080"); port 0 picks a free one.
 * Returns 0 or a negative uv error with err set. */
int http_server_listen(struct http_server *s, const char *hostport, char *err, size_t errlen);
/* Serves an already bound, listening TCP socket (inherited from the supervisor). */
int http_server_listen_fd(struct http_server *s, int fd, char *err, size_t errlen);
/* The bound port (after http_server_listen), or -1. */
int http_server_port(struct http_server *s);
/* Bytes of answers queued for the open connections' sockets, not yet taken by the kernel. */
size_t http_server_unsent(const struct http_server *s);
/* Stops accepting and closes every connection (outstanding requests are dropped). */
void http_server_close(struct http_server *s);

/* Queues the response for req (status, Content-Type, optional extra header lines each ending
 * in "\r\n", body copied). Safe to call after the client disconnected (then it only frees). */
void http_respond(struct http_req *req, int status, const char *content_type,
                  const char *extra_headers, const void *body, size_t len);

/* Frees req's body once the handler no longer needs it (e.g. parsed into its own structures),
 * keeping at most `keep` bytes of the body's buffered-bytes charge for what the handler copied
 * out of it (released when the request is freed, as before). body becomes NULL, body_len 0. */
void http_req_drop_body(struct http_req *req, int64_t keep);

/* Reason phrase for a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
