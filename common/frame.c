/* Length-prefixed frame reader/writer (see frame.h). */
#include "common/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/limits.h"

void vl_frame_reader_init(struct vl_frame_reader *r, size_t max_frame)
{
    memset(r, 0, sizeof *r);
    r->max_frame = max_frame;
}

void vl_frame_reader_free(struct vl_frame_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = r->start = 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int check_pending(struct vl_frame_reader *r)
{
    if (r->len - r->start >= VL_FRAME_HEADER) {
        uint32_t n = be32(r->buf + r->start);
        if (n > r->max_frame) {
            r->bad_len = n;
            return VL_FRAME_TOO_LARGE;
        }
    }
    return 0;
}

int vl_frame_reader_feed(struct vl_frame_reader *r, const void *data, size_t n)
{
    if (r->start > 0) { /* compact: drop consumed frames */
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->start = 0;
    }
    /* A header already buffered that declares too much is refused before growing. */
    if (check_pending(r) < 0)
        return VL_FRAME_TOO_LARGE;
    if (r->len + n > r->cap) {
        size_t want = r->cap ? r->cap : 4096;
        while (want < r->len + n)
            want *= 2;
        r->buf = vl_realloc(r->buf, want);
        r->cap = want;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return check_pending(r);
}

int vl_frame_reader_next(struct vl_frame_reader *r, const uint8_t **payload, size_t *len)
{
    size_t have = r->len - r->start;
    if (have < VL_FRAME_HEADER)
        return VL_FRAME_NEED_MORE;
    uint32_t n = be32(r->buf + r->start);
    if (n > r->max_frame) {
        r->bad_len = n;
        return VL_FRAME_TOO_LARGE;
    }
    if (n == 0)
        return VL_FRAME_EMPTY;
    if (have - VL_FRAME_HEADER < n)
        return VL_FRAME_NEED_MORE;
    *payload = r->buf + r->start + VL_FRAME_HEADER;
    *len = n;
    r->start += VL_FRAME_HEADER + n;
    return VL_FRAME_OK;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t got = read(fd, p, n);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (got == 0)
            return -EPIPE;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int vl_frame_write_fd(int fd, const void *payload, size_t len)
{
    if (len == 0 || len > UINT32_MAX)
        return -EINVAL;
    uint8_t hdr[4];
    vl_frame_header(hdr, (uint32_t)len);
    int rc = write_all(fd, hdr, 4);
    return rc < 0 ? rc : write_all(fd, payload, len);
}

int vl_frame_read_fd(int fd, size_t max_frame, uint8_t **payload, size_t *len)
{
    uint8_t hdr[4];
    int rc = read_all(fd, hdr, 4);
    if (rc < 0)
        return rc;
    uint32_t n = be32(hdr);
    if (n > max_frame)
        return VL_FRAME_TOO_LARGE;
    if (n == 0)
        return VL_FRAME_EMPTY;
    uint8_t *buf = vl_malloc(n);
    rc = read_all(fd, buf, n);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *payload = buf;
    *len = n;
    return 0;
}
