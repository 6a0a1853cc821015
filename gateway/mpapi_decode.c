/* The msgpack API's request decoder (see mpapi.h): a frame is checked (common/msgpack_util.h),
 * unpacked, and converted to the same JSON tree the HTTP API parses, with each bin replaced by a
 * reference "\x01bin:N" into the frame, then validated by api_parse. Pure: no I/O, no libuv
 * (fuzzed by tests/fuzz/fuzz_mpapi.c). */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/msgpack_util.h"
#include "gateway/mpapi.h"

/* ---- msgpack -> cJSON (requests) ---------------------------------------------------------- */

static cJSON *to_json(const msgpack_object *o, struct api_bin *bins, int *n_bins, int cap_bins,
                      char *err, size_t errlen)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return cJSON_CreateNull();
    case MSGPACK_OBJECT_BOOLEAN:
        return cJSON_CreateBool(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return cJSON_CreateNumber((double)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return cJSON_CreateNumber((double)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return cJSON_CreateNumber(o->via.f64);
    case MSGPACK_OBJECT_STR: {
        /* msgpack-c gives an empty string a NULL ptr: memchr must not see it (UB; found by
         * tests/fuzz/fuzz_mpapi.c) */
        if ((o->via.str.size && memchr(o->via.str.ptr, 0, o->via.str.size)) ||
            (o->via.str.size && o->via.str.ptr[0] == '\x01')) {
            snprintf(err, errlen, "strings must not contain NUL or start with \\x01");
            return NULL;
        }
        char *s = vl_strndup(o->via.str.ptr, o->via.str.size);
        cJSON *j = cJSON_CreateString(s);
        free(s);
        return j;
    }
    case MSGPACK_OBJECT_BIN: {
        if (*n_bins >= cap_bins) {
            snprintf(err, errlen, "too many bin values");
            return NULL;
        }
        bins[*n_bins].ptr = (const uint8_t *)o->via.bin.ptr;
        bins[*n_bins].len = o->via.bin.size;
        char ref[32];
        snprintf(ref, sizeof ref,
                 "\x01"
                 "bin:%d",
                 (*n_bins)++);
        return cJSON_CreateString(ref);
    }
    case MSGPACK_OBJECT_ARRAY: {
        cJSON *a = cJSON_CreateArray();
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            cJSON *x = to_json(&o->via.array.ptr[i], bins, n_bins, cap_bins, err, errlen);
            if (!x) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, x);
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        cJSON *m = cJSON_CreateObject();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR ||
                (k->via.str.size && memchr(k->via.str.ptr, 0, k->via.str.size))) {
                snprintf(err, errlen, "map keys must be strings");
                cJSON_Delete(m);
                return NULL;
            }
            cJSON *x = to_json(&o->via.map.ptr[i].val, bins, n_bins, cap_bins, err, errlen);
            if (!x) {
                cJSON_Delete(m);
                return NULL;
            }
            char *ks = vl_strndup(k->via.str.ptr, k->via.str.size);
            cJSON_AddItemToObject(m, ks, x);
            free(ks);
        }
        return m;
    }
    default:
        snprintf(err, errlen, "unsupported msgpack type (ext)");
        return NULL;
    }
}

static void count_bins(const msgpack_object *o, int *n)
{
    if (o->type == MSGPACK_OBJECT_BIN)
        (*n)++;
    else if (o->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < o->via.array.size; i++)
            count_bins(&o->via.array.ptr[i], n);
    else if (o->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < o->via.map.size; i++)
            count_bins(&o->via.map.ptr[i].val, n);
}

int mpapi_decode(const uint8_t *p, size_t len, const struct api_limits *lim,
                 struct mpapi_decoded *d, struct api_req *req, struct api_err *e)
{
    memset(d, 0, sizeof *d);
    memset(req, 0, sizeof *req);
    char err[256];
    msgpack_unpacked up;
    int unpacked = 0, rc = -1;
    cJSON *root = NULL;
    if (vl_mp_unpack_map(p, len, &up, err, sizeof err)) {
        api_err_set(e, 400, "invalid_request_error", "invalid_msgpack", NULL, "%s", err);
        goto out;
    }
    unpacked = 1;
    const msgpack_object *id = vl_mp_get(&up.data, "id");
    if (id) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *id);
        d->id = sb.data;
        d->id_len = sb.size;
    }
    const msgpack_object *type = vl_mp_get(&up.data, "type");
    if (type && !vl_mp_str_eq(type, "embed")) {
        if (vl_mp_str_eq(type, "preview"))
            d->preview = 1;
        else {
            api_err_set(e, 400, "invalid_request_error", "unknown_type", "type",
                        "type: must be \"embed\" or \"preview\"");
            goto out;
        }
    }
    int nb = 0;
    count_bins(&up.data, &nb);
    d->bins = vl_calloc((size_t)nb + 1, sizeof *d->bins);
    /* the request fields, without the envelope (type, id) */
    msgpack_object body = up.data;
    msgpack_object_kv *kv = vl_calloc(body.via.map.size + 1, sizeof *kv);
    uint32_t k = 0;
    for (uint32_t i = 0; i < body.via.map.size; i++) {
        const msgpack_object *key = &body.via.map.ptr[i].key;
        if (vl_mp_str_eq(key, "type") || vl_mp_str_eq(key, "id"))
            continue;
        kv[k++] = body.via.map.ptr[i];
    }
    body.via.map.ptr = kv;
    body.via.map.size = k;
    root = to_json(&body, d->bins, &d->n_bins, nb, err, sizeof err);
    free(kv);
    if (!root) {
        api_err_set(e, 400, "invalid_request_error", "invalid_msgpack", NULL, "%s", err);
        goto out;
    }
    rc = api_parse(root, lim, d->bins, d->n_bins, req, e);
out:
    if (root)
        cJSON_Delete(root);
    if (unpacked)
        msgpack_unpacked_destroy(&up);
    return rc;
}

void mpapi_decoded_free(struct mpapi_decoded *d)
{
    free(d->id);
    free(d->bins);
    memset(d, 0, sizeof *d);
}
