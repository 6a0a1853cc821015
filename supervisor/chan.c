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
    if (sv_msg_check(p, len, 8) < 0) {
        snprintf(err, errlen, "malformed msgpack frame (%zu bytes)", len);
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

/* ---- bounded msgpack walk ---- */

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Walks one object at buf[*pos]; advances *pos. Returns 0 or -1. */
static int walk(const uint8_t *buf, size_t len, size_t *pos, int depth)
{
    if (depth < 0 || *pos >= len)
        return -1;
    uint8_t t = buf[(*pos)++];
    size_t left = len - *pos;
    uint64_t skip = 0, items = 0;
    int hdr = 0;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
        return 0;
    if ((t & 0xf0) == 0x80)
        items = 2u * (t & 0x0f);
    else if ((t & 0xf0) == 0x90)
        items = t & 0x0f;
    else if ((t & 0xe0) == 0xa0)
        skip = t & 0x1f;
    else
        switch (t) {
        case 0xc4:
        case 0xd9:
            hdr = 1;
            break; /* bin8, str8 */
        case 0xc5:
        case 0xda:
            hdr = 2;
            break; /* bin16, str16 */
        case 0xc6:
        case 0xdb:
            hdr = 4;
            break; /* bin32, str32 */
        case 0xc7:
            hdr = 1;
            skip = 1;
            break; /* ext8: length + type */
        case 0xc8:
            hdr = 2;
            skip = 1;
            break;
        case 0xc9:
            hdr = 4;
            skip = 1;
            break;
        case 0xca:
            skip = 4;
            break;
        case 0xcb:
            skip = 8;
            break;
        case 0xcc:
        case 0xd0:
            skip = 1;
            break;
        case 0xcd:
        case 0xd1:
            skip = 2;
            break;
        case 0xce:
        case 0xd2:
            skip = 4;
            break;
        case 0xcf:
        case 0xd3:
            skip = 8;
            break;
        case 0xd4:
            skip = 2;
            break; /* fixext: type + data */
        case 0xd5:
            skip = 3;
            break;
        case 0xd6:
            skip = 5;
            break;
        case 0xd7:
            skip = 9;
            break;
        case 0xd8:
            skip = 17;
            break;
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf: {
            int n = (t == 0xdc || t == 0xde) ? 2 : 4;
            if (left < (size_t)n)
                return -1;
            items = be(buf + *pos, n) * (t >= 0xde ? 2 : 1);
            *pos += (size_t)n;
            break;
        }
        default:
            return -1; /* 0xc1: never used */
        }
    if (hdr) {
        if (left < (size_t)hdr)
            return -1;
        skip += be(buf + *pos, hdr);
        *pos += (size_t)hdr;
    }
    if (skip > len - *pos || items > len - *pos)
        return -1;
    *pos += (size_t)skip;
    for (uint64_t i = 0; i < items; i++)
        if (walk(buf, len, pos, depth - 1) < 0)
            return -1;
    return 0;
}

int sv_msg_check(const uint8_t *buf, size_t len, int max_depth)
{
    size_t pos = 0;
    return walk(buf, len, &pos, max_depth) == 0 && pos == len ? 0 : -1;
}

const msgpack_object *sv_msg_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

int sv_msg_str(const msgpack_object *map, const char *key, char *dst, size_t cap)
{
    const msgpack_object *o = sv_msg_get(map, key);
    if (!o || o->type != MSGPACK_OBJECT_STR || cap == 0)
        return -1;
    size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
    memcpy(dst, o->via.str.ptr, n);
    dst[n] = 0;
    return 0;
}

int sv_msg_int(const msgpack_object *map, const char *key, int64_t *out)
{
    const msgpack_object *o = sv_msg_get(map, key);
    if (!o)
        return -1;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
        *out = (int64_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = o->via.i64;
    else
        return -1;
    return 0;
}

int sv_msg_type_is(const msgpack_object *map, const char *type)
{
    const msgpack_object *o = sv_msg_get(map, "type");
    size_t n = strlen(type);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, type, n) == 0;
}

void sv_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void sv_pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    sv_pack_str(pk, k);
    sv_pack_str(pk, v ? v : "");
}

void sv_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    sv_pack_str(pk, k);
    msgpack_pack_int64(pk, v);
}

void sv_pack_kv_double(msgpack_packer *pk, const char *k, double v)
{
    sv_pack_str(pk, k);
    msgpack_pack_double(pk, v);
}

void sv_pack_kv_bool(msgpack_packer *pk, const char *k, int v)
{
    sv_pack_str(pk, k);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}
