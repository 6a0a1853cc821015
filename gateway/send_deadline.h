/* The send deadline both gateway protocols put on a connection's answers (docs/security.md,
 * "Clients that do not read"), as pure functions of the bytes queued for the socket and loop
 * times in milliseconds, so HTTP and msgpack cannot drift apart:
 *   a connection whose queued answer bytes (those the kernel has not accepted yet: libuv's
 *   write_queue_size) make no progress for timeout_ms is closed (--send-timeout-s; 0: off);
 *   reading from it pauses while more than max_unsent bytes are queued (--max-unsent-bytes;
 *   0: no cap), so a client pipelining requests without reading their answers holds at most
 *   that much plus the answers of the requests it already has outstanding.
 * libuv reports a write only when all of it is written, so progress inside one large answer is
 * seen by sampling the queue's size: vl_send_observe at every queueing and write completion and
 * on a tick of a quarter of the timeout while bytes are queued (vl_send_wake). A connection is
 * therefore closed between timeout_ms and 1.25 x timeout_ms after the kernel last took a byte. */
#ifndef VL_GATEWAY_SEND_DEADLINE_H
#define VL_GATEWAY_SEND_DEADLINE_H

#include <stddef.h>
#include <stdint.h>

struct vl_send_clock {
    size_t mark;            /* the queue's size at the last observation */
    uint64_t t_progress_ms; /* when the queue was last seen shrinking, empty, or starting */
};

/* Records the queue's size q at now: progress if it shrank since the last observation (emptied
 * included), or if it just started (the clock of a new backlog starts with its first bytes); an
 * empty queue seen empty again is no news (t_progress_ms stays when it emptied: the idle clock
 * may use it). Returns 1 if it counted as progress. Call it before and after queueing bytes
 * too, so that a shrink is not hidden by the growth. */
static inline int vl_send_observe(struct vl_send_clock *k, size_t q, uint64_t now)
{
    int progress = q < k->mark || (k->mark == 0 && q > 0);
    if (progress)
        k->t_progress_ms = now;
    k->mark = q;
    return progress;
}

/* The time the connection is closed unless its queue q moves by then; 0: none (nothing queued,
 * or timeout_ms 0). */
static inline uint64_t vl_send_deadline(const struct vl_send_clock *k, size_t q,
                                        uint64_t timeout_ms)
{
    return q && timeout_ms ? k->t_progress_ms + timeout_ms : 0;
}

/* The next time to sample the queue (a tick), never after the deadline; 0: none. */
static inline uint64_t vl_send_wake(const struct vl_send_clock *k, size_t q, uint64_t timeout_ms,
                                    uint64_t now)
{
    uint64_t d = vl_send_deadline(k, q, timeout_ms);
    if (!d)
        return 0;
    uint64_t tick = now + (timeout_ms / 4 ? timeout_ms / 4 : 1);
    return tick < d ? tick : d;
}

/* The kinds vl_send_fold reports: the send deadline, or a tick to sample the queue again. */
#define VL_SEND_DL_SEND (-2)
#define VL_SEND_DL_TICK (-3)

/* Folds the send deadline and the next tick into a connection's receive or idle deadline d
 * (0: none): returns the earliest of them and, where the send deadline or the tick comes first,
 * sets *kind to VL_SEND_DL_SEND or VL_SEND_DL_TICK. */
static inline uint64_t vl_send_fold(const struct vl_send_clock *k, size_t q, uint64_t timeout_ms,
                                    uint64_t now, uint64_t d, int *kind)
{
    uint64_t sd = vl_send_deadline(k, q, timeout_ms);
    if (sd && (!d || sd < d))
        d = sd, *kind = VL_SEND_DL_SEND;
    uint64_t wake = vl_send_wake(k, q, timeout_ms, now);
    if (wake && wake < d)
        d = wake, *kind = VL_SEND_DL_TICK;
    return d;
}

/* Whether reading should pause: more than max_unsent bytes queued (max_unsent 0: never). */
static inline int vl_send_backlogged(size_t q, size_t max_unsent)
{
    return max_unsent && q > max_unsent;
}

#endif
