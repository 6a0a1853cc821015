/* msgpack helpers (see msgpack_util.h). */
#include "common/msgpack_util.h"

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"

static uint64_t rd(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Walks one object at buf[*pos]; `pending` counts objects still expected in total. */
int vl_mp_check(const uint8_t *buf, size_t len, int max_depth, char *err, size_t errlen)
{
    /* iterative walk: remaining[d] = objects still to read at depth d */
    uint64_t remaining[64];
    if (max_depth > 63)
        max_depth = 63;
    int depth = 0;
    remaining[0] = 1;
    size_t pos = 0;
    while (depth >= 0) {
        if (remaining[depth] == 0) {
            depth--;
            continue;
        }
        remaining[depth]--;
        if (pos >= len) {
            snprintf(err, errlen, "msgpack: truncated at byte %zu", pos);
            return -1;
        }
        uint8_t t = buf[pos++];
        uint64_t count = 0, skip = 0;
        int container = 0;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
        } else if (t >= 0x80 && t <= 0x8f) {
            container = 1, count = 2u * (t & 0x0f);
        } else if (t >= 0x90 && t <= 0x9f) {
            container = 1, count = t & 0x0f;
        } else if (t >= 0xa0 && t <= 0xbf) {
            skip = t & 0x1f;
        } else {
            int hn = 0;
            switch (t) {
            case 0xc4:
            case 0xd9:
                hn = 1;
                break; /* bin8, str8 */
            case 0xc5:
            case 0xda:
                hn = 2;
                break; /* bin16, str16 */
            case 0xc6:
            case 0xdb:
                hn = 4;
                break; /* bin32, str32 */
            case 0xc7:
                hn = 1;
                break; /* ext8 */
            case 0xc8:
                hn = 2;
                break; /* ext16 */
            case 0xc9:
                hn = 4;
                break; /* ext32 */
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
                break;
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
                container = 1, hn = 2;
                break;
            case 0xdd:
                container = 1, hn = 4;
                break;
            case 0xde:
                container = 2, hn = 2;
                break;
            case 0xdf:
                container = 2, hn = 4;
                break;
            default:
                snprintf(err, errlen, "msgpack: invalid type byte 0x%02x at %zu", t, pos - 1);
                return -1;
            }
            if (hn) {
                if (len - pos < (size_t)hn) {
                    snprintf(err, errlen, "msgpack: truncated header at byte %zu", pos);
                    return -1;
                }
                uint64_t v = rd(buf + pos, hn);
                pos += (size_t)hn;
                if (container == 1)
                    count = v;
                else if (container == 2)
                    count = 2 * v, container = 1;
                else
                    skip = v + (t >= 0xc7 && t <= 0xc9 ? 1 : 0); /* ext: + type byte */
            }
        }
        if (skip) {
            if (len - pos < skip) {
                snprintf(err, errlen, "msgpack: a length of %llu at byte %zu exceeds the frame",
                         (unsigned long long)skip, pos);
                return -1;
            }
            pos += skip;
        }
        if (container) {
            if (count > len - pos) {
                snprintf(err, errlen,
                         "msgpack: a container of %llu elements at byte %zu exceeds the frame",
                         (unsigned long long)count, pos);
                return -1;
            }
            if (count) {
                if (depth + 1 > max_depth) {
                    snprintf(err, errlen, "msgpack: nesting deeper than %d", max_depth);
                    return -1;
                }
                remaining[++depth] = count;
            }
        }
    }
    if (pos != len) {
        snprintf(err, errlen, "msgpack: %zu trailing bytes after the object", len - pos);
        return -1;
    }
    return 0;
}

int vl_mp_unpack_map(const uint8_t *buf, size_t len, msgpack_unpacked *out, char *err,
                     size_t errlen)
{
    if (vl_mp_check(buf, len, 16, err, errlen))
        return -1;
    msgpack_unpacked_init(out);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(out, (const char *)buf, len, &off);
    if (r != MSGPACK_UNPACK_SUCCESS) {
        snprintf(err, errlen, "msgpack: cannot unpack the frame (%d)", (int)r);
        msgpack_unpacked_destroy(out);
        return -1;
    }
    if (out->data.type != MSGPACK_OBJECT_MAP) {
        snprintf(err, errlen, "msgpack: the frame is not a map");
        msgpack_unpacked_destroy(out); /* its zone would leak (found by tests/fuzz/fuzz_mpapi.c) */
        return -1;
    }
    return 0;
}

const msgpack_object *vl_mp_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

int vl_mp_int(const msgpack_object *o, int64_t *out)
{
    if (!o)
        return -1;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX)
            return -1;
        *out = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    return -1;
}

int vl_mp_uint(const msgpack_object *o, uint64_t *out)
{
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *out = o->via.u64;
    return 0;
}

char *vl_mp_strdup(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return NULL;
    return vl_strndup(o->via.str.ptr, o->via.str.size);
}

int vl_mp_str_eq(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

void vl_mp_pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

void vl_mp_pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    vl_mp_pack_cstr(pk, k);
    vl_mp_pack_cstr(pk, v);
}

void vl_mp_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    vl_mp_pack_cstr(pk, k);
    msgpack_pack_int64(pk, v);
}
