/* Small helpers over msgpack-c shared by the gateway and the worker: a bounded pre-validator
 * run on every frame before msgpack-c sees it, map lookups, and packing shorthands.
 *
 * Why the pre-validator: msgpack-c allocates count * sizeof(msgpack_object) when it reads an
 * array or map header, before any element arrives (notes/reliability.md §4.4), so a 5-byte
 * header could ask for gigabytes. vl_mp_check walks the headers first and refuses any count
 * or length larger than the bytes that remain, and nesting deeper than max_depth. */
#ifndef VL_COMMON_MSGPACK_UTIL_H
#define VL_COMMON_MSGPACK_UTIL_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* Returns 0 if buf[0..len) is exactly one well-formed msgpack object whose every declared
 * count and length fits the remaining bytes and whose nesting is <= max_depth; else -1 with a
 * sentence in err. */
int vl_mp_check(const uint8_t *buf, size_t len, int max_depth, char *err, size_t errlen);

/* Unpacks a checked frame into `out` (caller destroys with msgpack_unpacked_destroy). The root
 * must be a map. Returns 0 or -1 with err (then nothing is left to destroy). */
int vl_mp_unpack_map(const uint8_t *buf, size_t len, msgpack_unpacked *out, char *err,
                     size_t errlen);

/* Map lookup by string key; NULL when absent or when `map` is not a map. */
const msgpack_object *vl_mp_get(const msgpack_object *map, const char *key);
/* Typed getters: return 0 and store the value, or -1 if the type is wrong. */
int vl_mp_int(const msgpack_object *o, int64_t *out);
int vl_mp_uint(const msgpack_object *o, uint64_t *out);
/* A str object as a NUL-terminated heap copy (caller frees), NULL if not a str. */
char *vl_mp_strdup(const msgpack_object *o);
/* Compares a str object with a C string. */
int vl_mp_str_eq(const msgpack_object *o, const char *s);

/* Packing shorthands. */
void vl_mp_pack_cstr(msgpack_packer *pk, const char *s);
void vl_mp_pack_kv_str(msgpack_packer *pk, const char *k, const char *v);
void vl_mp_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v);

#endif
