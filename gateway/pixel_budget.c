/* Per-request decoded-pixel accounting (see pixel_budget.h). */
#include "gateway/pixel_budget.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Field paths and sentences are bounded buffers; longer ones are cut on purpose. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

void pixel_budget_init(struct pixel_budget *b, int64_t limit)
{
    memset(b, 0, sizeof *b);
    b->limit = limit > 0 ? limit : 0;
}

int64_t pixel_charge_pixels(const struct pixel_charge *c)
{
    if (c->width <= 0 || c->height <= 0 || c->frames <= 0)
        return 0;
    /* sides <= 32768 and frames <= video_max_source_frames keep this far from overflow; the
     * clamp makes the promise hold for any input */
    int64_t px = (int64_t)c->width * c->height;
    if (c->frames > INT64_MAX / px)
        return INT64_MAX;
    px *= c->frames;
    return c->is_video ? px / VL_VIDEO_PIXEL_DIVISOR + (px % VL_VIDEO_PIXEL_DIVISOR != 0) : px;
}

int pixel_budget_charge(struct pixel_budget *b, const struct pixel_charge *c, int n)
{
    if (b->over)
        return -E2BIG;
    for (int i = 0; i < n; i++) {
        int64_t px = pixel_charge_pixels(&c[i]);
        b->used = px > INT64_MAX - b->used ? INT64_MAX : b->used + px;
        if (b->limit == 0 || b->used <= b->limit)
            continue;
        b->over = 1;
        const char *path = c[i].path ? c[i].path : "input";
        snprintf(b->param, sizeof b->param, "%s", path);
        char what[160];
        if (c[i].is_video)
            snprintf(what, sizeof what,
                     "%lld frames of %dx%d to decode, charged as %lld pixels (video frames count "
                     "1/%d)",
                     (long long)c[i].frames, c[i].width, c[i].height, (long long)px,
                     VL_VIDEO_PIXEL_DIVISOR);
        else
            snprintf(what, sizeof what, "%dx%d = %lld pixels to decode", c[i].width, c[i].height,
                     (long long)px);
        snprintf(b->message, sizeof b->message,
                 "%s: %s bring the request to %lld; the limit is %lld decoded pixels per request "
                 "(nothing was decoded; send fewer or smaller images or videos per request)",
                 path, what, (long long)b->used, (long long)b->limit);
        return -E2BIG;
    }
    return 0;
}
