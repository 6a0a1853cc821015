/* The receive deadlines both gateway protocols put on a request while it arrives (HTTP: the head,
 * then the body; msgpack: the 4-byte length prefix, then the frame's payload), as one pure
 * function of loop times in milliseconds, so the two protocols cannot drift apart:
 *   header:     the head / prefix complete within header_ms of the request's first byte;
 *   body stall: at most stall_ms between two reads of the body (from the head's end);
 *   body rate:  the body's bytes buy time at min_rate bytes/s after rate_grace_ms (0: off);
 *   request:    the whole request within request_ms of its first byte (0: off).
 * The enum's values are the index of each kind's timeout counter (labels of the metrics). */
#ifndef VL_GATEWAY_RECV_DEADLINE_H
#define VL_GATEWAY_RECV_DEADLINE_H

#include <stdint.h>

enum vl_recv_timeout {
    VL_RECV_TO_HEADER = 0,
    VL_RECV_TO_BODY_STALL,
    VL_RECV_TO_BODY_RATE,
    VL_RECV_TO_REQUEST,
    VL_RECV_TO_N
};

struct vl_recv_limits {
    uint64_t header_ms, stall_ms, rate_grace_ms, request_ms;
    uint64_t min_rate; /* bytes/s */
};

/* The earliest deadline of a request whose first byte came at t_start; in_body: its head is
 * complete, at t_body; t_read: the last read; got: body bytes so far. Sets *kind to the
 * vl_recv_timeout that expires then. */
static inline uint64_t vl_recv_deadline(const struct vl_recv_limits *l, uint64_t t_start,
                                        int in_body, uint64_t t_body, uint64_t t_read, uint64_t got,
                                        int *kind)
{
    uint64_t d;
    if (!in_body) {
        d = t_start + l->header_ms;
        *kind = VL_RECV_TO_HEADER;
    } else {
        uint64_t last = t_read > t_body ? t_read : t_body;
        d = last + l->stall_ms;
        *kind = VL_RECV_TO_BODY_STALL;
        if (l->min_rate) {
            uint64_t r = t_body + l->rate_grace_ms + got * 1000 / l->min_rate;
            if (r < d)
                d = r, *kind = VL_RECV_TO_BODY_RATE;
        }
    }
    if (l->request_ms && t_start + l->request_ms < d)
        d = t_start + l->request_ms, *kind = VL_RECV_TO_REQUEST;
    return d;
}

#endif
