/* stb_image, built for the gateway: only GIF and BMP (JPEG goes to libjpeg-turbo, PNG to libpng,
 * WebP to libwebp), no stdio, no HDR, a hard dimension cap, and every allocation charged to a
 * per-thread budget that the caller sets from the image header before decoding: any request
 * beyond it makes stb fail with "outofmem" instead of taking the memory. (reliability.md §4.)
 *
 * GIF: only the first frame is ever loaded (stbi_load_from_memory), which avoids the
 * multi-frame paths of the 2023 GIF advisories (stbi__load_gif_main, two_back). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/media_stb.h"

struct stb_budget {
    size_t used, cap;
    int over; /* set when a request was refused */
};
static _Thread_local struct stb_budget budget;

#define HDR 16 /* keeps the payload 16-byte aligned; holds the size */

static void *budget_malloc(size_t n)
{
    if (n > budget.cap || budget.used > budget.cap - n) {
        budget.over = 1;
        return NULL;
    }
    unsigned char *p = malloc(n + HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof n);
    budget.used += n;
    return p + HDR;
}

static void budget_free(void *q)
{
    if (!q)
        return;
    unsigned char *p = (unsigned char *)q - HDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    budget.used -= n;
    free(p);
}

static void *budget_realloc(void *q, size_t n)
{
    if (!q)
        return budget_malloc(n);
    unsigned char *p = (unsigned char *)q - HDR;
    size_t old;
    memcpy(&old, p, sizeof old);
    if (n > old && (n - old > budget.cap || budget.used > budget.cap - (n - old))) {
        budget.over = 1;
        return NULL;
    }
    unsigned char *r = realloc(p, n + HDR);
    if (!r)
        return NULL;
    memcpy(r, &n, sizeof n);
    budget.used = budget.used - old + n;
    return r + HDR;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmisleading-indentation"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_GIF
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS MEDIA_STB_MAX_DIMENSION
#define STBI_MALLOC(sz) budget_malloc(sz)
#define STBI_REALLOC(p, sz) budget_realloc(p, sz)
#define STBI_FREE(p) budget_free(p)
#include <stb/stb_image.h>
/* no "pop": -Wunused-function is reported at the end of the file */

int media_stb_info(const uint8_t *data, size_t n, int *w, int *h, int *comp)
{
    if (n > INT32_MAX)
        return 0;
    /* the GIF header parser allocates its state (~40 KiB) */
    budget.used = 0;
    budget.cap = 1u << 20;
    budget.over = 0;
    return stbi_info_from_memory(data, (int)n, w, h, comp);
}

uint8_t *media_stb_load(const uint8_t *data, size_t n, int req_comp, int bits16, size_t cap, int *w,
                        int *h, const char **why, int *over_budget)
{
    budget.used = 0;
    budget.cap = cap;
    budget.over = 0;
    int comp = 0;
    void *px = NULL;
    if (n <= INT32_MAX)
        px = bits16 ? (void *)stbi_load_16_from_memory(data, (int)n, w, h, &comp, req_comp)
                    : (void *)stbi_load_from_memory(data, (int)n, w, h, &comp, req_comp);
    *over_budget = budget.over;
    if (!px) {
        *why = n > INT32_MAX ? "too large" : stbi_failure_reason();
        return NULL;
    }
    /* Hand the caller a plain malloc'd copy so that it never frees into the budget. */
    size_t sz = (size_t)*w * (size_t)*h * (size_t)req_comp * (bits16 ? 2 : 1);
    uint8_t *out = malloc(sz ? sz : 1);
    if (out)
        memcpy(out, px, sz);
    else
        *why = "outofmem";
    stbi_image_free(px);
    return out;
}
