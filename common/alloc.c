/* Allocation wrappers: out of memory is not recoverable in vlembed's processes; the
 * supervisor restarts whoever aborted (exit by signal = transient). */
#include "common/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static void oom(const char *what, size_t n)
{
    vl_error("%s(%zu bytes) failed: out of memory", what, n);
    abort();
}

void *vl_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom("malloc", n);
    return p;
}

void *vl_calloc(size_t count, size_t size)
{
    size_t total;
    if (!vl_mul_ok(count, size, &total))
        oom("calloc overflow", (size_t)-1);
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom("calloc", total);
    return p;
}

void *vl_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom("realloc", n);
    return q;
}

char *vl_strndup(const char *s, size_t n)
{
    char *d = vl_malloc(n + 1);
    if (n) /* s may be NULL when n is 0 (msgpack-c's empty strings) */
        memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *vl_strdup(const char *s)
{
    return vl_strndup(s, strlen(s));
}
