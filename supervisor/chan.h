/* A control channel: one non-blocking stream socket carrying length-prefixed msgpack frames
 * (common/frame.h) in both directions, with a bounded outgoing queue. Used for the
 * supervisor's end of each child's --control-fd socketpair and for vlembedctl connections.
 * Incoming maps are checked (vl_mp_check) before msgpack-c sees them. */
#ifndef VL_SUPERVISOR_CHAN_H
#define VL_SUPERVISOR_CHAN_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "common/frame.h"
#include "common/msgpack_util.h"

struct sv_chan {
    int fd; /* -1 = closed */
    struct vl_frame_reader rd;
    uint8_t *out;
    size_t out_len, out_cap, out_max;
};

/* Takes ownership of fd (made non-blocking). max_frame caps incoming frames; out_max caps
 * the bytes queued for a peer that does not read (beyond it, sends fail with -ENOBUFS). */
void sv_chan_init(struct sv_chan *c, int fd, size_t max_frame, size_t out_max);
void sv_chan_close(struct sv_chan *c);

/* Queues one frame and writes what the socket takes now. Returns 0 or -errno. */
int sv_chan_send(struct sv_chan *c, const void *payload, size_t len);
/* Sends the packed contents of an sbuffer as one frame. */
int sv_chan_send_sbuf(struct sv_chan *c, const msgpack_sbuffer *sb);
/* Writes queued bytes. Returns 0 (all written or would block) or -errno. */
int sv_chan_flush(struct sv_chan *c);
int sv_chan_want_write(const struct sv_chan *c);

/* Reads what is available. Returns >0 (bytes read), 0 at EOF, -EAGAIN, or -errno;
 * VL_FRAME_TOO_LARGE if the peer announced a frame over the cap. */
int sv_chan_read(struct sv_chan *c);

/* Takes the next whole incoming frame, unpacked: returns 1 with *u holding a map (destroy it
 * with msgpack_unpacked_destroy), 0 if no whole frame is buffered, or -1 on a protocol error
 * (err says which; the channel should be closed). */
int sv_chan_next(struct sv_chan *c, msgpack_unpacked *u, char *err, size_t errlen);

/* ---- message helpers (over common/msgpack_util.h's vl_mp_*) ---- */

/* Copies a str field (truncated to cap-1); returns 0, or -1 if absent or not a str. */
int sv_msg_str(const msgpack_object *map, const char *key, char *dst, size_t cap);
/* Reads an integer field; returns 0, or -1 if absent or not an integer. */
int sv_msg_int(const msgpack_object *map, const char *key, int64_t *out);
int sv_msg_type_is(const msgpack_object *map, const char *type);
void sv_pack_kv_double(msgpack_packer *pk, const char *k, double v);
void sv_pack_kv_bool(msgpack_packer *pk, const char *k, int v);

#endif
