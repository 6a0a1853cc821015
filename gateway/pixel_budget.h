/* A request's budget of decoded pixels (docs/media.md, "Per-request decode budget").
 *
 * Decoding and resizing cost CPU in proportion to the pixels the headers declare, not to the
 * bytes sent: a valid JPEG of ~450 bytes may declare 3.5 Mpx. Each image is bounded alone
 * (media_limits.max_decoded_pixels); this bounds their sum over one request. The gateway reads
 * every header of a request first (images: media_image_info; frame lists: the frames the list
 * keeps; video files: every frame up to the last sampled one, from media_video_probe_file),
 * charges them here, and decodes nothing unless the whole request fits.
 *
 * Pure accounting, no I/O and no threads: gateway/preprocess.c calls it on the loop thread. */
#ifndef VL_GATEWAY_PIXEL_BUDGET_H
#define VL_GATEWAY_PIXEL_BUDGET_H

#include <stdint.h>

/* One source's declared decode work: `frames` frames of width x height. */
struct pixel_charge {
    const char *path; /* the request field: "input[2].image", "input[0].video[3]" */
    int is_video;     /* a video file (message says "frames") */
    int32_t width, height;
    int64_t frames;
};

struct pixel_budget {
    int64_t limit; /* 0: no limit */
    int64_t used;  /* pixels charged so far */
    int over;      /* a charge passed the limit; the budget stays over */
    char param[96];
    char message[512];
};

void pixel_budget_init(struct pixel_budget *b, int64_t limit);

/* Video-file frames are charged at 1/VL_VIDEO_PIXEL_DIVISOR of their pixels: decoding a video
 * costs ~2.7 ms per Mpx on one core against 10-16 ms per Mpx to decode and resize an image
 * (docs/media.md), and only the <= 64 sampled frames are resized. Frame lists are images. */
#define VL_VIDEO_PIXEL_DIVISOR 4

/* The pixels one charge costs: width * height * frames, divided by VL_VIDEO_PIXEL_DIVISOR
 * (rounded up) for a video file; 0 for a negative or zero field. */
int64_t pixel_charge_pixels(const struct pixel_charge *c);

/* Charges the sources in order. Returns 0 if the total stays within the limit; otherwise
 * -E2BIG, and b->param / b->message name the first source with which the total passes the
 * limit, its size and the totals ("input[3].image: 15144x232 = 3513408 pixels to decode bring
 * the request to 52513408; the limit is 50000000 decoded pixels per request (nothing was
 * decoded)"). Once over, every later charge returns -E2BIG and leaves the message alone. */
int pixel_budget_charge(struct pixel_budget *b, const struct pixel_charge *c, int n);

#endif
