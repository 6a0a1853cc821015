/* The msgpack API's reading side of one connection: length-prefixed frames (common/frame.h's
 * format: a 4-byte big-endian length, then the payload) taken off a byte stream, with every
 * frame's declared length reserved from the process-wide buffered-bytes budget
 * (gateway/membudget.h, --max-buffered-bytes) before its body is read.
 *
 * Bytes arrive through a small staging buffer (at most MP_INTAKE_STAGE bytes, allocated only
 * while it holds something) until a frame header is complete. Then the frame's length is checked
 * against the cap and charged to the budget, the frame gets a buffer of exactly its length, and
 * the rest of its body is read straight into that buffer: no copy, no doubling, nothing read past
 * the frame's end. The whole frame is handed to the caller, who owns the buffer and its charge
 * until the request is done (mp_frame_free). A frame that does not fit the budget is refused
 * before any more of it is read; the caller then stops reading the connection (the stream cannot
 * be resynchronised without reading the refused body).
 *
 * Use with libuv: on_alloc hands out mp_intake_space(), on_read reports mp_intake_wrote(), then
 * mp_intake_next() until it returns MP_INTAKE_NEED_MORE. Not thread-safe (one connection, one
 * loop thread); the budget itself is. */
#ifndef VL_GATEWAY_MP_INTAKE_H
#define VL_GATEWAY_MP_INTAKE_H

#include <stddef.h>
#include <stdint.h>

struct mem_budget;

/* The staging buffer's size: a read of headers and small frames, never a frame's big body. */
#define MP_INTAKE_STAGE (64 * 1024)

#define MP_INTAKE_OK 1
#define MP_INTAKE_NEED_MORE 0
#define MP_INTAKE_TOO_LARGE (-1) /* a declared length over max_frame (bad_len) */
#define MP_INTAKE_EMPTY (-2)     /* a declared length of 0 */
#define MP_INTAKE_BUSY (-3)      /* the declared length (bad_len) does not fit the budget */

/* A whole frame handed out: payload is malloc()ed, exactly len bytes; charged bytes of the
 * budget are held for it until mp_frame_free. */
struct mp_frame {
    uint8_t *payload;
    size_t len;
    int64_t charged;
};

struct mp_intake {
    size_t max_frame;
    struct mem_budget *budget; /* NULL: nothing is charged */
    uint8_t *stage;            /* NULL while empty */
    size_t stage_len;          /* bytes in stage */
    size_t stage_start;        /* offset of the first byte not yet taken */
    uint8_t *frame;            /* the frame being read into its own buffer, or NULL */
    size_t frame_len, frame_got;
    int64_t frame_charged;
    size_t bad_len; /* the declared length when TOO_LARGE or BUSY was returned */
    size_t skip;    /* bytes of a refused frame still to be read and thrown away */
};

void mp_intake_init(struct mp_intake *in, size_t max_frame, struct mem_budget *budget);

/* Frees the buffers and releases the charge of a frame not yet whole (the connection is gone or
 * refused). Safe on a zeroed or already freed intake. */
void mp_intake_free(struct mp_intake *in);

/* Where the next read should put its bytes: the rest of the frame being read, or the free part
 * of the staging buffer (allocated here if needed). *len is 0 only if the staging buffer is full
 * of whole frames not taken yet (the caller reads only after taking them). */
void mp_intake_space(struct mp_intake *in, uint8_t **buf, size_t *len);

/* n bytes were read into the space last returned by mp_intake_space. */
void mp_intake_wrote(struct mp_intake *in, size_t n);

/* Takes the next whole frame: MP_INTAKE_OK with *f filled (the caller now owns it),
 * MP_INTAKE_NEED_MORE, or a refusal (TOO_LARGE, EMPTY, BUSY: nothing of that frame is charged or
 * buffered; the caller stops reading and calls mp_intake_free). */
int mp_intake_next(struct mp_intake *in, struct mp_frame *f);

/* After MP_INTAKE_BUSY: drops everything staged and arranges for the rest of the refused frame's
 * body (bad_len bytes minus what was staged) to be read into the staging buffer and thrown away,
 * so that a client still sending it is not blocked and gets to read the refusal. Nothing of it is
 * kept or charged; mp_intake_next returns MP_INTAKE_NEED_MORE meanwhile.
 * mp_intake_discarding says whether bytes of it are still to come. */
void mp_intake_discard(struct mp_intake *in);
int mp_intake_discarding(const struct mp_intake *in);

/* Bytes read but not yet handed out in a frame (staged, and the body of a partial frame). */
size_t mp_intake_pending(const struct mp_intake *in);

/* Frees a frame's payload and releases its charge from budget (the intake's budget). */
void mp_frame_free(struct mp_frame *f, struct mem_budget *budget);

#endif
