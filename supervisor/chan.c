/* Control channels and message helpers (see chan.h). */
#include "supervisor/chan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/msgpack_util.h"

void sv_chan_init(struct sv_chan *c, int fd, size_t max_frame, size_t out_max)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->out_max = out_max;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    vl_frame_reader_init(&c->rd, max_frame);
}

void sv_chan_close(struct sv_chan *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    vl_frame_reader_free(&c->rd);
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_cap = 0;
}

int sv_chan_flush(struct sv_chan *c)
{
    size_t off = 0;
    while (off < c->out_len) {
        ssize_t w = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -errno;
        }
        off += (size_t)w;
    }
    memmove(c->out, c->out + off, c->out_len - off);
    c->out_len -= off;
    return 0;
}

int sv_chan_send(struct sv_chan *c, const void *payload, size_t len)
{
    if (c->fd < 0)
        return -EPIPE;
    if (len == 0 || len > UINT32_MAX)
        return -EINVAL;
    if (c->out_len + 4 + len > c->out_max)
        return -ENOBUFS;
    if (c->out_len + 4 + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + 4 + len)
            cap *= 2;
        c->out = vl_realloc(c->out, cap);
        c->out_cap = cap;
    }
    vl_frame_header(c->out + c->out_len, (uint32_t)len);
    memcpy(c->out + c->out_len + 4, payload, len);
    c->out_len += 4 + len;
    return sv_chan_flush(c);
}

int sv_chan_send_sbuf(struct sv_chan *c, const msgpack_sbuffer *sb)
{
    return sv_chan_send(c, sb->data, sb->size);
}

int sv_chan_want_write(const struct sv_chan *c)
{
    return c->fd >= 0 && c->out_len > 0;
}

int sv_chan_read(struct sv_chan *c)
{
    uint8_t buf[16384];
    for (;;) {
        ssize_t r = read(c->fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
        if (r == 0)
            return 0;
        if (vl_frame_reader_feed(&c->rd, buf, (size_t)r) < 0)
            return VL_FRAME_TOO_LARGE;
        return (int)r;
    }
}

int sv_chan_next(struct sv_chan *c, msgpack_unpacked *u, char *err, size_t errlen)
{
    const uint8_t *p;
    size_t len;
    int rc = vl_frame_reader_next(&c->rd, &p, &len);
    if (rc == VL_FRAME_NEED_MORE)
        return 0;
    if (rc != VL_FRAME_OK) {
        if (rc == VL_FRAME_TOO_LARGE)
            snprintf(err, errlen, "frame of %zu bytes over the cap", c->rd.bad_len);
        else
            snprintf(err, errlen, "empty frame");
        return -1;
    }
    char why[160];
    if (vl_mp_check(p, len, 8, why, sizeof why) < 0) {
        snprintf(err, errlen, "malformed msgpack frame (%zu bytes): %s", len, why);
        return -1;
    }
    msgpack_unpacked_init(u);
    size_t off = 0;
    if (msgpack_unpack_next(u, (const char *)p, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        u->data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(u);
        snprintf(err, errlen, "frame is not one msgpack map");
        return -1;
    }
    return 1;
}

int sv_msg_str(const msgpack_object *map, const char *key, char *dst, size_t cap)
{
    const msgpack_object *o = vl_mp_get(map, key);
    if (!o || o->type != MSGPACK_OBJECT_STR || cap == 0)
        return -1;
    size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
    memcpy(dst, o->via.str.ptr, n);
    dst[n] = 0;
    return 0;
}

int sv_msg_int(const msgpack_object *map, const char *key, int64_t *out)
{
    return vl_mp_int(vl_mp_get(map, key), out);
}

int sv_msg_type_is(const msgpack_object *map, const char *type)
{
    return vl_mp_str_eq(vl_mp_get(map, "type"), type);
}

void sv_pack_kv_double(msgpack_packer *pk, const char *k, double v)
{
    vl_mp_pack_cstr(pk, k);
    msgpack_pack_double(pk, v);
}

void sv_pack_kv_bool(msgpack_packer *pk, const char *k, int v)
{
    vl_mp_pack_cstr(pk, k);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}
