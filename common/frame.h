/* Length-prefixed msgpack framing: every frame is a 4-byte big-endian payload length and one
 * msgpack map. The length is checked against a cap before anything is buffered for it.
 *
 * The reader is incremental (feed bytes as they arrive, take whole frames out) and never
 * grows its buffer beyond max_frame + 4 bytes. */
#ifndef VL_COMMON_FRAME_H
#define VL_COMMON_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define VL_FRAME_OK 1
#define VL_FRAME_NEED_MORE 0
#define VL_FRAME_TOO_LARGE (-1)
#define VL_FRAME_EMPTY (-2)

struct vl_frame_reader {
    uint8_t *buf;
    size_t len; /* bytes buffered */
    size_t cap;
    size_t start; /* offset of the next unconsumed byte */
    size_t max_frame;
    size_t bad_len; /* the declared length when VL_FRAME_TOO_LARGE was returned */
};

void vl_frame_reader_init(struct vl_frame_reader *r, size_t max_frame);
void vl_frame_reader_free(struct vl_frame_reader *r);

/* Appends bytes. Returns 0, or VL_FRAME_TOO_LARGE if a pending frame header already declares
 * more than max_frame (the connection should then be closed). */
int vl_frame_reader_feed(struct vl_frame_reader *r, const void *data, size_t n);

/* Takes the next whole frame: returns VL_FRAME_OK with *payload and *len pointing into the
 * reader's buffer (valid until the next feed/next call), VL_FRAME_NEED_MORE, or
 * VL_FRAME_TOO_LARGE / VL_FRAME_EMPTY (zero-length frame) on a protocol error. */
int vl_frame_reader_next(struct vl_frame_reader *r, const uint8_t **payload, size_t *len);

/* Writes the 4-byte header for a payload of `len` bytes. */
static inline void vl_frame_header(uint8_t hdr[4], uint32_t len)
{
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
}

/* Blocking helpers for simple clients (vlembedctl, tests): write one frame; read one frame
 * into a malloc()ed buffer (caller frees). Return 0 / -errno, VL_FRAME_TOO_LARGE, or -EPIPE
 * on EOF before a whole frame. */
int vl_frame_write_fd(int fd, const void *payload, size_t len);
int vl_frame_read_fd(int fd, size_t max_frame, uint8_t **payload, size_t *len);

#endif
