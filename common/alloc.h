/* Allocation that never returns NULL: on failure it logs the size asked for and aborts.
 * For sizes from outside the process, check them against a limit (common/limits.h) first;
 * vl_mul_ok() helps multiply them without overflow. */
#ifndef VL_COMMON_ALLOC_H
#define VL_COMMON_ALLOC_H

#include <stddef.h>

void *vl_malloc(size_t n);
void *vl_calloc(size_t count, size_t size);
void *vl_realloc(void *p, size_t n);
char *vl_strdup(const char *s);
/* Copies exactly n bytes of s (NUL bytes included) and appends a NUL: unlike strndup it does not
 * stop at a NUL, so n must not exceed the bytes s holds. */
char *vl_strndup(const char *s, size_t n);

/* Stores a*b in *out and returns 1, or returns 0 if it overflows size_t. */
static inline int vl_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

#endif
